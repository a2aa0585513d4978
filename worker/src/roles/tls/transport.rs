//! The TLS transport of one connection (DESIGN.md section 3, "the shape of a worker"):
//! rustls' unbuffered server connection driven by a completion loop that owns the
//! buffers.
//!
//! ```text
//!  ring buffer (the loop's) ──receive──▶ records processed where they lie ──▶ on_plain(&[u8])
//!                                        handshake/alert bytes ───────────▶ wire_out
//!  the carrier's plaintext ──seal (once per flush)──▶ records ────────────▶ wire_out
//! ```
//!
//! - [`TlsSession::receive`] takes the bytes of one read in a mutable slice (a provided
//!   ring buffer), processes every complete record in place, hands each decrypted
//!   application-data record to `on_plain`, and appends any handshake messages, tickets
//!   or alerts to `wire_out`. A record cut by the read is copied into the session's own
//!   small buffer, allocated only while a record is incomplete (as the h1 reassembly
//!   buffer); nothing of the read is kept otherwise, so the caller returns the ring
//!   buffer at once.
//! - [`TlsSession::seal`] encrypts application data into records appended to
//!   `wire_out`. Only once [`TlsSession::is_handshaking`] is false: the caller holds its
//!   output until then (a TLS 1.3 server could send "0.5-RTT" data earlier, but not yet
//!   knowing the client, and with `-v` not yet having checked its certificate, lwsd does
//!   not). Before that, `seal` fails with [`Blame::Misuse`] and appends nothing.
//! - [`TlsSession::close_notify`] appends the `close_notify` alert (RFC 8446 section
//!   6.1) for a clean close.
//!
//! Memory: an idle session (handshake done, no partial record) holds no buffer of its
//! own. What it costs is rustls' established-connection state: 1,136 bytes inline
//! (`size_of::<TlsSession>()`, nearly all rustls' `CommonState`) and 2,202 bytes of heap
//! (the two directions' AEAD keys, boxed as ring's largest key type, the TLS 1.3 key
//! schedule kept for KeyUpdate, empty queues), 3.3 KiB in all with rustls 0.23.48 and
//! ring, either cipher suite (`worker/tests/tls_memory.rs`). That is above the issue's
//! 2 KiB goal for a whole idle wss:// connection; what would get under it is handing the
//! record layer to the kernel after the handshake (kTLS, rustls'
//! `dangerous_into_kernel_connection`), not buffers, which are already none. rustls 0.23 still copies each
//! decrypted application-data record into a short-lived `Vec` that `on_plain` borrows
//! and that is freed before `receive` returns (its `ReadTraffic` API: "in-place
//! decryption in the future"): the in-place part today is the record processing and
//! the handshake reassembly in the caller's buffer.
//!
//! A failure ends the session: `receive`, `seal` and `close_notify` return the
//! [`TlsError`] (reason label, blame, alert sent) after appending the fatal alert rustls
//! queued; every later call fails with [`Blame::Misuse`].

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::{AlertDescription, ServerConfig};
use std::sync::Arc;

use super::error::{Blame, TlsError};
use super::hello::HelloCheck;

/// Most bytes a session holds for an incomplete record or handshake message: rustls'
/// largest handshake message (64 KiB, reassembled in place) plus one largest record
/// (RFC 8446 section 5.2: 2^14 + 256 bytes of ciphertext and a 5-byte header). A peer
/// that sends more without completing anything is cut off with reason `too_large`.
pub const MAX_PENDING_IN: usize = 0x1_0000 + (1 << 14) + 256 + 5;

/// Bytes of record framing and AEAD overhead per record, at most: a 5-byte header, an
/// 8-byte explicit nonce (TLS 1.2 AES-GCM), a 16-byte tag and TLS 1.3's content-type
/// byte.
const RECORD_OVERHEAD: usize = 5 + 8 + 16 + 1;

/// Largest application-data plaintext in one record (RFC 8446 section 5.1).
const MAX_FRAGMENT: usize = 1 << 14;

/// A bound on the state transitions one call may go through: each handshake flight is a
/// few Encode/Transmit pairs; a loop that runs longer is a bug, reported, not spun.
const MAX_STEPS: usize = 10_000;

/// Where a session writes what it sends (records, alerts): a `Vec<u8>`, or the worker's
/// shared `BytesMut` that records are split off as `Bytes` (no allocation per flush).
pub trait WireOut: std::ops::DerefMut<Target = [u8]> {
    fn extend_from_slice(&mut self, b: &[u8]);
    fn resize(&mut self, len: usize, fill: u8);
    fn truncate(&mut self, len: usize);
}

impl WireOut for Vec<u8> {
    fn extend_from_slice(&mut self, b: &[u8]) {
        Vec::extend_from_slice(self, b);
    }
    fn resize(&mut self, len: usize, fill: u8) {
        Vec::resize(self, len, fill);
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

impl WireOut for bytes::BytesMut {
    fn extend_from_slice(&mut self, b: &[u8]) {
        bytes::BytesMut::extend_from_slice(self, b);
    }
    fn resize(&mut self, len: usize, fill: u8) {
        bytes::BytesMut::resize(self, len, fill);
    }
    fn truncate(&mut self, len: usize) {
        bytes::BytesMut::truncate(self, len);
    }
}

/// What a [`TlsSession::receive`] call saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The handshake completed during this call: the caller may now seal its held
    /// output, and count the handshake.
    pub handshake_done: bool,
    /// The peer sent `close_notify`: no more application data will come.
    pub peer_closed: bool,
    /// Bytes now held for an incomplete record (0 when idle).
    pub pending: usize,
}

/// One server-side TLS connection. See the module docs.
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// An incomplete record (or a handshake message being reassembled): the unconsumed
    /// tail of earlier reads, exactly as rustls must see it again. Empty (no
    /// allocation) whenever nothing is incomplete.
    pending_in: Vec<u8>,
    /// The ClientHello's server name (SNI), once seen.
    sni: Option<Box<str>>,
    /// Any byte received yet (plain HTTP is only looked for in the first read).
    seen_input: bool,
    /// The first record was looked at for a too-old client ([`super::hello`]).
    hello_checked: bool,
    peer_closed: bool,
    sent_close_notify: bool,
    failed: bool,
}

impl TlsSession {
    /// A session for a newly accepted connection.
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        let conn = UnbufferedServerConnection::new(config).map_err(TlsError::from_rustls)?;
        Ok(TlsSession {
            conn,
            pending_in: Vec::new(),
            sni: None,
            seen_input: false,
            hello_checked: false,
            peer_closed: false,
            sent_close_notify: false,
            failed: false,
        })
    }

    /// Feeds the bytes of one read. `incoming` is processed in place (its contents are
    /// overwritten); the caller may reuse it as soon as this returns. See the module
    /// docs for what goes where.
    pub fn receive(
        &mut self,
        incoming: &mut [u8],
        mut on_plain: impl FnMut(&[u8]),
        wire_out: &mut impl WireOut,
    ) -> Result<Progress, TlsError> {
        if self.failed {
            return Err(TlsError::new(Blame::Misuse, "misuse"));
        }
        if !self.seen_input && !incoming.is_empty() {
            self.seen_input = true;
            if looks_like_plain_http(incoming) {
                self.failed = true;
                return Err(TlsError::plain_http());
            }
        }
        let was_handshaking = self.conn.is_handshaking();
        let mut progress = Progress::default();
        let r = self.receive_inner(incoming, &mut on_plain, wire_out, &mut progress);
        if was_handshaking && let Some(sni) = super::config::take_sni() {
            self.sni = sni;
        }
        r?;
        progress.handshake_done = was_handshaking && !self.conn.is_handshaking();
        progress.pending = self.pending_in.len();
        Ok(progress)
    }

    fn receive_inner(
        &mut self,
        incoming: &mut [u8],
        on_plain: &mut impl FnMut(&[u8]),
        wire_out: &mut impl WireOut,
        progress: &mut Progress,
    ) -> Result<(), TlsError> {
        if self.pending_in.is_empty() {
            if !self.first_record_ok(incoming, wire_out)? {
                return self.keep(incoming);
            }
            let used = self.pump(incoming, on_plain, wire_out, progress)?;
            self.keep(&incoming[used..])
        } else {
            if self.pending_in.len() + incoming.len() > MAX_PENDING_IN {
                return Err(self.fail_plain("too_large"));
            }
            let mut buf = std::mem::take(&mut self.pending_in);
            buf.extend_from_slice(incoming);
            if !self.first_record_ok(&buf, wire_out)? {
                self.pending_in = buf;
                return Ok(());
            }
            let used = self.pump(&mut buf, on_plain, wire_out, progress)?;
            buf.drain(..used);
            if !buf.is_empty() {
                buf.shrink_to_fit();
                self.pending_in = buf;
            }
            Ok(())
        }
    }

    /// Until the first record is complete, whether rustls may have it (`false`: wait
    /// for more); a too-old client is refused here ([`super::hello`]).
    fn first_record_ok(&mut self, buf: &[u8], out: &mut impl WireOut) -> Result<bool, TlsError> {
        if self.hello_checked {
            return Ok(true);
        }
        match super::hello::check_first_record(buf) {
            HelloCheck::NeedMore => Ok(false),
            HelloCheck::Pass => {
                self.hello_checked = true;
                Ok(true)
            }
            HelloCheck::TooOld => {
                out.extend_from_slice(&super::hello::PROTOCOL_VERSION_ALERT);
                let mut e = self.fail_plain("protocol_version");
                e.alert = Some(AlertDescription::ProtocolVersion);
                Err(e)
            }
        }
    }

    /// Keeps an unconsumed tail for the next read.
    fn keep(&mut self, tail: &[u8]) -> Result<(), TlsError> {
        if tail.len() > MAX_PENDING_IN {
            return Err(self.fail_plain("too_large"));
        }
        if !tail.is_empty() {
            self.pending_in = tail.to_vec();
        }
        Ok(())
    }

    /// Runs rustls over `buf` until it needs more input; returns how many bytes of the
    /// front of `buf` it is done with (the rest must be presented again, unchanged,
    /// followed by the next read).
    fn pump(
        &mut self,
        buf: &mut [u8],
        on_plain: &mut impl FnMut(&[u8]),
        out: &mut impl WireOut,
        progress: &mut Progress,
    ) -> Result<usize, TlsError> {
        let mut off = 0;
        for _ in 0..MAX_STEPS {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut buf[off..]);
            match state {
                Err(e) => {
                    off += discard;
                    return Err(self.fail(e, &mut buf[off..], out));
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(rec) = r.next_record() {
                        match rec {
                            Ok(rec) => {
                                discard += rec.discard;
                                on_plain(rec.payload);
                            }
                            Err(e) => {
                                off += discard;
                                return Err(self.fail(e, &mut buf[off..], out));
                            }
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if let Err(err) = append(out, |b| e.encode(b).map_err(encode_size)) {
                        self.failed = true;
                        return Err(err);
                    }
                }
                // The bytes are in `out`, which the caller sends; rustls only needs to
                // know it may go on.
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    progress.peer_closed = true;
                }
                Ok(
                    ConnectionState::BlockedHandshake
                    | ConnectionState::WriteTraffic(_)
                    | ConnectionState::Closed,
                ) => return Ok(off + discard),
                // Early data is never accepted (`max_early_data_size` is 0), and rustls
                // may add states: neither can be handled here.
                Ok(_) => {
                    self.failed = true;
                    return Err(TlsError::new(Blame::Local, "other"));
                }
            }
            off += discard;
        }
        self.failed = true;
        Err(TlsError::new(Blame::Local, "other"))
    }

    /// Marks the session failed and appends the fatal alert rustls queued for `e`.
    ///
    /// rustls hands queued messages out one per `process_tls_records` call, first
    /// thing; asked once the queue is empty it would parse the rest of the input (the
    /// bytes that failed are still there: a failing record is not discarded) and fail
    /// again, queueing a second fatal alert. So it is asked only until the alert is out:
    /// the alert is the last message queued, and the only record of type alert (21) or,
    /// once encrypted, application data (23); what comes before it in the same flight
    /// is handshake (22) or ChangeCipherSpec (20). That flight is there when a TLS 1.3
    /// handshake fails after the ServerHello was queued (no ALPN protocol in common, no
    /// usable signature scheme): the ServerHello, maybe a ChangeCipherSpec, then the
    /// alert encrypted with the handshake keys; sending only the ServerHello left the
    /// client with "unexpected eof" instead of the alert. `rest` is the unconsumed
    /// input: rustls may hold a partly reassembled handshake message in it, and must see
    /// the same bytes.
    fn fail(&mut self, e: rustls::Error, rest: &mut [u8], out: &mut impl WireOut) -> TlsError {
        self.failed = true;
        let start = out.len();
        let mut last = start;
        // ServerHello, ChangeCipherSpec, alert: three; a few more cost nothing.
        for _ in 0..8 {
            let Ok(ConnectionState::EncodeTlsData(mut enc)) =
                self.conn.process_tls_records(rest).state
            else {
                break;
            };
            let at = out.len();
            // A failure to append leaves nothing to send: the connection closes anyway.
            if append(out, |b| enc.encode(b).map_err(encode_size)).is_err() {
                break;
            }
            last = at;
            if !matches!(out.get(at), Some(20 | 22)) {
                break;
            }
        }
        let mut err = TlsError::from_rustls(e);
        if out.len() > start {
            if let Some(a) = plain_alert(&out[last..]) {
                err.alert = Some(a);
            }
        } else {
            err.alert = None;
        }
        err
    }

    fn fail_plain(&mut self, reason: &'static str) -> TlsError {
        self.failed = true;
        self.pending_in = Vec::new();
        TlsError::new(Blame::Peer, reason)
    }

    /// Encrypts `plain` into application-data records appended to `wire_out`
    /// (`plain` may be empty: nothing is appended). Fails with [`Blame::Misuse`] while
    /// [`is_handshaking`](Self::is_handshaking), after `close_notify` and after a
    /// failure, appending nothing.
    pub fn seal(&mut self, plain: &[u8], wire_out: &mut impl WireOut) -> Result<(), TlsError> {
        if plain.is_empty() && !self.failed {
            return Ok(());
        }
        self.with_write_traffic(wire_out, |w, out| {
            let want = plain.len() + plain.len().div_ceil(MAX_FRAGMENT).max(1) * RECORD_OVERHEAD;
            append_sized(out, want, |b| w.encrypt(plain, b).map_err(encrypt_size))
        })
    }

    /// Appends a `close_notify` alert (once). During the handshake nothing is sent
    /// (rustls can only send it with the traffic keys); the caller just closes.
    pub fn close_notify(&mut self, wire_out: &mut impl WireOut) -> Result<(), TlsError> {
        if self.sent_close_notify || (self.conn.is_handshaking() && !self.failed) {
            return Ok(());
        }
        self.with_write_traffic(wire_out, |w, out| {
            append_sized(out, 64, |b| w.queue_close_notify(b).map_err(encrypt_size))
        })?;
        self.sent_close_notify = true;
        Ok(())
    }

    /// Drives rustls to its `WriteTraffic` state (emitting anything it has queued
    /// first) and runs `f` in it.
    fn with_write_traffic<W: WireOut>(
        &mut self,
        out: &mut W,
        f: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut W,
        ) -> Result<(), TlsError>,
    ) -> Result<(), TlsError> {
        if self.failed || self.sent_close_notify || self.conn.is_handshaking() {
            return Err(TlsError::new(Blame::Misuse, "misuse"));
        }
        // rustls must see the held partial input again (it may be part-way through
        // reassembling a post-handshake message in it); `receive` left no complete
        // record in it, so nothing is consumed here.
        let mut buf = std::mem::take(&mut self.pending_in);
        let mut f = Some(f);
        let mut result = Err(TlsError::new(Blame::Local, "other"));
        let mut off = 0;
        for _ in 0..MAX_STEPS {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut buf[off..]);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if let Err(err) = append(out, |b| e.encode(b).map_err(encode_size)) {
                        result = Err(err);
                        break;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                Ok(ConnectionState::PeerClosed) => self.peer_closed = true,
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let f = f.take().expect("WriteTraffic handled once: the loop ends");
                    result = f(&mut w, out);
                    break;
                }
                Ok(_) => {
                    result = Err(TlsError::new(Blame::Misuse, "misuse"));
                    break;
                }
                Err(e) => {
                    off += discard;
                    result = Err(self.fail(e, &mut buf[off..], out));
                    break;
                }
            }
            off += discard;
        }
        buf.drain(..off.min(buf.len()));
        if !buf.is_empty() && !self.failed {
            self.pending_in = buf;
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// The connection ended (EOF from the socket). A clean end is after the handshake
    /// with no record cut short; RFC 8446 section 6.1 lets a peer omit `close_notify`
    /// (HTTP and WebSocket frame their own messages), so its absence is not an error.
    pub fn eof(&mut self) -> Result<(), TlsError> {
        if self.failed {
            return Ok(());
        }
        self.failed = true;
        if self.conn.is_handshaking() {
            // A handshake cut off (or never started: a port scan, a TCP health check).
            self.pending_in = Vec::new();
            return Err(TlsError::new(Blame::Io, "eof"));
        }
        if !self.pending_in.is_empty() {
            self.pending_in = Vec::new();
            return Err(TlsError::new(Blame::Io, "truncated"));
        }
        Ok(())
    }

    /// Whether the handshake is still going on (output must be held).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The application protocol chosen by ALPN (RFC 7301), e.g. `b"http/1.1"`.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The host name the client asked for (SNI, RFC 6066 section 3).
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// Whether the client presented a certificate (verified against `-A`'s CA: an
    /// unverifiable one fails the handshake).
    pub fn has_peer_certificate(&self) -> bool {
        self.conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }

    /// The client's certificate chain, leaf first.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite, once known.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.conn.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// Whether this was a resumed handshake (a ticket was accepted).
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The peer sent `close_notify`.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Bytes held for an incomplete record.
    pub fn pending_len(&self) -> usize {
        self.pending_in.len()
    }
}

fn encode_size(e: EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(required_size)
        }
        EncodeError::AlreadyEncoded => None,
    }
}

fn encrypt_size(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(required_size)
        }
        EncryptError::EncryptExhausted => None,
    }
}

/// Appends what `write` writes to `out`, growing it as `write` asks (`Err(Some(n))`:
/// needs `n` bytes; `Err(None)`: cannot write at all).
fn append(
    out: &mut impl WireOut,
    write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), TlsError> {
    append_sized(out, 512, write)
}

fn append_sized(
    out: &mut impl WireOut,
    first_guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), TlsError> {
    let start = out.len();
    let mut room = first_guess;
    // Twice at most: the second time with exactly the size rustls asked for.
    for _ in 0..2 {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(need)) if need > room => room = need,
            Err(_) => break,
        }
    }
    out.truncate(start);
    Err(TlsError::new(Blame::Local, "local"))
}

/// The alert in a plain-text alert record at the front of `bytes` (RFC 8446 section
/// 5.1: content type 21, then version, a 2-byte length of 2, level, description).
fn plain_alert(bytes: &[u8]) -> Option<AlertDescription> {
    match bytes {
        [21, 3, _, 0, 2, _level, desc, ..] => Some(AlertDescription::from(*desc)),
        _ => None,
    }
}

/// Whether a connection's first bytes are a plain-text HTTP request rather than a TLS
/// record: a TLS handshake record starts with content type 22 (RFC 8446 section 5.1)
/// (and SSLv2-style hellos with the top bit set), an HTTP/1 request with a method token
/// (RFC 9112 section 3) followed by a space. Like nginx, anything starting with an
/// uppercase letter that could still be a method is taken as HTTP: one read of "GE" is
/// enough to tell it is not TLS.
pub fn looks_like_plain_http(first_bytes: &[u8]) -> bool {
    /// Longest method looked for ("OPTIONS", "CONNECT") plus its space.
    const LOOK: usize = 8;
    let head = &first_bytes[..first_bytes.len().min(LOOK)];
    let token_len = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if token_len == 0 {
        return false;
    }
    match head.get(token_len) {
        Some(b' ') => true,
        Some(_) => false,
        // All uppercase letters so far: a method still arriving, if short enough.
        None => token_len < LOOK,
    }
}

/// The answer to a plain HTTP request on a TLS port, sent in plain text before closing
/// (nginx's 400 "The plain HTTP request was sent to HTTPS port", so a person who typed
/// `http://` sees what went wrong).
pub const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 201\r\n\
Connection: close\r\n\
\r\n\
<html>\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\n<body>\n<h1>400 Bad Request</h1>\n<p>The plain HTTP request was sent to HTTPS port: use https://.</p>\n</body>\n</html>\n";
