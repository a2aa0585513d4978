//! HEADERS (RFC 9113 section 6.2): opens a stream and carries the first fragment of a
//! field block (the rest follows in CONTINUATION frames, 6.10), optionally padded and
//! optionally with the deprecated priority fields (accepted and ignored, 5.3.2).
//!
//! ```text
//! HEADERS Frame {
//!   Length (24), Type (8) = 0x01,
//!   Unused Flags (2), PRIORITY Flag (1), Unused Flag (1), PADDED Flag (1),
//!   END_HEADERS Flag (1), Unused Flag (1), END_STREAM Flag (1),
//!   Reserved (1), Stream Identifier (31),
//!   [Pad Length (8)],
//!   [Exclusive (1)], [Stream Dependency (31)], [Weight (8)],
//!   Field Block Fragment (..),
//!   Padding (..2040),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId, flags};
use super::priority::{PRIORITY_LEN, PrioritySpec};
use super::{H2Error, pad};

/// A HEADERS frame; `fragment` borrows the receive buffer (HPACK decodes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    pub stream: StreamId,
    pub end_stream: bool,
    /// The field block is complete in this frame (else CONTINUATION frames follow).
    pub end_headers: bool,
    pub pad_len: Option<u8>,
    /// The deprecated priority fields, when the PRIORITY flag was set (ignored).
    pub priority: Option<PrioritySpec>,
    pub fragment: &'a [u8],
}

impl<'a> Headers<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Headers<'a>, H2Error> {
        let with_prio = head.flags & flags::PRIORITY != 0;
        let fixed = if with_prio { PRIORITY_LEN } else { 0 };
        let (pad_len, rest) = pad::strip(head, payload, fixed)?;
        let (prio, fragment) = rest.split_at(fixed);
        let priority = match prio.try_into() {
            Ok(b) if with_prio => Some(PrioritySpec::parse(b)),
            _ => None,
        };
        Ok(Headers {
            stream: head.stream,
            end_stream: head.flags & flags::END_STREAM != 0,
            end_headers: head.flags & flags::END_HEADERS != 0,
            pad_len,
            priority,
            fragment,
        })
    }

    pub fn head(&self) -> Head {
        let mut f = 0;
        if self.end_stream {
            f |= flags::END_STREAM;
        }
        if self.end_headers {
            f |= flags::END_HEADERS;
        }
        if self.pad_len.is_some() {
            f |= flags::PADDED;
        }
        let fixed = if self.priority.is_some() {
            f |= flags::PRIORITY;
            PRIORITY_LEN
        } else {
            0
        };
        let len = pad::padded_len(self.pad_len, fixed, self.fragment.len());
        Head::new(Kind::Headers, f, self.stream, len)
    }

    /// Appends the whole frame to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        let prio = self.priority.map(|p| p.to_bytes());
        let fixed: &[u8] = prio.as_ref().map_or(&[], |p| &p[..]);
        pad::encode_padded(self.pad_len, fixed, self.fragment, dst);
    }
}
