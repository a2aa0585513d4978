//! Control messages (supervisor -> worker): `ToWorker::encode_new_conns` of a full
//! batch of 64 accepted connections (`MAX_FDS_PER_MSG`, one accept pass under a
//! connection storm) into a reused buffer, and its decode on the worker side.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lwsd_bench::new_conns;
use lwsd_proto::{MAX_FDS_PER_MSG, ToWorker};

fn control(c: &mut Criterion) {
    let conns = new_conns(MAX_FDS_PER_MSG);
    let mut buf = Vec::with_capacity(2048);
    ToWorker::encode_new_conns(&conns, &mut buf).expect("64 fit");
    let encoded = buf.clone();

    let mut g = c.benchmark_group("proto/new_conns");
    g.throughput(Throughput::Elements(conns.len() as u64));
    g.bench_function("encode_64", |b| {
        b.iter(|| {
            ToWorker::encode_new_conns(black_box(&conns), &mut buf).expect("64 fit");
            buf.len()
        })
    });
    g.bench_function("decode_64", |b| {
        b.iter(|| ToWorker::decode(black_box(&encoded)).expect("valid"))
    });
    g.finish();
}

criterion_group! { name = benches; config = common::config(); targets = control }
criterion_main!(benches);
