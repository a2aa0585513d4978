//! HTTP/1.1 role: request parsing (`H1Server::feed`), response heads and the Date cache.
//! Every case reuses one keep-alive `H1Server`, as a connection does between requests.

mod common;

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lwsd_bench::{BROWSER_GET, chunked_post, pipelined_gets};
use lwsd_worker::roles::h1::{
    DateCache, Event, H1Server, ResponseBody, ResponseHead, Version, write_response_head,
};

/// Feeds `buf` to `s` until it is consumed; returns the number of events (so the loop
/// cannot be optimised away and a broken input shows as a panic, not a fast figure).
#[inline]
fn feed_all(s: &mut H1Server, buf: &[u8]) -> usize {
    let mut pos = 0;
    let mut events = 0;
    while pos < buf.len() {
        let f = s.feed(black_box(&buf[pos..]));
        match f.event {
            Event::Head(_) | Event::Body(_) | Event::BodyEnd => {}
            e => panic!("unexpected {e:?}"),
        }
        black_box(&f.event);
        pos += f.consumed;
        events += 1;
    }
    events
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("h1/feed");
    g.throughput(Throughput::Elements(1));
    g.bench_function("browser_get_400B_9hdr", |b| {
        let mut s = H1Server::default();
        b.iter(|| feed_all(&mut s, BROWSER_GET))
    });

    let pipelined = pipelined_gets(10);
    g.throughput(Throughput::Elements(10));
    g.bench_function("pipelined_10_small_gets", |b| {
        let mut s = H1Server::default();
        b.iter(|| feed_all(&mut s, &pipelined))
    });

    let (post, body_len) = chunked_post(16, 1024);
    g.throughput(Throughput::Bytes(body_len as u64));
    g.bench_function("chunked_post_16x1KiB", |b| {
        let mut s = H1Server::default();
        b.iter(|| feed_all(&mut s, &post))
    });
    g.finish();
}

fn respond(c: &mut Criterion) {
    let mut g = c.benchmark_group("h1/response");
    g.throughput(Throughput::Elements(1));
    let mut dates = DateCache::new();
    let date = *dates.get(1_700_000_000);
    let headers: [(&[u8], &[u8]); 4] = [
        (b"Content-Type", b"application/javascript"),
        (b"ETag", b"\"65a1b2c3-1f40\""),
        (b"Last-Modified", b"Tue, 14 Nov 2023 22:13:20 GMT"),
        (b"Accept-Ranges", b"bytes"),
    ];
    // As the service does: write into the connection's BytesMut, split the head off as
    // Bytes for the send queue; once sent, the buffer's space is reclaimed.
    g.bench_function("write_response_head_200_4hdr", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            let head = ResponseHead {
                status: 200,
                reason: None,
                version: Version::Http11,
                keep_alive: true,
                body: ResponseBody::Length(8000),
                date: &date,
                server: b"lwsd",
                headers: black_box(&headers),
            };
            let f = write_response_head(&mut out, black_box(&head));
            black_box(out.split().freeze());
            f
        })
    });
    g.bench_function("date_cache_get_same_second", |b| {
        let mut d = DateCache::new();
        d.get(1_700_000_000);
        b.iter(|| *d.get(black_box(1_700_000_000)))
    });
    g.bench_function("date_cache_get_new_second", |b| {
        let mut d = DateCache::new();
        let mut now = 1_700_000_000u64;
        b.iter(|| {
            now += 1;
            *d.get(black_box(now))
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = parse, respond }
criterion_main!(benches);
