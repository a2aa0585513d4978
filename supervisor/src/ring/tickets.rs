//! Session-ticket keys (issue 10): the supervisor makes them, sends them to each worker
//! after its Hello (a respawned worker too) and to every worker at each rotation, so a
//! ticket sealed by one worker opens on any other. Key lifetimes and the rotation
//! period are [`lwsd_worker::roles::tls::tickets`]'s.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use lwsd_proto::ToWorker;
use lwsd_worker::roles::tls::tickets::{KeyRotation, ROTATION_INTERVAL};

use super::Supervisor;
use crate::log::{ERR, INFO, WARN};

/// The keys and when they rotate next.
pub(super) struct Tickets {
    keys: KeyRotation,
    next_rotation: Instant,
    /// Workers whose control socket was full when keys were due: retried each tick.
    unsent: Vec<bool>,
}

impl Supervisor {
    /// Makes the first key (TLS is on); workers get it when they say Hello.
    pub fn enable_session_tickets(&mut self) -> io::Result<()> {
        let keys = KeyRotation::new()
            .map_err(|_| io::Error::other("no random bytes for session-ticket keys"))?;
        self.tickets = Some(Tickets {
            keys,
            next_rotation: Instant::now() + ROTATION_INTERVAL,
            unsent: vec![false; self.workers.len()],
        });
        Ok(())
    }

    /// Sends the current keys to worker `w` (after its Hello, or at a rotation).
    pub(super) fn send_ticket_keys(&mut self, w: usize) {
        let Some(t) = &mut self.tickets else { return };
        let Some(ctl) = &self.workers[w].ctl else {
            t.unsent[w] = false; // a new process gets them after its Hello
            return;
        };
        if let Err(e) = ToWorker::TicketKeys(t.keys.keys().to_vec()).encode(&mut self.enc) {
            log!(ERR, "session-ticket keys: {e}");
            return;
        }
        match lwsd_proto::send(ctl.as_fd(), &self.enc, &[]) {
            Ok(()) => t.unsent[w] = false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => t.unsent[w] = true,
            Err(e) => {
                log!(WARN, "worker {w}: cannot send session-ticket keys: {e}");
                t.unsent[w] = false;
            }
        }
    }

    /// Each tick: rotates when due (and sends to everyone), retries unsent keys.
    pub(super) fn tick_tickets(&mut self, now: Instant) {
        let Some(t) = &mut self.tickets else { return };
        if now >= t.next_rotation {
            t.next_rotation = now + ROTATION_INTERVAL;
            if t.keys.rotate().is_err() {
                log!(ERR, "no random bytes: session-ticket keys not rotated");
                return;
            }
            log!(INFO, "session-ticket keys rotated");
            let ready: Vec<usize> = (0..self.workers.len())
                .filter(|&w| self.workers[w].ready)
                .collect();
            for w in ready {
                self.send_ticket_keys(w);
            }
            return;
        }
        let unsent: Vec<usize> = (0..t.unsent.len()).filter(|&w| t.unsent[w]).collect();
        for w in unsent {
            self.send_ticket_keys(w);
        }
    }
}
