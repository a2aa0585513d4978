//! Worker lifecycle: starting workers, reaping them when they exit, and restarting them
//! (with the crash-loop brake) or stopping when one fails to start.

use std::rc::Rc;
use std::time::Instant;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Hand, K_CTL, RESTART_INTERVAL, State, Supervisor, ud};
use crate::log::{ERR, INFO, WARN};
use crate::spawn::spawn_worker;

impl Supervisor {
    pub(super) fn reap_children(&mut self, now: Instant) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.on_exit(pid, format!("exited with status {code}"), now);
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.on_exit(pid, format!("killed by {sig}"), now);
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => {}
                Err(e) => {
                    log!(ERR, "waitpid: {e}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, how: String, now: Instant) {
        let Some(w) = self.workers.iter().position(|wk| wk.pid == Some(pid)) else {
            return;
        };
        let draining = matches!(self.state, State::Draining { .. });
        if !draining && !self.workers[w].ever_ready && how.starts_with("exited") {
            // It never got to serve: a start-up error (io_uring unavailable, a bad
            // document root, ...) that a restart would only repeat. Its own error line
            // is above; stop everything and exit with failure.
            log!(
                ERR,
                "worker {w} (pid {pid}) failed to start ({how}); stopping"
            );
            self.failed = Some(format!("worker {w} failed to start; see its error above"));
            self.workers[w].pid = None;
            self.begin_shutdown(now);
            return;
        }
        if draining {
            log!(INFO, "worker {w} (pid {pid}) {how}");
        } else {
            log!(WARN, "worker {w} (pid {pid}) {how}; restarting");
        }
        let generation = self.workers[w].generation;
        if self.workers[w].ctl.is_some() {
            // Ends the multishot poll, which holds the socket open in the kernel.
            self.cancel(ud(K_CTL, generation, w));
        }
        let wk = &mut self.workers[w];
        wk.pid = None;
        // In-flight sendmsgs keep their own Rc; the socket closes when the last ends.
        wk.ctl = None;
        // The ring too (SQEs not yet submitted keep it in `submit_refs`): once no fd of it
        // is left, the kernel frees it and closes the connections that died with the
        // worker.
        wk.ring = None;
        wk.usable = false;
        wk.ready = false;
        wk.assigned = 0;
        wk.bus_out.clear();
        let stranded = std::mem::take(&mut wk.pending);
        let stranded_ring = std::mem::take(&mut wk.pending_ring);
        self.metrics.workers[w].process_exited();
        self.update_live_gauge();
        for p in stranded {
            self.route(p.map(Hand::Fd));
        }
        for p in stranded_ring {
            self.route(p.map(Hand::Slot));
        }
        if !draining {
            let earliest = self.workers[w]
                .last_restart
                .map_or(now, |t| t + RESTART_INTERVAL);
            if earliest <= now {
                self.spawn(w, now, true);
                self.arm_ctl(w);
            } else {
                log!(
                    WARN,
                    "worker {w} is crash-looping; next start in {:?}",
                    earliest - now
                );
                self.workers[w].restart_at = Some(earliest);
            }
        }
    }

    pub(super) fn spawn(&mut self, w: usize, now: Instant, restart: bool) {
        let wk = &mut self.workers[w];
        if restart {
            wk.last_restart = Some(now);
        }
        wk.restart_at = None;
        match spawn_worker(w, self.ring_handoff) {
            Ok(s) => {
                log!(INFO, "worker {w} started, pid {}", s.pid);
                wk.pid = Some(s.pid);
                wk.ctl = Some(Rc::new(s.ctl));
                wk.generation = wk.generation.wrapping_add(1) & 0xff_ffff;
                wk.usable = true;
                wk.congested = false;
                wk.ready = false;
                wk.assigned = 0;
                wk.max_conns = u64::MAX;
                if restart {
                    self.metrics.workers[w].restarts.increment(1);
                }
            }
            Err(e) => {
                log!(ERR, "cannot start worker {w}: {e}; retrying");
                wk.restart_at = Some(now + RESTART_INTERVAL);
            }
        }
        self.update_live_gauge();
    }

    fn update_live_gauge(&self) {
        let n = self.workers.iter().filter(|w| w.pid.is_some()).count();
        self.metrics.live_workers.set(n as f64);
    }
}
