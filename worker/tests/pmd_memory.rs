//! Heap cost of permessage-deflate per connection (RFC 7692), measured with a counting
//! global allocator: what one connection's zlib streams hold between messages, for
//! 15- and 9-bit windows, with and without context takeover. Run with `--nocapture` to
//! see the figures; the assertions pin the properties lwsd relies on (lazy allocation,
//! nothing retained without context takeover, smaller windows cost less).
//!
//! Also an ignored timing test (`--release -- --ignored --nocapture`) comparing a fresh
//! compressor per message (what `Pmd` does without context takeover) to a reset one.

use flate2::{Compress, Compression, FlushCompress};
use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams, Side};
use std::time::Instant;

mod common;
use common::{Counting, live, peak, reset_peak};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A JSON-ish message that compresses like chat traffic.
fn message(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut i = 0u32;
    while v.len() < n {
        v.extend_from_slice(
            format!("{{\"seq\":{i},\"user\":\"u{}\",\"text\":\"hello\"}}", i % 7).as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v
}

struct Figures {
    deflate_retained: isize,
    deflate_peak: isize,
    inflate_retained: isize,
    inflate_peak: isize,
}

/// Heap held by one server-side `Pmd` after sending and after receiving one message;
/// with no context takeover, after `release_idle` (what an idle connection holds).
fn measure(bits: u8, no_context_takeover: bool) -> Figures {
    let params = PmdParams {
        server_no_context_takeover: no_context_takeover,
        client_no_context_takeover: no_context_takeover,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    };
    let msg = message(2000);
    // The peer's compressed message, made before we start counting.
    let mut wire = Vec::new();
    Pmd::new(Side::Client, &params).compress(&msg, &mut wire);
    let mut out = Vec::with_capacity(8192);
    let mut c = Vec::with_capacity(8192);

    let base = live();
    let mut pmd = Pmd::new(Side::Server, &params);
    assert_eq!(live(), base, "Pmd::new allocates nothing (lazy streams)");

    reset_peak();
    pmd.compress(&msg, &mut c);
    let deflate_peak = peak() - base;
    let deflate_retained = live() - base;

    let base2 = live();
    reset_peak();
    pmd.decompress(&wire, true, &mut out, 1 << 20).unwrap();
    let inflate_peak = peak() - base2;
    let mut inflate_retained = live() - base2;
    let mut deflate_retained = deflate_retained;
    if no_context_takeover {
        assert!(deflate_retained > 0 && inflate_retained > 0, "reset, kept");
        let before = live();
        assert!(pmd.release_idle());
        let freed = before - live();
        assert_eq!(freed, deflate_retained + inflate_retained);
        (deflate_retained, inflate_retained) = (0, 0);
    }
    assert_eq!(out, msg);
    drop(pmd);
    assert_eq!(live(), base, "everything freed with the Pmd");
    if no_context_takeover {
        // Eager mode: nothing retained after each message without release_idle.
        let mut pmd = Pmd::new(Side::Server, &params);
        pmd.set_free_after_message(true);
        pmd.compress(&msg, &mut c);
        pmd.decompress(&wire, true, &mut out, 1 << 20).unwrap();
        assert!(!pmd.has_compressor() && !pmd.has_decompressor());
    }
    Figures {
        deflate_retained,
        deflate_peak,
        inflate_retained,
        inflate_peak,
    }
}

#[test]
fn heap_cost_per_connection() {
    eprintln!("size_of::<Pmd>() = {} bytes", std::mem::size_of::<Pmd>());
    let mut rows = Vec::new();
    for bits in [15u8, 12, 9] {
        for nct in [false, true] {
            let f = measure(bits, nct);
            eprintln!(
                "window {bits:2} no_context_takeover {nct:5}: deflate retained {:7} B (peak {:7}), \
                 inflate retained {:6} B (peak {:6})",
                f.deflate_retained, f.deflate_peak, f.inflate_retained, f.inflate_peak
            );
            if nct {
                assert_eq!(f.deflate_retained, 0, "compressor freed after the message");
                assert_eq!(
                    f.inflate_retained, 0,
                    "decompressor freed after the message"
                );
                assert!(f.deflate_peak > 0 && f.inflate_peak > 0);
            } else {
                assert!(f.deflate_retained > 0 && f.inflate_retained > 0);
                // zlib-rs: deflate = window + prev, (1 << (w + 2)), plus ~245 KiB that
                // does not depend on the window (hash head, pending and symbol buffers
                // at flate2's fixed memLevel 8); inflate = the full 32 KiB window
                // (allocated whatever the negotiated bits) plus ~14 KiB of state.
                let deflate_bound = (1isize << (bits + 2)) + (256 << 10);
                assert!(
                    f.deflate_retained <= deflate_bound,
                    "{}",
                    f.deflate_retained
                );
                assert!(f.inflate_retained <= 48 << 10, "{}", f.inflate_retained);
            }
            rows.push((bits, nct, f));
        }
    }
    let d15 = rows
        .iter()
        .find(|r| r.0 == 15 && !r.1)
        .unwrap()
        .2
        .deflate_retained;
    let d9 = rows
        .iter()
        .find(|r| r.0 == 9 && !r.1)
        .unwrap()
        .2
        .deflate_retained;
    assert!(d9 < d15, "a smaller window costs less: {d9} vs {d15}");
}

/// Time per 2 KB message: fresh compressor per message vs reset, vs context takeover.
#[test]
#[ignore = "timing; run with --release -- --ignored --nocapture"]
fn fresh_vs_reset_compressor_cost() {
    let msg = message(2000);
    const N: usize = 20_000;
    let mut out = Vec::with_capacity(8192);
    for bits in [15u8, 9] {
        let t = Instant::now();
        for _ in 0..N {
            let mut c = Compress::new_with_window_bits(Compression::new(1), false, bits);
            out.clear();
            c.compress_vec(&msg, &mut out, FlushCompress::Sync).unwrap();
        }
        let fresh = t.elapsed() / N as u32;
        let mut c = Compress::new_with_window_bits(Compression::new(1), false, bits);
        let t = Instant::now();
        for _ in 0..N {
            out.clear();
            c.compress_vec(&msg, &mut out, FlushCompress::Sync).unwrap();
            c.reset();
        }
        let reset = t.elapsed() / N as u32;
        let params = PmdParams {
            server_max_window_bits: bits,
            ..PmdParams::default()
        };
        let mut pmd = Pmd::new(Side::Server, &params);
        let mut rx = Pmd::new(Side::Client, &params);
        let mut back = Vec::with_capacity(8192);
        let t = Instant::now();
        for _ in 0..N {
            out.clear();
            pmd.compress(&msg, &mut out);
        }
        let takeover = t.elapsed() / N as u32;
        let mut wire = Vec::new();
        let mut tx = Pmd::new(Side::Server, &params);
        let frames: Vec<Vec<u8>> = (0..N)
            .map(|_| {
                wire.clear();
                tx.compress(&msg, &mut wire);
                wire.clone()
            })
            .collect();
        let t = Instant::now();
        for f in &frames {
            back.clear();
            rx.decompress(f, true, &mut back, 1 << 20).unwrap();
        }
        let inflate = t.elapsed() / N as u32;
        eprintln!(
            "window {bits}: 2000 B message -> {} B; compress fresh {fresh:?}, reset {reset:?}, \
             with context takeover {takeover:?}; decompress {inflate:?}",
            frames[N - 1].len()
        );
    }
}
