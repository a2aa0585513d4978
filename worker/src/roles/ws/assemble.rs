//! [`MessageAssembler`]: collects the [`DataChunk`]s of one message into a whole
//! message, for protocols that want messages rather than lws-style pieces.
//!
//! The buffer is a `BytesMut`: a finished message is split off and frozen into `Bytes`
//! without a copy, and once the application drops that `Bytes` the allocation is
//! reclaimed by the next message (BytesMut reuses a uniquely owned buffer).

use bytes::{Bytes, BytesMut};

use super::WsError;
use super::conn::DataChunk;

/// Most bytes reserved ahead from a frame's announced length. A peer can announce a
/// 16 MiB frame and then send one byte a minute; reserving only this much ahead makes
/// memory follow the bytes actually received (64 KiB keeps big messages to a handful
/// of reallocations).
pub const MAX_RESERVE_AHEAD: u64 = 64 << 10;

/// A whole received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledMessage {
    pub binary: bool,
    /// For text messages, valid UTF-8 (checked by the connection).
    pub data: Bytes,
}

/// Rebuilds whole messages from chunks, up to a size limit.
#[derive(Debug)]
pub struct MessageAssembler {
    buf: BytesMut,
    max: u64,
}

impl MessageAssembler {
    /// Messages over `max` bytes fail with 1009 (the connection enforces its own
    /// `max_message_size` first; this bound protects direct users).
    pub fn new(max: u64) -> MessageAssembler {
        MessageAssembler {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Add a chunk; returns the whole message when `chunk.last`.
    pub fn push(&mut self, chunk: &DataChunk<'_>) -> Result<Option<AssembledMessage>, WsError> {
        if chunk.first {
            self.buf.clear();
        }
        let total = (self.buf.len() as u64).saturating_add(chunk.payload.len() as u64);
        if total > self.max {
            self.buf.clear();
            return Err(WsError::TOO_BIG);
        }
        if !chunk.last {
            let ahead = chunk.remaining.min(MAX_RESERVE_AHEAD);
            let want = (chunk.payload.len() as u64).saturating_add(ahead);
            self.buf
                .reserve(want.min(self.max - self.buf.len() as u64) as usize);
        }
        self.buf.extend_from_slice(chunk.payload);
        if chunk.last {
            return Ok(Some(AssembledMessage {
                binary: chunk.binary,
                data: self.buf.split().freeze(),
            }));
        }
        Ok(None)
    }

    /// Bytes of the unfinished message held now.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(p: &[u8], first: bool, last: bool, remaining: u64) -> DataChunk<'_> {
        DataChunk {
            payload: p,
            first,
            last,
            binary: true,
            remaining,
        }
    }

    #[test]
    fn assembles_and_enforces_max() {
        let mut a = MessageAssembler::new(10);
        assert_eq!(a.push(&chunk(b"abc", true, false, 1 << 40)).unwrap(), None);
        assert!(a.buf.capacity() <= (3 + MAX_RESERVE_AHEAD) as usize);
        assert_eq!(a.push(&chunk(b"def", false, false, 0)).unwrap(), None);
        let m = a.push(&chunk(b"ghij", false, true, 0)).unwrap().unwrap();
        assert_eq!(&m.data[..], b"abcdefghij");
        // Exactly at the limit is fine; one more byte is 1009.
        assert_eq!(a.push(&chunk(b"0123456789", true, false, 1)).unwrap(), None);
        assert_eq!(a.push(&chunk(b"x", false, true, 0)), Err(WsError::TOO_BIG));
        assert_eq!(a.buffered(), 0);
        // A new message after an error starts clean.
        let m = a.push(&chunk(b"ok", true, true, 0)).unwrap().unwrap();
        assert_eq!(&m.data[..], b"ok");
    }
}
