//! WebSocket role (RFC 6455): frame header codec, masking, the server's receive loop
//! (`WsConn::process`), UTF-8 validation of text, broadcast frames, and the cost of
//! permessage-deflate (RFC 7692) on tiny messages, which lwsd compresses like the rest.

mod common;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lwsd_bench::{masked_text_frames, utf8_text};
use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams, Side};
use lwsd_worker::roles::ws::frame::{Parsed, parse_header};
use lwsd_worker::roles::ws::mask::apply_mask;
use lwsd_worker::roles::ws::utf8::Utf8Validator;
use lwsd_worker::roles::ws::{
    DataKind, Event, Opcode, SharedFrame, WsConfig, WsConn, encode_header,
};

fn header(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/header");
    g.throughput(Throughput::Elements(1));
    let cases: [(&str, &[u8]); 3] = [
        // A server's small text frame (2 bytes), a client's masked one (6), and a
        // masked frame with a 64-bit length (14, the longest header).
        ("parse_unmasked_7bit", &[0x81, 0x40]),
        ("parse_masked_7bit", &[0x81, 0xc0, 0x37, 0xfa, 0x21, 0x3d]),
        (
            "parse_masked_64bit",
            &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0x37, 0xfa, 0x21, 0x3d],
        ),
    ];
    for (name, bytes) in cases {
        assert!(matches!(parse_header(bytes), Ok(Parsed::Complete(_, n)) if n == bytes.len()));
        g.bench_function(name, |b| b.iter(|| parse_header(black_box(bytes))));
    }
    g.bench_function("encode_unmasked_7bit", |b| {
        b.iter(|| encode_header(true, 0, Opcode::Text, None, black_box(64)))
    });
    g.bench_function("encode_unmasked_16bit", |b| {
        b.iter(|| encode_header(true, 0, Opcode::Binary, None, black_box(4096)))
    });
    g.bench_function("encode_masked_7bit", |b| {
        b.iter(|| {
            encode_header(
                true,
                0,
                Opcode::Text,
                Some([0x37, 0xfa, 0x21, 0x3d]),
                black_box(64),
            )
        })
    });
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/apply_mask");
    for len in [125usize, 4096, 65536] {
        let mut buf: Vec<u8> = (0..len).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        // Masking is its own inverse, so masking the same buffer again and again is a
        // fair loop: same work each time, no setup inside the timing.
        g.bench_function(format!("{len}B"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x37, 0xfa, 0x21, 0x3d], 0))
        });
    }
    g.finish();
}

fn process(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/process");
    const FRAMES: usize = 100;
    let wire = masked_text_frames(FRAMES, 64, 1);
    g.throughput(Throughput::Elements(FRAMES as u64));
    // The receive loop unmasks in place, so each iteration gets a fresh copy of the
    // masked bytes (made outside the timing), like a new recv buffer.
    g.bench_function("server_100_masked_text_64B", |b| {
        let mut conn = WsConn::server(WsConfig::default(), 0);
        b.iter_batched_ref(
            || wire.clone(),
            |buf| {
                let mut pos = 0;
                let mut msgs = 0;
                while pos < buf.len() {
                    let p = conn.process(&mut buf[pos..], 1).expect("valid frames");
                    pos += p.consumed;
                    match p.event {
                        Some(Event::Data(d)) => {
                            black_box(d.payload);
                            msgs += 1;
                        }
                        None => {}
                        Some(e) => panic!("unexpected {e:?}"),
                    }
                }
                assert_eq!(msgs, FRAMES);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/utf8");
    for (name, ascii) in [("64KiB_ascii", true), ("64KiB_mixed", false)] {
        let text = utf8_text(64 * 1024, ascii);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            let mut v = Utf8Validator::new();
            b.iter(|| {
                v.feed(black_box(&text)).expect("valid");
                v.finish().expect("complete")
            })
        });
    }
    g.finish();
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/broadcast");
    let payload = Bytes::from(
        b"{\"type\":\"tick\",\"n\":12345,\"text\":\"hello to every one of you!!!!\"}".to_vec(),
    );
    assert_eq!(payload.len(), 64);
    g.throughput(Throughput::Elements(1));
    g.bench_function("shared_frame_new_64B", |b| {
        b.iter(|| SharedFrame::new(DataKind::Text, black_box(&payload).clone()))
    });
    // The fan-out that follows: queue the frame on 100 connections and take it off
    // again (what the service's writev does), per recipient.
    const CONNS: usize = 100;
    g.throughput(Throughput::Elements(CONNS as u64));
    g.bench_function("send_shared_64B_to_100", |b| {
        let mut conns: Vec<WsConn> = (0..CONNS)
            .map(|_| WsConn::server(WsConfig::default(), 0))
            .collect();
        let mut iov: Vec<Bytes> = Vec::with_capacity(4);
        b.iter(|| {
            let f = SharedFrame::new(DataKind::Text, payload.clone());
            for c in &mut conns {
                c.send_shared(&f).expect("open");
                c.drain_output(&mut iov);
                black_box(&iov);
                iov.clear();
            }
        })
    });
    g.finish();
}

/// Tiny messages with and without permessage-deflate: `send` + drain on a server
/// connection (what each dumb-increment tick or echo costs), per message; and a
/// broadcast's shared compressed encoding (`SharedFrame::deflated`, once per message
/// per worker). Prints the bytes each puts on the wire.
fn tiny(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws/tiny");
    g.throughput(Throughput::Elements(1));
    // A dumb-increment value and an lws-mirror stroke (the test client's format).
    let msgs: [(&str, &[u8]); 2] = [("2B", b"42"), ("20B", b"c #1A2B3C 311 87 12;")];
    let nct = PmdParams {
        server_no_context_takeover: true,
        ..PmdParams::default()
    };
    let modes: [(&str, Option<PmdParams>); 3] = [
        ("plain", None),
        ("deflate", Some(PmdParams::default())),
        ("deflate_nct", Some(nct)),
    ];
    for (mname, msg) in msgs {
        let payload = Bytes::from_static(msg);
        for (dname, params) in &modes {
            let mut conn = WsConn::server(WsConfig::default(), 0);
            if let Some(p) = params {
                conn.set_compression(Pmd::new(Side::Server, p));
            }
            let mut iov: Vec<Bytes> = Vec::with_capacity(4);
            // Wire size, after a warm-up message (context takeover shrinks repeats).
            for _ in 0..2 {
                iov.clear();
                conn.send(DataKind::Text, payload.clone()).expect("open");
                conn.drain_output(&mut iov);
            }
            let wire: usize = iov.iter().map(Bytes::len).sum();
            eprintln!("ws/tiny/send_{mname}_{dname}: {wire} bytes on the wire");
            g.bench_function(format!("send_{mname}_{dname}"), |b| {
                b.iter(|| {
                    conn.send(DataKind::Text, black_box(&payload).clone())
                        .expect("open");
                    conn.drain_output(&mut iov);
                    black_box(&iov);
                    iov.clear();
                })
            });
        }
        let f = SharedFrame::new(DataKind::Text, payload.clone());
        eprintln!(
            "ws/tiny/shared_deflated_{mname}: {} bytes on the wire ({} plain)",
            f.deflated().len(),
            f.wire_len()
        );
        g.bench_function(format!("shared_deflated_{mname}"), |b| {
            b.iter(|| {
                let f = SharedFrame::new(DataKind::Text, black_box(&payload).clone());
                black_box(f.deflated().len())
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = header, mask, process, utf8, broadcast, tiny }
criterion_main!(benches);
