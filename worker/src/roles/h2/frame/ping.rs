//! PING (RFC 9113 section 6.7): 8 opaque bytes, echoed back with ACK.
//!
//! ```text
//! PING Frame {
//!   Length (24) = 0x08, Type (8) = 0x06,
//!   Unused Flags (7), ACK Flag (1),
//!   Reserved (1), Stream Identifier (31) = 0,
//!   Opaque Data (64),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId, flags};

/// Payload bytes of PING (6.7: any other length is a connection FRAME_SIZE_ERROR).
pub const PING_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub ack: bool,
    pub data: [u8; PING_LEN],
}

impl Ping {
    pub(super) fn decode(head: Head, payload: &[u8; PING_LEN]) -> Ping {
        Ping {
            ack: head.flags & flags::ACK != 0,
            data: *payload,
        }
    }

    /// The answer to a received PING: the same data with ACK (6.7: "Receivers of a
    /// PING frame that does not include an ACK flag MUST send a PING frame with the
    /// ACK flag set in response, with an identical frame payload").
    pub fn pong(&self) -> Ping {
        Ping {
            ack: true,
            data: self.data,
        }
    }

    pub fn head(&self) -> Head {
        let f = if self.ack { flags::ACK } else { 0 };
        Head::new(Kind::Ping, f, StreamId::ZERO, PING_LEN as u32)
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        dst.put_slice(&self.data);
    }
}
