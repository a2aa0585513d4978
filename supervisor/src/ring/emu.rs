//! The supervisor's loop where io_uring is missing or forbidden (`--event-loop epoll`,
//! or `auto` when `io_uring_setup` fails with ENOSYS/EPERM): the same submission
//! entries, carried out with epoll and plain syscalls.
//!
//! The supervisor's loop is written as io_uring ops and completions. Without a ring
//! (and so without ring handoff: connections go in SCM_RIGHTS packets) it uses only a
//! handful of ops, and [`Emu`] runs exactly those, posting the completions the kernel
//! would: a multishot accept on a listener (accept4 while the listener is readable, one
//! completion per connection with `MORE`), a poll, multishot or not, on a control
//! socket or the signalfd (level-triggered readiness), a relative timeout (the
//! `epoll_wait` timeout), a cancel by user_data or by fd (`-ECANCELED` for the target,
//! then the cancel's own completion), `sendmsg` and `close` (done at once). Any other
//! op (fixed files, MSG_RING: ring handoff only) completes with `-EINVAL`.
//!
//! An entry is read through [`RawSqe`], the kernel's `io_uring_sqe` layout, which is
//! what `squeue::Entry` wraps (see `accept::with_ioprio` for the same round trip).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue};

/// `struct io_uring_sqe` (include/uapi/linux/io_uring.h), the fields the supervisor's
/// ops use under the names of their unions.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawSqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: u32,
    addr3: u64,
    pad: u64,
}

const _: () = assert!(std::mem::size_of::<RawSqe>() == 64);

const IOSQE_FIXED_FILE: u8 = 1 << 0;
const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;
const IORING_ACCEPT_MULTISHOT: u16 = 1 << 0;
const IORING_POLL_ADD_MULTI: u32 = 1 << 0;
const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
const IORING_ASYNC_CANCEL_FD: u32 = 1 << 1;
/// `IORING_CQE_F_MORE`.
const CQE_MORE: u32 = 1 << 1;

/// Most connections one readiness report of a listener accepts (the rest wait for the
/// next wait, which reports the listener again: level-triggered).
const ACCEPTS_PER_WAKE: usize = 64;

enum Kind {
    Accept { flags: i32, multi: bool },
    Poll { multi: bool },
}

/// An op waiting on an fd.
struct Watch {
    user_data: u64,
    kind: Kind,
}

/// The supervisor's ops on epoll.
pub(super) struct Emu {
    ep: OwnedFd,
    /// At most one waiting op per fd (the supervisor arms one per listener, control
    /// socket, signalfd).
    watches: HashMap<RawFd, Watch>,
    timers: Vec<(Instant, u64)>,
    cq: VecDeque<(u64, i32, u32)>,
    events: Vec<libc::epoll_event>,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

impl Emu {
    pub(super) fn new() -> io::Result<Emu> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Emu {
            // SAFETY: a fresh descriptor nothing else owns.
            ep: unsafe { OwnedFd::from_raw_fd(ep) },
            watches: HashMap::new(),
            timers: Vec::new(),
            cq: VecDeque::new(),
            events: Vec::with_capacity(256),
        })
    }

    fn post(&mut self, user_data: u64, res: i32, flags: u32) {
        self.cq.push_back((user_data, res, flags));
    }

    fn epoll_ctl(&self, op: i32, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u32 as u64,
        };
        // SAFETY: `ev` lives across the call (the kernel copies it; DEL ignores it).
        if unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn watch(&mut self, fd: RawFd, w: Watch) {
        if matches!(w.kind, Kind::Accept { .. }) {
            // accept4 runs only after a readiness report, but a connection reset in
            // between would leave a blocking accept waiting: the listener must not block.
            let _ = nix::fcntl::fcntl(
                // SAFETY: the listener fd is open (the op names it) and borrowed only
                // for this call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        // ADD first: an entry left in `watches` may name an fd that was closed (the
        // supervisor drops a dead worker's control socket without a cancel), which took
        // it out of the epoll set, and its number may be reused now.
        let r = match self.epoll_ctl(libc::EPOLL_CTL_ADD, fd) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.epoll_ctl(libc::EPOLL_CTL_MOD, fd)
            }
            r => r,
        };
        match r {
            Ok(()) => {
                if let Some(old) = self.watches.insert(fd, w) {
                    self.post(old.user_data, -libc::ECANCELED, 0);
                }
            }
            Err(e) => self.post(w.user_data, -e.raw_os_error().unwrap_or(libc::EIO), 0),
        }
    }

    fn unwatch(&mut self, fd: RawFd) -> Option<Watch> {
        let w = self.watches.remove(&fd)?;
        // (Fails harmlessly when the fd was closed meanwhile: closing removed it.)
        let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, fd);
        Some(w)
    }

    /// Carries out (or arms) one submission entry.
    ///
    /// # Safety
    /// As for an io_uring submission: every buffer the entry points to (a timeout's
    /// timespec, a sendmsg's msghdr and what it names) is valid now.
    pub(super) unsafe fn push(&mut self, e: &squeue::Entry) {
        // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
        // `io_uring_sqe`, whose layout `RawSqe` spells out (size checked above); every
        // bit pattern is a valid `RawSqe` (plain integers).
        let s: RawSqe = unsafe { std::mem::transmute::<squeue::Entry, RawSqe>(e.clone()) };
        let ud = s.user_data;
        let fixed = s.flags & IOSQE_FIXED_FILE != 0;
        let skip_success = s.flags & IOSQE_CQE_SKIP_SUCCESS != 0;
        match s.opcode {
            op if op == opcode::Accept::CODE && !fixed && s.file_index == 0 => self.watch(
                s.fd,
                Watch {
                    user_data: ud,
                    kind: Kind::Accept {
                        flags: s.op_flags as i32,
                        multi: s.ioprio & IORING_ACCEPT_MULTISHOT != 0,
                    },
                },
            ),
            op if op == opcode::PollAdd::CODE && !fixed => self.watch(
                s.fd,
                Watch {
                    user_data: ud,
                    kind: Kind::Poll {
                        multi: s.len & IORING_POLL_ADD_MULTI != 0,
                    },
                },
            ),
            op if op == opcode::Timeout::CODE => {
                // SAFETY: the caller keeps the timespec valid (this function's contract);
                // it is read once, here. `__kernel_timespec` is two i64.
                let ts = unsafe { *(s.addr as *const [i64; 2]) };
                let d = Duration::new(ts[0].max(0) as u64, ts[1].clamp(0, 999_999_999) as u32);
                self.timers.push((Instant::now() + d, ud));
            }
            op if op == opcode::AsyncCancel::CODE => {
                let mut n = 0;
                if s.op_flags & IORING_ASYNC_CANCEL_FD != 0 {
                    if let Some(w) = self.unwatch(s.fd) {
                        self.post(w.user_data, -libc::ECANCELED, 0);
                        n += 1;
                    }
                } else {
                    let target = s.addr;
                    let fds: Vec<RawFd> = self
                        .watches
                        .iter()
                        .filter(|(_, w)| w.user_data == target)
                        .map(|(fd, _)| *fd)
                        .collect();
                    for fd in fds {
                        self.unwatch(fd);
                        self.post(target, -libc::ECANCELED, 0);
                        n += 1;
                        if s.op_flags & IORING_ASYNC_CANCEL_ALL == 0 {
                            break;
                        }
                    }
                    let before = self.timers.len();
                    self.timers.retain(|&(_, u)| u != target);
                    for _ in self.timers.len()..before {
                        self.post(target, -libc::ECANCELED, 0);
                        n += 1;
                    }
                }
                self.post(ud, if n > 0 { n } else { -libc::ENOENT }, 0);
            }
            op if op == opcode::SendMsg::CODE && !fixed => {
                // SAFETY: the msghdr and everything it names are valid now (this
                // function's contract); the kernel only reads them, during the call.
                let r = unsafe {
                    libc::sendmsg(s.fd, s.addr as *const libc::msghdr, s.op_flags as i32)
                };
                let res = if r < 0 { -errno() } else { r as i32 };
                self.post(ud, res, 0);
            }
            op if op == opcode::Close::CODE && s.file_index == 0 && !fixed => {
                self.watches.remove(&s.fd);
                // SAFETY: the supervisor submits a close for an fd it released for that
                // close alone (as it would to the ring); closing drops it from the set.
                let r = unsafe { libc::close(s.fd) };
                if r < 0 {
                    self.post(ud, -errno(), 0);
                } else if !skip_success {
                    self.post(ud, 0, 0);
                }
            }
            // Fixed files, MSG_RING, linked refusals: ring handoff only, never chosen
            // without a ring.
            _ => self.post(ud, -libc::EINVAL, 0),
        }
    }

    /// Waits until at least one completion is ready (a report, a timer), then posts.
    pub(super) fn wait(&mut self) -> io::Result<()> {
        while self.cq.is_empty() {
            let now = Instant::now();
            let ms = match self.timers.iter().map(|t| t.0).min() {
                Some(at) => at
                    .saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000)
                    .min(i32::MAX as u128) as i32,
                None => -1,
            };
            self.events.clear();
            let cap = self.events.capacity();
            // SAFETY: the kernel writes at most `cap` entries into the vector's spare
            // capacity and returns how many; that becomes the length.
            let n = unsafe {
                libc::epoll_wait(
                    self.ep.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    cap as i32,
                    ms,
                )
            };
            if n < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(io::Error::from_raw_os_error(e));
            }
            // SAFETY: the kernel initialised the first `n` entries.
            unsafe { self.events.set_len(n as usize) };
            let ready: Vec<(RawFd, u32)> = self
                .events
                .iter()
                .map(|e| (e.u64 as u32 as RawFd, e.events))
                .collect();
            for (fd, bits) in ready {
                self.on_ready(fd, bits);
            }
            let now = Instant::now();
            let mut due = Vec::new();
            self.timers.retain(|&(at, u)| {
                if at <= now {
                    due.push(u);
                    false
                } else {
                    true
                }
            });
            for u in due {
                self.post(u, -libc::ETIME, 0);
            }
        }
        Ok(())
    }

    fn on_ready(&mut self, fd: RawFd, bits: u32) {
        let Some(w) = self.watches.get(&fd) else {
            return;
        };
        let ud = w.user_data;
        match w.kind {
            Kind::Poll { multi } => {
                // poll(2) and epoll share the bit values of IN/OUT/ERR/HUP.
                let revents = (bits & 0xffff) as i32;
                if multi {
                    self.post(ud, revents, CQE_MORE);
                } else {
                    self.unwatch(fd);
                    self.post(ud, revents, 0);
                }
            }
            Kind::Accept { flags, multi } => {
                for _ in 0..ACCEPTS_PER_WAKE {
                    // SAFETY: no address buffers (null, as the multishot accept asks);
                    // the result is a new fd handed to the supervisor in the completion.
                    let r = unsafe {
                        libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags)
                    };
                    if r >= 0 {
                        if multi {
                            self.post(ud, r, CQE_MORE);
                            continue;
                        }
                        self.unwatch(fd);
                        self.post(ud, r, 0);
                        return;
                    }
                    match errno() {
                        libc::EAGAIN | libc::EINTR | libc::ECONNABORTED => return,
                        e => {
                            // As a multishot accept does, an error ends it.
                            self.unwatch(fd);
                            self.post(ud, -e, 0);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Takes the completions posted so far.
    pub(super) fn reap(&mut self, out: &mut Vec<(u64, i32, u32)>) {
        out.extend(self.cq.drain(..));
    }
}
