//! The operating-system pieces: the monotonic clock, the file-descriptor limit,
//! non-blocking connects (optionally from a chosen source address), epoll, and
//! vectored writes of a queue of `Bytes`.
//!
//! epoll through nix rather than io_uring: a load generator spends its time in the
//! server under test, not in its own readiness loop, and epoll keeps it portable to
//! kernels and sandboxes where io_uring is off. No `unsafe` here: nix and std wrap it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use bytes::{Buf, Bytes};
use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrStorage, bind, connect, setsockopt,
    socket, sockopt,
};

/// File descriptors kept back from the connection budget: stdio, the epoll instances
/// (one per thread), the signalfd, the JSON and ready files, and some slack for the
/// allocator and the dynamic loader.
pub const FD_RESERVE: u64 = 64;

/// Buffers handed to one `writev`: enough for a frame header and payload of a few
/// queued messages; more just loops.
const MAX_IOV: usize = 16;

/// Monotonic nanoseconds since the start of the run, shared by every thread (an
/// `Instant` is CLOCK_MONOTONIC, one clock for the whole machine).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) afterwards.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok((soft, hard))
}

/// Connections one process can hold with a soft fd limit of `soft`.
pub fn max_conns(soft: u64) -> u64 {
    soft.saturating_sub(FD_RESERVE)
}

/// Start a non-blocking TCP connect to `addr` (TCP_NODELAY set). With `src`, the socket
/// is bound to that IPv4 source address first, with IP_BIND_ADDRESS_NO_PORT so the
/// kernel picks the port at connect time per 4-tuple: each extra loopback source
/// address gives another ~28k ephemeral ports towards the same server port.
pub fn start_connect(addr: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    if let (Some(ip), SocketAddr::V4(_)) = (src, addr) {
        setsockopt(&fd, sockopt::IpBindAddressNoPort, &true)?;
        bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)))?;
    }
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// A short name for an I/O error, for the error table (`ECONNREFUSED`, ...).
pub fn err_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", Errno::from_raw(n)),
        None => format!("{:?}", e.kind()),
    }
}

/// A queue of outgoing buffers and its byte count.
#[derive(Debug, Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.bufs.push_back(b);
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Write as much as the socket takes. `Ok(true)` when everything went out,
    /// `Ok(false)` when the socket is full (wait for writability).
    pub fn flush(&mut self, w: &mut impl Write) -> io::Result<bool> {
        while !self.bufs.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (slot, b) in iov.iter_mut().zip(self.bufs.iter()) {
                *slot = IoSlice::new(b);
                n += 1;
            }
            let wrote = match w.write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(wrote);
        }
        Ok(true)
    }

    fn consume(&mut self, mut k: usize) {
        self.bytes -= k.min(self.bytes);
        while k > 0 {
            let Some(front) = self.bufs.front_mut() else {
                return;
            };
            if k >= front.len() {
                k -= front.len();
                self.bufs.pop_front();
            } else {
                front.advance(k);
                k = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call and then blocks.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = b.len().min(self.per_call);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn out_queue_partial_writes() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"hello "));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"world"));
        assert_eq!(q.bytes(), 11);
        let mut w = Trickle {
            got: vec![],
            per_call: 4,
            calls_left: 2,
        };
        // `write_vectored`'s default writes from the first buffer only.
        assert!(!q.flush(&mut w).unwrap());
        assert_eq!(w.got, b"hello ");
        assert_eq!(q.bytes(), 5);
        w.calls_left = 10;
        assert!(q.flush(&mut w).unwrap());
        assert_eq!(w.got, b"hello world");
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn nofile_and_budget() {
        let (soft, hard) = raise_nofile().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(max_conns(20_000), 20_000 - FD_RESERVE);
        assert_eq!(max_conns(10), 0);
    }

    #[test]
    fn connect_refused_is_reported() {
        // Bind a port, then close it: nobody listens there.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        match start_connect(addr, Some(Ipv4Addr::new(127, 0, 0, 2))) {
            // Loopback may refuse at once or report it through SO_ERROR.
            Err(e) => assert_eq!(err_name(&e), "ECONNREFUSED"),
            Ok(s) => {
                let deadline = Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    if let Some(e) = s.take_error().unwrap() {
                        assert_eq!(err_name(&e), "ECONNREFUSED");
                        break;
                    }
                    assert!(Instant::now() < deadline, "no error reported");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}
