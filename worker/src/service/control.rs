//! The supervisor's control socket, from the worker's side: connections handed over in
//! `NewConns` packets, shutdown, bus messages relayed from other workers; and the
//! figures this worker sends back every 250 ms.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use super::{Loop, ORPHAN_GRACE, log};

impl Loop {
    pub(super) fn on_control(&mut self, res: i32) {
        if res < 0 {
            return;
        }
        let mut buf = [0u8; lwsd_proto::MAX_MSG_SIZE];
        loop {
            let Some(fd) = self.control.as_ref() else {
                return;
            };
            let mut fds = Vec::new();
            let n = match lwsd_proto::recv(fd.as_fd(), &mut buf, &mut fds) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.supervisor_gone("closed");
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A packet too long or with too many fds: dropped (its fds closed), the
                // next one is read.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log(1, &format!("control socket: {e}"));
                    continue;
                }
                // ECONNRESET: the supervisor died with packets of ours unread (unix(7)
                // seqpacket: the survivor reads the reset once, then EOF, and its poll
                // is not woken again). Any other error leaves the socket as unusable.
                Err(e) => {
                    self.supervisor_gone(&e.to_string());
                    return;
                }
            };
            match lwsd_proto::ToWorker::decode(&buf[..n]) {
                Ok(lwsd_proto::ToWorker::NewConns(conns)) => {
                    if fds.len() < conns.len() {
                        let lost = conns.len() - fds.len();
                        self.app.stats.wire.conns_lost_emfile += lost as u64;
                        fds_ran_out(lost);
                    }
                    for (nc, fd) in conns.iter().zip(fds.drain(..)) {
                        if crate::log_enabled(16) {
                            log(
                                16,
                                &format!(
                                    "connection from {:?} on listener {}",
                                    nc.peer, nc.listener
                                ),
                            );
                        }
                        if self.draining {
                            drop(fd);
                        } else {
                            self.adopt(fd, nc.listener);
                        }
                    }
                }
                Ok(lwsd_proto::ToWorker::Shutdown { grace_ms }) => {
                    self.drain(Duration::from_millis(grace_ms as u64));
                }
                Ok(lwsd_proto::ToWorker::Bus(msg)) => self.app.bus_in.push(msg),
                Ok(lwsd_proto::ToWorker::TicketKeys(keys)) => {
                    if let Some(tls) = &self.app.tls {
                        tls.update_tickets(&keys);
                    }
                }
                Err(e) => log(1, &format!("bad control message: {e}")),
            }
        }
    }

    pub(super) fn send_stats(&mut self) {
        let Some(fd) = self.control.as_ref() else {
            return;
        };
        let stats = lwsd_proto::WorkerStats {
            live_conns: self.core.len() as u32,
            cpu_ns: process_cpu_ns(),
            rss_bytes: process_rss_bytes(),
            ..self.app.stats.wire
        };
        let mut buf = Vec::with_capacity(1024);
        if lwsd_proto::FromWorker::Stats(stats)
            .encode(&mut buf)
            .is_ok()
        {
            // Non-blocking: if the supervisor is slow the snapshot is simply skipped.
            match lwsd_proto::send(fd.as_fd(), &buf, &[]) {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
                    ) =>
                {
                    self.supervisor_gone(&e.to_string());
                }
                _ => {}
            }
        }
    }

    /// The supervisor is gone (its end of the control socket closed, or it died with
    /// our packets unread): nobody will hand this worker work, relay its bus messages or
    /// collect its figures, and a new supervisor starts workers of its own. Drain as on
    /// a shutdown (what is in flight is finished, WebSocket clients get a 1001 close),
    /// then exit.
    fn supervisor_gone(&mut self, why: &str) {
        log(
            2,
            &format!("control socket {why}: the supervisor is gone, draining and exiting"),
        );
        self.control = None;
        self.drain(ORPHAN_GRACE);
    }
}

/// This worker ran out of descriptors (EMFILE) receiving `lost` connections in
/// SCM_RIGHTS: the kernel closed them (their clients see a reset). The supervisor
/// normally refuses connections past a worker's capacity with a 503 before this can
/// happen; this is what is left when the worker's other descriptors (files being
/// served) ate the headroom. One line a second at most, with the count since the last.
fn fds_ran_out(lost: usize) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static LOST: AtomicU64 = AtomicU64::new(0);
    let total = LOST.fetch_add(lost as u64, Relaxed) + lost as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if now.saturating_sub(LAST_MS.load(Relaxed)) >= 1000 {
        LAST_MS.store(now, Relaxed);
        LOST.store(0, Relaxed);
        log(
            1,
            &format!(
                "out of file descriptors (EMFILE) receiving connections: {total} lost (raise the open files limit)"
            ),
        );
    }
}

/// User + system CPU time of this process (getrusage), in nanoseconds.
fn process_cpu_ns() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let ns = |t: nix::sys::time::TimeVal| {
                t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000
            };
            ns(u.user_time()) + ns(u.system_time())
        }
        Err(_) => 0,
    }
}

/// Resident set size of this process (/proc/self/statm), in bytes.
fn process_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // statm counts pages, whose size is not always 4 KiB (aarch64 kernels with 16 or
    // 64 KiB pages, ppc64le): asked once.
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let page = *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf reads a constant of the C library; no memory of ours.
        match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as u64,
            _ => 4096,
        }
    });
    pages * page
}
