//! Fuzz the server side of an HTTP/2 connection (RFC 9113): the client preface followed
//! by arbitrary bytes, fed in arbitrary pieces the way the carrier feeds a recv, with a
//! handler that answers every request (HEADERS, then DATA as credit allows) and
//! consumes every byte of request data.
//!
//! Input layout: byte 0 seeds the piece sizes, byte 1 picks limits (small windows and
//! budgets reach the flood and flow-control paths sooner), the rest follows the preface.
//!
//! Checks: no panic; the connection never consumes more than it was given; once it
//! failed it consumes nothing more and its output ends with GOAWAY; its output always
//! parses as whole frames (a client parser with the largest frame size accepts it);
//! DATA sent never exceeds the credit it reported.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::h2::conn::{Connection, Handler, Limits, PREFACE, Request};
use lwsd_worker::roles::h2::error::ErrorCode;
use lwsd_worker::roles::h2::frame::{Frame, Kind, Parser, Side, settings};

struct Answer;

impl Handler for Answer {
    fn request(&mut self, c: &mut Connection, stream: u32, _req: Request, _end: bool) {
        let _ = c.send_headers(stream, 200, [(&b"content-type"[..], &b"text/plain"[..])], false);
        let n = c.send_credit(stream).min(c.max_frame()).min(100);
        c.send_data_head(stream, n, true)
            .expect("DATA within the credit it reported");
        c.out.extend_from_slice(&vec![b'x'; n]);
    }
    fn data(&mut self, c: &mut Connection, stream: u32, data: &[u8], _end: bool) {
        c.release(stream, data.len());
    }
    fn trailers(&mut self, _c: &mut Connection, _stream: u32) {}
    fn reset(&mut self, _c: &mut Connection, _stream: u32, _code: ErrorCode) {}
    fn too_large(&mut self, c: &mut Connection, stream: u32) {
        let _ = c.send_headers(stream, 431, [], true);
    }
}

fuzz_target!(|input: &[u8]| {
    let (seed, flags, rest) = match input {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    let limits = if flags & 1 == 1 {
        Limits {
            stream_window: 1024,
            conn_window: 65_535,
            idle_frames: 16,
            resets: 4,
            max_concurrent_streams: 4,
            max_header_list: 512,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let mut c = Connection::new(limits);
    let mut stream = PREFACE.to_vec();
    stream.extend_from_slice(rest);
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut step = seed as usize | 1;
    let mut out = Vec::new();
    while pos < stream.len() {
        let n = (step % 97 + 1).min(stream.len() - pos);
        step = step.wrapping_mul(31).wrapping_add(7);
        pending.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        let failed_before = c.is_failed();
        match c.recv(&pending, &mut Answer) {
            Ok(used) => {
                assert!(used <= pending.len());
                if failed_before {
                    assert_eq!(used, 0);
                }
                pending.drain(..used);
            }
            Err(_) => {
                assert!(c.is_failed());
                out.extend_from_slice(&c.out);
                c.out.clear();
                break;
            }
        }
        out.extend_from_slice(&c.out);
        c.out.clear();
    }
    // Everything the server wrote is whole, well-formed frames.
    let mut p = Parser::new(Side::Client);
    p.set_max_frame_size(settings::MAX_MAX_FRAME_SIZE);
    let mut at = 0;
    let mut last = None;
    while at < out.len() {
        let (f, used) = p
            .decode(&out[at..])
            .expect("server output parses")
            .expect("server output is whole frames");
        last = Some(f.head().kind);
        if let Frame::GoAway(_) = f {
            assert!(c.is_failed() || c.goaway_sent().is_some());
        }
        at += used;
    }
    if c.is_failed() {
        assert_eq!(last, Some(Kind::GoAway));
    }
});
