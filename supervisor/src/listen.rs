//! Listen sockets. The supervisor binds them once and keeps them for its whole life, so
//! a worker crash or restart never closes a port (DESIGN.md section 1).
//!
//! All are non-blocking (the ring's multishot accept drives them) and close-on-exec (a
//! worker must not inherit them: only the supervisor accepts).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use lwsd_worker::config::ListenerKind;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, listen, setsockopt,
    socket, sockopt,
};

/// listen(2) backlog. Connections wait in it between two accept passes of the ring; a
/// burst of thousands of connects (a load test, clients reconnecting after a restart)
/// must not overflow it, or the kernel drops SYNs and clients stall for a second. 4096
/// is the kernel's default `net.core.somaxconn` since Linux 5.4 (it silently clamps
/// larger values), so asking for more would be a no-op.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A bound, listening socket.
pub struct Listener {
    pub fd: OwnedFd,
    pub kind: ListenerKind,
}

/// Why binding failed, naming the address and the cause.
#[derive(Debug)]
pub struct BindError(pub String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Binds every listener, in order. The first failure aborts (already bound sockets are
/// closed, a created unix socket removed) with an error naming the address.
/// `defer_accept_secs` (0: off) sets TCP_DEFER_ACCEPT on the TCP listeners.
pub fn bind_all(
    kinds: &[ListenerKind],
    defer_accept_secs: u32,
) -> Result<Vec<Listener>, BindError> {
    let mut out = Vec::with_capacity(kinds.len());
    for k in kinds {
        let fd = match k {
            ListenerKind::Tcp(a) => bind_tcp(*a, defer_accept_secs)
                .map_err(|e| BindError(format!("cannot listen on {a}: {}", describe(&e)))),
            ListenerKind::Unix(p) => bind_unix(p),
        };
        match fd {
            Ok(fd) => out.push(Listener {
                fd,
                kind: k.clone(),
            }),
            Err(e) => {
                remove_unix_sockets(&out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Removes the unix socket files of these listeners (at exit, or after a failed start).
pub fn remove_unix_sockets(listeners: &[Listener]) {
    for l in listeners {
        if let ListenerKind::Unix(p) = &l.kind {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn describe(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "EADDRINUSE",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        _ => return e.to_string(),
    };
    format!("{name} ({e})")
}

fn bind_tcp(addr: SocketAddr, defer_accept_secs: u32) -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = match addr {
        SocketAddr::V4(a) => {
            let fd = socket(AddressFamily::Inet, SockType::Stream, flags, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn::from(a))?;
            fd
        }
        SocketAddr::V6(a) => {
            let fd = socket(AddressFamily::Inet6, SockType::Stream, flags, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            // [::] and 0.0.0.0 are two listeners; without V6ONLY the v6 one would also
            // claim the v4 port and the second bind would fail.
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?;
            fd
        }
    };
    listen(
        &fd,
        Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN),
    )?;
    if defer_accept_secs > 0 {
        defer_accept(fd.as_fd(), defer_accept_secs)?;
    }
    Ok(fd)
}

/// TCP_DEFER_ACCEPT (tcp(7)), nginx's `listen ... deferred`: the kernel queues a new
/// connection for accept only once its first bytes have arrived (every protocol lwsd
/// speaks has the client speak first). The worker then finds the request already in
/// the socket when it arms the first recv, instead of sleeping until it comes: measured
/// on a WebSocket ramp of 2,000 connections/s, one worker wake-up per connection
/// instead of 1.36, and ~25 % less worker CPU per connection. A client silent for
/// `secs` is accepted anyway (after a SYN-ACK retransmission, 1–3 s) and then meets the
/// usual header timeout. (Also used by the benchmark floor, `lwsd-floor`.)
pub fn defer_accept(fd: BorrowedFd<'_>, secs: u32) -> io::Result<()> {
    let secs = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn bind_unix(path: &Path) -> Result<OwnedFd, BindError> {
    let err = |what: String| BindError(format!("cannot listen on {}: {what}", path.display()));
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket file: stale if nobody accepts on it, in use otherwise.
            if UnixStream::connect(path).is_ok() {
                return Err(err("EADDRINUSE (another server accepts on it)".into()));
            }
            std::fs::remove_file(path).map_err(|e| err(format!("removing stale socket: {e}")))?;
        }
        Ok(_) => return Err(err("the path exists and is not a socket".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    // std sets SOCK_CLOEXEC and uses a backlog of 128 on older Rust; re-listen with ours.
    let l = UnixListener::bind(path).map_err(|e| err(describe(&e)))?;
    l.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
    let fd = OwnedFd::from(l);
    listen(
        &fd.as_fd(),
        Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN),
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(fd)
}

/// Removes the unix socket files named in these listener specs.
pub fn remove_unix_sockets_of(kinds: &[ListenerKind]) {
    for k in kinds {
        if let ListenerKind::Unix(p) = k {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The unix socket path of a listener, if it is one.
pub fn unix_path(kind: &ListenerKind) -> Option<&PathBuf> {
    match kind {
        ListenerKind::Unix(p) => Some(p),
        ListenerKind::Tcp(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lwsd-listen-{}-{name}", std::process::id()))
    }

    #[test]
    fn tcp_in_use_names_address_and_cause() {
        let a = bind_all(&[ListenerKind::Tcp("127.0.0.1:0".parse().unwrap())], 0).unwrap();
        let addr: SocketAddr = nix::sys::socket::getsockname::<SockaddrIn>(a[0].fd.as_raw_fd())
            .map(|s| SocketAddr::V4(s.into()))
            .unwrap();
        let e = bind_all(&[ListenerKind::Tcp(addr)], 0).err().unwrap().0;
        assert!(
            e.contains(&addr.to_string()) && e.contains("EADDRINUSE"),
            "{e}"
        );
        // Listeners are non-blocking and close-on-exec.
        let fl = nix::fcntl::fcntl(&a[0].fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        let fd = nix::fcntl::fcntl(&a[0].fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fd & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn unix_refuses_non_socket_and_replaces_stale() {
        let p = tmp("file");
        std::fs::write(&p, b"not a socket").unwrap();
        let e = bind_all(&[ListenerKind::Unix(p.clone())], 0)
            .err()
            .unwrap()
            .0;
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"not a socket");
        std::fs::remove_file(&p).unwrap();

        let p = tmp("stale");
        drop(UnixListener::bind(&p).unwrap()); // leaves a socket file nobody accepts on
        let l = bind_all(&[ListenerKind::Unix(p.clone())], 0).unwrap();
        UnixStream::connect(&p).unwrap();
        // A live one is not stolen.
        let e = bind_all(&[ListenerKind::Unix(p.clone())], 0)
            .err()
            .unwrap()
            .0;
        assert!(e.contains("EADDRINUSE"), "{e}");
        remove_unix_sockets(&l);
        assert!(!p.exists());
    }

    #[test]
    fn failed_start_removes_created_unix_socket() {
        let p = tmp("rollback");
        let busy = bind_all(&[ListenerKind::Tcp("127.0.0.1:0".parse().unwrap())], 0).unwrap();
        let addr: SocketAddr = nix::sys::socket::getsockname::<SockaddrIn>(busy[0].fd.as_raw_fd())
            .map(|s| SocketAddr::V4(s.into()))
            .unwrap();
        let r = bind_all(&[ListenerKind::Unix(p.clone()), ListenerKind::Tcp(addr)], 0);
        assert!(r.is_err());
        assert!(!p.exists());
    }

    /// With TCP_DEFER_ACCEPT a connection that has sent nothing is not yet in the
    /// accept queue; one that has sent its first bytes is. Without it both are.
    #[test]
    fn deferred_accept_waits_for_the_first_bytes() {
        use std::io::Write;
        use std::net::TcpStream;
        for secs in [0, 1] {
            let l = bind_all(&[ListenerKind::Tcp("127.0.0.1:0".parse().unwrap())], secs).unwrap();
            let fd = l[0].fd.as_raw_fd();
            let addr: SocketAddr = nix::sys::socket::getsockname::<SockaddrIn>(fd)
                .map(|s| SocketAddr::V4(s.into()))
                .unwrap();
            let _silent = TcpStream::connect(addr).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let first = nix::sys::socket::accept(fd);
            if secs == 0 {
                assert!(
                    first.is_ok(),
                    "plain listener: the silent connection is accepted"
                );
                continue;
            }
            assert_eq!(
                first.err(),
                Some(nix::errno::Errno::EAGAIN),
                "deferred: not yet"
            );
            let mut talker = TcpStream::connect(addr).unwrap();
            talker.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let got = loop {
                match nix::sys::socket::accept(fd) {
                    Ok(c) => break c,
                    Err(nix::errno::Errno::EAGAIN) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            let peer: SocketAddr = nix::sys::socket::getpeername::<SockaddrIn>(got)
                .map(|s| SocketAddr::V4(s.into()))
                .unwrap();
            nix::unistd::close(got).unwrap();
            assert_eq!(peer, talker.local_addr().unwrap(), "the talker came first");
        }
    }
}
