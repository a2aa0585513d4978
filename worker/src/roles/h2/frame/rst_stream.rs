//! RST_STREAM (RFC 9113 section 6.4): ends one stream at once, with an error code.
//!
//! ```text
//! RST_STREAM Frame {
//!   Length (24) = 0x04, Type (8) = 0x03,
//!   Unused Flags (8),
//!   Reserved (1), Stream Identifier (31),
//!   Error Code (32),
//! }
//! ```

use bytes::BufMut;

use super::ErrorCode;
use super::head::{Head, Kind, StreamId};

/// Payload bytes of RST_STREAM (6.4: any other length is a connection FRAME_SIZE_ERROR).
pub const RST_STREAM_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStream {
    pub stream: StreamId,
    pub code: ErrorCode,
}

impl RstStream {
    pub(super) fn decode(head: Head, payload: &[u8; RST_STREAM_LEN]) -> RstStream {
        RstStream {
            stream: head.stream,
            code: ErrorCode(u32::from_be_bytes(*payload)),
        }
    }

    pub fn head(&self) -> Head {
        Head::new(Kind::RstStream, 0, self.stream, RST_STREAM_LEN as u32)
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        dst.put_u32(self.code.0);
    }
}
