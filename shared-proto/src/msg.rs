//! Control messages between the supervisor and a worker, and their wire encoding.
//!
//! One message is one `SOCK_SEQPACKET` packet (the socket keeps message boundaries, so
//! there is no length prefix). Every packet starts with a 4-byte header:
//!
//! ```text
//! +--------+--------+---------+------+----------------------------+
//! | 'L'    | 'W'    | version | type | body (type-specific, LE)   |
//! +--------+--------+---------+------+----------------------------+
//! ```
//!
//! Integers are little-endian. Types `0x01..` travel supervisor → worker ([`ToWorker`]),
//! types `0x41..` worker → supervisor ([`FromWorker`]); each decoder accepts only its own
//! direction, so a message sent the wrong way is rejected as an unknown type.
//!
//! Bodies:
//! - `NewConns` (0x01): `u16 count` then per connection `u16 listener`, `u8 tag`
//!   (0 unix, 4 IPv4, 6 IPv6), then for IPv4 4 address bytes + `u16 port`, for IPv6 16
//!   address bytes + `u16 port`, for unix nothing. The connections' fds ride in the same
//!   packet's `SCM_RIGHTS`, in the same order (see [`crate::fdpass`]).
//! - `Shutdown` (0x02): `u32 grace_ms`.
//! - `Bus` (0x03 / 0x43): `u8 channel_len`, channel (UTF-8), `u16 origin`, `u64 seq`,
//!   `u32 payload_len`, payload.
//! - `TicketKeys` (0x04): `u8 count` (1..=[`MAX_TICKET_KEYS`]), then per key 16 name
//!   bytes and 32 secret bytes; the first key is the one new tickets are sealed with,
//!   the others (older) still open tickets made with them.
//! - `Hello` (0x41): `u16 index`, `u32 pid`, `u32 max_conns` (how many connections the
//!   worker can hold within its descriptor limit), `i32 ring_fd`: the number of the
//!   worker's io_uring fd in the worker, or -1. With one, new connections may be sent straight into
//!   its fixed-file table with `IORING_OP_MSG_RING` ([`crate::handoff`]); the supervisor
//!   takes the fd with pidfd_getfd(2), since Linux refuses io_uring fds in SCM_RIGHTS.
//! - `Stats` (0x42): the [`WorkerStats`] fields in declaration order, fixed size.
//!
//! The decoder is total: bad magic, version or type, truncation, bytes left over,
//! over-limit counts and lengths and non-UTF-8 channel names each give a
//! [`DecodeError`]; nothing a peer sends can make it panic or allocate more than the
//! packet's own size.

use std::fmt;

/// First two bytes of every control packet.
pub const MAGIC: [u8; 2] = *b"LW";
/// Wire version; bumped on any incompatible change. Supervisor and workers are the same
/// binary, so a mismatch means a corrupted or foreign packet, and it is rejected.
pub const VERSION: u8 = 5;
/// Magic + version + type.
pub const HEADER_LEN: usize = 4;

/// Largest control packet either side sends or accepts. Both sides receive into a buffer
/// of this size, so a packet never gets truncated; it is far below the control socket's
/// send buffer (the supervisor sets SO_SNDBUF to 1 MiB), so one message always fits in
/// an empty socket. 64 KiB keeps the receive buffer cheap while leaving room for bus
/// payloads the size of a typical WebSocket chat/mirror message.
pub const MAX_MSG_SIZE: usize = 64 * 1024;

/// Most fds one `NewConns` packet carries. The kernel allows 253 (`SCM_MAX_FD`); 64
/// amortises the per-sendmsg cost over a burst of accepts (one accept pass rarely yields
/// more) while keeping the receiver's control buffer small and fixed.
pub const MAX_FDS_PER_MSG: usize = 64;

/// Longest bus channel name in bytes: names are short identifiers ("lws-mirror-protocol"
/// and the like); bounding them keeps the fixed part of a bus message small.
pub const MAX_BUS_CHANNEL: usize = 64;

/// Bytes of a bus message outside its payload when the channel name is at its longest.
const BUS_FIXED_MAX: usize = 1 + MAX_BUS_CHANNEL + 2 + 8 + 4;

/// Largest bus payload: whatever is left of [`MAX_MSG_SIZE`] once the header and the
/// longest channel name are counted, so any valid bus message fits one packet. Larger
/// application messages are split by the bus layer above this one.
pub const MAX_BUS_PAYLOAD: usize = MAX_MSG_SIZE - HEADER_LEN - BUS_FIXED_MAX;

const T_NEW_CONNS: u8 = 0x01;
const T_SHUTDOWN: u8 = 0x02;
const T_BUS_TO: u8 = 0x03;
const T_TICKET_KEYS: u8 = 0x04;
const T_HELLO: u8 = 0x41;
const T_STATS: u8 = 0x42;
const T_BUS_FROM: u8 = 0x43;

const TAG_UNIX: u8 = 0;
const TAG_UNKNOWN: u8 = 1;
const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;

/// Encoded size of one [`WorkerStats`].
const STATS_LEN: usize = 4
    + 8
    + 8
    + 5 * 8
    + 4
    + 4 * 8
    + 3 * 8
    + 2 * 8
    + TLS_FAILURE_REASONS.len() * 8
    + 4
    + 3 * 8
    + 3 * H2_CODES * 8;

/// The reasons a TLS connection fails, as the `reason` label of
/// `lwsd_tls_handshake_failures_total` (the worker's `TlsError::reason`); a reason not
/// listed counts as `other`. Order is the wire order of [`WorkerStats::tls_failures`].
pub const TLS_FAILURE_REASONS: [&str; 17] = [
    "bad_record",
    "no_shared_cipher",
    "protocol_version",
    "incompatible",
    "no_certificate",
    "bad_certificate",
    "no_application_protocol",
    "alert_received",
    "peer_misbehaved",
    "plain_http",
    "timeout",
    "eof",
    "truncated",
    "too_large",
    "local",
    "misuse",
    "other",
];

/// HTTP/2 error codes by name (RFC 9113 section 7): index `i` is code `i` for
/// 0x0..=0xd, and the last entry, `unknown`, counts every other code (RFC 9113 section 7:
/// unknown codes must not trigger special behaviour, but they are still counted). The
/// `code` label of `lwsd_h2_streams_reset_total` and `lwsd_h2_goaway_sent_total`, and
/// the wire order of [`WorkerStats::h2_rst_rx`], `h2_rst_tx` and `h2_goaway_tx`.
pub const H2_ERROR_CODES: [&str; 15] = [
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
    "unknown",
];

/// Entries of [`H2_ERROR_CODES`] (the known codes and `unknown`).
pub const H2_CODES: usize = H2_ERROR_CODES.len();

/// Index in [`H2_ERROR_CODES`] of the HTTP/2 error code `code`.
fn h2_code_index(code: u32) -> usize {
    usize::try_from(code)
        .ok()
        .filter(|&i| i < H2_CODES - 1)
        .unwrap_or(H2_CODES - 1)
}

/// Most session-ticket keys in one `TicketKeys` message: the current key and the older
/// ones kept so tickets sealed before a rotation still open (the supervisor keeps 3).
pub const MAX_TICKET_KEYS: usize = 4;

/// One session-ticket key (TLS resumption across workers, issue 10): made by the
/// supervisor from the system's random source and given to every worker, so a ticket
/// sealed by one worker opens in any other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TicketKey {
    /// Random, public: written in front of every ticket sealed with this key, so the
    /// opener finds the key without trying each.
    pub name: [u8; 16],
    /// The AES-256-GCM key. Secret: `Debug` does not show it.
    pub secret: [u8; 32],
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Supervisor → worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToWorker {
    /// Accepted connections; their fds are in the same packet's `SCM_RIGHTS`, same order.
    /// At most [`MAX_FDS_PER_MSG`].
    NewConns(Vec<NewConn>),
    /// Finish in-flight requests, close idle connections, exit by the deadline.
    Shutdown { grace_ms: u32 },
    /// A publication relayed from a worker (possibly this one).
    Bus(BusMessage),
    /// The session-ticket keys, newest first: sent after a worker's Hello and to every
    /// worker at each rotation. 1..=[`MAX_TICKET_KEYS`] keys.
    TicketKeys(Vec<TicketKey>),
}

/// One accepted connection handed to a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConn {
    /// Index into the worker config's listener list.
    pub listener: u16,
    pub peer: PeerAddr,
}

/// The peer address of an accepted connection (port in host order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    /// Unix sockets: peers are normally unnamed; credentials come from SO_PEERCRED.
    Unix,
    /// Not looked up by the supervisor (a getpeername per connection is ~4 % of its
    /// handoff cost): the worker asks its socket when a protocol needs the address.
    Unknown,
}

/// Worker → supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one Stats message every 250 ms per worker, built and read in place: boxing it would only add an allocation"
)]
pub enum FromWorker {
    /// First message of a worker, once its loop is ready. `max_conns`: the connections
    /// it can hold within its open-files limit (the supervisor hands it no more).
    /// `ring_fd`: its io_uring's fd number (-1: none), for connections by `MSG_RING`
    /// ([`crate::handoff`]).
    Hello {
        index: u16,
        pid: u32,
        max_conns: u32,
        ring_fd: i32,
    },
    /// A snapshot, pushed every ~250 ms and on demand.
    Stats(WorkerStats),
    /// Publish to every worker; the supervisor relays in order per publisher.
    Bus(BusMessage),
}

/// A publication on the cross-worker bus (DESIGN.md section 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusMessage {
    /// At most [`MAX_BUS_CHANNEL`] bytes.
    pub channel: String,
    /// Index of the publishing worker.
    pub origin: u16,
    /// Per-publisher sequence number, so receivers can see gaps.
    pub seq: u64,
    /// At most [`MAX_BUS_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

/// A worker's counters and gauges since it started (DESIGN.md section 7). The
/// supervisor turns these into Prometheus series; counters restart at zero with a new
/// worker process and the supervisor keeps the exported series monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub live_conns: u32,
    pub accepted_total: u64,
    pub closed_total: u64,
    /// Responses by status class: index 0 is 1xx, ..., 4 is 5xx.
    pub http_requests_total: [u64; 5],
    pub ws_conns: u32,
    pub ws_msgs_rx: u64,
    pub ws_msgs_tx: u64,
    pub ws_bytes_rx: u64,
    pub ws_bytes_tx: u64,
    /// Time the event loop spent late (lws latency tracking), in nanoseconds.
    pub loop_stall_ns: u64,
    /// User + system CPU time of the worker process, in nanoseconds.
    pub cpu_ns: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Connections the worker lost receiving them: it had no descriptor left (EMFILE).
    pub conns_lost_emfile: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS connections that failed, by [`TLS_FAILURE_REASONS`] index.
    pub tls_failures: [u64; TLS_FAILURE_REASONS.len()],
    /// HTTP/2 connections open now (a gauge).
    pub h2_conns: u32,
    /// HTTP/2 connections started (prior knowledge, `Upgrade: h2c` or ALPN `h2`).
    pub h2_conns_total: u64,
    /// HTTP/2 request streams opened.
    pub h2_streams_total: u64,
    /// RFC 8441 WebSocket streams accepted.
    pub h2_websockets_total: u64,
    /// RST_STREAM frames received from peers, by [`H2_ERROR_CODES`] index.
    pub h2_rst_rx: [u64; H2_CODES],
    /// RST_STREAM frames sent, by [`H2_ERROR_CODES`] index.
    pub h2_rst_tx: [u64; H2_CODES],
    /// GOAWAY frames sent, by [`H2_ERROR_CODES`] index.
    pub h2_goaway_tx: [u64; H2_CODES],
}

impl WorkerStats {
    /// Counts a TLS failure under `reason` (`other` when it is not one of
    /// [`TLS_FAILURE_REASONS`]).
    pub fn count_tls_failure(&mut self, reason: &str) {
        let i = TLS_FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(TLS_FAILURE_REASONS.len() - 1);
        self.tls_failures[i] += 1;
    }

    /// Counts a RST_STREAM received with error `code` (codes past 0xd: `unknown`).
    pub fn count_h2_rst_rx(&mut self, code: u32) {
        self.h2_rst_rx[h2_code_index(code)] += 1;
    }

    /// Counts a RST_STREAM sent with error `code` (codes past 0xd: `unknown`).
    pub fn count_h2_rst_tx(&mut self, code: u32) {
        self.h2_rst_tx[h2_code_index(code)] += 1;
    }

    /// Counts a GOAWAY sent with error `code` (codes past 0xd: `unknown`).
    pub fn count_h2_goaway_tx(&mut self, code: u32) {
        self.h2_goaway_tx[h2_code_index(code)] += 1;
    }
}

/// Why a packet was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet ends before the message does.
    Truncated,
    /// The packet is larger than [`MAX_MSG_SIZE`].
    TooLarge(usize),
    BadMagic([u8; 2]),
    BadVersion(u8),
    /// Not a message type of this direction.
    UnknownType(u8),
    /// Bytes left after a complete message.
    TrailingBytes(usize),
    /// `NewConns` with more than [`MAX_FDS_PER_MSG`] connections.
    TooManyConns(usize),
    BadPeerTag(u8),
    /// `Hello`'s ring fd is below -1.
    BadRingFd(i32),
    /// Bus channel name longer than [`MAX_BUS_CHANNEL`].
    ChannelTooLong(usize),
    ChannelNotUtf8,
    /// Bus payload longer than [`MAX_BUS_PAYLOAD`].
    PayloadTooLarge(usize),
    /// `TicketKeys` with no key or more than [`MAX_TICKET_KEYS`].
    TicketKeyCount(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated => write!(f, "control message truncated"),
            DecodeError::TooLarge(n) => {
                write!(f, "control message of {n} bytes exceeds {MAX_MSG_SIZE}")
            }
            DecodeError::BadMagic(m) => write!(f, "bad control message magic {m:02x?}"),
            DecodeError::BadVersion(v) => {
                write!(f, "control message version {v}, expected {VERSION}")
            }
            DecodeError::UnknownType(t) => write!(f, "unknown control message type {t:#04x}"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes after control message"),
            DecodeError::TooManyConns(n) => {
                write!(f, "{n} connections in one message, limit {MAX_FDS_PER_MSG}")
            }
            DecodeError::BadPeerTag(t) => write!(f, "unknown peer address tag {t}"),
            DecodeError::BadRingFd(v) => write!(f, "hello ring fd {v}, expected -1 or more"),
            DecodeError::ChannelTooLong(n) => {
                write!(f, "bus channel of {n} bytes, limit {MAX_BUS_CHANNEL}")
            }
            DecodeError::ChannelNotUtf8 => write!(f, "bus channel is not UTF-8"),
            DecodeError::PayloadTooLarge(n) => {
                write!(f, "bus payload of {n} bytes, limit {MAX_BUS_PAYLOAD}")
            }
            DecodeError::TicketKeyCount(n) => {
                write!(f, "{n} ticket keys, expected 1 to {MAX_TICKET_KEYS}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A value that cannot be encoded because it breaks a limit of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    TooManyConns(usize),
    ChannelTooLong(usize),
    PayloadTooLarge(usize),
    TicketKeyCount(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::TooManyConns(n) => {
                write!(f, "{n} connections in one message, limit {MAX_FDS_PER_MSG}")
            }
            EncodeError::ChannelTooLong(n) => {
                write!(f, "bus channel of {n} bytes, limit {MAX_BUS_CHANNEL}")
            }
            EncodeError::PayloadTooLarge(n) => {
                write!(f, "bus payload of {n} bytes, limit {MAX_BUS_PAYLOAD}")
            }
            EncodeError::TicketKeyCount(n) => {
                write!(f, "{n} ticket keys, expected 1 to {MAX_TICKET_KEYS}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

fn header(out: &mut Vec<u8>, ty: u8) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(ty);
}

impl ToWorker {
    /// Encodes into `out`, replacing its contents (reuse one buffer to avoid allocating).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            ToWorker::NewConns(conns) => Self::encode_new_conns(conns, out),
            ToWorker::Shutdown { grace_ms } => {
                header(out, T_SHUTDOWN);
                out.extend_from_slice(&grace_ms.to_le_bytes());
                Ok(())
            }
            ToWorker::Bus(m) => m.encode(T_BUS_TO, out),
            ToWorker::TicketKeys(keys) => {
                if keys.is_empty() || keys.len() > MAX_TICKET_KEYS {
                    return Err(EncodeError::TicketKeyCount(keys.len()));
                }
                header(out, T_TICKET_KEYS);
                // Fits: checked against MAX_TICKET_KEYS (4) above.
                out.push(keys.len() as u8);
                for k in keys {
                    out.extend_from_slice(&k.name);
                    out.extend_from_slice(&k.secret);
                }
                Ok(())
            }
        }
    }

    /// Encodes a `NewConns` message from a slice, so the sender need not build a `Vec`.
    pub fn encode_new_conns(conns: &[NewConn], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if conns.len() > MAX_FDS_PER_MSG {
            return Err(EncodeError::TooManyConns(conns.len()));
        }
        header(out, T_NEW_CONNS);
        // Fits: checked against MAX_FDS_PER_MSG (64) above.
        out.extend_from_slice(&(conns.len() as u16).to_le_bytes());
        for c in conns {
            out.extend_from_slice(&c.listener.to_le_bytes());
            match c.peer {
                PeerAddr::Unix => out.push(TAG_UNIX),
                PeerAddr::Unknown => out.push(TAG_UNKNOWN),
                PeerAddr::V4(a, port) => {
                    out.push(TAG_V4);
                    out.extend_from_slice(&a);
                    out.extend_from_slice(&port.to_le_bytes());
                }
                PeerAddr::V6(a, port) => {
                    out.push(TAG_V6);
                    out.extend_from_slice(&a);
                    out.extend_from_slice(&port.to_le_bytes());
                }
            }
        }
        Ok(())
    }

    /// Decodes one packet. Messages of the other direction are [`DecodeError::UnknownType`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (ty, mut r) = Reader::open(buf)?;
        let msg = match ty {
            T_NEW_CONNS => {
                let n = usize::from(r.u16()?);
                if n > MAX_FDS_PER_MSG {
                    return Err(DecodeError::TooManyConns(n));
                }
                let mut conns = Vec::with_capacity(n);
                for _ in 0..n {
                    let listener = r.u16()?;
                    let peer = match r.u8()? {
                        TAG_UNIX => PeerAddr::Unix,
                        TAG_UNKNOWN => PeerAddr::Unknown,
                        TAG_V4 => PeerAddr::V4(*r.array::<4>()?, r.u16()?),
                        TAG_V6 => PeerAddr::V6(*r.array::<16>()?, r.u16()?),
                        t => return Err(DecodeError::BadPeerTag(t)),
                    };
                    conns.push(NewConn { listener, peer });
                }
                ToWorker::NewConns(conns)
            }
            T_SHUTDOWN => ToWorker::Shutdown { grace_ms: r.u32()? },
            T_BUS_TO => ToWorker::Bus(BusMessage::decode_body(&mut r)?),
            T_TICKET_KEYS => {
                let n = usize::from(r.u8()?);
                if n == 0 || n > MAX_TICKET_KEYS {
                    return Err(DecodeError::TicketKeyCount(n));
                }
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(TicketKey {
                        name: *r.array()?,
                        secret: *r.array()?,
                    });
                }
                ToWorker::TicketKeys(keys)
            }
            t => return Err(DecodeError::UnknownType(t)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl FromWorker {
    /// Encodes into `out`, replacing its contents.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            FromWorker::Hello {
                index,
                pid,
                max_conns,
                ring_fd,
            } => {
                header(out, T_HELLO);
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&pid.to_le_bytes());
                out.extend_from_slice(&max_conns.to_le_bytes());
                out.extend_from_slice(&ring_fd.to_le_bytes());
                Ok(())
            }
            FromWorker::Stats(s) => {
                header(out, T_STATS);
                out.reserve(STATS_LEN);
                out.extend_from_slice(&s.live_conns.to_le_bytes());
                out.extend_from_slice(&s.accepted_total.to_le_bytes());
                out.extend_from_slice(&s.closed_total.to_le_bytes());
                for v in s.http_requests_total {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&s.ws_conns.to_le_bytes());
                for v in [
                    s.ws_msgs_rx,
                    s.ws_msgs_tx,
                    s.ws_bytes_rx,
                    s.ws_bytes_tx,
                    s.loop_stall_ns,
                    s.cpu_ns,
                    s.rss_bytes,
                    s.conns_lost_emfile,
                    s.tls_handshakes,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                for v in s.tls_failures {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&s.h2_conns.to_le_bytes());
                for v in [s.h2_conns_total, s.h2_streams_total, s.h2_websockets_total] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                for v in s
                    .h2_rst_rx
                    .iter()
                    .chain(&s.h2_rst_tx)
                    .chain(&s.h2_goaway_tx)
                {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            FromWorker::Bus(m) => m.encode(T_BUS_FROM, out),
        }
    }

    /// Decodes one packet. Messages of the other direction are [`DecodeError::UnknownType`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (ty, mut r) = Reader::open(buf)?;
        let msg = match ty {
            T_HELLO => FromWorker::Hello {
                index: r.u16()?,
                pid: r.u32()?,
                max_conns: r.u32()?,
                ring_fd: match r.u32()? as i32 {
                    fd if fd >= -1 => fd,
                    fd => return Err(DecodeError::BadRingFd(fd)),
                },
            },
            T_STATS => {
                let live_conns = r.u32()?;
                let accepted_total = r.u64()?;
                let closed_total = r.u64()?;
                let http_requests_total = r.u64s()?;
                FromWorker::Stats(WorkerStats {
                    live_conns,
                    accepted_total,
                    closed_total,
                    http_requests_total,
                    ws_conns: r.u32()?,
                    ws_msgs_rx: r.u64()?,
                    ws_msgs_tx: r.u64()?,
                    ws_bytes_rx: r.u64()?,
                    ws_bytes_tx: r.u64()?,
                    loop_stall_ns: r.u64()?,
                    cpu_ns: r.u64()?,
                    rss_bytes: r.u64()?,
                    conns_lost_emfile: r.u64()?,
                    tls_handshakes: r.u64()?,
                    tls_failures: r.u64s()?,
                    h2_conns: r.u32()?,
                    h2_conns_total: r.u64()?,
                    h2_streams_total: r.u64()?,
                    h2_websockets_total: r.u64()?,
                    h2_rst_rx: r.u64s()?,
                    h2_rst_tx: r.u64s()?,
                    h2_goaway_tx: r.u64s()?,
                })
            }
            T_BUS_FROM => FromWorker::Bus(BusMessage::decode_body(&mut r)?),
            t => return Err(DecodeError::UnknownType(t)),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl BusMessage {
    fn encode(&self, ty: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ch = self.channel.as_bytes();
        if ch.len() > MAX_BUS_CHANNEL {
            return Err(EncodeError::ChannelTooLong(ch.len()));
        }
        if self.payload.len() > MAX_BUS_PAYLOAD {
            return Err(EncodeError::PayloadTooLarge(self.payload.len()));
        }
        header(out, ty);
        out.reserve(BUS_FIXED_MAX + self.payload.len());
        // Both casts fit: checked against MAX_BUS_CHANNEL and MAX_BUS_PAYLOAD above.
        out.push(ch.len() as u8);
        out.extend_from_slice(ch);
        out.extend_from_slice(&self.origin.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ch_len = usize::from(r.u8()?);
        if ch_len > MAX_BUS_CHANNEL {
            return Err(DecodeError::ChannelTooLong(ch_len));
        }
        let channel = std::str::from_utf8(r.take(ch_len)?)
            .map_err(|_| DecodeError::ChannelNotUtf8)?
            .to_owned();
        let origin = r.u16()?;
        let seq = r.u64()?;
        let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if len > MAX_BUS_PAYLOAD {
            return Err(DecodeError::PayloadTooLarge(len));
        }
        let payload = r.take(len)?.to_vec();
        Ok(BusMessage {
            channel,
            origin,
            seq,
            payload,
        })
    }
}

/// A cursor over a packet; every read is bounds-checked and fails with `Truncated`.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks size and header; returns the message type and a reader over the body.
    fn open(buf: &'a [u8]) -> Result<(u8, Self), DecodeError> {
        if buf.len() > MAX_MSG_SIZE {
            return Err(DecodeError::TooLarge(buf.len()));
        }
        let Some((hdr, body)) = buf.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated);
        };
        let [m0, m1, version, ty] = *hdr;
        if [m0, m1] != MAGIC {
            return Err(DecodeError::BadMagic([m0, m1]));
        }
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        Ok((ty, Reader { buf: body }))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], DecodeError> {
        let (a, b) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(*self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(*self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(*self.array()?))
    }

    fn u64s<const N: usize>(&mut self) -> Result<[u64; N], DecodeError> {
        let mut a = [0u64; N];
        for v in &mut a {
            *v = self.u64()?;
        }
        Ok(a)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt_to(m: ToWorker) {
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        assert!(buf.len() <= MAX_MSG_SIZE);
        assert_eq!(ToWorker::decode(&buf).unwrap(), m);
        // Every strict prefix is truncated, never a panic or a different message.
        for cut in 0..buf.len() {
            assert_eq!(
                ToWorker::decode(&buf[..cut]),
                Err(DecodeError::Truncated),
                "cut {cut}"
            );
        }
        buf.push(0);
        let want = if buf.len() > MAX_MSG_SIZE {
            DecodeError::TooLarge(buf.len())
        } else {
            DecodeError::TrailingBytes(1)
        };
        assert_eq!(ToWorker::decode(&buf), Err(want));
    }

    fn rt_from(m: FromWorker) {
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        assert!(buf.len() <= MAX_MSG_SIZE);
        assert_eq!(FromWorker::decode(&buf).unwrap(), m);
        for cut in 0..buf.len() {
            assert_eq!(FromWorker::decode(&buf[..cut]), Err(DecodeError::Truncated));
        }
        buf.extend_from_slice(&[1, 2, 3]);
        let want = if buf.len() > MAX_MSG_SIZE {
            DecodeError::TooLarge(buf.len())
        } else {
            DecodeError::TrailingBytes(3)
        };
        assert_eq!(FromWorker::decode(&buf), Err(want));
    }

    fn conn(i: usize) -> NewConn {
        let peer = match i % 4 {
            0 => PeerAddr::V4([127, 0, 0, i as u8], u16::MAX - i as u16),
            1 => PeerAddr::V6([0xff; 16], 0),
            2 => PeerAddr::Unknown,
            _ => PeerAddr::Unix,
        };
        NewConn {
            listener: if i.is_multiple_of(2) { 0 } else { u16::MAX },
            peer,
        }
    }

    #[test]
    fn new_conns_round_trip() {
        rt_to(ToWorker::NewConns(Vec::new()));
        rt_to(ToWorker::NewConns(vec![conn(0)]));
        rt_to(ToWorker::NewConns(vec![conn(1)]));
        rt_to(ToWorker::NewConns(vec![conn(2)]));
        rt_to(ToWorker::NewConns(vec![conn(3)]));
        rt_to(ToWorker::NewConns((0..MAX_FDS_PER_MSG).map(conn).collect()));
    }

    #[test]
    fn new_conns_limit() {
        let conns: Vec<_> = (0..=MAX_FDS_PER_MSG).map(conn).collect();
        let mut buf = Vec::new();
        assert_eq!(
            ToWorker::NewConns(conns).encode(&mut buf),
            Err(EncodeError::TooManyConns(MAX_FDS_PER_MSG + 1))
        );
        // A hand-made packet claiming 65 connections is refused before reading them.
        let pkt = [b'L', b'W', VERSION, T_NEW_CONNS, 65, 0];
        assert_eq!(ToWorker::decode(&pkt), Err(DecodeError::TooManyConns(65)));
        let pkt = [b'L', b'W', VERSION, T_NEW_CONNS, 0xff, 0xff];
        assert_eq!(
            ToWorker::decode(&pkt),
            Err(DecodeError::TooManyConns(65535))
        );
    }

    #[test]
    fn hello_ring_fd_is_minus_1_or_more() {
        let mut buf = Vec::new();
        FromWorker::Hello {
            index: 1,
            pid: 2,
            max_conns: 3,
            ring_fd: 7,
        }
        .encode(&mut buf)
        .unwrap();
        let n = buf.len();
        assert_eq!(buf[n - 4..], 7i32.to_le_bytes());
        buf[n - 4..].copy_from_slice(&(-2i32).to_le_bytes());
        assert_eq!(FromWorker::decode(&buf), Err(DecodeError::BadRingFd(-2)));
        buf.pop();
        assert_eq!(FromWorker::decode(&buf), Err(DecodeError::Truncated));
    }

    #[test]
    fn new_conns_wire_layout() {
        let mut buf = Vec::new();
        ToWorker::encode_new_conns(
            &[NewConn {
                listener: 2,
                peer: PeerAddr::V4([10, 0, 0, 1], 0x1234),
            }],
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            buf,
            [
                b'L', b'W', VERSION, 0x01, 1, 0, 2, 0, 4, 10, 0, 0, 1, 0x34, 0x12
            ]
        );
    }

    #[test]
    fn bad_peer_tag() {
        let pkt = [b'L', b'W', VERSION, T_NEW_CONNS, 1, 0, 0, 0, 5];
        assert_eq!(ToWorker::decode(&pkt), Err(DecodeError::BadPeerTag(5)));
    }

    #[test]
    fn shutdown_round_trip() {
        rt_to(ToWorker::Shutdown { grace_ms: 0 });
        rt_to(ToWorker::Shutdown { grace_ms: u32::MAX });
    }

    fn bus(channel_len: usize, payload_len: usize) -> BusMessage {
        BusMessage {
            channel: "é".repeat(channel_len / 2) + &"c".repeat(channel_len % 2),
            origin: u16::MAX,
            seq: u64::MAX,
            payload: vec![0xa5; payload_len],
        }
    }

    #[test]
    fn bus_round_trip_and_extremes() {
        for (c, p) in [(0, 0), (1, 1), (MAX_BUS_CHANNEL, MAX_BUS_PAYLOAD)] {
            rt_to(ToWorker::Bus(bus(c, p)));
            rt_from(FromWorker::Bus(bus(c, p)));
        }
        // The largest bus message is exactly the largest packet.
        let mut buf = Vec::new();
        ToWorker::Bus(bus(MAX_BUS_CHANNEL, MAX_BUS_PAYLOAD))
            .encode(&mut buf)
            .unwrap();
        assert_eq!(buf.len(), MAX_MSG_SIZE);
    }

    #[test]
    fn bus_limits() {
        let mut buf = Vec::new();
        assert_eq!(
            ToWorker::Bus(bus(MAX_BUS_CHANNEL + 1, 0)).encode(&mut buf),
            Err(EncodeError::ChannelTooLong(MAX_BUS_CHANNEL + 1))
        );
        assert_eq!(
            FromWorker::Bus(bus(0, MAX_BUS_PAYLOAD + 1)).encode(&mut buf),
            Err(EncodeError::PayloadTooLarge(MAX_BUS_PAYLOAD + 1))
        );
        let long = [b'L', b'W', VERSION, T_BUS_TO, 65];
        assert_eq!(
            ToWorker::decode(&long),
            Err(DecodeError::ChannelTooLong(65))
        );
        let mut big = vec![b'L', b'W', VERSION, T_BUS_FROM, 0, 0, 0];
        big.extend_from_slice(&0u64.to_le_bytes());
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            FromWorker::decode(&big),
            Err(DecodeError::PayloadTooLarge(u32::MAX as usize))
        );
        let bad_utf8 = [b'L', b'W', VERSION, T_BUS_TO, 1, 0xff];
        assert_eq!(
            ToWorker::decode(&bad_utf8),
            Err(DecodeError::ChannelNotUtf8)
        );
    }

    #[test]
    fn hello_and_stats_round_trip() {
        rt_from(FromWorker::Hello {
            index: 0,
            pid: 0,
            max_conns: 0,
            ring_fd: -1,
        });
        rt_from(FromWorker::Hello {
            index: u16::MAX,
            pid: u32::MAX,
            max_conns: u32::MAX,
            ring_fd: i32::MAX,
        });
        rt_from(FromWorker::Stats(WorkerStats::default()));
        let max = WorkerStats {
            live_conns: u32::MAX,
            accepted_total: u64::MAX,
            closed_total: u64::MAX - 1,
            http_requests_total: [1, 2, 3, 4, u64::MAX],
            ws_conns: u32::MAX - 1,
            ws_msgs_rx: 5,
            ws_msgs_tx: 6,
            ws_bytes_rx: 7,
            ws_bytes_tx: 8,
            loop_stall_ns: 9,
            cpu_ns: 10,
            rss_bytes: u64::MAX,
            conns_lost_emfile: 12,
            tls_handshakes: 11,
            tls_failures: std::array::from_fn(|i| 100 + i as u64),
            h2_conns: u32::MAX - 2,
            h2_conns_total: 13,
            h2_streams_total: u64::MAX - 2,
            h2_websockets_total: 14,
            h2_rst_rx: std::array::from_fn(|i| 200 + i as u64),
            h2_rst_tx: std::array::from_fn(|i| 300 + i as u64),
            h2_goaway_tx: std::array::from_fn(|i| 400 + i as u64),
        };
        rt_from(FromWorker::Stats(max));
        let mut buf = Vec::new();
        FromWorker::Stats(max).encode(&mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + STATS_LEN);
        // The h2 figures close the message, in declaration order: the gauge, the three
        // totals, then the RST received, RST sent and GOAWAY sent arrays.
        let h2 = &buf[buf.len() - (4 + 3 * 8 + 3 * H2_CODES * 8)..];
        assert_eq!(h2[..4], (u32::MAX - 2).to_le_bytes());
        assert_eq!(h2[4..12], 13u64.to_le_bytes());
        assert_eq!(h2[28..36], 200u64.to_le_bytes());
        assert_eq!(h2[28 + H2_CODES * 8..][..8], 300u64.to_le_bytes());
        assert_eq!(
            h2[h2.len() - 8..],
            (400 + H2_CODES as u64 - 1).to_le_bytes()
        );
    }

    #[test]
    fn h2_error_codes_are_counted_by_name() {
        // RFC 9113 section 7: the names of codes 0x0..=0xd, in code order.
        assert_eq!(H2_ERROR_CODES[0x8], "CANCEL");
        assert_eq!(H2_ERROR_CODES[0xb], "ENHANCE_YOUR_CALM");
        assert_eq!(H2_ERROR_CODES[0xd], "HTTP_1_1_REQUIRED");
        let mut s = WorkerStats::default();
        s.count_h2_rst_rx(0x8);
        s.count_h2_rst_rx(0x8);
        s.count_h2_rst_tx(0x7);
        s.count_h2_goaway_tx(0x0);
        s.count_h2_goaway_tx(0xb);
        // Codes past 0xd (RFC 9113 section 7: unknown codes are not an error) count as
        // `unknown`.
        for code in [0xe, 0x100, u32::MAX] {
            s.count_h2_rst_rx(code);
            s.count_h2_rst_tx(code);
            s.count_h2_goaway_tx(code);
        }
        let unknown = H2_CODES - 1;
        assert_eq!(H2_ERROR_CODES[unknown], "unknown");
        let nonzero = |a: [u64; H2_CODES]| {
            a.iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(|(i, v)| (H2_ERROR_CODES[i], *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(nonzero(s.h2_rst_rx), [("CANCEL", 2), ("unknown", 3)]);
        assert_eq!(
            nonzero(s.h2_rst_tx),
            [("REFUSED_STREAM", 1), ("unknown", 3)]
        );
        assert_eq!(
            nonzero(s.h2_goaway_tx),
            [("NO_ERROR", 1), ("ENHANCE_YOUR_CALM", 1), ("unknown", 3)]
        );
    }

    #[test]
    fn header_rejections() {
        let mut buf = Vec::new();
        ToWorker::Shutdown { grace_ms: 5 }.encode(&mut buf).unwrap();
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert_eq!(
            ToWorker::decode(&bad),
            Err(DecodeError::BadMagic([b'X', b'W']))
        );
        let mut bad = buf.clone();
        bad[2] = VERSION + 1;
        assert_eq!(
            ToWorker::decode(&bad),
            Err(DecodeError::BadVersion(VERSION + 1))
        );
        // Direction is part of the type: a supervisor message is unknown to the worker
        // decoder of the other direction and vice versa.
        assert_eq!(
            FromWorker::decode(&buf),
            Err(DecodeError::UnknownType(T_SHUTDOWN))
        );
        let mut hello = Vec::new();
        FromWorker::Hello {
            index: 1,
            pid: 2,
            max_conns: 3,
            ring_fd: -1,
        }
        .encode(&mut hello)
        .unwrap();
        assert_eq!(
            ToWorker::decode(&hello),
            Err(DecodeError::UnknownType(T_HELLO))
        );
        assert_eq!(ToWorker::decode(&[]), Err(DecodeError::Truncated));
        let huge = vec![0u8; MAX_MSG_SIZE + 1];
        assert_eq!(
            ToWorker::decode(&huge),
            Err(DecodeError::TooLarge(MAX_MSG_SIZE + 1))
        );
    }

    fn ticket_key(i: u8) -> TicketKey {
        TicketKey {
            name: [i; 16],
            secret: std::array::from_fn(|j| i ^ j as u8),
        }
    }

    #[test]
    fn ticket_keys_round_trip_and_limits() {
        rt_to(ToWorker::TicketKeys(vec![ticket_key(1)]));
        rt_to(ToWorker::TicketKeys(
            (0..MAX_TICKET_KEYS as u8).map(ticket_key).collect(),
        ));
        let mut buf = Vec::new();
        ToWorker::TicketKeys(vec![ticket_key(7), ticket_key(8)])
            .encode(&mut buf)
            .unwrap();
        // Header, count, then name and secret of each key in order (newest first).
        assert_eq!(buf[..5], [b'L', b'W', VERSION, T_TICKET_KEYS, 2]);
        assert_eq!(buf.len(), HEADER_LEN + 1 + 2 * 48);
        assert_eq!(buf[5..21], [7; 16]);
        assert_eq!(buf[53..69], [8; 16]);
        for n in [0, MAX_TICKET_KEYS + 1] {
            assert_eq!(
                ToWorker::TicketKeys((0..n as u8).map(ticket_key).collect()).encode(&mut buf),
                Err(EncodeError::TicketKeyCount(n))
            );
        }
        let pkt = [b'L', b'W', VERSION, T_TICKET_KEYS, 0];
        assert_eq!(ToWorker::decode(&pkt), Err(DecodeError::TicketKeyCount(0)));
        let pkt = [b'L', b'W', VERSION, T_TICKET_KEYS, 5];
        assert_eq!(ToWorker::decode(&pkt), Err(DecodeError::TicketKeyCount(5)));
        // Workers never send keys: the supervisor's decoder does not know the type.
        assert_eq!(
            FromWorker::decode(&buf[..HEADER_LEN]),
            Err(DecodeError::UnknownType(T_TICKET_KEYS))
        );
        // The secret never reaches a log line.
        let shown = format!("{:?}", ticket_key(0x5a));
        assert!(!shown.contains(&format!("{:?}", ticket_key(0x5a).secret)));
        assert!(shown.contains("name"));
    }

    #[test]
    fn encode_replaces_buffer_contents() {
        let mut buf = vec![9; 100];
        ToWorker::Shutdown { grace_ms: 1 }.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 4);
    }
}
