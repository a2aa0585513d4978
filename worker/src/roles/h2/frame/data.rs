//! DATA (RFC 9113 section 6.1): a stream's content bytes, optionally padded.
//!
//! ```text
//! DATA Frame {
//!   Length (24), Type (8) = 0x00,
//!   Unused Flags (4), PADDED Flag (1), Unused Flags (2), END_STREAM Flag (1),
//!   Reserved (1), Stream Identifier (31),
//!   [Pad Length (8)],
//!   Data (..),
//!   Padding (..2040),
//! }
//! ```

use bytes::BufMut;

use super::head::{HEADER_LEN, Head, Kind, StreamId, flags};
use super::{H2Error, pad};

/// A DATA frame; `data` borrows the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    pub stream: StreamId,
    pub end_stream: bool,
    /// The Pad Length when PADDED was set (the padding itself is dropped).
    pub pad_len: Option<u8>,
    pub data: &'a [u8],
}

impl<'a> Data<'a> {
    /// Payload of a DATA frame whose header passed the parser's checks (stream not 0).
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Data<'a>, H2Error> {
        let (pad_len, data) = pad::strip(head, payload, 0)?;
        Ok(Data {
            stream: head.stream,
            end_stream: head.flags & flags::END_STREAM != 0,
            pad_len,
            data,
        })
    }

    /// What this frame counts against the flow-control windows: the whole payload,
    /// "including the Pad Length and Padding fields if present" (section 6.9.1).
    pub fn flow_len(&self) -> u32 {
        self.data.len() as u32 + self.pad_len.map_or(0, |p| 1 + u32::from(p))
    }

    pub fn head(&self) -> Head {
        let mut f = if self.end_stream {
            flags::END_STREAM
        } else {
            0
        };
        if self.pad_len.is_some() {
            f |= flags::PADDED;
        }
        Head::new(Kind::Data, f, self.stream, self.flow_len())
    }

    /// Appends the whole frame (padding as zeros, section 6.1) to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        pad::encode_padded(self.pad_len, &[], self.data, dst);
    }
}

/// The header of an unpadded DATA frame carrying `len` bytes: send it and the payload
/// as two buffers.
pub fn data_head(stream: StreamId, end_stream: bool, len: u32) -> [u8; HEADER_LEN] {
    let f = if end_stream { flags::END_STREAM } else { 0 };
    Head::new(Kind::Data, f, stream, len).to_bytes()
}

/// Writes an unpadded DATA frame header into the [`HEADER_LEN`] bytes before
/// `buf[payload_at..]`, the payload being all of `buf[payload_at..]` (see
/// [`Head::write_before`]). Returns where the frame starts; `buf[start..]` is the frame.
///
/// # Panics
/// With less than [`HEADER_LEN`] bytes of room, or a payload over 2^24-1 bytes.
pub fn write_data_head_before(
    buf: &mut [u8],
    payload_at: usize,
    stream: StreamId,
    end_stream: bool,
) -> usize {
    let len = buf.len().saturating_sub(payload_at);
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let f = if end_stream { flags::END_STREAM } else { 0 };
    Head::new(Kind::Data, f, stream, len).write_before(buf, payload_at)
}
