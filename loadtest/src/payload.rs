//! The test message: a timestamp, the sender's connection number and a sequence number
//! at the front of the payload, padded to the requested size.
//!
//! Everything is ASCII (lowercase hex) because libwebsockets' mirror protocol re-sends
//! every message as a text frame, and a client must fail a text message that is not
//! UTF-8 (RFC 6455 section 8.1). The timestamp is nanoseconds on the load generator's
//! own monotonic clock, shared by all its threads, so delivery latency is measured on
//! one clock whichever connection receives the message.

use bytes::{BufMut, Bytes, BytesMut};

/// Magic prefix: tells our messages from a server's own (dumb-increment's counters).
const MAGIC: &[u8; 2] = b"lw";
/// Header bytes: magic, 16 hex digits of timestamp, 8 of sender, 8 of sequence.
pub const HEADER_LEN: usize = 2 + 16 + 8 + 8;

const HEX: &[u8; 16] = b"0123456789abcdef";
/// Padding byte after the header.
const PAD: u8 = b'.';

/// What a received header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_ns: u64,
    pub sender: u32,
    pub seq: u32,
}

fn put_hex(out: &mut BytesMut, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.put_u8(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// A payload of `size` bytes (at least [`HEADER_LEN`]) carrying `stamp`.
pub fn encode(stamp: Stamp, size: usize) -> Bytes {
    let size = size.max(HEADER_LEN);
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(MAGIC);
    put_hex(&mut b, stamp.sent_ns, 16);
    put_hex(&mut b, u64::from(stamp.sender), 8);
    put_hex(&mut b, u64::from(stamp.seq), 8);
    b.put_bytes(PAD, size - HEADER_LEN);
    b.freeze()
}

fn hex(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

/// Read the header from the first bytes of a message; `None` when they are not ours.
pub fn decode(head: &[u8]) -> Option<Stamp> {
    let h = head.get(..HEADER_LEN)?;
    if &h[..2] != MAGIC {
        return None;
    }
    Some(Stamp {
        sent_ns: hex(&h[2..18])?,
        sender: hex(&h[18..26])? as u32,
        seq: hex(&h[26..34])? as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Stamp {
            sent_ns: 0x0123_4567_89ab_cdef,
            sender: 0xdead_beef,
            seq: 7,
        };
        let p = encode(s, 64);
        assert_eq!(p.len(), 64);
        assert!(p.is_ascii());
        assert_eq!(&p[..HEADER_LEN], b"lw0123456789abcdefdeadbeef00000007");
        assert_eq!(decode(&p), Some(s));
        // Too small a size still carries the whole header.
        assert_eq!(encode(s, 1).len(), HEADER_LEN);
        assert_eq!(decode(&encode(s, 0)), Some(s));
    }

    #[test]
    fn foreign_payloads() {
        assert_eq!(decode(b"12345"), None);
        assert_eq!(decode(&[b'7'; 40]), None);
        let mut p = encode(
            Stamp {
                sent_ns: 1,
                sender: 2,
                seq: 3,
            },
            40,
        )
        .to_vec();
        assert!(decode(&p[..HEADER_LEN - 1]).is_none());
        p[5] = b'G';
        assert!(decode(&p).is_none());
    }
}
