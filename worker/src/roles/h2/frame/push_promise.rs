//! PUSH_PROMISE (RFC 9113 section 6.6): a server reserves a stream for a response it
//! will push. Only servers send it: a server receiving one answers with a connection
//! PROTOCOL_ERROR (8.4: "A client cannot push"), and so does a client that disabled
//! push (6.6); the [`super::Parser`] applies both. lwsd's server never pushes; the
//! frame is decoded fully so the client side (reusing these roles) and the fuzz
//! round trip cover it.
//!
//! ```text
//! PUSH_PROMISE Frame {
//!   Length (24), Type (8) = 0x05,
//!   Unused Flags (4), PADDED Flag (1), END_HEADERS Flag (1), Unused Flags (2),
//!   Reserved (1), Stream Identifier (31),
//!   [Pad Length (8)],
//!   Reserved (1), Promised Stream ID (31),
//!   Field Block Fragment (..),
//!   Padding (..2040),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId, flags};
use super::{H2Error, pad};

/// Bytes of the Promised Stream ID field.
const PROMISED_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPromise<'a> {
    /// The stream the promise is made on (an open stream of the client's).
    pub stream: StreamId,
    /// The stream reserved for the pushed response (reserved bit dropped).
    pub promised: StreamId,
    pub end_headers: bool,
    pub pad_len: Option<u8>,
    pub fragment: &'a [u8],
}

impl<'a> PushPromise<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<PushPromise<'a>, H2Error> {
        let (pad_len, rest) = pad::strip(head, payload, PROMISED_LEN)?;
        let (id, fragment) = rest.split_at(PROMISED_LEN);
        let id: [u8; PROMISED_LEN] = id.try_into().unwrap_or_default();
        Ok(PushPromise {
            stream: head.stream,
            promised: StreamId::new(u32::from_be_bytes(id)),
            end_headers: head.flags & flags::END_HEADERS != 0,
            pad_len,
            fragment,
        })
    }

    pub fn head(&self) -> Head {
        let mut f = if self.end_headers {
            flags::END_HEADERS
        } else {
            0
        };
        if self.pad_len.is_some() {
            f |= flags::PADDED;
        }
        let len = pad::padded_len(self.pad_len, PROMISED_LEN, self.fragment.len());
        Head::new(Kind::PushPromise, f, self.stream, len)
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        let id = self.promised.get().to_be_bytes();
        pad::encode_padded(self.pad_len, &id, self.fragment, dst);
    }
}
