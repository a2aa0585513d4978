//! The epoll driver: for platforms that forbid io_uring (container runtimes' default
//! seccomp profiles, the `kernel.io_uring_disabled` sysctl, old kernels).
//!
//! **Level-triggered**, on purpose. The core takes one received buffer at a time and
//! gives it back before the next event ([`Driver::recycle`]), so the driver reads a
//! connection once per readiness report into a single per-worker scratch buffer: an idle
//! connection holds no buffer at all, and a busy one gets one read per pass, as a
//! multishot recv gives it one completion per buffer. Edge-triggered would oblige us to
//! read until `EAGAIN` (more buffers, or copies) or remember which sockets still hold
//! data; with level-triggered the kernel remembers. Rx flow control ([`Driver::stop_recv`])
//! is then just taking `EPOLLIN` off the interest set: unread bytes stay in the socket,
//! its receive window closes, TCP backpressure reaches the peer.
//!
//! A socket with no interest left (not reading, no send waiting) is removed from the
//! epoll set rather than kept with an empty mask: `EPOLLHUP`/`EPOLLERR` are reported
//! whatever the mask, and level-triggered they would be reported on every wait.
//!
//! Sends are `sendmsg` (`MSG_NOSIGNAL | MSG_DONTWAIT`) of the queue's iovecs at once;
//! what the socket does not take waits for `EPOLLOUT` and is written then; one
//! [`Event::Sent`] with the whole count follows when the queue's iovecs are all out (or
//! the socket failed). Shutdowns and closes are immediate syscalls. Timers are the
//! `epoll_wait` timeout. The wake eventfd and the supervisor's control socket are in the
//! set with tags of their own. Connections arrive only as fds in `NewConns` packets on
//! the control socket: [`Event::Handoff`] never happens here.
//!
//! Stale readiness: an epoll event carries the fd and the registration's sequence
//! number; a socket closed during the pass (and its fd number reused by a connection
//! adopted in the same pass) has a new number, so the old report is dropped.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::Duration;

use super::bufring::RecvBuf;
use super::{Driver, Event, Received, Sock};
use crate::api::ConnId;
use crate::service::LoopConfig;
use crate::service::output::OutQueue;

/// Epoll data of the wake eventfd and of the control socket (a connection's is
/// `seq << 32 | fd`, and sequence numbers stop short of these).
const TAG_WAKE: u64 = u64::MAX;
const TAG_CONTROL: u64 = u64::MAX - 1;

/// Most readiness reports taken per `epoll_wait`.
const MAX_EVENTS: usize = 512;

/// What the driver knows of one connection socket (indexed by fd).
#[derive(Clone, Copy, Default)]
struct FdState {
    conn: ConnId,
    /// Registration number (0: the fd is not a connection of ours).
    seq: u32,
    /// Reading wanted (`EPOLLIN` in the interest set).
    reading: bool,
    /// A send is waiting for `EPOLLOUT` (its iovecs are in `Epoll::sends`).
    writing: bool,
    /// The fd is in the epoll set (with the mask `reading`/`writing` give).
    in_set: bool,
}

/// A send the socket did not take at once: the iovecs still to write and the count
/// written so far.
struct PendingSend {
    iov: Vec<libc::iovec>,
    done: usize,
}

/// Which readiness a report named, to handle once `next_event` gets to it.
#[derive(Clone, Copy)]
enum Ready {
    In { fd: i32, seq: u32 },
    Out { fd: i32, seq: u32 },
    Wake,
    Control,
}

/// The epoll driver of one worker.
pub struct Epoll {
    ep: std::os::fd::OwnedFd,
    wake_fd: i32,
    /// The scratch buffer every read goes into, lent out as a [`RecvBuf`] until recycled.
    scratch: Box<[u8]>,
    lent: bool,
    fds: Vec<FdState>,
    /// The fd of each connection slot (to find the socket `stop_recv` names).
    by_slot: Vec<i32>,
    sends: HashMap<i32, PendingSend>,
    /// The iovecs of the send being made (kept for their capacity).
    iov_buf: Vec<libc::iovec>,
    next_seq: u32,
    /// Events made by ops (sends done at once, stops) before the next wait's.
    ready: VecDeque<Event>,
    reports: VecDeque<Ready>,
    events: Vec<libc::epoll_event>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

impl Epoll {
    /// Creates the epoll set with the wake eventfd `wake_fd` in it.
    pub fn new(cfg: &LoopConfig, wake_fd: i32) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `ep` is a fresh descriptor owned by nothing else.
        let ep = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
        let d = Epoll {
            ep,
            wake_fd,
            scratch: vec![0u8; cfg.buf_size as usize].into_boxed_slice(),
            lent: false,
            fds: Vec::new(),
            by_slot: Vec::new(),
            sends: HashMap::new(),
            iov_buf: Vec::new(),
            next_seq: 0,
            ready: VecDeque::new(),
            reports: VecDeque::new(),
            events: Vec::with_capacity(MAX_EVENTS),
        };
        d.ctl(libc::EPOLL_CTL_ADD, wake_fd, libc::EPOLLIN as u32, TAG_WAKE)?;
        Ok(d)
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, data: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a live epoll_event for the duration of the call (the kernel
        // copies it; DEL ignores it); the fds are plain integers the kernel checks.
        cvt(unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    fn state(&mut self, fd: i32) -> &mut FdState {
        let i = fd as usize;
        if self.fds.len() <= i {
            self.fds.resize(i + 1, FdState::default());
        }
        &mut self.fds[i]
    }

    /// Brings the epoll set in line with what `fd` wants now.
    fn update(&mut self, fd: i32) {
        let s = *self.state(fd);
        let mut mask = 0u32;
        if s.reading {
            mask |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        }
        if s.writing {
            mask |= libc::EPOLLOUT as u32;
        }
        let data = (u64::from(s.seq) << 32) | fd as u32 as u64;
        let res = match (mask != 0, s.in_set) {
            (true, true) => self.ctl(libc::EPOLL_CTL_MOD, fd, mask, data),
            (true, false) => self.ctl(libc::EPOLL_CTL_ADD, fd, mask, data),
            (false, true) => self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0),
            (false, false) => Ok(()),
        };
        match res {
            Ok(()) => self.state(fd).in_set = mask != 0,
            Err(e) => {
                // Not a socket epoll takes (never for a TCP or Unix socket): fail what
                // was asked, so the core closes the connection.
                crate::service::log(1, &format!("epoll_ctl on fd {fd}: {e}"));
                let conn = s.conn;
                let st = self.state(fd);
                let err = e.raw_os_error().unwrap_or(libc::EIO);
                if st.reading {
                    st.reading = false;
                    self.ready.push_back(Event::Recv {
                        conn,
                        got: Received::Failed(err),
                        more: false,
                    });
                }
                if std::mem::take(&mut self.state(fd).writing) {
                    let done = self.sends.remove(&fd).map_or(0, |p| p.done);
                    self.ready.push_back(Event::Sent {
                        conn,
                        res: if done > 0 { done as i32 } else { -err },
                    });
                }
            }
        }
    }

    /// The fd of `conn`'s socket, if the driver knows it as that connection's.
    fn fd_of(&self, conn: ConnId) -> Option<i32> {
        let fd = *self.by_slot.get(conn.slot as usize)?;
        let s = self.fds.get(fd as usize)?;
        (s.seq != 0 && s.conn == conn).then_some(fd)
    }

    /// Takes `fd` as `conn`'s socket (a new registration when it was another's).
    fn register(&mut self, conn: ConnId, sock: Sock) -> i32 {
        assert!(!sock.is_fixed(), "epoll driver given a fixed-file socket");
        let fd = sock.raw();
        let fresh = {
            let s = self.state(fd);
            s.seq == 0 || s.conn != conn
        };
        if fresh {
            self.next_seq = self.next_seq.wrapping_add(1).max(1);
            if self.next_seq == u32::MAX {
                // (Keep connection data clear of the wake/control tags.)
                self.next_seq = 1;
            }
            let seq = self.next_seq;
            *self.state(fd) = FdState {
                conn,
                seq,
                ..FdState::default()
            };
            let slot = conn.slot as usize;
            if self.by_slot.len() <= slot {
                self.by_slot.resize(slot + 1, -1);
            }
            self.by_slot[slot] = fd;
        }
        fd
    }

    /// Writes what `p` still holds to `fd`; true when all of it is out or the socket
    /// failed (then `p.done` is negative errno when nothing went).
    fn write_some(fd: i32, p: &mut PendingSend) -> Result<bool, i32> {
        while !p.iov.is_empty() {
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = p.iov.as_mut_ptr();
            msg.msg_iovlen = p.iov.len() as _;
            // SAFETY: the iovecs point into the chunks of an `OutQueue` that
            // `Driver::send`'s contract keeps allocated and unchanged until our
            // `Event::Sent`, which has not been emitted yet; the kernel only reads them.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n < 0 {
                match errno() {
                    libc::EINTR => continue,
                    libc::EAGAIN => return Ok(false),
                    e => return Err(e),
                }
            }
            let mut n = n as usize;
            p.done += n;
            while n > 0 {
                let front = &mut p.iov[0];
                if front.iov_len <= n {
                    n -= front.iov_len;
                    p.iov.remove(0);
                } else {
                    // SAFETY: `n < iov_len`, so the advanced base stays inside the chunk.
                    front.iov_base = unsafe { front.iov_base.cast::<u8>().add(n).cast() };
                    front.iov_len -= n;
                    n = 0;
                }
            }
        }
        Ok(true)
    }

    fn on_in(&mut self, fd: i32, seq: u32) -> Option<Event> {
        let s = *self.fds.get(fd as usize)?;
        if s.seq != seq || !s.reading {
            return None;
        }
        debug_assert!(!self.lent, "scratch buffer read while lent");
        let got = loop {
            // SAFETY: the scratch buffer is ours, `len` bytes long, and not lent out (a
            // `RecvBuf` of it is recycled before the next event is taken), so no slice
            // of it is alive while the kernel writes it.
            let n = unsafe {
                libc::recv(
                    fd,
                    self.scratch.as_mut_ptr().cast(),
                    self.scratch.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                self.lent = true;
                break Received::Data(RecvBuf::scratch(n as u32));
            } else if n == 0 {
                break Received::Eof;
            }
            match errno() {
                libc::EINTR => continue,
                // A spurious report (the bytes went with an earlier read).
                libc::EAGAIN => return None,
                e => break Received::Failed(e),
            }
        };
        let more = matches!(got, Received::Data(_));
        if !more {
            self.state(fd).reading = false;
            self.update(fd);
        }
        Some(Event::Recv {
            conn: s.conn,
            got,
            more,
        })
    }

    fn on_out(&mut self, fd: i32, seq: u32) -> Option<Event> {
        let s = *self.fds.get(fd as usize)?;
        if s.seq != seq || !s.writing {
            return None;
        }
        let mut p = self.sends.remove(&fd)?;
        let res = match Self::write_some(fd, &mut p) {
            Ok(false) => {
                self.sends.insert(fd, p);
                return None;
            }
            Ok(true) => p.done as i32,
            Err(e) if p.done > 0 => {
                // What went is reported; the next send meets the error.
                let _ = e;
                p.done as i32
            }
            Err(e) => -e,
        };
        self.state(fd).writing = false;
        self.update(fd);
        Some(Event::Sent { conn: s.conn, res })
    }

    fn drain_wake(&mut self) {
        let mut b = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a local array; the eventfd is non-blocking.
        unsafe { libc::read(self.wake_fd, b.as_mut_ptr().cast(), 8) };
    }
}

impl Driver for Epoll {
    fn recv(&mut self, conn: ConnId, sock: Sock) {
        let fd = self.register(conn, sock);
        self.state(fd).reading = true;
        self.update(fd);
    }

    fn stop_recv(&mut self, conn: ConnId) {
        if let Some(fd) = self.fd_of(conn)
            && std::mem::take(&mut self.state(fd).reading)
        {
            self.update(fd);
            // As a cancelled multishot recv: the read ends, then the stop completes.
            self.ready.push_back(Event::Recv {
                conn,
                got: Received::Stopped,
                more: false,
            });
        }
        self.ready.push_back(Event::StopDone { conn });
    }

    unsafe fn send(&mut self, conn: ConnId, sock: Sock, out: &mut OutQueue) {
        // The iovecs go into a vector kept for reuse: no allocation per send unless the
        // socket is full (then the vector waits with the send, and a new one is made).
        let mut iov = std::mem::take(&mut self.iov_buf);
        iov.clear();
        if let Some(b) = out.single() {
            iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            });
        } else {
            match out.fill_iov() {
                Some(v) => iov.extend_from_slice(v),
                None => return,
            }
        }
        let fd = self.register(conn, sock);
        let mut p = PendingSend { iov, done: 0 };
        let res = match Self::write_some(fd, &mut p) {
            Ok(true) => p.done as i32,
            Ok(false) => {
                // The socket is full: the rest goes when it can take more.
                self.sends.insert(fd, p);
                self.state(fd).writing = true;
                self.update(fd);
                return;
            }
            Err(_) if p.done > 0 => p.done as i32,
            Err(e) => -e,
        };
        self.iov_buf = p.iov;
        self.ready.push_back(Event::Sent { conn, res });
    }

    fn shutdown_write(&mut self, _conn: ConnId, sock: Sock) -> bool {
        let _ = nix::sys::socket::shutdown(sock.raw(), nix::sys::socket::Shutdown::Write);
        false
    }

    fn close(&mut self, conn: ConnId, sock: Sock) {
        let fd = sock.raw();
        if let Some(s) = self.fds.get_mut(fd as usize) {
            // Any report still queued for this fd is stale from now on.
            *s = FdState::default();
        }
        self.sends.remove(&fd);
        if let Some(f) = self.by_slot.get_mut(conn.slot as usize)
            && *f == fd
        {
            *f = -1;
        }
        // SAFETY: the core closes a connection's socket once, after every op on it
        // completed; the fd is the connection's own (handed over in a NewConns packet).
        // Closing removes it from the epoll set.
        if unsafe { libc::close(fd) } < 0 {
            self.ready.push_back(Event::CloseFailed { res: -errno() });
        }
    }

    fn data(&mut self, buf: &RecvBuf) -> &mut [u8] {
        assert!(
            buf.is_scratch() && buf.len() <= self.scratch.len(),
            "buffer token from another driver"
        );
        &mut self.scratch[..buf.len()]
    }

    fn recycle(&mut self, buf: RecvBuf) {
        debug_assert!(buf.is_scratch());
        self.lent = false;
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let ms = if !self.ready.is_empty() || !self.reports.is_empty() {
            0
        } else {
            match timeout {
                // Rounded up: a timer due in 0.4 ms must not spin the loop with 0s.
                Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
                None => -1,
            }
        };
        self.events.clear();
        // SAFETY: `events` has room for MAX_EVENTS entries; the kernel writes at most
        // that many and returns the count, which becomes the length.
        let n = unsafe {
            libc::epoll_wait(
                self.ep.as_raw_fd(),
                self.events.as_mut_ptr(),
                MAX_EVENTS as i32,
                ms,
            )
        };
        if n < 0 {
            return match errno() {
                libc::EINTR => Ok(()),
                e => Err(io::Error::from_raw_os_error(e)),
            };
        }
        // SAFETY: the kernel initialised the first `n` entries (n <= capacity).
        unsafe { self.events.set_len(n as usize) };
        for ev in &self.events {
            let (bits, data) = (ev.events, ev.u64);
            let bad = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            match data {
                TAG_WAKE => self.reports.push_back(Ready::Wake),
                // Readable, hung up or failed alike: the loop's read of the socket
                // finds out which (a hang-up reads as EOF, and the socket is dropped).
                TAG_CONTROL => self.reports.push_back(Ready::Control),
                _ => {
                    let (fd, seq) = (data as u32 as i32, (data >> 32) as u32);
                    let input = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
                    if bits & input != 0 || bad {
                        self.reports.push_back(Ready::In { fd, seq });
                    }
                    if bits & libc::EPOLLOUT as u32 != 0 || bad {
                        self.reports.push_back(Ready::Out { fd, seq });
                    }
                }
            }
        }
        Ok(())
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Some(ev);
            }
            let ev = match self.reports.pop_front()? {
                Ready::Wake => {
                    self.drain_wake();
                    Some(Event::Wake)
                }
                Ready::Control => Some(Event::Control { res: 0, more: true }),
                Ready::In { fd, seq } => self.on_in(fd, seq),
                Ready::Out { fd, seq } => self.on_out(fd, seq),
            };
            if ev.is_some() {
                return ev;
            }
        }
    }

    fn end_pass(&mut self) {}

    fn closes_queued(&self) -> usize {
        0
    }

    fn watch_control(&mut self, fd: i32) {
        let r = self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, TAG_CONTROL);
        if let Err(e) = r {
            // Already watched (armed again after an event): keep the registration.
            if e.raw_os_error() != Some(libc::EEXIST) {
                crate::service::log(1, &format!("epoll: watching the control socket: {e}"));
                self.ready.push_back(Event::Control {
                    res: -e.raw_os_error().unwrap_or(libc::EIO),
                    more: false,
                });
            }
        }
    }
}
