//! A connection as the service loop sees it: an fd, the ops in flight on it, its queued
//! output, its reassembly buffer and its role (the sans-IO protocol state, boxed so an
//! idle connection costs little and an upgrade swaps it).

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::Role;

/// Most iovecs one writev carries. Linux's IOV_MAX is 1024; 64 covers a pipelined
/// burst of small answers (head + body each) while keeping the per-connection iovec
/// array small.
pub const MAX_IOV: usize = 64;

/// Output at most this large that sits in several chunks is copied into one buffer and
/// sent with a plain `send` instead of a `writev`: 16 KiB (a response head plus a small
/// file, or a burst of pipelined small answers) is copied in well under the time the
/// kernel's vectored path costs over the plain one (measured: bench/RESULTS.md).
pub const COALESCE_MAX: usize = 16 * 1024;

/// The loop's coalescing buffer grows by this much at a time: one allocation serves
/// many sends (each takes a refcounted slice of it).
pub const COALESCE_SCRATCH: usize = 64 * 1024;

/// A connection's pending output: `Bytes` chunks sent in order with writev; a partial
/// send is continued from where it stopped.
#[derive(Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl Extend<Bytes> for OutQueue {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.push(b);
        }
    }
}

impl OutQueue {
    /// Queues `b` (empty chunks are dropped: they would only cost an iovec).
    #[inline]
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.bufs.push_back(b);
        }
    }

    /// Bytes queued and not yet acknowledged by a send completion.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Fills `iov` with the front chunks (at most [`MAX_IOV`]).
    pub(crate) fn fill_iov(&self, iov: &mut Vec<libc::iovec>) {
        iov.clear();
        for b in self.bufs.iter().take(MAX_IOV) {
            iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            });
        }
    }

    /// The front chunk, when it is the only one (sent with a plain send, no iovec).
    pub(crate) fn single(&self) -> Option<&Bytes> {
        if self.bufs.len() == 1 {
            self.bufs.front()
        } else {
            None
        }
    }

    /// Copies every queued chunk into one buffer split off `scratch` when the queue
    /// holds several chunks and at most [`COALESCE_MAX`] bytes, so the next send is a
    /// plain `send`. Returns whether it did.
    pub(crate) fn coalesce(&mut self, scratch: &mut BytesMut) -> bool {
        if self.bufs.len() < 2 || self.bytes > COALESCE_MAX {
            return false;
        }
        if scratch.capacity() - scratch.len() < self.bytes {
            scratch.reserve(COALESCE_SCRATCH.max(self.bytes));
        }
        for b in self.bufs.drain(..) {
            scratch.extend_from_slice(&b);
        }
        self.bufs.push_back(scratch.split().freeze());
        true
    }

    /// Drops `n` sent bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.bytes -= n.min(self.bytes);
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.bufs.pop_front();
            } else {
                front.advance(n);
                return;
            }
        }
    }

    /// Drops everything (the connection is being torn down).
    pub(crate) fn clear(&mut self) {
        self.bufs.clear();
        self.bytes = 0;
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Serving.
    Open,
    /// Output is being flushed; then the connection closes (lingering if asked).
    Flushing { linger: bool },
    /// Our side is shut down for writing; incoming bytes are read and dropped until the
    /// peer closes or the linger deadline passes, so that a response we sent is not
    /// destroyed by an RST for unread request bytes (RFC 9112 9.6).
    Lingering,
    /// Ops are being cancelled; the fd is closed when the last one completes.
    Closing,
}

/// One connection.
pub struct Conn {
    pub fd: i32,
    pub generation: u32,
    pub phase: Phase,
    pub listener: u16,
    /// A multishot recv is armed.
    pub recv_armed: bool,
    /// A send/writev is in flight (at most one).
    pub send_inflight: bool,
    /// A cancel op is in flight.
    pub cancel_inflight: bool,
    /// Already in the loop's to-flush list this pass.
    pub dirty: bool,
    /// Already in the loop's writeable queue.
    pub in_wq: bool,
    /// Reading is stopped by the role (rx flow control) or by a full reassembly buffer.
    pub rx_paused: bool,
    /// The peer sent EOF.
    pub peer_eof: bool,
    pub out: OutQueue,
    /// The iovecs of the writev in flight: they must stay put until its completion.
    pub iov: Vec<libc::iovec>,
    /// Received bytes the role has not consumed yet (a partial head or frame, or bytes
    /// that arrived while the role was paused). Empty (unallocated) most of the time.
    pub rx: Vec<u8>,
    /// The connection's timer deadline (ms on the loop clock; u64::MAX = none).
    pub deadline: u64,
    /// The earliest deadline already queued in the timer heap for this connection.
    pub queued: u64,
    pub role: Box<dyn Role>,
}

impl Conn {
    pub fn ops_in_flight(&self) -> bool {
        self.recv_armed || self.send_inflight || self.cancel_inflight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_queue_partial_sends() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"hello "));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"world"));
        assert_eq!(q.len(), 11);
        let mut iov = Vec::new();
        q.fill_iov(&mut iov);
        assert_eq!(iov.len(), 2, "the empty chunk takes no iovec");
        q.advance(4);
        assert_eq!(q.len(), 7);
        assert_eq!(q.bufs.front().unwrap().as_ref(), b"o ");
        q.advance(2);
        assert_eq!(q.single().unwrap().as_ref(), b"world");
        q.advance(5);
        assert!(q.is_empty());
        q.advance(3); // over-advance is harmless
        assert!(q.is_empty());
    }

    #[test]
    fn coalesce_small_multi_chunk_output() {
        let mut scratch = BytesMut::new();
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!q.coalesce(&mut scratch), "one chunk is sent as it is");
        q.push(Bytes::from_static(b"body"));
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.single().unwrap().as_ref(), b"HTTP/1.1 200 OK\r\n\r\nbody");
        assert_eq!(q.len(), 23);
        // At the limit it still coalesces; one byte over, the chunks go out as they are.
        let mut q = OutQueue::default();
        q.push(Bytes::from(vec![1u8; COALESCE_MAX - 1]));
        q.push(Bytes::from_static(b"x"));
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.len(), COALESCE_MAX);
        let mut q = OutQueue::default();
        q.push(Bytes::from(vec![1u8; COALESCE_MAX]));
        q.push(Bytes::from_static(b"x"));
        assert!(!q.coalesce(&mut scratch));
        assert!(q.single().is_none());
        // A partly sent queue coalesces what is left.
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"def"));
        q.advance(2);
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.single().unwrap().as_ref(), b"cdef");
    }
}
