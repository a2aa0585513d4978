//! GOAWAY (RFC 9113 section 6.8): the connection is ending; streams above the last
//! stream id were not processed and may be retried elsewhere.
//!
//! ```text
//! GOAWAY Frame {
//!   Length (24), Type (8) = 0x07,
//!   Unused Flags (8),
//!   Reserved (1), Stream Identifier (31) = 0,
//!   Reserved (1), Last-Stream-ID (31),
//!   Error Code (32),
//!   Additional Debug Data (..),
//! }
//! ```

use bytes::BufMut;

use super::ErrorCode;
use super::head::{Head, Kind, StreamId};

/// Fixed payload bytes of GOAWAY (fewer is a connection FRAME_SIZE_ERROR, 4.2).
pub const GOAWAY_MIN_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway<'a> {
    /// The reserved bit is dropped (section 6.8: "MUST be ignored when receiving").
    pub last_stream: StreamId,
    pub code: ErrorCode,
    /// Opaque diagnostic bytes (not to be interpreted, section 6.8).
    pub debug_data: &'a [u8],
}

impl<'a> GoAway<'a> {
    /// `payload` is at least [`GOAWAY_MIN_LEN`] bytes (the parser checked).
    pub(super) fn decode(payload: &'a [u8]) -> Option<GoAway<'a>> {
        let (fixed, debug_data) = payload.split_first_chunk::<GOAWAY_MIN_LEN>()?;
        let [a, b, c, d, e, f, g, h] = *fixed;
        Some(GoAway {
            last_stream: StreamId::new(u32::from_be_bytes([a, b, c, d])),
            code: ErrorCode(u32::from_be_bytes([e, f, g, h])),
            debug_data,
        })
    }

    pub fn head(&self) -> Head {
        let len = (GOAWAY_MIN_LEN + self.debug_data.len()) as u32;
        Head::new(Kind::GoAway, 0, StreamId::ZERO, len)
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        dst.put_u32(self.last_stream.get());
        dst.put_u32(self.code.0);
        dst.put_slice(self.debug_data);
    }
}
