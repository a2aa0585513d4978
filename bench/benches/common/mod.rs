//! Settings shared by every bench file: shorter warm-up and measurement than criterion's
//! 3 s + 5 s, so a full run of all groups stays a few minutes on a 2-core machine and
//! `--quick` well under two. Override on the command line (`--measurement-time 10`).

use std::time::Duration;

use criterion::Criterion;

pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}
