//! Worker control sockets: the poll on each, the messages workers send (Hello, stats,
//! bus publications) and the relay of bus messages to every worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;

use io_uring::{cqueue, opcode, types};
use lwsd_proto::{FromWorker, ToWorker};

use super::{BUS_QUEUE_MAX, K_CTL, Supervisor, ud};
use crate::log::{ERR, INFO, WARN};

impl Supervisor {
    pub(super) fn arm_ctl(&mut self, w: usize) {
        let wk = &self.workers[w];
        let Some(ctl) = &wk.ctl else { return };
        let e = opcode::PollAdd::new(types::Fd(ctl.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(ud(K_CTL, wk.generation, w));
        // SAFETY: a poll reads no user memory; the kernel holds its own reference to the
        // socket, so closing our fd later only needs the cancel we submit then.
        unsafe { self.push(&e) };
    }

    pub(super) fn on_ctl(&mut self, w: usize, generation: u32, res: i32, flags: u32) {
        let Some(wk) = self.workers.get(w) else {
            return;
        };
        if wk.generation != generation || wk.ctl.is_none() {
            return; // an op of a previous process at this index
        }
        let mut closed = res < 0 || (res as i16 & (libc::POLLHUP | libc::POLLERR)) != 0;
        // Drain every queued packet; POLLHUP still leaves earlier packets readable.
        if res >= 0 {
            closed |= self.read_ctl(w);
        }
        if closed {
            // EOF: the process is exiting; SIGCHLD does the rest. Stop the (level-
            // triggered) poll so a hung-up socket does not spin the loop.
            let wk = &mut self.workers[w];
            wk.usable = false;
            if cqueue::more(flags) {
                self.cancel(ud(K_CTL, generation, w));
            }
        } else if !cqueue::more(flags) {
            self.arm_ctl(w);
        }
    }

    /// Reads and handles every queued control packet of worker `w`; true at EOF/error.
    fn read_ctl(&mut self, w: usize) -> bool {
        let Some(ctl) = self.workers[w].ctl.clone() else {
            return true;
        };
        loop {
            self.ctl_fds.clear();
            match lwsd_proto::recv(ctl.as_fd(), &mut self.ctl_buf, &mut self.ctl_fds) {
                Ok(Some(n)) => {
                    match FromWorker::decode(&self.ctl_buf[..n]) {
                        Ok(m) => self.on_worker_msg(w, m),
                        Err(e) => log!(WARN, "worker {w}: bad control message: {e}"),
                    }
                    if !self.ctl_fds.is_empty() {
                        log!(WARN, "worker {w} sent fds; closed them");
                        self.ctl_fds.clear();
                    }
                }
                Ok(None) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log!(WARN, "worker {w}: {e}");
                }
                Err(e) => {
                    log!(WARN, "worker {w} control socket: {e}");
                    return true;
                }
            }
        }
    }

    fn on_worker_msg(&mut self, w: usize, m: FromWorker) {
        match m {
            FromWorker::Hello {
                index,
                pid,
                max_conns,
                ring_fd,
            } => {
                log!(
                    INFO,
                    "worker {w} ready (index {index}, pid {pid}, room for {max_conns} connections)"
                );
                self.workers[w].max_conns = u64::from(max_conns);
                if usize::from(index) != w {
                    log!(WARN, "worker {w} says it is index {index}");
                }
                if self.ring_handoff {
                    // Only from the process we started and have not reaped: its pid
                    // cannot have been reused.
                    let ours = self.workers[w]
                        .pid
                        .filter(|p| p.as_raw() as u32 == pid && ring_fd >= 0);
                    match ours.map(|p| crate::pidfd::take_fd(p, ring_fd)) {
                        Some(Ok(fd)) => self.workers[w].ring = Some(Rc::new(fd)),
                        Some(Err(e)) => log!(
                            ERR,
                            "worker {w}: cannot take its io_uring fd ({e}); it gets no IPv4 or unix connections (use --fd-handoff scm)"
                        ),
                        _ => log!(
                            ERR,
                            "worker {w}: hello without a usable ring (fd {ring_fd}, pid {pid})"
                        ),
                    }
                }
                self.workers[w].ready = true;
                self.workers[w].ever_ready = true;
                self.send_ticket_keys(w);
            }
            FromWorker::Stats(s) => self.metrics.workers[w].update(&s),
            FromWorker::Bus(mut b) => {
                // The supervisor knows who published; a worker cannot speak for another.
                b.origin = w as u16;
                if let Err(e) = ToWorker::Bus(b).encode(&mut self.enc) {
                    log!(WARN, "worker {w}: unrelayable bus message: {e}");
                    self.metrics.bus_dropped.increment(1);
                    return;
                }
                let pkt = Rc::new(self.enc.clone());
                for t in 0..self.workers.len() {
                    if self.workers[t].ctl.is_none() {
                        continue;
                    }
                    let q = &mut self.workers[t].bus_out;
                    if q.len() >= BUS_QUEUE_MAX {
                        q.pop_front();
                        self.metrics.bus_dropped.increment(1);
                    }
                    q.push_back(pkt.clone());
                    self.flush_bus(t);
                }
            }
        }
    }

    /// Sends worker `w`'s queued bus packets in order until its socket is full.
    pub(super) fn flush_bus(&mut self, w: usize) {
        let wk = &mut self.workers[w];
        let Some(ctl) = &wk.ctl else {
            wk.bus_out.clear();
            return;
        };
        while let Some(pkt) = wk.bus_out.front() {
            match lwsd_proto::send(ctl.as_fd(), pkt, &[]) {
                Ok(()) => {
                    wk.bus_out.pop_front();
                    self.metrics.bus_relayed.increment(1);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.metrics.bus_dropped.increment(wk.bus_out.len() as u64);
                    wk.bus_out.clear();
                }
            }
        }
    }
}
