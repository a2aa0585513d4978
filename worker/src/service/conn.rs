//! A connection as the service loop sees it: an fd, the ops in flight on it, its queued
//! output, its reassembly buffer and its role (the sans-IO protocol state, boxed so an
//! idle connection costs little and an upgrade swaps it).
//!
//! Memory per idle connection is what bounds how many a worker holds (10,000 idle
//! WebSockets is an ordinary load), so everything a connection needs only while it is
//! busy lives outside [`Conn`] until it is needed:
//!
//! - output: [`OutQueue`] is one pointer, its storage lent only while output is pending
//!   ([`super::output`]);
//! - input: [`RxBuf`] is one pointer, allocated only while a head or frame is
//!   incomplete (or input waits for a paused role).

use super::Role;
use super::driver::Sock;
pub use super::output::{OutQueue, SendPool};

/// Most bytes a reassembly buffer keeps allocated once it has been drained to a partial
/// frame: larger buffers (a big upload that arrived while the role was paused) are
/// shrunk back to this so a connection does not keep its peak.
const RX_KEEP: usize = 16 * 1024;

/// Received bytes the role has not consumed yet (a partial head or frame, or bytes that
/// arrived while the role was paused). One pointer; unallocated while empty, which is
/// most of the time.
#[derive(Default)]
pub struct RxBuf {
    #[allow(
        clippy::box_collection,
        reason = "8 bytes in every connection instead of 24; allocated only while bytes wait"
    )]
    buf: Option<Box<Vec<u8>>>,
}

impl RxBuf {
    /// Appends received bytes.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.buf
                .get_or_insert_with(Box::default)
                .extend_from_slice(data);
        }
    }

    /// Drops the first `n` bytes (what the role consumed); frees the buffer once empty.
    pub fn consume(&mut self, n: usize) {
        let Some(b) = self.buf.as_deref_mut() else {
            return;
        };
        if n >= b.len() {
            self.buf = None;
        } else {
            b.drain(..n);
            if b.capacity() > RX_KEEP && b.len() <= RX_KEEP {
                b.shrink_to(RX_KEEP);
            }
        }
    }
}

impl std::ops::Deref for RxBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl std::ops::DerefMut for RxBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
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

/// One connection: 72 bytes (see `conn_is_small`: 64 before the transport slot). The listener it came
/// from is not kept: only the role factory needs it.
pub struct Conn {
    pub sock: Sock,
    pub generation: u32,
    pub phase: Phase,
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
    /// Queued output, with the iovecs of the writev in flight.
    pub out: OutQueue,
    /// Received bytes the role has not consumed yet.
    pub rx: RxBuf,
    /// The TLS transport, on a TLS listener (plain connections: none, 8 bytes).
    pub tls: Option<Box<super::transport::Tls>>,
    /// The connection's timer deadline (ms on the loop clock; u64::MAX = none).
    pub deadline: u64,
    /// The earliest deadline already queued in the timer heap for this connection (0: a
    /// new connection whose first deadline the loop queues a pass later).
    pub queued: u64,
    pub role: Box<dyn Role>,
}

impl Conn {
    pub fn ops_in_flight(&self) -> bool {
        self.recv_armed || self.send_inflight || self.cancel_inflight
    }

    /// Everything queued has been sent (and on TLS, the close_notify too where the
    /// session has keys): a closing connection may be shut down now.
    pub fn flushed(&self) -> bool {
        self.out.is_empty() && !self.send_inflight && self.tls.as_ref().is_none_or(|t| t.flushed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_buf_allocates_only_while_holding_bytes() {
        let mut rx = RxBuf::default();
        assert!(rx.is_empty());
        rx.extend_from_slice(&[]);
        assert!(rx.buf.is_none());
        rx.extend_from_slice(b"partial");
        assert_eq!(&*rx, b"partial");
        rx.consume(3);
        assert_eq!(&*rx, b"tial");
        rx[0] = b'T';
        assert_eq!(&*rx, b"Tial");
        rx.consume(100);
        assert!(rx.is_empty() && rx.buf.is_none(), "freed once drained");
    }

    #[test]
    fn rx_buf_gives_back_a_peak() {
        let mut rx = RxBuf::default();
        rx.extend_from_slice(&vec![1; RX_KEEP * 4]);
        rx.consume(RX_KEEP * 4 - 10);
        assert_eq!(rx.len(), 10);
        assert!(rx.buf.as_ref().unwrap().capacity() <= RX_KEEP);
    }

    #[test]
    fn conn_is_small() {
        // What an idle connection costs in the slab (plus its role's allocation).
        assert!(
            std::mem::size_of::<Conn>() <= 72,
            "{}",
            std::mem::size_of::<Conn>()
        );
        assert_eq!(std::mem::size_of::<OutQueue>(), 8);
        assert_eq!(std::mem::size_of::<RxBuf>(), 8);
    }
}
