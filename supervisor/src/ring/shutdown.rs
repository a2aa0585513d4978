//! Shutdown: cancelling the accepts, closing the listeners and telling every worker to
//! drain within the grace period.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use io_uring::{opcode, types};
use lwsd_proto::ToWorker;

use super::{K_CANCEL, KILL_SLACK, State, Supervisor, ud};
use crate::listen;
use crate::log::{INFO, NOTICE};

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, now: Instant) {
        if let State::Draining { killed, .. } = self.state {
            log!(NOTICE, "second stop signal: killing workers now");
            // The next tick does the kill, the same way as at the deadline.
            self.state = State::Draining {
                deadline: now,
                killed,
            };
            return;
        }
        log!(
            NOTICE,
            "stopping: draining workers (grace {:?})",
            self.grace
        );
        self.state = State::Draining {
            deadline: now + self.grace + KILL_SLACK,
            killed: false,
        };
        for li in 0..self.listeners.len() {
            if let Some(l) = &self.listeners[li]
                && let Some(p) = listen::unix_path(&l.kind)
            {
                let _ = std::fs::remove_file(p);
            }
            match &self.listeners[li] {
                Some(l) if self.accept_armed[li] != 0 => {
                    let fd = l.fd.as_raw_fd();
                    let e =
                        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                            .build()
                            .user_data(ud(K_CANCEL, 0, 0));
                    // SAFETY: a cancel reads no user memory.
                    unsafe { self.push(&e) };
                }
                _ => self.listeners[li] = None,
            }
        }
        for w in 0..self.workers.len() {
            self.workers[w].restart_at = None;
            if self.workers[w].pid.is_some() {
                self.send_shutdown(w);
            }
        }
    }

    pub(super) fn send_shutdown(&mut self, w: usize) {
        let grace_ms = u32::try_from(self.grace.as_millis()).unwrap_or(u32::MAX);
        let _ = ToWorker::Shutdown { grace_ms }.encode(&mut self.enc);
        let wk = &mut self.workers[w];
        let Some(ctl) = &wk.ctl else { return };
        match lwsd_proto::send(ctl.as_fd(), &self.enc, &[]) {
            Ok(()) => wk.shutdown_pending = false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wk.shutdown_pending = true,
            Err(e) => {
                log!(INFO, "worker {w}: cannot send shutdown: {e}");
                wk.shutdown_pending = false;
            }
        }
    }
}
