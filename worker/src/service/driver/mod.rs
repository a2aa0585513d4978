//! The driver: the only part of the worker that talks to the kernel about connections
//! (DESIGN.md section 3, "the shape of a worker").
//!
//! The connection core above it asks for operations on a connection's socket (start
//! reading, stop reading, send this queue, shut down the write side, close) and takes
//! back normalised [`Event`]s: bytes arrived, n bytes sent, peer EOF, an error, the wake
//! eventfd fired, the supervisor's control socket is readable, a connection was handed
//! over. It knows nothing of phases, roles or protocols. [`Uring`] implements it with one
//! io_uring per worker (multishot recv from a provided-buffer ring, sends and closes as
//! ring ops, connections arriving by `IORING_OP_MSG_RING`); [`Epoll`] implements the
//! same trait for platforms that forbid io_uring; [`AnyDriver`] is whichever of the two
//! a worker picked at start ([`EventLoop`]).
//!
//! Ops on a connection carry its [`ConnId`] (slot and generation): a completion for a
//! connection that closed meanwhile names a generation the core no longer has, and the
//! core drops it (returning its buffer).

mod any;
pub mod bufring;
mod epoll;
pub mod token;
mod uring;

use std::io;
use std::time::Duration;

pub use self::any::{AnyDriver, EventLoop, uring_unavailable};
pub use self::bufring::RecvBuf;
pub use self::epoll::Epoll;
pub use self::uring::Uring;
use super::output::OutQueue;
use crate::api::ConnId;

/// What a recv on a connection produced.
#[derive(Debug)]
pub enum Received {
    /// Bytes, in a buffer lent by the driver until [`Driver::recycle`].
    Data(RecvBuf),
    /// The peer sent EOF (it may still read).
    Eof,
    /// The read stopped without data and should be restarted if reading is still
    /// wanted: the driver ran out of receive buffers, or a stop request landed.
    Stopped,
    /// The socket failed (errno): the connection is lost.
    Failed(i32),
}

/// A normalised completion.
#[derive(Debug)]
pub enum Event {
    /// A recv on `conn` completed; `more`: the read stays armed (otherwise the core
    /// re-arms it if it still wants input).
    Recv {
        conn: ConnId,
        got: Received,
        more: bool,
    },
    /// A send on `conn` completed: bytes written, or a negative errno.
    Sent { conn: ConnId, res: i32 },
    /// A stop-reading request on `conn` completed.
    StopDone { conn: ConnId },
    /// The write-side shutdown of `conn` completed ([`Driver::shutdown_write`] said it
    /// would).
    ShutdownDone { conn: ConnId },
    /// Another thread woke the loop ([`crate::ServiceHandle`]).
    Wake,
    /// The supervisor's control socket is readable (or failed: `res` < 0); `more`: the
    /// watch stays armed.
    Control { res: i32, more: bool },
    /// A connection was handed to this worker by the supervisor's ring.
    Handoff { sock: Sock, listener: u16 },
    /// Closing a freed connection's socket failed (errno): only worth a log line.
    CloseFailed { res: i32 },
}

/// The operations the connection core asks of the kernel, and the events it gets back.
pub trait Driver {
    /// Starts reading `sock` (until EOF, an error, or [`Driver::stop_recv`]); bytes come
    /// as [`Event::Recv`].
    fn recv(&mut self, conn: ConnId, sock: Sock);
    /// Asks the read on `conn` to stop; [`Event::StopDone`] follows.
    fn stop_recv(&mut self, conn: ConnId);
    /// Sends what `out` holds (all of it or a prefix); [`Event::Sent`] follows.
    ///
    /// # Safety
    /// The chunks queued in `out` and its send state stay allocated and unchanged until
    /// that event: the kernel reads them in the meantime.
    unsafe fn send(&mut self, conn: ConnId, sock: Sock, out: &mut OutQueue);
    /// Shuts down the write side of `sock` (our FIN after a response). True when this
    /// completes later, as [`Event::ShutdownDone`]; false when it is done already.
    fn shutdown_write(&mut self, conn: ConnId, sock: Sock) -> bool;
    /// Closes `sock`. No op on it may be in flight.
    fn close(&mut self, conn: ConnId, sock: Sock);
    /// The bytes of a received buffer.
    fn data(&mut self, buf: &RecvBuf) -> &mut [u8];
    /// Returns a received buffer.
    fn recycle(&mut self, buf: RecvBuf);
    /// Hands queued ops to the kernel and waits until something completes, at most
    /// `timeout` (`None`: no limit). Completions are then taken with
    /// [`Driver::next_event`].
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// The next completion of the last wait, if any.
    fn next_event(&mut self) -> Option<Event>;
    /// End of a pass over the events: returned buffers go back to the kernel.
    fn end_pass(&mut self);
    /// Sockets whose close is queued but not yet handed to the kernel.
    fn closes_queued(&self) -> usize;
    /// Watches the supervisor control socket `fd` for readability ([`Event::Control`]).
    fn watch_control(&mut self, fd: i32);
}

/// A connection's socket as the driver names it: a plain fd (handed over in a
/// `NewConns` packet), or a slot of the ring's fixed-file table (handed over with
/// `IORING_OP_MSG_RING`; such a socket has no fd number in this process at all).
///
/// Four bytes, so a connection stays one cache line: a slot is stored as its bitwise
/// complement (negative), an fd as itself (never negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sock(i32);

impl Sock {
    pub fn fd(fd: i32) -> Sock {
        debug_assert!(fd >= 0);
        Sock(fd)
    }

    pub fn fixed(slot: u32) -> Sock {
        debug_assert!(slot <= i32::MAX as u32);
        Sock(!(slot as i32))
    }

    pub fn is_fixed(self) -> bool {
        self.0 < 0
    }

    /// The number an SQE's `fd` field takes: the fd, or the fixed slot (with
    /// [`Sock::sqe_flags`] saying which).
    pub fn raw(self) -> i32 {
        if self.0 < 0 { !self.0 } else { self.0 }
    }

    /// `IOSQE_FIXED_FILE` for a fixed slot.
    pub fn sqe_flags(self) -> io_uring::squeue::Flags {
        if self.is_fixed() {
            io_uring::squeue::Flags::FIXED_FILE
        } else {
            io_uring::squeue::Flags::empty()
        }
    }

    /// The ring op that closes this socket (a fixed slot is closed through the table:
    /// `IORING_OP_CLOSE` takes it in `file_index`, not with `IOSQE_FIXED_FILE`).
    pub fn close_op(self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        if self.is_fixed() {
            opcode::Close::new(types::Fixed(self.raw() as u32)).build()
        } else {
            opcode::Close::new(types::Fd(self.0)).build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_keeps_fd_and_slot_apart() {
        for fd in [0, 3, i32::MAX] {
            let s = Sock::fd(fd);
            assert!(!s.is_fixed());
            assert_eq!(s.raw(), fd);
            assert!(s.sqe_flags().is_empty());
        }
        for slot in [0, 1, 19_999, i32::MAX as u32] {
            let s = Sock::fixed(slot);
            assert!(s.is_fixed());
            assert_eq!(s.raw() as u32, slot);
            assert_eq!(s.sqe_flags(), io_uring::squeue::Flags::FIXED_FILE);
        }
    }
}
