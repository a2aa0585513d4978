//! The WebSocket frame codec (RFC 6455 section 5.2): header parsing from a byte slice
//! and header encoding into a small stack buffer, plus the unmasked (server) frame
//! builders and [`SharedFrame`] for fan-out.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! A header is parsed only from the bytes it occupies (2 to 14); the payload is never
//! touched here, so the connection can hand payload slices to the application without
//! copying. Encoding writes the header into a [`HeaderBuf`] on the stack; the payload
//! stays in its own `Bytes` and goes out as a second iovec, so it is never copied just
//! to prepend a header (lws reserves `LWS_PRE` headroom for the same reason). The
//! 2-byte headers of small unmasked frames come from a static table, so sending a small
//! server frame allocates nothing for its header.
//!
//! Hand-written: the protocol crates (tungstenite) own the buffers and copy payloads
//! into their own frames, which is what lwsd must avoid.

use std::sync::OnceLock;

use bytes::Bytes;

use super::{UsageError, WsError};

/// Longest possible frame header: 2 fixed bytes, an 8-byte extended length and a 4-byte
/// masking key (section 5.2). The connection buffers at most this many bytes of a
/// header that a read cut in two.
pub const MAX_HEADER_LEN: usize = 14;

/// Control frames carry at most 125 payload bytes (section 5.5), so they always fit the
/// 7-bit length and a 125-byte buffer is enough to collect one across reads.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The RSV1 bit (section 5.2), used by permessage-deflate (RFC 7692 section 6) to mark a
/// compressed message.
pub const RSV1: u8 = 0x4;

/// Frame opcodes (section 5.2, registry in 11.8). The reserved values 0x3-0x7 and
/// 0xB-0xF are not representable: parsing them is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xa,
}

impl Opcode {
    /// Section 5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail
    /// the WebSocket Connection_".
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }

    /// Section 5.5: control frames are those whose opcode has the high bit set.
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// The kind of a data message, for the send side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Text,
    Binary,
}

impl DataKind {
    pub fn opcode(self) -> Opcode {
        match self {
            DataKind::Text => Opcode::Text,
            DataKind::Binary => Opcode::Binary,
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0x4).
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Outcome of [`parse_header`] on a slice that may hold only part of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The header, and how many bytes it occupied.
    Complete(FrameHeader, usize),
    /// More bytes are needed; the ones seen so far are valid.
    Incomplete,
}

/// Parse a frame header from the start of `buf` (section 5.2). Errors are raised as soon
/// as the bytes seen make the frame invalid, even when the header is still incomplete:
/// a reserved opcode (5.2), a fragmented or long control frame (5.5), a 64-bit length
/// with the most significant bit set (5.2). Non-minimal length encodings are accepted:
/// section 5.2 asks the sender for the minimal form but does not ask the receiver to
/// reject others. The mask and RSV bits are returned as seen: whether they are allowed
/// depends on the side and the negotiated extensions, which the connection checks.
#[inline]
pub fn parse_header(buf: &[u8]) -> Result<Parsed, WsError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(Parsed::Incomplete),
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(WsError::RESERVED_OPCODE)?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        // 5.5: "All control frames MUST have a payload length of 125 bytes or less and
        // MUST NOT be fragmented."
        if !fin {
            return Err(WsError::FRAGMENTED_CONTROL);
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::CONTROL_TOO_LONG);
        }
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let total = 2 + ext + if masked { 4 } else { 0 };
    let Some(hdr) = buf.get(..total) else {
        // Check the 64-bit length's top bit as soon as its first byte is there.
        if ext == 8 && buf.get(2).is_some_and(|b| b & 0x80 != 0) {
            return Err(WsError::LENGTH_MSB);
        }
        return Ok(Parsed::Incomplete);
    };
    let len = match ext {
        2 => u64::from(u16::from_be_bytes([hdr[2], hdr[3]])),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&hdr[2..10]);
            let l = u64::from_be_bytes(b);
            // 5.2: "the most significant bit MUST be 0".
            if l >> 63 != 0 {
                return Err(WsError::LENGTH_MSB);
            }
            l
        }
        _ => u64::from(len7),
    };
    let mask = if masked {
        let m = &hdr[total - 4..total];
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Parsed::Complete(
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len,
        },
        total,
    ))
}

/// An encoded frame header on the stack (at most [`MAX_HEADER_LEN`] bytes).
#[derive(Clone, Copy)]
pub struct HeaderBuf {
    buf: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBuf {
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The header as `Bytes`: from the static table for a 2-byte unmasked header
    /// without RSV bits (no allocation), else a small copy.
    #[inline]
    pub fn to_bytes(&self) -> Bytes {
        if self.len == 2 && self.buf[0] & 0x70 == 0 {
            let b0 = self.buf[0];
            let idx = usize::from((b0 >> 7) << 4 | (b0 & 0x0f));
            if let Some(h) = SMALL_HEADERS
                .get(idx)
                .and_then(|row| row.get(usize::from(self.buf[1])))
            {
                return Bytes::from_static(h);
            }
        }
        Bytes::copy_from_slice(self.as_slice())
    }
}

impl std::ops::Deref for HeaderBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for HeaderBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeaderBuf({:02x?})", self.as_slice())
    }
}

/// Every 2-byte unmasked header without RSV bits: indexed by `FIN << 4 | opcode`, then
/// by the 7-bit length 0..=125. 32 * 126 * 2 = 8 KiB of static data that saves one
/// small allocation per small server frame.
static SMALL_HEADERS: [[[u8; 2]; 126]; 32] = {
    let mut t = [[[0u8; 2]; 126]; 32];
    let mut i = 0;
    while i < 32 {
        let mut l = 0;
        while l < 126 {
            t[i][l] = [((i as u8 >> 4) << 7) | (i as u8 & 0x0f), l as u8];
            l += 1;
        }
        i += 1;
    }
    t
};

/// Encode a frame header (section 5.2) with the minimal length encoding the section
/// requires of senders.
#[inline]
pub fn encode_header(
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: u64,
) -> HeaderBuf {
    let mut buf = [0u8; MAX_HEADER_LEN];
    buf[0] = (u8::from(fin) << 7) | ((rsv & 0x7) << 4) | opcode as u8;
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len <= 125 {
        buf[1] = mbit | len as u8;
        2
    } else if len <= 0xffff {
        buf[1] = mbit | 126;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        buf[1] = mbit | 127;
        buf[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    if let Some(m) = mask {
        buf[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    HeaderBuf { buf, len: n as u8 }
}

/// Header of an unmasked (server to client, section 5.1) data frame carrying `payload`:
/// `continuation` selects opcode 0 (a later fragment, section 5.4) instead of `kind`'s.
/// Send `[header, payload]` as two buffers.
#[inline]
pub fn encode_data(kind: DataKind, fin: bool, continuation: bool, payload: &[u8]) -> Bytes {
    let op = if continuation {
        Opcode::Continuation
    } else {
        kind.opcode()
    };
    encode_header(fin, 0, op, None, payload.len() as u64).to_bytes()
}

/// A whole unmasked control frame; the payload is small (<= 125) so header and payload
/// share one buffer.
fn encode_control(op: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let h = encode_header(true, 0, op, mask, payload.len() as u64);
    let mut v = Vec::with_capacity(h.len() + payload.len());
    v.extend_from_slice(&h);
    let start = v.len();
    v.extend_from_slice(payload);
    if let Some(m) = mask {
        super::mask::apply_mask(&mut v[start..], m, 0);
    }
    Bytes::from(v)
}

fn check_control(payload: &[u8]) -> Result<(), UsageError> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        Err(UsageError::ControlPayloadTooLong)
    } else {
        Ok(())
    }
}

/// A whole ping frame (section 5.5.2), masked when `mask` is given (client side).
pub fn encode_ping(payload: &[u8], mask: Option<[u8; 4]>) -> Result<Bytes, UsageError> {
    check_control(payload)?;
    Ok(encode_control(Opcode::Ping, payload, mask))
}

/// A whole pong frame (section 5.5.3), masked when `mask` is given (client side).
pub fn encode_pong(payload: &[u8], mask: Option<[u8; 4]>) -> Result<Bytes, UsageError> {
    check_control(payload)?;
    Ok(encode_control(Opcode::Pong, payload, mask))
}

/// A whole close frame (section 5.5.1) with `code` and a UTF-8 `reason`. `None` sends a
/// close without a body. The code must be one an endpoint may send (section 7.4); the
/// reason must fit the control payload with the code (at most 123 bytes).
pub fn encode_close(
    code: Option<u16>,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> Result<Bytes, UsageError> {
    let mut p = [0u8; MAX_CONTROL_PAYLOAD];
    let n = match code {
        None if reason.is_empty() => 0,
        None => return Err(UsageError::ReasonWithoutCode),
        Some(c) => {
            if !super::close::is_valid_code(c) {
                return Err(UsageError::InvalidCloseCode(c));
            }
            let r = reason.as_bytes();
            if r.len() > MAX_CONTROL_PAYLOAD - 2 {
                return Err(UsageError::ControlPayloadTooLong);
            }
            p[..2].copy_from_slice(&c.to_be_bytes());
            p[2..2 + r.len()].copy_from_slice(r);
            2 + r.len()
        }
    };
    Ok(encode_control(Opcode::Close, &p[..n], mask))
}

/// A complete unmasked data frame encoded once and sent to many connections: server
/// frames are not masked (section 5.1), so every recipient gets the same bytes and a
/// clone is two reference-count increments.
///
/// For connections with permessage-deflate the message is also compressed, once, on
/// first use ([`SharedFrame::deflated`]), and that encoding is shared the same way.
#[derive(Clone, Debug)]
pub struct SharedFrame {
    pub header: Bytes,
    pub payload: Bytes,
    kind: DataKind,
    /// The frame compressed without context (RFC 7692), made on first use.
    deflated: OnceLock<Bytes>,
}

impl SharedFrame {
    /// A whole (FIN) message of `kind`.
    pub fn new(kind: DataKind, payload: Bytes) -> SharedFrame {
        SharedFrame {
            header: encode_data(kind, true, false, &payload),
            payload,
            kind,
            deflated: OnceLock::new(),
        }
    }

    /// The whole frame (header with RSV1, then the DEFLATE data) for permessage-deflate
    /// connections (RFC 7692 6.1, 7.2.1), compressed on the first call and kept: the
    /// data is [`compress_standalone`](super::deflate::compress_standalone)'s, which
    /// any receiver decodes whatever it received before, so one encoding serves every
    /// connection whose window is at least [`payload`](Self::payload)'s length.
    pub fn deflated(&self) -> &Bytes {
        self.deflated.get_or_init(|| {
            let mut buf = Vec::with_capacity(MAX_HEADER_LEN + self.payload.len() + 64);
            buf.resize(MAX_HEADER_LEN, 0);
            super::deflate::compress_standalone(&self.payload, &mut buf);
            let clen = (buf.len() - MAX_HEADER_LEN) as u64;
            let h = encode_header(true, RSV1, self.kind.opcode(), None, clen);
            let hstart = MAX_HEADER_LEN - h.len();
            buf[hstart..MAX_HEADER_LEN].copy_from_slice(&h);
            Bytes::from(buf).slice(hstart..)
        })
    }

    /// The message's kind.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// Total bytes on the wire (uncompressed).
    pub fn wire_len(&self) -> usize {
        self.header.len() + self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(b: &[u8]) -> (FrameHeader, usize) {
        match parse_header(b).unwrap() {
            Parsed::Complete(h, n) => (h, n),
            Parsed::Incomplete => panic!("incomplete"),
        }
    }

    /// RFC 6455 5.7 examples, byte for byte.
    #[test]
    fn rfc6455_5_7_examples() {
        // A single-frame unmasked text message "Hello".
        let f = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = parse_all(&f);
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.len, n),
            (true, Opcode::Text, None, 5, 2)
        );
        assert_eq!(
            &encode_data(DataKind::Text, true, false, b"Hello")[..],
            &f[..2]
        );
        // A single-frame masked text message "Hello".
        let f = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_all(&f);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!((h.len, n), (5, 6));
        let enc = encode_header(true, 0, Opcode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), 5);
        assert_eq!(&enc[..], &f[..6]);
        // A fragmented unmasked text message: "Hel" then "lo".
        let f1 = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let f2 = [0x80, 0x02, 0x6c, 0x6f];
        assert_eq!(
            &encode_data(DataKind::Text, false, false, b"Hel")[..],
            &f1[..2]
        );
        assert_eq!(
            &encode_data(DataKind::Text, true, true, b"lo")[..],
            &f2[..2]
        );
        let (h, _) = parse_all(&f1);
        assert_eq!((h.fin, h.opcode), (false, Opcode::Text));
        let (h, _) = parse_all(&f2);
        assert_eq!((h.fin, h.opcode), (true, Opcode::Continuation));
        // Unmasked Ping "Hello" and masked Pong "Hello".
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(&encode_ping(b"Hello", None).unwrap()[..], &ping[..]);
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            &encode_pong(b"Hello", Some([0x37, 0xfa, 0x21, 0x3d])).unwrap()[..],
            &pong[..]
        );
        // 256 bytes binary message in a single unmasked frame.
        let h256 = [0x82, 0x7e, 0x01, 0x00];
        assert_eq!(
            &encode_header(true, 0, Opcode::Binary, None, 256)[..],
            &h256
        );
        assert_eq!(parse_all(&h256).0.len, 256);
        // 64KiB binary message in a single unmasked frame.
        let h64k = [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
        assert_eq!(
            &encode_header(true, 0, Opcode::Binary, None, 65536)[..],
            &h64k
        );
        assert_eq!(parse_all(&h64k).0.len, 65536);
    }

    /// Section 5.2: the 7/16/64-bit length boundaries, both directions.
    #[test]
    fn length_boundaries() {
        for (len, hlen) in [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            ((1 << 63) - 1, 10),
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = encode_header(true, 0, Opcode::Binary, mask, len);
                let want = hlen + if mask.is_some() { 4 } else { 0 };
                assert_eq!(h.len(), want, "len {len}");
                let (p, n) = parse_all(&h);
                assert_eq!((p.len, n, p.mask), (len, want, mask));
                // Every strict prefix is incomplete.
                for cut in 0..want {
                    assert_eq!(parse_header(&h[..cut]).unwrap(), Parsed::Incomplete);
                }
            }
        }
        // Non-minimal encodings are accepted (5 in a 16-bit and in a 64-bit length).
        assert_eq!(parse_all(&[0x82, 126, 0, 5]).0.len, 5);
        assert_eq!(parse_all(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5]).0.len, 5);
    }

    #[test]
    fn length_msb_is_an_error_early() {
        let f = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        for cut in 3..=f.len() {
            assert_eq!(parse_header(&f[..cut]), Err(WsError::LENGTH_MSB));
        }
    }

    #[test]
    fn reserved_opcodes_and_bad_control_frames() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(parse_header(&[0x80 | op, 0]), Err(WsError::RESERVED_OPCODE));
        }
        // A ping without FIN, a ping with 126 bytes.
        assert_eq!(parse_header(&[0x09, 0]), Err(WsError::FRAGMENTED_CONTROL));
        assert_eq!(parse_header(&[0x89, 126]), Err(WsError::CONTROL_TOO_LONG));
        assert!(matches!(
            parse_header(&[0x89, 125]),
            Ok(Parsed::Complete(FrameHeader { len: 125, .. }, 2))
        ));
    }

    #[test]
    fn static_headers_match_encoding() {
        for op in [
            Opcode::Text,
            Opcode::Binary,
            Opcode::Continuation,
            Opcode::Ping,
        ] {
            for fin in [false, true] {
                if op.is_control() && !fin {
                    continue;
                }
                for len in [0u64, 1, 125, 126, 70000] {
                    let h = encode_header(fin, 0, op, None, len);
                    assert_eq!(&h.to_bytes()[..], &h[..]);
                }
            }
        }
        let h = encode_header(true, RSV1, Opcode::Text, None, 3);
        assert_eq!(&h.to_bytes()[..], &[0xc1, 3]);
    }

    #[test]
    fn close_encoding_rules() {
        assert_eq!(&encode_close(None, "", None).unwrap()[..], &[0x88, 0]);
        assert_eq!(
            &encode_close(Some(1000), "ok", None).unwrap()[..],
            &[0x88, 4, 0x03, 0xe8, b'o', b'k']
        );
        assert_eq!(
            encode_close(Some(1005), "", None),
            Err(UsageError::InvalidCloseCode(1005))
        );
        let long = "x".repeat(124);
        assert_eq!(
            encode_close(Some(1000), &long, None),
            Err(UsageError::ControlPayloadTooLong)
        );
        assert!(encode_close(Some(1000), &long[..123], None).is_ok());
        assert_eq!(
            encode_ping(&[0; 126], None),
            Err(UsageError::ControlPayloadTooLong)
        );
    }

    #[test]
    fn shared_frame_is_the_same_bytes() {
        let f = SharedFrame::new(DataKind::Text, Bytes::from_static(b"Hello"));
        let g = f.clone();
        assert_eq!(f.header.as_ptr(), g.header.as_ptr());
        assert_eq!(f.payload.as_ptr(), g.payload.as_ptr());
        assert_eq!(&f.header[..], &[0x81, 0x05]);
        assert_eq!(f.wire_len(), 7);
    }
}
