//! The io_uring driver: one ring per worker, set up single-issuer with deferred task
//! running (cooperative when connections arrive by MSG_RING: see
//! [`LoopConfig::defer_taskrun`](crate::service::LoopConfig::defer_taskrun)).
//!
//! Sockets are read with multishot recv from a provided-buffer ring ([`BufRing`]);
//! buffers go back to the kernel once per pass ([`Driver::end_pass`]), and the ring grows
//! when two passes in a row ran it dry. Sends are `send` (one chunk) or `writev`;
//! shutdowns and closes are ring ops riding in the next submit. The wake eventfd always
//! has a read armed; the supervisor's control socket has a multishot poll. Completions
//! carry `op | generation | slot` ([`token`]); connections handed over by the
//! supervisor's `IORING_OP_MSG_RING` carry [`lwsd_proto::handoff`]'s tag instead.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::bufring::{BufRing, RecvBuf};
use super::token::{self, Op};
use super::{Driver, Event, Received, Sock};
use crate::api::ConnId;
use crate::service::LoopConfig;
use crate::service::output::OutQueue;

/// The io_uring driver of one worker.
pub struct Uring {
    // Field order matters: the ring is dropped (closed) before the buffer memory it uses.
    ring: IoUring,
    bufs: BufRing,
    /// The wake eventfd and the 8 bytes its read fills (boxed: the kernel writes there
    /// while the read is in flight, whatever moves the driver).
    wake_fd: i32,
    wake_buf: Box<[u8; 8]>,
    /// Completions reaped and not yet taken by `next_event`.
    cqes: VecDeque<(u64, i32, u32)>,
    /// Close ops pushed but not yet submitted.
    closes_queued: usize,
    /// Size of the fixed-file table connections arrive in by `MSG_RING` (0: none).
    fixed_slots: u32,
    /// A recv of this pass found the buffer ring dry (ENOBUFS), and the last pass did.
    dry_this_pass: bool,
    dry_last_pass: bool,
    /// Multishot recvs ended because the ring ran dry.
    pub recv_enobufs: u64,
}

impl Uring {
    /// Sets up the ring, the buffer ring, and the read on the wake eventfd `wake_fd`.
    /// Errors name the cause: io_uring missing (ENOSYS: kernel older than 5.1 or built
    /// without it), forbidden (EPERM: seccomp policy of the container runtime, or
    /// `kernel.io_uring_disabled`), or a feature this loop needs absent (EINVAL: kernel
    /// older than 6.1).
    pub fn new(cfg: &LoopConfig, wake_fd: i32) -> io::Result<Uring> {
        let mut b = IoUring::builder();
        b.setup_single_issuer();
        if cfg.defer_taskrun {
            b.setup_defer_taskrun();
        } else {
            b.setup_coop_taskrun();
        }
        let ring = b
            .setup_cqsize(cfg.ring_entries * 4)
            .build(cfg.ring_entries)
            .map_err(explain_uring_error)?;
        let bufs = BufRing::growable(
            &ring.submitter(),
            0,
            cfg.buf_count,
            cfg.buf_max,
            cfg.buf_size,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring provided buffer ring: {e}")))?;
        let mut d = Uring {
            ring,
            bufs,
            wake_fd,
            wake_buf: Box::new([0; 8]),
            cqes: VecDeque::with_capacity(1024),
            closes_queued: 0,
            fixed_slots: 0,
            dry_this_pass: false,
            dry_last_pass: false,
            recv_enobufs: 0,
        };
        d.arm_wake();
        Ok(d)
    }

    /// Provided buffers handed to the kernel so far.
    pub fn recv_buffers(&self) -> u16 {
        self.bufs.count()
    }

    /// Registers a sparse fixed-file table of `slots` entries for the supervisor to send
    /// connections into with `IORING_OP_MSG_RING` ([`lwsd_proto::handoff`]). The kernel
    /// caps the table at RLIMIT_NOFILE; its files are not fds of this process, so they
    /// do not use up that limit as they arrive.
    pub fn enable_fixed_handoff(&mut self, slots: u32) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_sparse(slots)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("io_uring fixed-file table of {slots} slots: {e}"),
                )
            })?;
        self.fixed_slots = slots;
        Ok(())
    }

    /// The ring's own fd: the supervisor targets it with `MSG_RING`.
    pub fn ring_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Hands every queued op to the kernel without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.ring.submit()?;
        Ok(())
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every entry the driver builds points only at memory that outlives the
        // op: recv ops use the provided buffer ring (lives as long as the ring); a send
        // points into the chunks and iovecs of an `OutQueue` that `Driver::send`'s
        // contract keeps alive and unchanged until its completion; the wake read targets
        // `wake_buf`, boxed and owned by the driver; cancel/poll/shutdown/close carry no
        // pointers.
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                // The queue is full: hand what is queued to the kernel and retry.
                if let Err(err) = self.ring.submit() {
                    if err.raw_os_error() != Some(libc::EBUSY) {
                        panic!("io_uring submit failed: {err}");
                    }
                    self.reap();
                }
            }
        }
    }

    /// Moves the completions the kernel has posted into our backlog (also on EBUSY from
    /// submit: the completion queue overflowed and the kernel holds the overflow until
    /// we consume completions).
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.cqes
                .push_back((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(types::Fd(self.wake_fd), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(token::encode(Op::Wake, 0, 0));
        self.push(e);
    }

    /// A connection arrived in a fixed-file slot (a `MSG_RING` completion).
    fn handoff(&self, user_data: u64, res: i32) -> Option<Event> {
        let (listener, peer) = lwsd_proto::handoff::decode(user_data)?;
        if res < 0 || res as u32 >= self.fixed_slots {
            crate::service::log(1, &format!("bad handoff completion: slot {res}"));
            return None;
        }
        if crate::log_enabled(16) {
            crate::service::log(
                16,
                &format!("connection from {peer:?} on listener {listener}"),
            );
        }
        Some(Event::Handoff {
            sock: Sock::fixed(res as u32),
            listener,
        })
    }

    fn recv_event(&mut self, conn: ConnId, res: i32, flags: u32) -> Event {
        let more = cqueue::more(flags);
        let got = if res > 0 {
            // SAFETY: this completion was just taken off the backlog, once: its buffer
            // becomes exactly one token.
            match unsafe { RecvBuf::from_completion(res, flags) } {
                Some(buf) => Received::Data(buf),
                None => Received::Failed(libc::EINVAL),
            }
        } else if res == 0 {
            Received::Eof
        } else {
            match -res {
                libc::ENOBUFS => {
                    self.recv_enobufs += 1;
                    self.dry_this_pass = true;
                    Received::Stopped
                }
                libc::ECANCELED => Received::Stopped,
                e => Received::Failed(e),
            }
        };
        Event::Recv { conn, got, more }
    }
}

impl Driver for Uring {
    fn recv(&mut self, conn: ConnId, sock: Sock) {
        let e = opcode::RecvMulti::new(types::Fd(sock.raw()), self.bufs.group())
            .build()
            .flags(sock.sqe_flags())
            .user_data(token::encode(Op::Recv, conn.slot, conn.generation));
        self.push(e);
    }

    fn stop_recv(&mut self, conn: ConnId) {
        let target = token::encode(Op::Recv, conn.slot, conn.generation);
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(token::encode(Op::Cancel, conn.slot, conn.generation));
        self.push(e);
    }

    unsafe fn send(&mut self, conn: ConnId, sock: Sock, out: &mut OutQueue) {
        let e = if let Some(b) = out.single() {
            opcode::Send::new(types::Fd(sock.raw()), b.as_ptr(), b.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        } else {
            let Some(iov) = out.fill_iov() else {
                return;
            };
            opcode::Writev::new(types::Fd(sock.raw()), iov.as_ptr(), iov.len() as u32).build()
        };
        let e = e.flags(sock.sqe_flags()).user_data(token::encode(
            Op::Send,
            conn.slot,
            conn.generation,
        ));
        self.push(e);
    }

    fn shutdown_write(&mut self, conn: ConnId, sock: Sock) -> bool {
        if sock.is_fixed() {
            // No fd to call shutdown(2) on: the ring op, which the kernel runs on an
            // io-wq thread and which looks the slot up only then. Until it completes it
            // counts as the connection's write-side op in flight, so the slot cannot be
            // closed and reused by a new connection under it.
            let e = opcode::Shutdown::new(types::Fd(sock.raw()), libc::SHUT_WR)
                .build()
                .flags(sock.sqe_flags())
                .user_data(token::encode(Op::Shutdown, conn.slot, conn.generation));
            self.push(e);
            true
        } else {
            let _ = nix::sys::socket::shutdown(sock.raw(), nix::sys::socket::Shutdown::Write);
            false
        }
    }

    fn close(&mut self, conn: ConnId, sock: Sock) {
        // A ring op riding in the next submit rather than a close(2) of its own (one
        // syscall less per connection); its completion is posted only if it fails. The
        // fd number stays taken until then, so no new connection can be confused with it.
        let e = sock
            .close_op()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(token::encode(Op::Close, conn.slot, conn.generation));
        self.push(e);
        self.closes_queued += 1;
    }

    fn data(&mut self, buf: &RecvBuf) -> &mut [u8] {
        self.bufs.data(buf)
    }

    fn recycle(&mut self, buf: RecvBuf) {
        self.bufs.recycle(buf);
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let res = if self.cqes.is_empty() {
            match timeout {
                Some(t) => {
                    let ts = types::Timespec::from(t);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                None => self.ring.submit_and_wait(1),
            }
        } else {
            self.ring.submit()
        };
        if self.ring.submission().is_empty() {
            // Everything pushed, the closes included, went to the kernel.
            self.closes_queued = 0;
        }
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.reap();
        Ok(())
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            let (ud, res, flags) = self.cqes.pop_front()?;
            let Some((op, slot, generation)) = token::decode(ud) else {
                if (ud >> 56) as u8 == lwsd_proto::handoff::TAG
                    && let Some(ev) = self.handoff(ud, res)
                {
                    return Some(ev);
                }
                continue;
            };
            let conn = ConnId::conn(slot, generation);
            return Some(match op {
                Op::Recv => self.recv_event(conn, res, flags),
                Op::Send => Event::Sent { conn, res },
                Op::Cancel => Event::StopDone { conn },
                Op::Shutdown => Event::ShutdownDone { conn },
                Op::Close => Event::CloseFailed { res },
                Op::Wake => {
                    self.arm_wake();
                    Event::Wake
                }
                Op::Control => Event::Control {
                    res,
                    more: cqueue::more(flags),
                },
            });
        }
    }

    fn end_pass(&mut self) {
        let dry = std::mem::take(&mut self.dry_this_pass);
        if std::mem::replace(&mut self.dry_last_pass, dry) && dry {
            // The ring ran dry in two passes in a row: the load, not a one-off burst
            // (whose recvs just re-arm once), needs more buffers.
            if self.bufs.grow() {
                crate::service::log(
                    8,
                    &format!("recv buffer ring grown to {} buffers", self.bufs.count()),
                );
            }
        }
        self.bufs.publish();
    }

    fn closes_queued(&self) -> usize {
        self.closes_queued
    }

    fn watch_control(&mut self, fd: i32) {
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(token::encode(Op::Control, 0, 0));
        self.push(e);
    }
}

fn explain_uring_error(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring is not available: the kernel is older than 5.1 or built without CONFIG_IO_URING"
        }
        Some(libc::EPERM) => {
            "io_uring is forbidden: a seccomp policy (container runtime) or the sysctl kernel.io_uring_disabled blocks it"
        }
        Some(libc::EINVAL) => {
            "io_uring rejected the setup flags: lwsd needs Linux 6.1 or newer (single issuer, deferred task running)"
        }
        Some(libc::ENOMEM) => {
            "io_uring could not allocate its rings: raise RLIMIT_MEMLOCK or free memory"
        }
        _ => "io_uring setup failed",
    };
    io::Error::new(e.kind(), format!("{why} ({e})"))
}
