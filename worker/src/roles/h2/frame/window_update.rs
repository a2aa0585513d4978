//! WINDOW_UPDATE (RFC 9113 section 6.9): flow-control credit for one stream, or for
//! the whole connection on stream 0.
//!
//! ```text
//! WINDOW_UPDATE Frame {
//!   Length (24) = 0x04, Type (8) = 0x08,
//!   Unused Flags (8),
//!   Reserved (1), Stream Identifier (31),
//!   Reserved (1), Window Size Increment (31),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId};
use super::{ErrorCode, H2Error};

/// Payload bytes of WINDOW_UPDATE (6.9: any other length is a connection
/// FRAME_SIZE_ERROR).
pub const WINDOW_UPDATE_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUpdate {
    /// Stream 0: the connection's window.
    pub stream: StreamId,
    /// 1 to 2^31-1 (the reserved bit dropped, zero refused).
    pub increment: u32,
}

impl WindowUpdate {
    pub(super) fn decode(
        head: Head,
        payload: &[u8; WINDOW_UPDATE_LEN],
    ) -> Result<WindowUpdate, H2Error> {
        let increment = u32::from_be_bytes(*payload) & 0x7fff_ffff;
        if increment == 0 {
            // 6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a
            // flow-control window increment of 0 as a stream error of type
            // PROTOCOL_ERROR; errors on the connection flow-control window MUST be
            // treated as a connection error". H2Error::stream makes stream 0 a
            // connection error.
            return Err(H2Error::stream(
                head.stream,
                ErrorCode::PROTOCOL_ERROR,
                "WINDOW_UPDATE with increment 0",
            ));
        }
        Ok(WindowUpdate {
            stream: head.stream,
            increment,
        })
    }

    pub fn head(&self) -> Head {
        Head::new(Kind::WindowUpdate, 0, self.stream, WINDOW_UPDATE_LEN as u32)
    }

    /// # Panics
    /// When the increment is 0 or over 2^31-1 (section 6.9; a bug in the caller).
    pub fn encode(&self, dst: &mut impl BufMut) {
        assert!(
            (1..=0x7fff_ffff).contains(&self.increment),
            "WINDOW_UPDATE increment out of 1..=2^31-1"
        );
        self.head().encode(dst);
        dst.put_u32(self.increment);
    }
}
