//! A rate limiter for opening connections and sending messages at a fixed rate.
//!
//! Open-loop pacing: the `n`-th event is due at `start + n * interval`, so a loop that
//! falls behind catches up (bounded by a burst cap per call) instead of silently
//! lowering the rate, and the rate never drifts with the loop's own latency. Time is an
//! argument (nanoseconds on any monotonic clock), so it is tested without sleeping.

/// Paces events at a fixed interval from a start time.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    interval_ns: u64,
    issued: u64,
    /// Events at most, in total.
    limit: u64,
}

impl Pacer {
    /// `limit` events, the first due at `start_ns`, then one every `interval_ns`.
    pub fn new(start_ns: u64, interval_ns: u64, limit: u64) -> Pacer {
        Pacer {
            start_ns,
            interval_ns: interval_ns.max(1),
            issued: 0,
            limit,
        }
    }

    /// How many events are due at `now_ns` and not yet taken, at most `burst`; they
    /// count as taken.
    pub fn take(&mut self, now_ns: u64, burst: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let due = ((now_ns - self.start_ns) / self.interval_ns)
            .saturating_add(1)
            .min(self.limit);
        let n = due.saturating_sub(self.issued).min(burst);
        self.issued += n;
        n
    }

    /// When the next event is due, or `None` once all `limit` are taken.
    pub fn next_at(&self) -> Option<u64> {
        (self.issued < self.limit).then(|| {
            self.start_ns
                .saturating_add(self.issued.saturating_mul(self.interval_ns))
        })
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    pub fn done(&self) -> bool {
        self.issued >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn paces_and_catches_up() {
        // 2000/s: one every 0.5 ms, starting at t = 10 ms.
        let mut p = Pacer::new(10 * MS, MS / 2, 10_000);
        assert_eq!(p.take(0, u64::MAX), 0);
        assert_eq!(p.next_at(), Some(10 * MS));
        assert_eq!(p.take(10 * MS, u64::MAX), 1);
        assert_eq!(p.take(10 * MS, u64::MAX), 0);
        assert_eq!(p.next_at(), Some(10 * MS + MS / 2));
        // 1 s later: 2001 due in total.
        assert_eq!(p.take(1010 * MS, u64::MAX), 2000);
        assert_eq!(p.issued(), 2001);
        // A late loop gets the backlog, at most `burst` at a time.
        assert_eq!(p.take(1110 * MS, 50), 50);
        assert_eq!(p.take(1110 * MS, 1000), 150);
        assert_eq!(p.take(1110 * MS, 1000), 0);
    }

    #[test]
    fn stops_at_limit() {
        let mut p = Pacer::new(0, MS, 3);
        assert_eq!(p.take(100 * MS, u64::MAX), 3);
        assert!(p.done());
        assert_eq!(p.next_at(), None);
        assert_eq!(p.take(200 * MS, u64::MAX), 0);
    }
}
