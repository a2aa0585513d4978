//! The worker's timers (lws_sul): one ordered structure, one kernel timeout armed for the
//! earliest deadline (the loop waits with `IORING_ENTER_EXT_ARG`'s timeout).
//!
//! Connections re-arm their timer on every request, so re-arming must be cheap: each
//! connection keeps its current deadline itself, and the heap holds at most a few entries
//! per connection. Moving a deadline later costs nothing (the stale heap entry, when it
//! comes up, sees the later deadline and is pushed again); moving it earlier pushes one
//! entry. Time is milliseconds on the loop's monotonic clock, passed in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A heap entry: when, and whose (slot + generation).
type Entry = Reverse<(u64, u32, u32)>;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Entry>,
}

impl Timers {
    /// Makes sure a wake-up at `at` exists for (slot, generation). `queued` is the earliest
    /// deadline already queued for it (kept by the caller), updated here.
    pub fn arm(&mut self, slot: u32, generation: u32, at: u64, queued: &mut u64) {
        if at < *queued {
            self.heap.push(Reverse((at, slot, generation)));
            *queued = at;
        }
    }

    /// The earliest queued deadline.
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pops one entry due at `now`: `(deadline, slot, generation)`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, u32, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_lazy_rearm() {
        let mut t = Timers::default();
        let (mut qa, mut qb) = (u64::MAX, u64::MAX);
        t.arm(1, 0, 500, &mut qa);
        t.arm(2, 0, 100, &mut qb);
        // moving slot 1 later pushes nothing
        t.arm(1, 0, 900, &mut qa);
        assert_eq!(t.len(), 2);
        // moving it earlier pushes one
        t.arm(1, 0, 50, &mut qa);
        assert_eq!(t.len(), 3);
        assert_eq!(t.next(), Some(50));
        assert_eq!(t.pop_due(49), None);
        assert_eq!(t.pop_due(100), Some((50, 1, 0)));
        assert_eq!(t.pop_due(100), Some((100, 2, 0)));
        assert_eq!(t.pop_due(100), None);
        assert_eq!(t.next(), Some(500));
    }
}
