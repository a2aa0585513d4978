//! Fuzz the HTTP/2 frame parser (RFC 9113 sections 4 and 6): arbitrary bytes, decoded
//! once from the whole buffer and once as they arrive in arbitrary pieces through a
//! reassembly buffer (the way the connection will feed it).
//!
//! Input layout: byte 0 picks the parser (bit 0 client side, bit 1 push accepted,
//! bits 2..=3 the SETTINGS_MAX_FRAME_SIZE, bits 4..=5 the field block limits), byte 1
//! seeds the piece sizes, the rest is the stream.
//!
//! Checks: no panic; both runs give the same frames and the same final error (a
//! split-dependent verdict would let a peer steer the parser); every frame re-encodes
//! to its own bytes once undefined flags, reserved bits and padding contents are
//! cleared (the canonical form), and re-decodes to the same frame; a stream error
//! names the whole frame to skip, a connection error nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::h2::error::Scope;
use lwsd_worker::roles::h2::frame::{Frame, FrameError, HEADER_LEN, Head, Parser, Side};

/// What a run saw: each frame's canonical bytes, then how it ended.
#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Vec<u8>),
    Skipped(FrameError),
    Fatal(FrameError),
}

/// The frame's input bytes in canonical form (section 4.1: unused flags and the
/// reserved bit are 0 when sent; 6.1: padding is zeros; 6.8, 6.9, 6.6: reserved bits of
/// Last-Stream-ID, the increment and Promised Stream ID are 0).
fn canonical(frame: &Frame<'_>, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let head = Head::parse(&v).expect("a decoded frame has a header");
    v[4] &= head.kind.defined_flags();
    v[5] &= 0x7f;
    let pad = match frame {
        Frame::Data(d) => d.pad_len,
        Frame::Headers(h) => h.pad_len,
        Frame::PushPromise(p) => p.pad_len,
        _ => None,
    };
    if let Some(p) = pad {
        let n = v.len();
        v[n - usize::from(p)..].fill(0);
    }
    match frame {
        Frame::GoAway(_) | Frame::WindowUpdate(_) => v[HEADER_LEN] &= 0x7f,
        Frame::PushPromise(p) => v[HEADER_LEN + usize::from(p.pad_len.is_some())] &= 0x7f,
        _ => {}
    }
    v
}

/// Checks one decoded frame; returns its canonical bytes.
fn check(before: &Parser, frame: &Frame<'_>, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    assert_eq!(out.len(), input.len(), "encoded length differs: {frame:?}");
    assert_eq!(out, canonical(frame, input), "not canonical: {frame:?}");
    let again = before.clone().decode(&out);
    assert_eq!(again, Ok(Some((*frame, out.len()))), "re-decode differs");
    out
}

fn handle(p: &mut Parser, buf: &[u8], seen: &mut Vec<Seen>) -> Option<usize> {
    let before = p.clone();
    match p.decode(buf) {
        Ok(None) => None,
        Ok(Some((f, n))) => {
            assert!(n >= HEADER_LEN && n <= buf.len());
            seen.push(Seen::Frame(check(&before, &f, &buf[..n])));
            Some(n)
        }
        Err(e) => {
            if let Scope::Stream(_) = e.error.scope {
                // A stream error waits for its whole frame and names it.
                let h = Head::parse(buf).expect("header");
                assert_eq!(e.skip, HEADER_LEN + h.len as usize);
                assert!(e.skip <= buf.len());
                assert_eq!(*p, before, "a refused frame changes no state");
                seen.push(Seen::Skipped(e));
                Some(e.skip)
            } else {
                assert_eq!(e.skip, 0);
                seen.push(Seen::Fatal(e));
                Some(usize::MAX)
            }
        }
    }
}

fn parser(cfg: u8) -> Parser {
    let side = if cfg & 1 != 0 {
        Side::Client
    } else {
        Side::Server
    };
    let mut p = Parser::new(side);
    p.set_accept_push(cfg & 2 != 0);
    p.set_max_frame_size([16_384, 16_385, 65_536, (1 << 24) - 1][usize::from(cfg >> 2 & 3)]);
    let (bytes, conts) =
        [(65_536, 32), (64, 2), (0, 0), (1 << 20, 1000)][usize::from(cfg >> 4 & 3)];
    p.set_field_block_limits(bytes, conts);
    p
}

fuzz_target!(|data: &[u8]| {
    let [cfg, seed, stream @ ..] = data else {
        return;
    };
    // The whole buffer at once.
    let mut whole = Vec::new();
    let mut p = parser(*cfg);
    let mut at = 0;
    while let Some(n) = handle(&mut p, &stream[at..], &mut whole) {
        if n == usize::MAX {
            break;
        }
        at += n;
    }
    // In pieces of 1 to 64 bytes, consumed bytes drained from a reassembly buffer.
    let mut pieces = Vec::new();
    let mut p = parser(*cfg);
    let mut buf: Vec<u8> = Vec::new();
    let mut rng = u32::from(*seed) | 0x100;
    let mut pos = 0;
    'feed: while pos < stream.len() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let n = (1 + (rng % 64) as usize).min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        while let Some(n) = handle(&mut p, &buf, &mut pieces) {
            if n == usize::MAX {
                break 'feed;
            }
            buf.drain(..n);
        }
    }
    assert_eq!(
        whole, pieces,
        "the verdict depends on how the bytes were cut"
    );
});
