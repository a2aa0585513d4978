//! Handing off: routing each accepted connection to the least-loaded worker and moving
//! it there, by MSG_RING (fixed slots) or SCM_RIGHTS sendmsg (fds), with the retries
//! when a handoff fails and the closes of the supervisor's copies.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{opcode, squeue, types};
use lwsd_proto::{MAX_FDS_PER_MSG, NewConn, ToWorker};

use super::{Hand, K_CLOSE, K_MSG, K_SEND, MAX_HANDOFF_ATTEMPTS, Pending, Supervisor, ud};
use crate::log::{DEBUG, ERR, WARN};
use crate::policy::{Load, pick_least_loaded};

/// `CMSG_LEN(n)` / `CMSG_SPACE(n)`.
fn cmsg_len(n: usize) -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic on its argument (no pointer is read); n is at
    // most 64 * 4.
    unsafe { libc::CMSG_LEN(n as u32) as usize }
}
fn cmsg_space(n: usize) -> usize {
    // SAFETY: as above, arithmetic only.
    unsafe { libc::CMSG_SPACE(n as u32) as usize }
}

/// Control buffer of a handoff sendmsg, aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; lwsd_proto::fdpass::CMSG_BUF_LEN]);

/// One handoff sendmsg in flight: everything the kernel reads lives here, boxed, so its
/// address is stable from submission to completion.
pub(super) struct SendOp {
    hdr: libc::msghdr,
    iov: libc::iovec,
    cmsg: CmsgBuf,
    data: Vec<u8>,
    fds: Vec<OwnedFd>,
    conns: Vec<NewConn>,
    attempts: Vec<u8>,
    worker: usize,
    /// Keeps the control socket open until the op completes even if the worker dies.
    ctl: Option<Rc<OwnedFd>>,
}

impl SendOp {
    fn new() -> Box<SendOp> {
        Box::new(SendOp {
            // SAFETY: msghdr and iovec are plain C structs of integers and pointers, for
            // which all-zero is a valid (empty) value.
            hdr: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            iov: unsafe { std::mem::zeroed() },
            cmsg: CmsgBuf([0; lwsd_proto::fdpass::CMSG_BUF_LEN]),
            data: Vec::with_capacity(4 + 2 + MAX_FDS_PER_MSG * 21),
            fds: Vec::with_capacity(MAX_FDS_PER_MSG),
            conns: Vec::with_capacity(MAX_FDS_PER_MSG),
            attempts: Vec::with_capacity(MAX_FDS_PER_MSG),
            worker: 0,
            ctl: None,
        })
    }

    /// Encodes the message and points the msghdr at this op's own buffers. Must be
    /// called after the op is in its final (boxed) place and not moved before completion.
    fn prepare(&mut self) {
        // conns.len() <= MAX_FDS_PER_MSG by construction, so encoding cannot fail.
        let _ = ToWorker::encode_new_conns(&self.conns, &mut self.data);
        let n = self.fds.len();
        let payload = n * std::mem::size_of::<RawFd>();
        let c = &mut self.cmsg.0;
        c.fill(0);
        let hdr = std::mem::size_of::<usize>();
        c[..hdr].copy_from_slice(&cmsg_len(payload).to_ne_bytes());
        c[hdr..hdr + 4].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c[hdr + 4..hdr + 8].copy_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        let data_off = cmsg_len(0);
        for (i, fd) in self.fds.iter().enumerate() {
            let o = data_off + i * 4;
            c[o..o + 4].copy_from_slice(&fd.as_raw_fd().to_ne_bytes());
        }
        self.iov.iov_base = self.data.as_ptr() as *mut libc::c_void;
        self.iov.iov_len = self.data.len();
        self.hdr.msg_name = std::ptr::null_mut();
        self.hdr.msg_namelen = 0;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_control = c.as_mut_ptr() as *mut libc::c_void;
        self.hdr.msg_controllen = if n == 0 { 0 } else { cmsg_space(payload) };
        self.hdr.msg_flags = 0;
    }

    fn clear(&mut self) {
        self.fds.clear();
        self.conns.clear();
        self.attempts.clear();
        self.ctl = None;
    }
}

/// A MSG_RING handoff, kept (by our slot) in case it fails: a successful one posts no
/// completion at all.
pub(super) struct MsgOp {
    conn: NewConn,
    attempts: u8,
    worker: usize,
    /// The worker's generation when the op was sent.
    generation: u32,
}

impl Supervisor {
    fn load(&self, w: usize, needs_ring: bool) -> Option<Load> {
        let wk = &self.workers[w];
        // A worker still starting takes connections as it would fds: they wait in its
        // `pending_ring` for the ring its Hello brings.
        let no_ring = needs_ring && wk.ready && wk.ring.is_none();
        if wk.pid.is_none() || !wk.usable || wk.congested || no_ring {
            return None;
        }
        let s = self.metrics.workers[w].current();
        let load = Load {
            live: u64::from(s.live_conns),
            assigned: wk.assigned,
            accepted: s.accepted_total,
        };
        (load.estimate() < wk.max_conns).then_some(load)
    }

    /// Whether some running worker holds as many connections as it has room for (the
    /// reason no worker was picked, rather than all being down).
    fn a_worker_is_full(&self) -> bool {
        self.workers.iter().enumerate().any(|(w, wk)| {
            let s = self.metrics.workers[w].current();
            let load = Load {
                live: u64::from(s.live_conns),
                assigned: wk.assigned,
                accepted: s.accepted_total,
            };
            wk.pid.is_some() && wk.usable && load.estimate() >= wk.max_conns
        })
    }

    /// Answers a connection no worker has room for with a 503 and closes it: its request
    /// bytes are read first (non-blocking, and ignored) so that the close sends a FIN
    /// rather than a reset, which could make the client drop the answer unread.
    fn refuse(&mut self, fd: Hand) {
        self.metrics.refused_workers_full.increment(1);
        if let Some(n) = self.refused_log.hit(std::time::Instant::now()) {
            log!(
                WARN,
                "every worker is at its connection limit (open files limit, ulimit -n): refused {n} connection(s) with 503"
            );
        }
        match fd {
            Hand::Fd(fd) => {
                use nix::sys::socket::{MsgFlags, recv, send};
                let raw = fd.as_raw_fd();
                let _ = recv(raw, &mut self.refuse_scratch[..], MsgFlags::MSG_DONTWAIT);
                let _ = send(
                    raw,
                    super::REFUSAL_503,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                );
                // (closed as `fd` drops)
            }
            Hand::Slot(slot) => {
                // recv, send and close hard-linked: each runs after the one before even
                // if that failed (no request bytes yet: EAGAIN). Their completions carry
                // K_CLOSE and are ignored.
                let hard = squeue::Flags::IO_HARDLINK | squeue::Flags::SKIP_SUCCESS;
                let e = opcode::Recv::new(
                    types::Fixed(slot),
                    self.refuse_scratch.as_mut_ptr(),
                    self.refuse_scratch.len() as u32,
                )
                .flags(libc::MSG_DONTWAIT)
                .build()
                .flags(hard)
                .user_data(ud(K_CLOSE, 0, 0));
                // SAFETY: the scratch buffer is boxed in `self` for the ring's life and is
                // never read: concurrent refusals writing into it at once only mix bytes
                // nobody looks at.
                unsafe { self.push(&e) };
                let e = opcode::Send::new(
                    types::Fixed(slot),
                    super::REFUSAL_503.as_ptr(),
                    super::REFUSAL_503.len() as u32,
                )
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build()
                .flags(hard)
                .user_data(ud(K_CLOSE, 0, 0));
                // SAFETY: the answer is a `static` byte string.
                unsafe { self.push(&e) };
                let e = opcode::Close::new(types::Fixed(slot))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(ud(K_CLOSE, 0, 0));
                // SAFETY: a close reads no user memory.
                unsafe { self.push(&e) };
            }
        }
    }

    /// Queues a connection for the least-loaded worker, or closes it if none can take it.
    pub(super) fn route(&mut self, p: Pending) {
        let is_slot = matches!(p.fd, Hand::Slot(_));
        let n = self.workers.len();
        let pick = if p.attempts >= MAX_HANDOFF_ATTEMPTS {
            None
        } else {
            pick_least_loaded((0..n).map(|w| self.load(w, is_slot)))
        };
        let Some(w) = pick else {
            if self.a_worker_is_full() {
                self.refuse(p.fd);
                return;
            }
            log!(DEBUG, "no worker can take a connection; closing it");
            self.metrics.handoff_failures.increment(1);
            if let Hand::Slot(s) = p.fd {
                self.close_slot(s);
            }
            return; // (an fd closes as `p` drops)
        };
        let wk = &mut self.workers[w];
        wk.assigned += 1;
        let (conn, attempts) = (p.conn, p.attempts);
        match p.fd {
            Hand::Fd(fd) => wk.pending.push(Pending { fd, conn, attempts }),
            Hand::Slot(fd) => wk.pending_ring.push(Pending { fd, conn, attempts }),
        }
    }

    /// Turns each worker's pending connections into MSG_RING ops (fixed slots) and
    /// sendmsg ops of up to 64 fds.
    pub(super) fn flush_pending(&mut self) {
        for w in 0..self.workers.len() {
            if self.workers[w].pending_ring.is_empty() {
                continue;
            }
            let Some(ring) = self.workers[w].ring.clone() else {
                if self.workers[w].pid.is_some() && !self.workers[w].ready {
                    continue; // starting: sent once its Hello brings the ring
                }
                let pending = std::mem::take(&mut self.workers[w].pending_ring);
                self.workers[w].assigned = 0;
                for p in pending {
                    self.route(p.map(Hand::Slot));
                }
                continue;
            };
            let pending = std::mem::take(&mut self.workers[w].pending_ring);
            for p in pending {
                let slot = p.fd;
                let Some(token) = lwsd_proto::handoff::encode(p.conn.listener, &p.conn.peer) else {
                    // Only IPv4 and unix listeners below MAX_LISTENERS accept into slots.
                    log!(
                        ERR,
                        "connection of listener {} has no handoff token",
                        p.conn.listener
                    );
                    self.close_slot(slot);
                    continue;
                };
                let i = slot as usize;
                if self.msgs.len() <= i {
                    self.msgs.resize_with(i + 1, || None);
                }
                self.msgs[i] = Some(MsgOp {
                    conn: p.conn,
                    attempts: p.attempts + 1,
                    worker: w,
                    generation: self.workers[w].generation,
                });
                if p.attempts == 0 {
                    self.metrics.handoffs.increment(1);
                }
                // The socket moves to the worker's table, then our slot is closed by the
                // linked op right after, in the same submit (so the worker holds the last
                // reference and its close sends the FIN at once). Neither posts a
                // completion on success; a failed MSG_RING posts its error and cancels
                // the close, and the connection is routed again from `msgs`.
                let e = opcode::MsgRingSendFd::new(
                    types::Fd(ring.as_raw_fd()),
                    types::Fixed(slot),
                    types::DestinationSlot::auto_target(),
                    token,
                )
                .build()
                .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                .user_data(ud(K_MSG, 0, i));
                // SAFETY: MSG_RING reads no user memory; the target ring's fd stays open
                // until this SQE is submitted (`submit_refs`), after which the op holds
                // its own reference.
                unsafe { self.push(&e) };
                let e = opcode::Close::new(types::Fixed(slot))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(ud(K_CLOSE, 0, 0));
                // SAFETY: a close reads no user memory.
                unsafe { self.push(&e) };
            }
            self.submit_refs.push(ring);
        }
        for w in 0..self.workers.len() {
            while !self.workers[w].pending.is_empty() {
                let Some(ctl) = self.workers[w].ctl.clone() else {
                    let stranded = std::mem::take(&mut self.workers[w].pending);
                    self.workers[w].assigned = 0;
                    for p in stranded {
                        self.route(p.map(Hand::Fd));
                    }
                    continue;
                };
                let mut op = self.spare_ops.pop().unwrap_or_else(SendOp::new);
                let pending = &mut self.workers[w].pending;
                let take = pending.len().min(MAX_FDS_PER_MSG);
                for p in pending.drain(..take) {
                    op.fds.push(p.fd);
                    op.conns.push(p.conn);
                    op.attempts.push(p.attempts + 1);
                }
                op.worker = w;
                let raw = ctl.as_raw_fd();
                op.ctl = Some(ctl);
                op.prepare();
                let slot = match self.free_sends.pop() {
                    Some(s) => s,
                    None => {
                        self.sends.push(None);
                        self.sends.len() - 1
                    }
                };
                let hdr: *const libc::msghdr = &op.hdr;
                self.sends[slot] = Some(op);
                // MSG_DONTWAIT: a full socket fails at once with EAGAIN (and the fds go
                // elsewhere) instead of the op parking until the worker reads.
                let e = opcode::SendMsg::new(types::Fd(raw), hdr)
                    .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
                    .build()
                    .user_data(ud(K_SEND, 0, slot));
                // SAFETY: `hdr` points into the boxed SendOp now stored in
                // `self.sends[slot]`; the msghdr, its iovec, the encoded message, the cmsg
                // buffer and the fds it names all live in that box, which is neither moved
                // (only the Box pointer moves) nor freed nor modified until `on_send`
                // takes it back on this op's completion. The socket is kept open by the
                // op's `ctl` Rc.
                unsafe { self.push(&e) };
            }
        }
    }

    pub(super) fn on_send(&mut self, slot: usize, res: i32) {
        let Some(mut op) = self.sends.get_mut(slot).and_then(Option::take) else {
            log!(ERR, "send completion for empty slot {slot}");
            return;
        };
        self.free_sends.push(slot);
        let w = op.worker;
        let n = op.fds.len();
        if res >= 0 && res as usize == op.data.len() {
            self.metrics.handoffs.increment(n as u64);
            // Our copies are no longer needed: the worker holds its own.
            for fd in op.fds.drain(..) {
                self.closes.push(fd.into_raw_fd());
            }
        } else {
            let err = -res;
            log!(
                DEBUG,
                "handoff of {n} fds to worker {w} failed: {}",
                io::Error::from_raw_os_error(err)
            );
            let same_process = op
                .ctl
                .as_ref()
                .zip(self.workers[w].ctl.as_ref())
                .is_some_and(|(a, b)| Rc::ptr_eq(a, b));
            if same_process {
                let wk = &mut self.workers[w];
                wk.assigned = wk.assigned.saturating_sub(n as u64);
                if err == libc::EAGAIN || err == libc::ENOBUFS {
                    wk.congested = true;
                } else {
                    wk.usable = false;
                }
            }
            let fds = std::mem::take(&mut op.fds);
            for ((fd, conn), attempts) in
                fds.into_iter().zip(op.conns.iter()).zip(op.attempts.iter())
            {
                self.route(Pending {
                    fd: Hand::Fd(fd),
                    conn: *conn,
                    attempts: *attempts,
                });
            }
        }
        op.clear();
        self.spare_ops.push(op);
    }

    /// A MSG_RING handoff failed (a success posts nothing): our slot still holds the
    /// socket (its linked close was cancelled), so it is routed again.
    pub(super) fn on_msg(&mut self, slot: usize, res: i32) {
        if res >= 0 {
            return;
        }
        let Some(op) = self.msgs.get_mut(slot).and_then(Option::take) else {
            log!(ERR, "MSG_RING failure for unknown slot {slot}");
            return;
        };
        let slot = slot as u32;
        let err = -res;
        let w = op.worker;
        log!(
            DEBUG,
            "MSG_RING handoff to worker {w} failed: {}",
            io::Error::from_raw_os_error(err)
        );
        if err == libc::EOVERFLOW {
            // The worker got the socket but its completion queue could not say so: the
            // connection is lost either way. Count it; do not hand it over twice.
            self.metrics.handoff_failures.increment(1);
            self.close_slot(slot);
            return;
        }
        let same_process =
            self.workers[w].generation == op.generation && self.workers[w].ring.is_some();
        if same_process {
            let wk = &mut self.workers[w];
            wk.assigned = wk.assigned.saturating_sub(1);
            if err == libc::ENFILE || err == libc::EAGAIN {
                wk.congested = true; // its fixed-file table is full
            } else {
                wk.usable = false; // EOWNERDEAD: the worker is exiting
            }
        }
        self.route(Pending {
            fd: Hand::Slot(slot),
            conn: op.conn,
            attempts: op.attempts,
        });
    }

    /// Closes one of our fixed-file slots (its socket, unless a worker holds it too).
    pub(super) fn close_slot(&mut self, slot: u32) {
        let e = opcode::Close::new(types::Fixed(slot))
            .build()
            .user_data(ud(K_CLOSE, 0, 0));
        // SAFETY: a close reads no user memory.
        unsafe { self.push(&e) };
    }

    pub(super) fn flush_closes(&mut self) {
        let closes = std::mem::take(&mut self.closes);
        for &fd in &closes {
            let e = opcode::Close::new(types::Fd(fd))
                .build()
                .user_data(ud(K_CLOSE, 0, 0));
            // SAFETY: `fd` was released from its OwnedFd (into_raw_fd) for this close
            // alone; no other code refers to the number until the kernel reuses it.
            unsafe { self.push(&e) };
        }
        self.closes = closes;
        self.closes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use io_uring::IoUring;
    use lwsd_proto::{MAX_MSG_SIZE, PeerAddr};

    /// The handoff as the loop submits it: a boxed SendOp through a real io_uring
    /// SendMsg, received by the worker-side `recv`, fds usable on the other side.
    #[test]
    fn handoff_through_a_real_ring() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        use std::io::{Read, Write};
        let (sup, worker) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let mut ring = IoUring::new(8).unwrap();
        let mut op = SendOp::new();
        let mut writers = Vec::new();
        for i in 0..MAX_FDS_PER_MSG {
            let (r, w) = nix::unistd::pipe().unwrap();
            op.fds.push(r);
            writers.push(w);
            op.conns.push(NewConn {
                listener: (i % 3) as u16,
                peer: PeerAddr::V4([10, 0, 0, i as u8], 1000 + i as u16),
            });
        }
        op.prepare();
        let e = opcode::SendMsg::new(types::Fd(sup.as_raw_fd()), &op.hdr)
            .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
            .build()
            .user_data(42);
        // SAFETY: `op` (a Box: msghdr, iovec, data, cmsg, fds) outlives the completion,
        // which is waited for below before `op` is touched or dropped.
        unsafe { ring.submission().push(&e).unwrap() };
        ring.submit_and_wait(1).unwrap();
        let c = ring.completion().next().unwrap();
        assert_eq!(c.user_data(), 42);
        assert_eq!(c.result(), op.data.len() as i32);
        let mut buf = vec![0u8; MAX_MSG_SIZE];
        let mut fds = Vec::new();
        let n = lwsd_proto::recv(worker.as_fd(), &mut buf, &mut fds)
            .unwrap()
            .unwrap();
        assert_eq!(
            ToWorker::decode(&buf[..n]).unwrap(),
            ToWorker::NewConns(op.conns.clone())
        );
        assert_eq!(fds.len(), MAX_FDS_PER_MSG);
        // fd k on the worker side is the read end of pipe k.
        for (k, (fd, w)) in fds.into_iter().zip(writers).enumerate() {
            std::fs::File::from(w).write_all(&[k as u8]).unwrap();
            let mut b = [0u8; 1];
            std::fs::File::from(fd).read_exact(&mut b).unwrap();
            assert_eq!(b[0], k as u8);
        }
    }

    /// A full control socket fails the op at once (MSG_DONTWAIT) instead of parking it.
    #[test]
    fn full_socket_fails_fast() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (sup, _worker) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .unwrap();
        let filler = [0u8; 4096];
        let mut n = 0;
        while lwsd_proto::send(sup.as_fd(), &filler, &[]).is_ok() {
            n += 1;
            assert!(n < 1_000_000);
        }
        let mut ring = IoUring::new(8).unwrap();
        let mut op = SendOp::new();
        op.fds.push(nix::unistd::pipe().unwrap().0);
        op.conns.push(NewConn {
            listener: 0,
            peer: PeerAddr::Unix,
        });
        op.prepare();
        let e = opcode::SendMsg::new(types::Fd(sup.as_raw_fd()), &op.hdr)
            .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
            .build();
        // SAFETY: `op` lives until after the completion is reaped below.
        unsafe { ring.submission().push(&e).unwrap() };
        let t = Instant::now();
        ring.submit_and_wait(1).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(ring.completion().next().unwrap().result(), -libc::EAGAIN);
    }

    #[test]
    fn handoff_message_layout() {
        let mut op = SendOp::new();
        let (r, _w) = nix::unistd::pipe().unwrap();
        op.fds.push(r);
        op.conns.push(NewConn {
            listener: 1,
            peer: PeerAddr::Unix,
        });
        op.prepare();
        assert_eq!(op.hdr.msg_iovlen, 1);
        assert_eq!(op.iov.iov_len, op.data.len());
        assert_eq!(op.hdr.msg_controllen, cmsg_space(4));
        assert_eq!(
            ToWorker::decode(&op.data).unwrap(),
            ToWorker::NewConns(op.conns.clone())
        );
    }
}
