//! The driver a worker's loop runs on, picked at start ([`EventLoop`]): io_uring where
//! the kernel and the platform's policy allow it, epoll elsewhere.

use std::io;
use std::time::Duration;

use super::{Driver, Epoll, Event, RecvBuf, Sock, Uring};
use crate::api::ConnId;
use crate::service::LoopConfig;
use crate::service::output::OutQueue;

/// Which kernel interface a worker's loop uses (`--event-loop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventLoop {
    /// io_uring, or epoll when io_uring cannot be set up (missing: ENOSYS; forbidden
    /// by a seccomp policy or `kernel.io_uring_disabled`: EPERM), with a log line
    /// naming the cause.
    #[default]
    Auto,
    Uring,
    Epoll,
}

/// Why io_uring cannot be used here, when `e` (from [`Uring::new`]) says the platform
/// lacks or forbids it, rather than something epoll would fail at too.
pub fn uring_unavailable(e: &io::Error) -> Option<&'static str> {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Some("Operation not permitted"),
        io::ErrorKind::Unsupported => Some("Function not implemented"),
        _ => None,
    }
}

/// One of the drivers, chosen at start.
pub enum AnyDriver {
    Uring(Uring),
    Epoll(Epoll),
}

macro_rules! each {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Uring($d) => $e,
            AnyDriver::Epoll($d) => $e,
        }
    };
}

impl AnyDriver {
    /// Sets up the driver `cfg.event_loop` names (`Auto`: io_uring, else epoll).
    pub fn new(cfg: &LoopConfig, wake_fd: i32) -> io::Result<AnyDriver> {
        match cfg.event_loop {
            EventLoop::Uring => Ok(AnyDriver::Uring(Uring::new(cfg, wake_fd)?)),
            EventLoop::Epoll => Ok(AnyDriver::Epoll(Epoll::new(cfg, wake_fd)?)),
            EventLoop::Auto => match Uring::new(cfg, wake_fd) {
                Ok(u) => Ok(AnyDriver::Uring(u)),
                Err(e) => match uring_unavailable(&e) {
                    Some(cause) => {
                        crate::service::log(
                            2,
                            &format!("io_uring unavailable ({cause}): using epoll"),
                        );
                        Ok(AnyDriver::Epoll(Epoll::new(cfg, wake_fd)?))
                    }
                    None => Err(e),
                },
            },
        }
    }

    pub fn is_uring(&self) -> bool {
        matches!(self, AnyDriver::Uring(_))
    }

    /// The io_uring driver, if that is the one.
    pub fn uring(&self) -> Option<&Uring> {
        match self {
            AnyDriver::Uring(u) => Some(u),
            AnyDriver::Epoll(_) => None,
        }
    }

    pub fn uring_mut(&mut self) -> Option<&mut Uring> {
        match self {
            AnyDriver::Uring(u) => Some(u),
            AnyDriver::Epoll(_) => None,
        }
    }

    /// Hands queued ops to the kernel without waiting (epoll has none queued).
    pub fn submit(&mut self) -> io::Result<()> {
        match self {
            AnyDriver::Uring(u) => u.submit(),
            AnyDriver::Epoll(_) => Ok(()),
        }
    }

    /// Multishot recvs ended because the buffer ring ran dry (io_uring only).
    pub fn recv_enobufs(&self) -> u64 {
        match self {
            AnyDriver::Uring(u) => u.recv_enobufs,
            AnyDriver::Epoll(_) => 0,
        }
    }
}

impl Driver for AnyDriver {
    fn recv(&mut self, conn: ConnId, sock: Sock) {
        each!(self, d => d.recv(conn, sock))
    }
    fn stop_recv(&mut self, conn: ConnId) {
        each!(self, d => d.stop_recv(conn))
    }
    unsafe fn send(&mut self, conn: ConnId, sock: Sock, out: &mut OutQueue) {
        // SAFETY: the caller's promise (the queue stays put until `Event::Sent`) is
        // passed on unchanged to the driver that makes the send.
        each!(self, d => unsafe { d.send(conn, sock, out) })
    }
    fn shutdown_write(&mut self, conn: ConnId, sock: Sock) -> bool {
        each!(self, d => d.shutdown_write(conn, sock))
    }
    fn close(&mut self, conn: ConnId, sock: Sock) {
        each!(self, d => d.close(conn, sock))
    }
    fn data(&mut self, buf: &RecvBuf) -> &mut [u8] {
        each!(self, d => d.data(buf))
    }
    fn recycle(&mut self, buf: RecvBuf) {
        each!(self, d => d.recycle(buf))
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, d => d.wait(timeout))
    }
    fn next_event(&mut self) -> Option<Event> {
        each!(self, d => d.next_event())
    }
    fn end_pass(&mut self) {
        each!(self, d => d.end_pass())
    }
    fn closes_queued(&self) -> usize {
        each!(self, d => d.closes_queued())
    }
    fn watch_control(&mut self, fd: i32) {
        each!(self, d => d.watch_control(fd))
    }
}
