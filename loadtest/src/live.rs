//! Counters shared by the load threads and read by the progress display, the ready
//! file and the fan-out start; plus the stop flag set on SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters shared by the threads and read by the progress display.
#[derive(Debug, Default)]
pub struct Shared {
    /// Set on SIGINT/SIGTERM, or by the first thread whose traffic phase ended: every
    /// thread goes to its closing phase.
    pub stop: AtomicBool,
    /// When `stop` was first set (ns on the run's clock): the end of the traffic phase.
    pub stopped_at_ns: AtomicU64,
    pub attempted: AtomicU64,
    pub established: AtomicU64,
    pub failed: AtomicU64,
    /// Messages (WebSocket) or responses (HTTP) received.
    pub msgs_recv: AtomicU64,
    pub msgs_sent: AtomicU64,
    /// Fan-out: when sending started (0 until every connection is up or failed).
    pub send_start_ns: AtomicU64,
    /// Threads that finished.
    pub done: AtomicU64,
}

impl Shared {
    pub fn resolved(&self) -> u64 {
        self.established.load(Relaxed) + self.failed.load(Relaxed)
    }

    pub fn request_stop(&self, now_ns: u64) {
        if !self.stop.swap(true, Relaxed) {
            self.stopped_at_ns.store(now_ns, Relaxed);
        }
    }
}
