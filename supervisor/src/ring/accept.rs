//! Accepting: the multishot and single-shot accepts on the listeners, and what each
//! accepted connection becomes (an fd or a fixed slot, with its peer address).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types};
use lwsd_proto::{NewConn, PeerAddr};
use lwsd_worker::config::ListenerKind;
use nix::sys::socket::{SockaddrStorage, getpeername};

use super::{Hand, K_ACCEPT, K_ACCEPT1, Pending, State, Supervisor, V4_ACCEPTS, ud};
use crate::log::{INFO, WARN};

/// `IORING_ACCEPT_POLL_FIRST` (Linux 6.10): an accept waits for the listener to be
/// readable before trying, instead of trying at once.
const ACCEPT_POLL_FIRST: u16 = 1 << 2;

/// `e` with its SQE's `ioprio` field set (io-uring 0.7's `Accept` builder has no
/// setter for it; the accept flags of Linux 6.10 live there).
fn with_ioprio(e: squeue::Entry, ioprio: u16) -> squeue::Entry {
    // struct io_uring_sqe { __u8 opcode; __u8 flags; __u16 ioprio; ... }
    const IOPRIO_AT: usize = 2;
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (transmute checks the size) and every bit pattern is a valid SQE
    // for the round trip; only the 2 bytes of `ioprio` change, at their ABI offset.
    let mut raw: [u8; 64] = unsafe { std::mem::transmute(e) };
    raw[IOPRIO_AT..IOPRIO_AT + 2].copy_from_slice(&ioprio.to_ne_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}

/// How a listener's connections are accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptMode {
    /// Multishot accept into fds, handed over in SCM_RIGHTS packets.
    Fds,
    /// Multishot accept into fixed slots, handed over by MSG_RING (unix listeners).
    Slots,
    /// [`V4_ACCEPTS`] single-shot accepts into fixed slots with the peer address, handed
    /// over by MSG_RING (IPv4 listeners).
    SlotsWithAddr,
}

/// Where a single-shot accept writes the peer address.
#[repr(C)]
pub(super) struct AcceptAddr {
    pub(super) sa: libc::sockaddr_in,
    pub(super) len: libc::socklen_t,
}

impl Supervisor {
    /// Arms whatever accepts of listener `li` are not armed.
    pub(super) fn arm_accept(&mut self, li: usize) {
        let Some(l) = &self.listeners[li] else { return };
        let fd = l.fd.as_raw_fd();
        match self.accept_mode[li] {
            AcceptMode::SlotsWithAddr => {
                for k in 0..V4_ACCEPTS {
                    if self.accept_armed[li] & (1 << k) == 0 {
                        self.arm_accept1(li, fd, k);
                    }
                }
            }
            mode if self.accept_armed[li] == 0 => {
                // (A fixed slot is no fd: close-on-exec does not apply, and the kernel
                // rejects the flag with one.)
                let slots = mode == AcceptMode::Slots;
                let e = opcode::AcceptMulti::new(types::Fd(fd))
                    .flags(if slots { 0 } else { libc::SOCK_CLOEXEC })
                    .allocate_file_index(slots)
                    .build()
                    .user_data(ud(K_ACCEPT, 0, li));
                // SAFETY: a multishot accept reads no user memory; the listener fd stays
                // open until this accept's final completion (closed only after it).
                unsafe { self.push(&e) };
                self.accept_armed[li] = 1;
            }
            _ => {}
        }
    }

    fn arm_accept1(&mut self, li: usize, fd: RawFd, k: usize) {
        let Some(addrs) = self.accept_addrs[li].as_mut() else {
            return;
        };
        let a = &mut addrs[k];
        a.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let e = opcode::Accept::new(
            types::Fd(fd),
            &mut a.sa as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut a.len,
        )
        .file_index(Some(types::DestinationSlot::auto_target()))
        .build()
        .user_data(ud(K_ACCEPT1, k as u32, li));
        // Without POLL_FIRST the kernel tries the accept at once and, with no connection
        // waiting (the usual case for an accept re-armed right after one completed),
        // allocates a socket, inode, dentry and file only to free them again on EAGAIN
        // (freeing them alone was ~15 % of the supervisor's samples at 2,000 conn/s).
        let e = if self.accept_poll_first {
            with_ioprio(e, ACCEPT_POLL_FIRST)
        } else {
            e
        };
        // SAFETY: the address buffer is element k of a boxed array owned by `self` for
        // as long as the ring (never moved, never freed before the ring), and only this
        // accept uses element k until its completion clears bit k below; the listener
        // fd stays open until its accepts' final completions.
        unsafe { self.push(&e) };
        self.accept_armed[li] |= 1 << k;
    }

    pub(super) fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if res >= 0 && self.accept_mode[li] == AcceptMode::Slots {
            if matches!(self.state, State::Running) {
                self.route(Pending {
                    fd: Hand::Slot(res as u32),
                    conn: NewConn {
                        listener: li as u16,
                        peer: PeerAddr::Unix,
                    },
                    attempts: 0,
                });
            } else {
                self.close_slot(res as u32);
            }
        } else if res >= 0 {
            // SAFETY: a successful accept completion's result is a new descriptor the
            // kernel installed for us; nothing else refers to it.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if matches!(self.state, State::Running) {
                self.assign(li, fd);
            }
            // Draining: accepted before the cancel took effect; dropping closes it.
        } else if res != -libc::ECANCELED {
            self.accept_failed(li, res);
        }
        if !cqueue::more(flags) {
            self.accept_armed[li] = 0;
            match self.state {
                // After an error (EMFILE...) re-arm on the next tick, not in a hot loop.
                State::Running if res >= 0 => self.arm_accept(li),
                State::Running => {}
                State::Draining { .. } => self.listeners[li] = None,
            }
        }
    }

    /// An accept failed (EMFILE/ENFILE: the supervisor is out of descriptors or fixed
    /// slots; the connection stays in the listen backlog and is taken on a later tick).
    /// Counted, and logged at most once a second with the count.
    fn accept_failed(&mut self, li: usize, res: i32) {
        self.metrics.accept_errors.increment(1);
        if let Some(n) = self.accept_error_log.hit(std::time::Instant::now()) {
            let e = io::Error::from_raw_os_error(-res);
            log!(
                WARN,
                "accept on listener {li} failed in the supervisor: {e} ({n} since the last line; raise the open files limit)"
            );
        }
    }

    /// One single-shot accept (IPv4, ring handoff) completed: the socket is in fixed
    /// slot `res`, its peer address in buffer `k`.
    pub(super) fn on_accept1(&mut self, li: usize, k: usize, res: i32) {
        self.accept_armed[li] &= !(1 << k);
        let running = matches!(self.state, State::Running);
        if res >= 0 {
            let slot = res as u32;
            if running {
                let peer = self.accept_addrs[li]
                    .as_ref()
                    .map_or(PeerAddr::Unknown, |a| {
                        let sa = &a[k].sa;
                        PeerAddr::V4(sa.sin_addr.s_addr.to_ne_bytes(), u16::from_be(sa.sin_port))
                    });
                self.route(Pending {
                    fd: Hand::Slot(slot),
                    conn: NewConn {
                        listener: li as u16,
                        peer,
                    },
                    attempts: 0,
                });
                if let Some(l) = &self.listeners[li] {
                    let fd = l.fd.as_raw_fd();
                    self.arm_accept1(li, fd, k);
                }
            } else {
                self.close_slot(slot);
            }
        } else if res == -libc::EINVAL && self.accept_poll_first {
            // A kernel before 6.10: no IORING_ACCEPT_POLL_FIRST. Plain accepts from now on.
            log!(
                INFO,
                "accept: IORING_ACCEPT_POLL_FIRST refused (kernel < 6.10); not using it"
            );
            self.accept_poll_first = false;
            if running && let Some(l) = &self.listeners[li] {
                let fd = l.fd.as_raw_fd();
                self.arm_accept1(li, fd, k);
            }
        } else if res != -libc::ECANCELED {
            // Re-armed on the next tick, not in a hot loop (ENFILE: our slots are full).
            self.accept_failed(li, res);
        }
        if !running && self.accept_armed[li] == 0 {
            self.listeners[li] = None;
        }
    }

    fn assign(&mut self, li: usize, fd: OwnedFd) {
        // The peer address travels with the fd (DESIGN.md section 1): multishot accept
        // returns no address, so it is one getpeername (~0.6 µs, ~4 % of the
        // supervisor's cost per connection).
        let peer = match self.listeners[li].as_ref().map(|l| &l.kind) {
            Some(ListenerKind::Tcp(_)) => peer_addr(&fd),
            _ => PeerAddr::Unix,
        };
        let conn = NewConn {
            listener: li as u16,
            peer,
        };
        self.route(Pending {
            fd: Hand::Fd(fd),
            conn,
            attempts: 0,
        });
    }
}

/// The peer of an accepted TCP connection. A connection reset between accept and this
/// call has no peer any more; it is handed over anyway (as `Unknown`) and the worker sees
/// the reset on its first read.
fn peer_addr(fd: &OwnedFd) -> PeerAddr {
    match getpeername::<SockaddrStorage>(fd.as_raw_fd()) {
        Ok(sa) => {
            if let Some(v4) = sa.as_sockaddr_in() {
                PeerAddr::V4(v4.ip().octets(), v4.port())
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                PeerAddr::V6(v6.ip().octets(), v6.port())
            } else {
                PeerAddr::Unknown
            }
        }
        Err(_) => PeerAddr::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen;
    use io_uring::IoUring;

    /// `with_ioprio` writes the SQE's ioprio field and nothing else: the kernel refuses
    /// an accept flag it does not know (so the bytes land where it reads them), takes
    /// POLL_FIRST, and the accept still does its job.
    #[test]
    fn accept_flags_reach_the_kernel() {
        let l = listen::bind_all(&[ListenerKind::Tcp("127.0.0.1:0".parse().unwrap())], 0).unwrap();
        let fd = l[0].fd.as_raw_fd();
        let addr = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrIn>(fd).unwrap();
        let mut ring = IoUring::new(8).unwrap();
        let accept = |ioprio, data| {
            let e = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(data);
            let e = with_ioprio(e, ioprio);
            assert_eq!(
                (e.get_opcode(), e.get_user_data()),
                (u32::from(opcode::Accept::CODE), data)
            );
            e
        };
        for (ioprio, data) in [(1 << 7, 1), (ACCEPT_POLL_FIRST, 2)] {
            // SAFETY: no user memory; the listener outlives the ring's use of it.
            unsafe { ring.submission().push(&accept(ioprio, data)).unwrap() };
        }
        ring.submit().unwrap();
        let _client = std::net::TcpStream::connect(std::net::SocketAddrV4::from(addr)).unwrap();
        ring.submit_and_wait(2).unwrap();
        let mut got: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        got.sort();
        assert_eq!(got[0], (1, -libc::EINVAL), "an unknown accept flag");
        assert_eq!(got[1].0, 2);
        assert!(got[1].1 >= 0, "POLL_FIRST accept: {}", got[1].1);
        nix::unistd::close(got[1].1).unwrap();
    }
}
