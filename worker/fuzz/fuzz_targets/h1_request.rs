//! Fuzz the HTTP/1.1 server role: arbitrary bytes, delivered in arbitrary pieces
//! through a reassembly buffer the way the service loop does it.
//!
//! Input layout: byte 0 picks the limits (defaults or tiny ones, so every limit path
//! is reachable with short inputs), bytes 1..4 seed the split points, the rest is
//! the stream. Checks: no panic, `consumed` never exceeds the input, every feed loop
//! ends, and the events are the same as when the whole stream arrives at once
//! (a split-dependent verdict would be a request-smuggling bug).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::h1::{Event, H1Limits, H1Server, Hdr};

#[derive(Debug, PartialEq)]
enum Ev {
    Head(Vec<u8>, Vec<u8>, bool, String),
    Body(Vec<u8>),
    BodyEnd,
    Stop(String, Vec<u8>),
}

fn run(limits: &H1Limits, stream: &[u8], pieces: &[usize]) -> (Vec<Ev>, Vec<u8>) {
    let mut s = H1Server::new(limits.clone());
    let mut pending: Vec<u8> = Vec::new();
    let mut out: Vec<Ev> = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = pieces.to_vec();
    cuts.push(stream.len());
    for (ci, &c) in cuts.iter().enumerate() {
        let c = c.clamp(at, stream.len());
        pending.extend_from_slice(&stream[at..c]);
        at = c;
        // Each feed either consumes bytes or changes state; a few more than the
        // byte count bounds it.
        for _ in 0..pending.len() * 2 + 8 {
            let f = s.feed(&pending);
            assert!(f.consumed <= pending.len());
            let consumed = f.consumed;
            let stop = match f.event {
                Event::Head(h) => {
                    // Exercise every accessor on peer-controlled spans.
                    let _ = (h.method_raw(), h.path(), h.query(), h.host());
                    let _ = h.get(Hdr::Host);
                    let n = h.headers().count();
                    let _ = h.header(b"x-a");
                    let o = h.to_owned_head();
                    assert_eq!(o.target(), h.target());
                    assert_eq!(o.headers().count(), n);
                    assert_eq!(h.raw().len(), consumed.min(h.raw().len()));
                    out.push(Ev::Head(
                        h.method_raw().to_vec(),
                        h.target().to_vec(),
                        h.keep_alive,
                        format!("{:?} {:?}", h.body, h.upgrade),
                    ));
                    None
                }
                Event::Body(b) => {
                    assert!(b.len() <= consumed);
                    match out.last_mut() {
                        Some(Ev::Body(prev)) => prev.extend_from_slice(b),
                        _ if b.is_empty() => {}
                        _ => out.push(Ev::Body(b.to_vec())),
                    }
                    None
                }
                Event::BodyEnd => {
                    out.push(Ev::BodyEnd);
                    None
                }
                Event::NeedMore => Some(None),
                Event::Upgraded => Some(Some("upgraded".to_string())),
                Event::H2Preface => Some(Some("h2".to_string())),
                Event::Closed => Some(Some("closed".to_string())),
                Event::Error(e) => Some(Some(format!("error {}", e.status()))),
            };
            pending.drain(..consumed);
            match stop {
                None => continue,
                Some(None) => break,
                Some(Some(why)) if why.starts_with("error") || why == "closed" => {
                    // The connection closes: what is left unread does not matter.
                    out.push(Ev::Stop(why, Vec::new()));
                    return (out, Vec::new());
                }
                Some(Some(why)) => {
                    // Upgrade / h2: the bytes after `consumed` go to the next
                    // protocol and must be the same however they arrived.
                    let mut rest = pending.clone();
                    for &c2 in &cuts[ci + 1..] {
                        let c2 = c2.clamp(at, stream.len());
                        rest.extend_from_slice(&stream[at..c2]);
                        at = c2;
                    }
                    out.push(Ev::Stop(why, rest));
                    return (out, Vec::new());
                }
            }
        }
    }
    (out, pending)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, a, b, c], stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let limits = if mode & 1 == 0 {
        H1Limits::default()
    } else {
        H1Limits {
            max_request_line: 16 + usize::from(mode >> 4),
            max_headers: 1 + usize::from((mode >> 1) & 7),
            max_header_bytes: 24 + usize::from(mode >> 2),
            max_body: u64::from(mode),
        }
    };
    let whole = run(&limits, stream, &[]);
    let mut cuts = vec![usize::from(a), usize::from(a) + usize::from(b)];
    cuts.push(cuts[1] + usize::from(c));
    let split = run(&limits, stream, &cuts);
    assert_eq!(whole, split, "verdict depends on the split");
    if stream.len() < 64 {
        let bytes: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(whole, run(&limits, stream, &bytes), "byte by byte");
    }
});
