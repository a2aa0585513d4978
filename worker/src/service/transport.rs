//! The transport between the connection core and the carrier (DESIGN.md section 3):
//! plain bytes, or TLS. A plain connection has none (`Conn::tls` is `None`); a TLS one
//! has a [`Tls`]: the sans-IO [`TlsSession`] and the queue of records waiting to be sent.
//!
//! The carrier never sees records: bytes that arrive are decrypted on the way in and
//! given to the carrier as plaintext (through the connection's reassembly buffer), and
//! what the carrier queues stays plaintext in `Conn::out` until the flush, which seals
//! everything queued in one go (small multi-chunk output is first copied into one buffer,
//! so a burst of WebSocket frames becomes one record, not one each) into [`Tls::wire`],
//! the queue the driver sends. Nothing is sealed during the handshake: the carrier's
//! output waits for it (a 1.3 server could send "0.5-RTT" data, but with `-v` it would go
//! to a client whose certificate is not checked yet).

use bytes::{Bytes, BytesMut};

use super::output::OutQueue;
use crate::roles::tls::{TlsError, TlsSession};

/// The shared record buffer grows by this much at a time (one allocation serves many
/// flushes; each takes a refcounted slice of it).
const SCRATCH: usize = 64 * 1024;

/// A connection's TLS state.
pub struct Tls {
    pub session: TlsSession,
    /// Records (and handshake messages, alerts) waiting to be sent: the queue the driver
    /// sends on a TLS connection.
    pub wire: OutQueue,
    /// `close_notify` was queued, or the session failed (no more records of ours).
    pub done: bool,
}

impl Tls {
    pub fn new(session: TlsSession) -> Tls {
        Tls {
            session,
            wire: OutQueue::default(),
            done: false,
        }
    }

    /// Queues `bytes` (handshake output, an alert) to be sent as they are.
    pub fn queue_raw(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.wire.push(Bytes::from(bytes));
        }
    }

    /// Seals the carrier's queued plaintext into records on [`Tls::wire`], once the
    /// handshake is over; with `closing`, also `close_notify` after the last of it. The
    /// records are written into `scratch`, the worker's shared buffer, and split off it:
    /// no allocation per flush (a fresh buffer per flush, grown as it filled, had glibc
    /// return and re-fault heap pages: ~1 page fault per 7 KB HTTPS response).
    pub fn seal(
        &mut self,
        plain: &mut OutQueue,
        scratch: &mut BytesMut,
        closing: bool,
    ) -> Result<(), TlsError> {
        if self.done || self.session.is_handshaking() {
            return Ok(());
        }
        // Record framing and tag per 16 KiB of plaintext, and a close_notify.
        let need = plain.len() + (plain.len() / (16 * 1024) + 1) * 64 + 64;
        if !plain.is_empty() {
            plain.coalesce(scratch);
        }
        if scratch.capacity() - scratch.len() < need {
            scratch.reserve(need.max(SCRATCH));
        }
        let mut res = Ok(());
        plain.drain_chunks(|b| {
            if res.is_ok() {
                res = self.session.seal(&b, scratch);
            }
        });
        if res.is_ok() && closing {
            self.done = true;
            res = self.session.close_notify(scratch);
        }
        if res.is_err() {
            self.done = true;
        }
        if !scratch.is_empty() {
            self.wire.push(scratch.split().freeze());
        }
        res
    }

    /// Whether everything of ours is out: no records queued, and the session ended
    /// (close_notify queued, failed) or never got its keys (cut off in the handshake).
    pub fn flushed(&self) -> bool {
        self.wire.is_empty() && (self.done || self.session.is_handshaking())
    }
}
