//! CONTINUATION (RFC 9113 section 6.10): the next fragment of a field block begun by
//! HEADERS or PUSH_PROMISE. The parser ([`super::Parser`]) checks the sequence (4.3):
//! nothing else may come between the first fragment and the one with END_HEADERS.
//!
//! ```text
//! CONTINUATION Frame {
//!   Length (24), Type (8) = 0x09,
//!   Unused Flags (5), END_HEADERS Flag (1), Unused Flags (2),
//!   Reserved (1), Stream Identifier (31),
//!   Field Block Fragment (..),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId, flags};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation<'a> {
    pub stream: StreamId,
    pub end_headers: bool,
    pub fragment: &'a [u8],
}

impl<'a> Continuation<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Continuation<'a> {
        Continuation {
            stream: head.stream,
            end_headers: head.flags & flags::END_HEADERS != 0,
            fragment: payload,
        }
    }

    pub fn head(&self) -> Head {
        let f = if self.end_headers {
            flags::END_HEADERS
        } else {
            0
        };
        Head::new(
            Kind::Continuation,
            f,
            self.stream,
            self.fragment.len() as u32,
        )
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        dst.put_slice(self.fragment);
    }
}
