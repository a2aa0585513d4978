//! File mount: `FileMount::serve` answering from its cache (a small stylesheet in a
//! temp directory, already served once), as a 200 and as a 304 to `If-None-Match`.
//! `now_unix` stays within the revalidation second, so no request makes a syscall:
//! this is the path nginx's `open_file_cache` hit is compared with.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lwsd_bench::{TempDir, css_file};
use lwsd_worker::mount::file::{FileBody, FileMount, FileMountOptions, FileRequest};

const NOW: u64 = 1_700_000_000;

fn serve(c: &mut Criterion) {
    let dir = TempDir::new("mount").expect("temp dir");
    let css = css_file(2048);
    dir.write("style.css", &css).expect("write");
    let mut mount = FileMount::new(dir.path(), FileMountOptions::default()).expect("mount");
    let get = FileRequest {
        path: b"/style.css",
        now_unix: NOW,
        ..FileRequest::default()
    };
    // First request: opens, reads and caches the file (not timed).
    let first = mount.serve(&get);
    assert_eq!(first.status, 200);
    assert!(matches!(&first.body, FileBody::Bytes(b) if b.len() == css.len()));
    let etag = first.etag.clone().expect("etag");
    assert_eq!(mount.cache_usage().0, 1);

    let mut g = c.benchmark_group("mount/file");
    g.throughput(Throughput::Elements(1));
    g.bench_function("serve_cache_hit_2KiB", |b| {
        b.iter(|| {
            let r = mount.serve(black_box(&get));
            debug_assert_eq!(r.status, 200);
            r
        })
    });
    let cond = FileRequest {
        if_none_match: Some(&etag[..]),
        ..get
    };
    assert_eq!(mount.serve(&cond).status, 304);
    g.bench_function("serve_304_if_none_match", |b| {
        b.iter(|| {
            let r = mount.serve(black_box(&cond));
            debug_assert_eq!(r.status, 304);
            r
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = serve }
criterion_main!(benches);
