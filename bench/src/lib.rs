//! lwsd micro benchmarks live in benches/ (being written).
