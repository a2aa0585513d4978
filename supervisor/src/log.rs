//! Plain stderr log lines, gated by lws' `-d` bitfield (1 err, 2 warn, 4 notice, 8 info,
//! 16 debug). Each line is one write ([`lwsd_worker::stderr_line`]), so lines from the
//! supervisor and its workers do not interleave mid-line, and a broken stderr is ignored
//! rather than fatal. No logging crate: the supervisor logs a few lines per event, never
//! per connection.

use std::sync::atomic::{AtomicU32, Ordering};

pub const ERR: u32 = 1;
pub const WARN: u32 = 2;
pub const NOTICE: u32 = 4;
pub const INFO: u32 = 8;
pub const DEBUG: u32 = 16;

static LEVEL: AtomicU32 = AtomicU32::new(ERR | WARN | NOTICE);

pub fn set_level(bits: u32) {
    LEVEL.store(bits, Ordering::Relaxed);
}

pub fn enabled(bit: u32) -> bool {
    LEVEL.load(Ordering::Relaxed) & bit != 0
}

pub fn prefix(bit: u32) -> &'static str {
    match bit {
        ERR => "E",
        WARN => "W",
        NOTICE => "N",
        INFO => "I",
        _ => "D",
    }
}

/// `log!(log::WARN, "...", args)`: one line `lwsd[pid]: W: ...` if the level is on.
#[macro_export]
macro_rules! log {
    ($bit:expr, $($arg:tt)*) => {
        if $crate::log::enabled($bit) {
            lwsd_worker::stderr_line(format_args!(
                "lwsd[{}]: {}: {}",
                std::process::id(),
                $crate::log::prefix($bit),
                format_args!($($arg)*)
            ));
        }
    };
}

/// At most one log line a second for an event that can happen thousands of times a
/// second (a refused connection): [`Throttle::hit`] counts each occurrence and says when
/// a line is due, with how many occurrences it covers.
#[derive(Default)]
pub struct Throttle {
    last: Option<std::time::Instant>,
    count: u64,
}

impl Throttle {
    /// One more occurrence at `now`; `Some(n)` when a line is due, covering `n`
    /// occurrences (this one and those not logged since the last line).
    pub fn hit(&mut self, now: std::time::Instant) -> Option<u64> {
        self.count += 1;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn throttle_logs_once_a_second_with_the_count() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.hit(t0), Some(1));
        for i in 1..500 {
            assert_eq!(t.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.hit(t0 + Duration::from_millis(1000)), Some(500));
        assert_eq!(t.hit(t0 + Duration::from_millis(1001)), None);
    }
}
