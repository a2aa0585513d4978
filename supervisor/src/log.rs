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
