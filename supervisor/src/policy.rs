//! Which worker gets the next connection: the one with the fewest live connections
//! (libwebsockets' SMP policy, DESIGN.md section 1).
//!
//! A worker's load is its last reported `live_conns` plus the connections handed to it
//! that its last report had not yet counted (`assigned - accepted_total`): reports are
//! up to ~250 ms old, and without that term one worker would take a whole burst.

/// What the supervisor knows about one worker's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// `live_conns` of the worker's last Stats.
    pub live: u64,
    /// Connections assigned to this worker process so far (its lifetime).
    pub assigned: u64,
    /// `accepted_total` of the worker's last Stats (same lifetime).
    pub accepted: u64,
}

impl Load {
    /// Estimated live connections now.
    pub fn estimate(&self) -> u64 {
        self.live
            .saturating_add(self.assigned.saturating_sub(self.accepted))
    }
}

/// Index of the least-loaded available worker (`None` entries are unavailable: not
/// running, or their socket is full). Ties go to the lowest index, which with the
/// `assigned` term turns an idle pool into round-robin.
pub fn pick_least_loaded(loads: impl IntoIterator<Item = Option<Load>>) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, l) in loads.into_iter().enumerate() {
        if let Some(l) = l {
            let e = l.estimate();
            if best.is_none_or(|(_, b)| e < b) {
                best = Some((i, e));
            }
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(n: u64) -> Option<Load> {
        Some(Load {
            live: n,
            ..Load::default()
        })
    }

    #[test]
    fn fewest_live_wins_ties_to_lowest() {
        assert_eq!(pick_least_loaded([live(5), live(2), live(3)]), Some(1));
        assert_eq!(pick_least_loaded([live(2), live(2)]), Some(0));
        assert_eq!(pick_least_loaded([None, live(9), live(9)]), Some(1));
        assert_eq!(pick_least_loaded([None, None]), None);
        assert_eq!(pick_least_loaded(std::iter::empty()), None);
    }

    #[test]
    fn unreported_handoffs_count() {
        // Worker 0 reported 1 live but has 4 handed since (assigned 10, accepted 6).
        let a = Some(Load {
            live: 1,
            assigned: 10,
            accepted: 6,
        });
        assert_eq!(pick_least_loaded([a, live(4)]), Some(1));
        assert_eq!(pick_least_loaded([a, live(6)]), Some(0));
        // A report counting more than we handed (never happens) does not underflow.
        let b = Load {
            live: 0,
            assigned: 1,
            accepted: 5,
        };
        assert_eq!(b.estimate(), 0);
    }

    #[test]
    fn a_burst_spreads_evenly() {
        let mut loads = [Load::default(); 4];
        loads[2].live = 3;
        for _ in 0..13 {
            let i = pick_least_loaded(loads.iter().copied().map(Some)).unwrap();
            loads[i].assigned += 1;
        }
        let est: Vec<u64> = loads.iter().map(Load::estimate).collect();
        assert_eq!(est, [4, 4, 4, 4]);
    }
}
