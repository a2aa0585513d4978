//! HPACK (RFC 7541): decoding and encoding one typical request header block, as h2load
//! sends it (`:method GET`, `:scheme https`, `:authority`, `:path`, `user-agent`,
//! `accept`), cold (the first block of a connection: literals with incremental
//! indexing, Huffman-coded, into an empty table) and warm (a later block: every field
//! an index into the dynamic or static table).

mod common;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lwsd_worker::roles::h2::hpack::{DEFAULT_TABLE_SIZE, Decoder, Encoder};

const REQUEST: [(&str, &str); 6] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "localhost:8443"),
    (":path", "/index.html"),
    ("user-agent", "h2load nghttp2/1.59.0"),
    ("accept", "*/*"),
];

/// Decodes `block`, touching every field like a request parser would.
fn decode(d: &mut Decoder, block: &[u8]) -> usize {
    let mut total = 0;
    d.decode(block, |n, v, _| total += n.len() + v.len())
        .expect("valid block");
    total
}

fn hpack(c: &mut Criterion) {
    let mut e = Encoder::new();
    let mut cold = Vec::new();
    e.encode(REQUEST, &mut cold);
    let mut warm = Vec::new();
    e.encode(REQUEST, &mut warm);
    println!(
        "hpack request block: {} B cold, {} B warm ({} B of names and values)",
        cold.len(),
        warm.len(),
        REQUEST
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>()
    );
    let mut warm_decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decode(&mut warm_decoder, &cold);

    let mut g = c.benchmark_group("hpack/request");
    g.throughput(Throughput::Elements(1));
    // A fresh decoder per block, so the table's arena is allocated inside the timing
    // as it is on a new connection.
    g.bench_function("decode_cold", |b| {
        b.iter_batched(
            || Decoder::new(DEFAULT_TABLE_SIZE),
            |mut d| decode(&mut d, black_box(&cold)),
            BatchSize::SmallInput,
        )
    });
    // Indexed fields do not change the table: the same block decodes the same way.
    g.bench_function("decode_warm", |b| {
        b.iter(|| decode(&mut warm_decoder, black_box(&warm)))
    });
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode_cold", |b| {
        b.iter_batched_ref(
            Encoder::new,
            |e| {
                out.clear();
                e.encode(black_box(REQUEST), &mut out);
                out.len()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("encode_warm", |b| {
        b.iter(|| {
            out.clear();
            e.encode(black_box(REQUEST), &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = hpack }
criterion_main!(benches);
