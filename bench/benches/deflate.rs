//! permessage-deflate (RFC 7692): `Pmd::compress` on the server's sending side and
//! `Pmd::decompress` of what a client compressed, for a ~2 KiB JSON message at level 1,
//! with context takeover (the default: one stream for the connection's life) and
//! without (`*_no_context_takeover`: a reset stream per message, RFC 7692 7.1.1).
//!
//! Messages differ from one to the next (64 distinct ones, 128 KiB in all, more than
//! the 32 KiB window), so context takeover is timed on similar messages, not on a
//! repeat that would compress to a single back-reference.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lwsd_bench::json_message;
use lwsd_worker::roles::ws::Side;
use lwsd_worker::roles::ws::conn::DEFAULT_MAX_MESSAGE_SIZE;
use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams};

const DISTINCT: usize = 64;
const LEVEL: u32 = 1;
/// Messages compressed (untimed) per batch before timing their decompression.
const BATCH: u64 = 256;

fn params(no_context_takeover: bool) -> PmdParams {
    PmdParams {
        server_no_context_takeover: no_context_takeover,
        client_no_context_takeover: no_context_takeover,
        ..PmdParams::default()
    }
}

fn deflate(c: &mut Criterion) {
    let msgs: Vec<Vec<u8>> = (0..DISTINCT as u64)
        .map(|i| json_message(i, 2048))
        .collect();
    let mean = msgs.iter().map(Vec::len).sum::<usize>() / msgs.len();
    let mut g = c.benchmark_group("pmd");
    g.throughput(Throughput::Bytes(mean as u64));

    for (suffix, nct) in [("", false), ("_no_context_takeover", true)] {
        g.bench_function(format!("compress_2KiB_json_l1{suffix}"), |b| {
            let mut pmd = Pmd::with_level(Side::Server, &params(nct), LEVEL);
            let mut out = Vec::with_capacity(4096);
            let mut i = 0;
            b.iter(|| {
                out.clear();
                pmd.compress(black_box(&msgs[i % DISTINCT]), &mut out);
                i += 1;
                out.len()
            })
        });

        // Decompression must see the messages in the order they were compressed (with
        // context takeover each refers to the ones before), so a client-side Pmd
        // compresses a batch outside the timing and the server-side Pmd inflates it.
        g.bench_function(format!("decompress_2KiB_json{suffix}"), |b| {
            let mut tx = Pmd::with_level(Side::Client, &params(nct), LEVEL);
            let mut rx = Pmd::new(Side::Server, &params(nct));
            let mut wire: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(2048)).collect();
            let mut out = Vec::with_capacity(4096);
            let mut next = 0usize;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH) as usize;
                    for z in &mut wire[..n] {
                        z.clear();
                        tx.compress(&msgs[next % DISTINCT], z);
                        next += 1;
                    }
                    let t = Instant::now();
                    for z in &wire[..n] {
                        out.clear();
                        rx.decompress(
                            black_box(z),
                            true,
                            &mut out,
                            DEFAULT_MAX_MESSAGE_SIZE as usize,
                        )
                        .expect("inflates");
                        black_box(&out);
                    }
                    total += t.elapsed();
                    left -= n as u64;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = deflate }
criterion_main!(benches);
