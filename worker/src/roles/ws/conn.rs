//! [`WsConn`]: one WebSocket connection after the opening handshake, server or client
//! side, sans-IO (RFC 6455 sections 5, 6, 7 and 8).
//!
//! ```text
//!            close() sends Close                 peer's Close arrives
//!   Open ─────────────────────────▶ CloseSent ─────────────────────────▶ Closed
//!    │                                  │  close_deadline passes: Hangup
//!    │ peer's Close arrives: echo it (7.1.5, 5.5.1)                        ▲
//!    ├─────────────────────────────────────────────────────────────────────┤
//!    │ peer breaks the protocol: send Close 1002/1007/1009 (7.1.7)         │
//!    └─────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Receiving: the caller hands each received buffer to [`WsConn::process`] (or the
//! callback form [`WsConn::feed`]). Payload bytes are unmasked in place and delivered as
//! [`DataChunk`]s pointing into that buffer, like lws' receive callback: a frame split
//! across reads arrives in pieces and is never copied or reassembled. Only a frame
//! *header* cut by a read is kept (at most [`MAX_HEADER_LEN`] bytes), and a control
//! frame's payload (at most 125 bytes) is collected so a ping can be answered.
//! [`MessageAssembler`](super::MessageAssembler) rebuilds whole messages for protocols
//! that want them.
//!
//! Sending: frames are `Bytes` (header, then payload, never joined for a server). Every
//! entry point that produces output comes in two forms: `xxx_into(.., out)` appends the
//! frames to the caller's sink (the service loop passes the connection's output queue),
//! and `xxx(..)` queues them inside the connection for [`WsConn::poll_transmit`] (for
//! clients and tests). Pongs and close replies go the same way, in order.
//!
//! Memory: a connection is 80 bytes and an idle server connection holds no heap at all
//! (measured in `tests/ws_memory.rs`). What only some moments need lives out of line
//! and is allocated while it is used: a frame header or control payload cut by a read
//! boundary and the internal queue in one box freed as soon as they are empty (a control
//! frame that arrives whole is answered from the input, no copy), permessage-deflate
//! state in another, allocated only when negotiated. Timer settings are kept as `u32`
//! milliseconds, and one timestamp serves the keepalive, the pong deadline and the close
//! deadline, which are never needed at the same time.
//!
//! Time: every entry point that needs it takes `now` in milliseconds; the caller arms a
//! timer for [`WsConn::next_deadline`] and calls [`WsConn::on_timer`] when it fires.
//!
//! permessage-deflate (RFC 7692), when the handshake negotiated it and the caller
//! installed a [`Pmd`] with [`WsConn::set_compression`]:
//!
//! - Receiving (RFC 7692 6.1, 6.2): RSV1 on the first frame of a Text/Binary message
//!   marks the message compressed; RSV1 on a continuation or control frame, or with no
//!   extension negotiated, fails the connection with 1002 (RFC 6455 5.2). A compressed
//!   message's payload is unmasked in place, inflated at most
//!   [`MAX_INFLATE_INPUT_STEP`] wire bytes at a time into one internal buffer, and
//!   delivered from there; uncompressed messages keep the in-place, no-copy path. The
//!   configured maximum message size bounds the *inflated* size (1009 as soon as it is
//!   passed, before the buffer grows past it); UTF-8 validation (RFC 6455 8.1) applies
//!   to the inflated text. Corrupt DEFLATE data fails with [`PmdError::close_code`]
//!   (1007, see `deflate.rs`). A step whose input inflates to nothing delivers nothing
//!   (except the message's last chunk, so `last` is always reported).
//! - Sending (RFC 7692 6.1 lets every message choose; lwsd compresses them all): every
//!   data message is compressed and its first frame carries RSV1. libwebsockets (4.1.6)
//!   compresses every message once deflate is agreed and its client cannot take an
//!   uncompressed one then (its receive loop spins; `tests/lws_interop.rs`), and a
//!   tiny message costs little (`bench/RESULTS.md`, "permessage-deflate on tiny
//!   messages"). A whole message ([`WsConn::send`]) becomes one frame; a fragmented one
//!   ([`WsConn::send_frame`]) is compressed fragment by fragment, each ended by a sync
//!   flush so it leaves at once. A [`SharedFrame`] goes as its compressed encoding,
//!   made once without context and shared by every deflate connection, so a broadcast
//!   still costs one deflate, not one per recipient (the connection's own compressor
//!   then forgets its history, which the peer's window no longer matches).
//! - Idle memory: [`WsConn::release_idle_memory`] frees the inflate buffer and the
//!   streams that carry no context between messages (no context takeover), for the
//!   service loop to call from its idle timer.
//!
//! [`Pmd`]: super::deflate::Pmd
//! [`PmdError::close_code`]: super::deflate::PmdError::close_code

use std::collections::VecDeque;
use std::num::NonZeroU64;

use bytes::{Bytes, BytesMut};

use super::close::{code, parse_close_body};
use super::deflate::{Pmd, PmdError};
use super::frame::{
    DataKind, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode, Parsed, RSV1, SharedFrame, encode_close,
    encode_header, encode_ping, encode_pong, parse_header,
};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::{Side, UsageError, WsError};

/// Default largest message accepted: 16 MiB, lws' and tungstenite's order of magnitude.
/// A protocol that assembles whole messages holds this much per connection at worst.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 16 << 20;
/// Default idle time before a keepalive PING: lws' `ws_ping_pong_interval` default of
/// 5 minutes keeps NAT and proxy mappings alive without measurable traffic.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 300_000;
/// Default wait for any frame after a keepalive PING before the peer is declared gone:
/// 10 s covers a congested mobile round trip many times over.
pub const DEFAULT_PONG_TIMEOUT_MS: u64 = 10_000;
/// Default wait for the peer's Close after we sent ours (section 7.1.1 leaves it to the
/// implementation): 5 s, as lws' close-ack timeout.
pub const DEFAULT_CLOSE_TIMEOUT_MS: u64 = 5_000;
/// Frames queued for sending before [`WsConn::process`] stops reading and reports
/// [`Event::Blocked`]. Every ping must be answered (Autobahn 2.10/2.11), so a peer that
/// sends pings faster than it reads pongs would otherwise grow the queue without bound;
/// 64 entries hold at most ~8 KiB of pongs (64 * 127 bytes).
pub const MAX_QUEUED_OUTPUT: usize = 64;
/// Wire bytes of a compressed message inflated per step. DEFLATE expands at most
/// 1032:1 (258-byte matches in 2 bits, zlib's documented maximum), so one step inflates
/// to at most ~4.1 MiB whatever the configured maximum message size is (the smaller of
/// the two bounds the inflate buffer). 4 KiB keeps that transient peak bounded while a
/// typical step (JSON, text: 3..10:1) still yields 12..40 KiB per delivered chunk, so
/// the per-step call overhead stays small against the inflate work.
pub const MAX_INFLATE_INPUT_STEP: usize = 4096;
/// The inflate buffer is kept between messages only up to this capacity, so one large
/// message does not pin megabytes to an idle connection; 64 KiB holds the output of a
/// typical step with room to spare.
pub const INFLATE_BUF_KEEP: usize = 64 << 10;

/// RFC 7692 6.1 / RFC 6455 5.2: RSV1 is meaningful only on a message's first frame.
const RSV1_CONTINUATION: WsError = WsError {
    code: code::PROTOCOL_ERROR,
    reason: "RSV1 on a continuation frame",
};
/// RFC 7692 6.1: permessage-deflate does not apply to control frames.
const RSV1_CONTROL: WsError = WsError {
    code: code::PROTOCOL_ERROR,
    reason: "RSV1 on a control frame",
};

/// RFC 7692 section 8: a message that fails to inflate fails the connection, with the
/// code `PmdError::close_code` chooses (1009 too big, 1007 corrupt).
fn pmd_error(e: PmdError) -> WsError {
    WsError {
        code: e.close_code(),
        reason: match e {
            PmdError::TooBig => "inflated message too big",
            PmdError::Corrupt => "invalid compressed data",
        },
    }
}

/// Largest wire size of a compressed message whose inflated size is at most `max`.
/// Encoders do not always fall back to stored blocks on incompressible data: coded
/// with the fixed Huffman code (RFC 1951 3.2.6) every literal 144..=255 takes 9 bits,
/// so a message can grow to 9/8 of its size (zlib-rs at level 1 does this: +5.5% on
/// random bytes, measured in `pmd_tests.rs`), plus block headers and the flush.
/// `max / 8 + 64` covers both; a sane encoder never needs more for a message that
/// inflates to a legal size.
fn compressed_wire_limit(max: u64) -> u64 {
    max.saturating_add(max / 8).saturating_add(64)
}

/// Per-connection limits and timers. Every field has a default (see the constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest message (sum of its frames' payloads) accepted; a frame header that
    /// would take the message past it fails the connection with 1009 at once (before
    /// the payload arrives). Non-zero by type: an "unlimited" setting is deliberately not
    /// offered, because it is the only bound on what [`MessageAssembler`] buffers and on
    /// what a peer can make a streaming consumer process as one message; use a large
    /// value (up to `u64::MAX`) for a protocol that streams and truly wants no limit.
    ///
    /// [`MessageAssembler`]: super::MessageAssembler
    pub max_message_size: NonZeroU64,
    /// Idle time (no bytes from the peer) before a PING is sent; `None` disables
    /// keepalive pings.
    pub ping_interval_ms: Option<u64>,
    /// Time to wait for any traffic after a keepalive PING before [`Action::Hangup`].
    pub pong_timeout_ms: u64,
    /// Time to wait for the peer's Close after [`WsConn::close`] before [`Action::Hangup`].
    pub close_timeout_ms: u64,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: NonZeroU64::new(DEFAULT_MAX_MESSAGE_SIZE).unwrap_or(NonZeroU64::MIN),
            ping_interval_ms: Some(DEFAULT_PING_INTERVAL_MS),
            pong_timeout_ms: DEFAULT_PONG_TIMEOUT_MS,
            close_timeout_ms: DEFAULT_CLOSE_TIMEOUT_MS,
        }
    }
}

/// Where the closing handshake is (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsState {
    /// Data flows both ways.
    Open,
    /// We sent a Close and wait for the peer's; received data is dropped.
    CloseSent,
    /// The closing handshake is over (or the connection failed): flush the output,
    /// then close the TCP connection. Further input is ignored.
    Closed,
}

/// A piece of a data message, pointing into the caller's receive buffer (unmasked).
#[derive(Debug, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub payload: &'a [u8],
    /// First chunk of a message.
    pub first: bool,
    /// Final chunk of the message's final fragment.
    pub last: bool,
    /// The message is binary (else text, whose bytes are valid UTF-8 so far; a chunk may
    /// end inside a code point that the next chunk completes).
    pub binary: bool,
    /// Payload bytes of the current frame still to come (lws'
    /// `lws_remaining_packet_payload`).
    pub remaining: u64,
}

/// The peer's Close (section 5.5.1), already validated and answered.
#[derive(Debug, PartialEq, Eq)]
pub struct CloseInfo<'a> {
    /// `None` when the Close had no body (reported as 1005 in APIs, section 7.1.5).
    pub code: Option<u16>,
    pub reason: &'a str,
}

/// What [`WsConn::process`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Data(DataChunk<'a>),
    /// A PONG arrived (the payload; keepalive bookkeeping is already done).
    Pong(&'a [u8]),
    /// The peer closed; the reply (if due) is queued and the state is
    /// [`WsState::Closed`].
    Close(CloseInfo<'a>),
    /// [`MAX_QUEUED_OUTPUT`] frames wait to be sent: send them (poll_transmit) before
    /// passing the unconsumed rest of the input again. Reading stops meanwhile, so TCP
    /// backpressure reaches a peer that does not read its pongs.
    Blocked,
}

/// Result of one [`WsConn::process`] call.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Input bytes used; pass the rest again after handling `event`.
    pub consumed: usize,
    /// `None` once all the input is consumed (a cut header is kept internally).
    pub event: Option<Event<'a>>,
}

/// Result of [`WsConn::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    pub consumed: usize,
    /// Stopped at [`Event::Blocked`]: drain the output, then feed `input[consumed..]`.
    pub blocked: bool,
}

/// What the caller must do after [`WsConn::on_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do yet.
    Idle,
    /// Output was queued (a keepalive PING): send it.
    Write,
    /// The peer is gone (no answer to a PING, or no Close reply in time): close TCP.
    Hangup,
}

/// The frame whose payload is being received. 16 bytes: an unmasked frame (server to
/// client, section 5.1) carries the all-zero mask, for which unmasking is the identity.
#[derive(Debug, Clone, Copy)]
struct RxFrame {
    remaining: u64,
    mask: [u8; 4],
    opcode: Opcode,
    fin: bool,
    /// The frame belongs to a compressed message (RFC 7692 6.2).
    compressed: bool,
    /// Offset in the payload modulo 4, for unmasking a payload split across reads.
    phase: u8,
}

/// The data message being received (possibly over several fragments, section 5.4).
/// 16 bytes.
#[derive(Debug)]
struct RxMsg {
    /// Wire payload bytes so far (compressed bytes for a compressed message).
    total: u64,
    utf8: Utf8Validator,
    binary: bool,
    /// RSV1 was set on its first frame (RFC 7692 6.1): the payload is DEFLATE data.
    compressed: bool,
    /// A chunk of it was delivered already (so the next is not `first`).
    delivered: bool,
}

/// State an idle server connection does not need, allocated only while it is used and
/// freed as soon as it is not (see [`WsConn::tidy`]): a frame header or a control
/// frame's payload cut by a read boundary, the frames queued by the queueing API, and a
/// client's masking-key generator (kept for a client's whole life).
#[derive(Debug)]
struct Cold {
    /// A header cut by a read boundary.
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    /// The payload of a control frame cut by a read boundary (section 5.5: <= 125
    /// bytes). A control frame whose payload arrives whole is used in place instead.
    ctl: [u8; MAX_CONTROL_PAYLOAD],
    ctl_len: u8,
    /// Frames queued by the queueing API ([`WsConn::process`], [`WsConn::send`], ...;
    /// taken with [`WsConn::poll_transmit`] / [`WsConn::drain_output`]). The `_into`
    /// API writes to the caller's sink and never touches it.
    out: VecDeque<Bytes>,
    /// splitmix64 state for client masking keys.
    mask_state: u64,
}

impl Cold {
    fn new() -> Box<Cold> {
        Box::new(Cold {
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            ctl: [0; MAX_CONTROL_PAYLOAD],
            ctl_len: 0,
            out: VecDeque::new(),
            mask_state: 0,
        })
    }
}

/// permessage-deflate state (RFC 7692), allocated only when the handshake negotiated it.
#[derive(Debug)]
struct Deflate {
    pmd: Pmd,
    /// Inflated bytes of the current step of a compressed message, delivered from
    /// here: at most `min(max_message_size + 1, 1032 * MAX_INFLATE_INPUT_STEP + 258)`
    /// bytes (its capacity may be up to twice that, from geometric growth).
    inflated: Vec<u8>,
}

/// Where the bytes a [`Step`] indexes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// The caller's input buffer (unmasked in place).
    Input,
    /// The inflate buffer.
    Inflated,
    /// The cold control-payload buffer.
    Ctl,
}

/// One step of the receive loop; indices rather than borrows so the loop can mutate.
enum Step {
    Continue,
    NeedInput,
    Blocked,
    Data {
        src: Src,
        start: usize,
        end: usize,
        first: bool,
        last: bool,
        binary: bool,
        remaining: u64,
    },
    /// A PONG with its payload at `start..end` of `src`.
    Pong {
        src: Src,
        start: usize,
        end: usize,
    },
    /// A Close whose body is at `start..end` of `src` (validated).
    Close {
        code: Option<u16>,
        src: Src,
        start: usize,
        end: usize,
    },
}

/// The caller's sink, plus how many frames it holds, for [`MAX_QUEUED_OUTPUT`].
struct Tx<'o, O: Extend<Bytes>> {
    out: &'o mut O,
    queued: usize,
}

impl<O: Extend<Bytes>> Tx<'_, O> {
    #[inline]
    fn emit(&mut self, b: Bytes) {
        self.out.extend(std::iter::once(b));
        self.queued += 1;
    }
}

/// Millisecond timer settings are kept as `u32` (49.7 days): longer settings are
/// clamped there, which changes nothing a peer can observe (a keepalive that rare is
/// off in all but name, and TCP itself gives up on a dead peer long before).
fn clamp_ms(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// `ping_interval_ms` value meaning "no keepalive pings".
const NO_PING: u32 = u32::MAX;

/// A WebSocket connection, server or client side. See the module docs.
///
/// 80 bytes; an idle server connection (nothing in flight, no partial header, no
/// compression) holds no heap memory at all.
#[derive(Debug)]
pub struct WsConn {
    /// The connection's one timer base, read according to the state: Open, no ping
    /// outstanding: when the peer was last heard from; Open, ping outstanding: when the
    /// keepalive PING was sent; CloseSent: when the peer's Close is due.
    at: u64,
    max_message_size: NonZeroU64,
    /// [`NO_PING`]: keepalive off.
    ping_interval_ms: u32,
    pong_timeout_ms: u32,
    close_timeout_ms: u32,
    rx: Option<RxFrame>,
    msg: Option<RxMsg>,
    side: Side,
    state: WsState,
    /// A keepalive PING is outstanding (`at` is when it was sent).
    ping_pending: bool,
    /// The outgoing fragmented message still open, if any (section 5.4).
    tx_msg: Option<DataKind>,
    cold: Option<Box<Cold>>,
    /// permessage-deflate, when negotiated (RFC 7692).
    deflate: Option<Box<Deflate>>,
}

impl WsConn {
    /// A connection whose opening handshake completed at `now` (ms).
    pub fn new(side: Side, cfg: WsConfig, now: u64) -> WsConn {
        WsConn {
            at: now,
            max_message_size: cfg.max_message_size,
            ping_interval_ms: cfg
                .ping_interval_ms
                .map_or(NO_PING, |i| clamp_ms(i).min(NO_PING - 1)),
            pong_timeout_ms: clamp_ms(cfg.pong_timeout_ms),
            close_timeout_ms: clamp_ms(cfg.close_timeout_ms),
            rx: None,
            msg: None,
            side,
            state: WsState::Open,
            ping_pending: false,
            tx_msg: None,
            // A client needs its masking-key generator from the start.
            cold: (side == Side::Client).then(Cold::new),
            deflate: None,
        }
    }

    /// Turn on permessage-deflate with the state for the parameters the opening
    /// handshake negotiated (`negotiate_server` / `client_accept` in `deflate.rs`).
    /// Call it before any data frame is exchanged: from then on RSV1 marks compressed
    /// messages both ways (RFC 7692 6).
    pub fn set_compression(&mut self, pmd: Pmd) {
        self.deflate = Some(Box::new(Deflate {
            pmd,
            inflated: Vec::new(),
        }));
    }

    /// The permessage-deflate state, when negotiated.
    pub fn compression(&self) -> Option<&Pmd> {
        self.deflate.as_deref().map(|d| &d.pmd)
    }

    /// Free memory that an idle connection does not need: the inflate buffer, the
    /// deflate/inflate streams that carry no context between messages (RFC 7692 7.1.1
    /// no context takeover; streams with context takeover hold the shared window and are
    /// kept), and the queueing API's emptied queue. For the service loop's idle timer.
    /// Returns whether anything was freed.
    pub fn release_idle_memory(&mut self) -> bool {
        let mut freed = false;
        if let Some(d) = self.deflate.as_mut() {
            if d.inflated.capacity() != 0 {
                // Holds nothing between steps: a delivered chunk's borrow has ended.
                d.inflated = Vec::new();
                freed = true;
            }
            // Keeps the decompressor of a message still being received.
            freed |= d.pmd.release_idle();
        }
        if let Some(c) = self.cold.as_mut()
            && c.out.is_empty()
            && c.out.capacity() != 0
        {
            c.out = VecDeque::new();
            freed = true;
        }
        freed |= self.tidy();
        freed
    }

    /// Heap bytes held for receiving compressed messages (the inflate buffer's
    /// capacity; the zlib streams are not counted), for memory accounting and tests.
    pub fn inflate_buffer_capacity(&self) -> usize {
        self.deflate.as_ref().map_or(0, |d| d.inflated.capacity())
    }

    pub fn server(cfg: WsConfig, now: u64) -> WsConn {
        WsConn::new(Side::Server, cfg, now)
    }

    /// A client connection; its masking keys come from a splitmix64 generator seeded
    /// with `mask_seed`. Section 10.3 wants keys an attacker cannot predict (against
    /// proxy cache poisoning by scripts): seed from the OS RNG when the client carries
    /// untrusted payloads.
    pub fn client(cfg: WsConfig, mask_seed: u64, now: u64) -> WsConn {
        let mut c = WsConn::new(Side::Client, cfg, now);
        c.cold_mut().mask_state = mask_seed;
        c
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn state(&self) -> WsState {
        self.state
    }

    /// The limits and timers in force (millisecond settings above `u32::MAX` are
    /// clamped to it).
    pub fn config(&self) -> WsConfig {
        WsConfig {
            max_message_size: self.max_message_size,
            ping_interval_ms: (self.ping_interval_ms != NO_PING)
                .then_some(u64::from(self.ping_interval_ms)),
            pong_timeout_ms: u64::from(self.pong_timeout_ms),
            close_timeout_ms: u64::from(self.close_timeout_ms),
        }
    }

    /// Closed and every queued frame taken: the caller closes the TCP connection.
    pub fn is_done(&self) -> bool {
        self.state == WsState::Closed && !self.has_output()
    }

    fn cold_mut(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Cold::new)
    }

    /// Frees the cold state when nothing in it is in use (a server's, with no cut
    /// header, no cut control payload and no queue). Returns whether it freed it.
    fn tidy(&mut self) -> bool {
        let unused = match &self.cold {
            Some(c) => {
                self.side == Side::Server
                    && c.hdr_len == 0
                    && c.ctl_len == 0
                    && c.out.capacity() == 0
            }
            None => false,
        };
        if unused {
            self.cold = None;
        }
        unused
    }

    /// Runs `f` with the queueing API's queue as the sink, then puts the queue back.
    fn with_queue<R>(&mut self, f: impl FnOnce(&mut Self, &mut Tx<'_, VecDeque<Bytes>>) -> R) -> R {
        let mut q = self
            .cold
            .as_mut()
            .map(|c| std::mem::take(&mut c.out))
            .unwrap_or_default();
        let queued = q.len();
        let r = f(
            self,
            &mut Tx {
                out: &mut q,
                queued,
            },
        );
        if q.capacity() != 0 {
            self.cold_mut().out = q;
        }
        r
    }

    // ---------------------------------------------------------------- receiving

    /// Consume bytes from `input` (unmasking in place) until there is an event to
    /// report or the input is used up. Call again with `input[consumed..]` after
    /// handling the event. An `Err` means the peer broke the protocol: a Close with the
    /// error's code is queued, the state is [`WsState::Closed`]; flush and close.
    ///
    /// Answers (pongs, the close reply) are queued inside the connection for
    /// [`poll_transmit`](Self::poll_transmit); [`process_into`](Self::process_into)
    /// writes them to the caller's sink instead.
    pub fn process<'a>(
        &'a mut self,
        input: &'a mut [u8],
        now: u64,
    ) -> Result<Progress<'a>, WsError> {
        let r = self.with_queue(|this, tx| this.run(input, now, tx));
        self.tidy_after(&r);
        let (consumed, step) = r?;
        Ok(self.progress(input, consumed, step))
    }

    /// [`process`](Self::process), with answers (pongs, the close reply, the close
    /// frame of a failure) appended to `out`. Stops with [`Event::Blocked`] after
    /// queuing [`MAX_QUEUED_OUTPUT`] frames in one call: send them before passing the
    /// rest of the input again.
    pub fn process_into<'a>(
        &'a mut self,
        input: &'a mut [u8],
        now: u64,
        out: &mut impl Extend<Bytes>,
    ) -> Result<Progress<'a>, WsError> {
        let r = self.run(input, now, &mut Tx { out, queued: 0 });
        self.tidy_after(&r);
        let (consumed, step) = r?;
        Ok(self.progress(input, consumed, step))
    }

    fn run<O: Extend<Bytes>>(
        &mut self,
        input: &mut [u8],
        now: u64,
        tx: &mut Tx<'_, O>,
    ) -> Result<(usize, Step), WsError> {
        if self.rx.is_none()
            && let Some(c) = self.cold.as_mut()
        {
            // A control payload delivered by the previous call is no longer borrowed.
            c.ctl_len = 0;
        }
        if self.state == WsState::Closed {
            // Section 5.5.1 / 7.1.1: nothing is delivered after the closing handshake.
            return Ok((input.len(), Step::Continue));
        }
        if !input.is_empty() && self.state == WsState::Open {
            // Any traffic proves the peer alive (keepalive, lws' validity tracking).
            self.at = now;
            self.ping_pending = false;
        }
        let mut pos = 0;
        loop {
            match self.step(input, &mut pos, tx) {
                Ok(Step::Continue) => continue,
                Ok(s) => return Ok((pos, s)),
                Err(e) => {
                    self.fail(e, tx);
                    return Err(e);
                }
            }
        }
    }

    /// The event for `step`, borrowing the input or the connection's buffers.
    fn progress<'a>(&'a self, input: &'a [u8], consumed: usize, step: Step) -> Progress<'a> {
        let event = match step {
            Step::Continue | Step::NeedInput => None,
            Step::Blocked => Some(Event::Blocked),
            Step::Data {
                src,
                start,
                end,
                first,
                last,
                binary,
                remaining,
            } => Some(Event::Data(DataChunk {
                payload: self.slice(src, start, end, input),
                first,
                last,
                binary,
                remaining,
            })),
            Step::Pong { src, start, end } => Some(Event::Pong(self.slice(src, start, end, input))),
            Step::Close {
                code,
                src,
                start,
                end,
            } => {
                let body = self.slice(src, start, end, input);
                let reason = body.get(2..).unwrap_or_default();
                Some(Event::Close(CloseInfo {
                    code,
                    // Validated by parse_close_body.
                    reason: std::str::from_utf8(reason).unwrap_or_default(),
                }))
            }
        };
        Progress { consumed, event }
    }

    /// Frees the cold state after a receive call unless the event borrows it.
    fn tidy_after(&mut self, r: &Result<(usize, Step), WsError>) {
        if !matches!(
            r,
            Ok((
                _,
                Step::Pong { src: Src::Ctl, .. } | Step::Close { src: Src::Ctl, .. }
            ))
        ) {
            self.tidy();
        }
    }

    /// [`process`](Self::process) in a loop, handing every event to `on_event`. Stops
    /// when the input is consumed or at [`Event::Blocked`] (not passed to `on_event`).
    pub fn feed(
        &mut self,
        input: &mut [u8],
        now: u64,
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<Fed, WsError> {
        let mut pos = 0;
        loop {
            let rest = input.get_mut(pos..).unwrap_or_default();
            let p = self.process(rest, now)?;
            pos += p.consumed;
            match p.event {
                None => {
                    return Ok(Fed {
                        consumed: pos,
                        blocked: false,
                    });
                }
                Some(Event::Blocked) => {
                    return Ok(Fed {
                        consumed: pos,
                        blocked: true,
                    });
                }
                Some(e) => on_event(e),
            }
        }
    }

    fn step<O: Extend<Bytes>>(
        &mut self,
        input: &mut [u8],
        pos: &mut usize,
        tx: &mut Tx<'_, O>,
    ) -> Result<Step, WsError> {
        if self.rx.is_none() {
            self.step_header(input, pos, tx.queued)
        } else {
            self.step_payload(input, pos, tx)
        }
    }

    fn step_header(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        queued: usize,
    ) -> Result<Step, WsError> {
        let rest = input.get(*pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(Step::NeedInput);
        }
        let have = self.cold.as_ref().map_or(0, |c| usize::from(c.hdr_len));
        if have == 0 && queued >= MAX_QUEUED_OUTPUT {
            return Ok(Step::Blocked);
        }
        let header = if have == 0 {
            match parse_header(rest)? {
                Parsed::Complete(h, n) => {
                    *pos += n;
                    h
                }
                Parsed::Incomplete => {
                    // Incomplete means fewer bytes than the header needs, so < 14.
                    let n = rest.len().min(MAX_HEADER_LEN);
                    let c = self.cold_mut();
                    c.hdr[..n].copy_from_slice(&rest[..n]);
                    c.hdr_len = n as u8;
                    *pos += n;
                    return Ok(Step::NeedInput);
                }
            }
        } else {
            let c = self.cold_mut();
            let take = (MAX_HEADER_LEN - have).min(rest.len());
            c.hdr[have..have + take].copy_from_slice(&rest[..take]);
            match parse_header(&c.hdr[..have + take])? {
                Parsed::Complete(h, n) => {
                    // The `have` bytes alone were incomplete, so n > have.
                    *pos += n.saturating_sub(have);
                    c.hdr_len = 0;
                    h
                }
                Parsed::Incomplete => {
                    c.hdr_len = (have + take) as u8;
                    *pos += take;
                    return Ok(Step::NeedInput);
                }
            }
        };
        self.begin_frame(header)
    }

    fn begin_frame(&mut self, h: super::FrameHeader) -> Result<Step, WsError> {
        // 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values". RFC 7692 6: permessage-deflate gives RSV1 a
        // meaning on the first frame of a data message only (6.1: "the RSV1 bit is set
        // only on the first frame"; a control frame with RSV1 is an error too).
        let compressed = match h.rsv {
            0 => false,
            RSV1 if self.deflate.is_some() => match h.opcode {
                Opcode::Text | Opcode::Binary => true,
                Opcode::Continuation => return Err(RSV1_CONTINUATION),
                _ => return Err(RSV1_CONTROL),
            },
            _ => return Err(WsError::RSV_BITS),
        };
        // 5.1: a server MUST close on an unmasked client frame; a client MUST close on
        // a masked server frame.
        match (self.side, h.mask.is_some()) {
            (Side::Server, false) => return Err(WsError::UNMASKED),
            (Side::Client, true) => return Err(WsError::MASKED),
            _ => {}
        }
        let mut frame_compressed = false;
        if h.opcode.is_control() {
            // 5.5: control frames may be injected between fragments; they do not touch
            // the message state.
            if let Some(c) = self.cold.as_mut() {
                c.ctl_len = 0;
            }
        } else {
            // 5.4: fragmentation rules.
            let msg = match (h.opcode, &mut self.msg) {
                (Opcode::Continuation, Some(m)) => m,
                (Opcode::Continuation, None) => return Err(WsError::NO_MESSAGE),
                (_, Some(_)) => return Err(WsError::MESSAGE_OPEN),
                (op, msg @ None) => msg.insert(RxMsg {
                    total: 0,
                    utf8: Utf8Validator::new(),
                    binary: op == Opcode::Binary,
                    compressed,
                    delivered: false,
                }),
            };
            msg.total = msg.total.saturating_add(h.len);
            frame_compressed = msg.compressed;
            let max = self.max_message_size.get();
            // 7.4.1 (1009): refuse as soon as the announced size exceeds the limit. A
            // compressed message is bounded on its inflated size (as it inflates); its
            // wire size may exceed that by DEFLATE's overhead on incompressible data.
            let limit = if msg.compressed {
                compressed_wire_limit(max)
            } else {
                max
            };
            if msg.total > limit {
                return Err(WsError::TOO_BIG);
            }
        }
        self.rx = Some(RxFrame {
            remaining: h.len,
            // 5.3: the all-zero key unmasks to the same bytes.
            mask: h.mask.unwrap_or([0; 4]),
            opcode: h.opcode,
            fin: h.fin,
            compressed: frame_compressed,
            phase: 0,
        });
        Ok(Step::Continue)
    }

    fn step_payload<O: Extend<Bytes>>(
        &mut self,
        input: &mut [u8],
        pos: &mut usize,
        tx: &mut Tx<'_, O>,
    ) -> Result<Step, WsError> {
        let Some(f) = self.rx.as_mut() else {
            return Ok(Step::Continue);
        };
        let start = (*pos).min(input.len());
        let mut avail = f.remaining.min((input.len() - start) as u64) as usize;
        if f.compressed {
            // Bounds what one step inflates (see MAX_INFLATE_INPUT_STEP); the rest of
            // the input stays masked in the caller's buffer for the next step.
            avail = avail.min(MAX_INFLATE_INPUT_STEP);
        }
        if avail == 0 && f.remaining != 0 {
            return Ok(Step::NeedInput);
        }
        let end = start + avail;
        let chunk = input.get_mut(start..end).unwrap_or_default();
        if f.mask != [0; 4] {
            // 5.3: unmask in place.
            apply_mask(chunk, f.mask, usize::from(f.phase));
            f.phase = ((usize::from(f.phase) + avail) & 3) as u8;
        }
        f.remaining -= avail as u64;
        *pos = end;
        let RxFrame {
            opcode,
            fin,
            remaining,
            ..
        } = *f;
        if remaining == 0 {
            self.rx = None;
        }
        if opcode.is_control() {
            let held = self.cold.as_ref().map_or(0, |c| usize::from(c.ctl_len));
            if held == 0 && remaining == 0 {
                // The whole payload is in this input (the usual case): used in place.
                return self.finish_control(opcode, Src::Input, start, end, input, tx);
            }
            let c = self.cold_mut();
            // parse_header bounds control payloads to 125 bytes.
            let dst = c
                .ctl
                .get_mut(held..held + avail)
                .ok_or(WsError::CONTROL_TOO_LONG)?;
            dst.copy_from_slice(chunk);
            c.ctl_len = (held + avail) as u8;
            return if remaining == 0 {
                self.finish_control(opcode, Src::Ctl, 0, held + avail, input, tx)
            } else {
                Ok(Step::NeedInput)
            };
        }
        let last = fin && remaining == 0;
        let open = self.state == WsState::Open;
        let Some(msg) = self.msg.as_mut() else {
            return Err(WsError::NO_MESSAGE);
        };
        if !open {
            // CloseSent: the peer's data is parsed (to find its Close) but dropped.
            if last {
                self.msg = None;
            }
            return Ok(Step::Continue);
        }
        let (data, src): (&[u8], Src) = if msg.compressed {
            // RFC 7692 6.2: inflate the message's payload; the tail 00 00 ff ff is
            // appended at its end (7.2.2), `last`. Compressed implies a Deflate (see
            // begin_frame).
            if chunk.is_empty() && !last {
                // Nothing to inflate (an empty middle fragment).
                return Ok(Step::Continue);
            }
            let d = self.deflate.as_deref_mut().ok_or(WsError::RSV_BITS)?;
            if !msg.delivered && d.inflated.capacity() > INFLATE_BUF_KEEP {
                // A new message: do not keep a previous big message's buffer.
                d.inflated = Vec::new();
            }
            d.inflated.clear();
            let max = usize::try_from(self.max_message_size.get()).unwrap_or(usize::MAX);
            d.pmd
                .decompress(chunk, last, &mut d.inflated, max)
                .map_err(pmd_error)?;
            (&d.inflated, Src::Inflated)
        } else {
            (chunk, Src::Input)
        };
        if !msg.binary {
            // 8.1: fail as soon as the text can not be valid UTF-8.
            msg.utf8.feed(data).map_err(|_| WsError::TEXT_UTF8)?;
            if last {
                msg.utf8.finish().map_err(|_| WsError::TEXT_UTF8)?;
            }
        }
        let inflated = src == Src::Inflated;
        if data.is_empty() && !last && (msg.delivered || inflated) {
            // An empty middle piece carries nothing to report (for a compressed
            // message also at its start: `first` goes with the first bytes).
            return Ok(Step::Continue);
        }
        let (start, end) = if inflated {
            (0, data.len())
        } else {
            (start, end)
        };
        let first = !msg.delivered;
        msg.delivered = true;
        let binary = msg.binary;
        if last {
            self.msg = None;
        }
        Ok(Step::Data {
            src,
            start,
            end,
            first,
            last,
            binary,
            remaining,
        })
    }

    /// The bytes at `start..end` of `src` (`input` for [`Src::Input`]).
    fn slice<'s>(&'s self, src: Src, start: usize, end: usize, input: &'s [u8]) -> &'s [u8] {
        match src {
            Src::Input => input.get(start..end),
            Src::Inflated => self
                .deflate
                .as_deref()
                .and_then(|d| d.inflated.get(start..end)),
            Src::Ctl => self.cold.as_deref().and_then(|c| c.ctl.get(start..end)),
        }
        .unwrap_or_default()
    }

    /// A whole control frame arrived, its payload at `start..end` of `src`.
    fn finish_control<O: Extend<Bytes>>(
        &mut self,
        opcode: Opcode,
        src: Src,
        start: usize,
        end: usize,
        input: &[u8],
        tx: &mut Tx<'_, O>,
    ) -> Result<Step, WsError> {
        let open = self.state == WsState::Open;
        match opcode {
            Opcode::Ping => {
                // 5.5.2/5.5.3: answer every PING with a PONG of the same payload
                // (Autobahn 2.10/2.11 send several in a row), unless we are closing.
                if open {
                    let mask = self.next_mask();
                    let pong = encode_pong(self.slice(src, start, end, input), mask)
                        .map_err(|_| WsError::CONTROL_TOO_LONG)?;
                    tx.emit(pong);
                }
                Ok(Step::Continue)
            }
            Opcode::Pong => Ok(Step::Pong { src, start, end }),
            Opcode::Close => {
                let (code, _) = parse_close_body(self.slice(src, start, end, input))?;
                if open {
                    // 5.5.1: reply with a Close, echoing the status code.
                    let mask = self.next_mask();
                    if let Ok(f) = encode_close(code, "", mask) {
                        tx.emit(f);
                    }
                }
                self.state = WsState::Closed;
                Ok(Step::Close {
                    code,
                    src,
                    start,
                    end,
                })
            }
            _ => Ok(Step::Continue),
        }
    }

    /// Section 7.1.7: fail the connection: send a Close with the error's code (unless
    /// one was sent already) and stop.
    fn fail<O: Extend<Bytes>>(&mut self, e: WsError, tx: &mut Tx<'_, O>) {
        if self.state == WsState::Open {
            let mask = self.next_mask();
            if let Ok(f) = encode_close(Some(e.code), e.reason, mask) {
                tx.emit(f);
            }
        }
        self.state = WsState::Closed;
        self.rx = None;
        self.msg = None;
        if let Some(c) = self.cold.as_mut() {
            c.hdr_len = 0;
            c.ctl_len = 0;
        }
    }

    // ---------------------------------------------------------------- sending

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        if self.side == Side::Server {
            return None;
        }
        // splitmix64 (Steele, Lea, Flood 2014).
        let c = self.cold_mut();
        c.mask_state = c.mask_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = c.mask_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Some((z as u32).to_ne_bytes())
    }

    /// Queue one data frame: the first frame of a `kind` message, or (`continuation`)
    /// the next fragment of the open one (section 5.4); `fin` ends the message. A
    /// server queues `[header, payload]` without copying the payload; a client copies
    /// it once to mask it (section 5.3). Text payloads are sent as given: the caller
    /// is responsible for their UTF-8 validity.
    ///
    /// With permessage-deflate on, every frame's payload is compressed into one buffer
    /// (header room in front, so header and payload leave as one piece), RSV1 on the
    /// message's first frame (RFC 7692 6.1; see the module docs).
    pub fn send_frame(
        &mut self,
        kind: DataKind,
        continuation: bool,
        fin: bool,
        payload: Bytes,
    ) -> Result<(), UsageError> {
        self.with_queue(|this, tx| this.send_frame_tx(kind, continuation, fin, payload, tx))
    }

    /// [`send_frame`](Self::send_frame), appending the frame to `out`.
    pub fn send_frame_into(
        &mut self,
        kind: DataKind,
        continuation: bool,
        fin: bool,
        payload: Bytes,
        out: &mut impl Extend<Bytes>,
    ) -> Result<(), UsageError> {
        self.send_frame_tx(kind, continuation, fin, payload, &mut Tx { out, queued: 0 })
    }

    fn send_frame_tx<O: Extend<Bytes>>(
        &mut self,
        kind: DataKind,
        continuation: bool,
        fin: bool,
        payload: Bytes,
        tx: &mut Tx<'_, O>,
    ) -> Result<(), UsageError> {
        if self.state != WsState::Open {
            return Err(UsageError::Closing);
        }
        let op = match (continuation, self.tx_msg) {
            (false, None) => kind.opcode(),
            (true, Some(_)) => Opcode::Continuation,
            (false, Some(_)) => return Err(UsageError::MessageInProgress),
            (true, None) => return Err(UsageError::NoMessageInProgress),
        };
        self.tx_msg = if fin { None } else { Some(kind) };
        if self.deflate.is_some() {
            // RSV1 on the first frame only (RFC 7692 6.1, RFC 6455 5.2).
            let rsv = if continuation { 0 } else { RSV1 };
            self.send_compressed(op, fin, rsv, &payload, tx);
            return Ok(());
        }
        match self.next_mask() {
            None => {
                let h = encode_header(fin, 0, op, None, payload.len() as u64);
                tx.emit(h.to_bytes());
                if !payload.is_empty() {
                    tx.emit(payload);
                }
            }
            Some(m) => {
                let h = encode_header(fin, 0, op, Some(m), payload.len() as u64);
                let mut b = BytesMut::with_capacity(h.len() + payload.len());
                b.extend_from_slice(&h);
                b.extend_from_slice(&payload);
                apply_mask(&mut b[h.len()..], m, 0);
                tx.emit(b.freeze());
            }
        }
        Ok(())
    }

    /// Compress `payload` (a whole message, or with `fin` unset or `op` continuation a
    /// fragment of one) and queue it as one frame with `rsv` (RSV1 on a message's first
    /// frame; RFC 7692 6.1, 7.2.1). The DEFLATE output is written after
    /// [`MAX_HEADER_LEN`] bytes of room, the header is written into the end of that
    /// room and the buffer is sliced from there, so the compressed bytes are never
    /// copied (`Bytes` adds its small shared header because the buffer's length differs
    /// from its capacity).
    fn send_compressed<O: Extend<Bytes>>(
        &mut self,
        op: Opcode,
        fin: bool,
        rsv: u8,
        payload: &[u8],
        tx: &mut Tx<'_, O>,
    ) {
        let mask = self.next_mask();
        let Some(d) = self.deflate.as_deref_mut() else {
            return;
        };
        // Pmd::compress reserves `len + 64` more; ask for it all at once.
        let mut buf = Vec::with_capacity(MAX_HEADER_LEN + payload.len() + 64);
        buf.resize(MAX_HEADER_LEN, 0);
        if fin && op != Opcode::Continuation {
            d.pmd.compress(payload, &mut buf);
        } else {
            d.pmd.compress_fragment(payload, fin, &mut buf);
        }
        let clen = buf.len() - MAX_HEADER_LEN;
        let h = encode_header(fin, rsv, op, mask, clen as u64);
        let hstart = MAX_HEADER_LEN - h.len();
        buf[hstart..MAX_HEADER_LEN].copy_from_slice(&h);
        if let Some(m) = mask {
            apply_mask(&mut buf[MAX_HEADER_LEN..], m, 0);
        }
        tx.emit(Bytes::from(buf).slice(hstart..));
    }

    /// Queue a whole (single-frame) message.
    pub fn send(&mut self, kind: DataKind, payload: Bytes) -> Result<(), UsageError> {
        self.send_frame(kind, false, true, payload)
    }

    /// Queue a frame encoded once for many connections (server side only). It is sent
    /// as encoded; with permessage-deflate on, as its compressed encoding
    /// ([`SharedFrame::deflated`], made once and shared by every such connection), or,
    /// when the message is longer than the window this connection's compressor may use,
    /// compressed by that compressor.
    pub fn send_shared(&mut self, f: &SharedFrame) -> Result<(), UsageError> {
        self.with_queue(|this, tx| this.send_shared_into(f, tx.out))
    }

    /// [`send_shared`](Self::send_shared), appending the frame to `out`.
    pub fn send_shared_into(
        &mut self,
        f: &SharedFrame,
        out: &mut impl Extend<Bytes>,
    ) -> Result<(), UsageError> {
        if self.side != Side::Server {
            return Err(UsageError::SharedFrameOnClient);
        }
        if self.state != WsState::Open {
            return Err(UsageError::Closing);
        }
        if self.tx_msg.is_some() {
            return Err(UsageError::MessageInProgress);
        }
        let mut tx = Tx { out, queued: 0 };
        if let Some(d) = self.deflate.as_deref_mut() {
            if f.payload.len() <= 1 << d.pmd.tx_window_bits() {
                // Its back-references stay within the message (RFC 7692 7.2.3.2),
                // inside the negotiated window (7.1.2.1).
                tx.emit(f.deflated().clone());
                d.pmd.foreign_message_sent();
            } else {
                let op = f.kind().opcode();
                self.send_compressed(op, true, RSV1, &f.payload, &mut tx);
            }
            return Ok(());
        }
        tx.emit(f.header.clone());
        if !f.payload.is_empty() {
            tx.emit(f.payload.clone());
        }
        Ok(())
    }

    /// Queue a PING (section 5.5.2); payload at most 125 bytes.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.with_queue(|this, tx| this.ping_into(payload, tx.out))
    }

    /// [`ping`](Self::ping), appending the frame to `out`.
    pub fn ping_into(
        &mut self,
        payload: &[u8],
        out: &mut impl Extend<Bytes>,
    ) -> Result<(), UsageError> {
        if self.state != WsState::Open {
            return Err(UsageError::Closing);
        }
        let mask = self.next_mask();
        out.extend(std::iter::once(encode_ping(payload, mask)?));
        Ok(())
    }

    /// Start the closing handshake (section 7.1.2): queue a Close with `code` and
    /// `reason` and wait for the peer's Close until [`close_deadline`](Self::close_deadline).
    /// Data received meanwhile is dropped; nothing more may be sent.
    pub fn close(&mut self, code: u16, reason: &str, now: u64) -> Result<(), UsageError> {
        self.with_queue(|this, tx| this.close_into(code, reason, now, tx.out))
    }

    /// [`close`](Self::close), appending the frame to `out`.
    pub fn close_into(
        &mut self,
        code: u16,
        reason: &str,
        now: u64,
        out: &mut impl Extend<Bytes>,
    ) -> Result<(), UsageError> {
        if self.state != WsState::Open {
            return Err(UsageError::Closing);
        }
        let mask = self.next_mask();
        let f = encode_close(Some(code), reason, mask)?;
        out.extend(std::iter::once(f));
        self.state = WsState::CloseSent;
        self.at = now.saturating_add(u64::from(self.close_timeout_ms));
        Ok(())
    }

    /// When the peer's Close is due after [`close`](Self::close) (ms).
    pub fn close_deadline(&self) -> Option<u64> {
        (self.state == WsState::CloseSent).then_some(self.at)
    }

    /// The next frame the queueing API queued, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.cold.as_mut().and_then(|c| c.out.pop_front())
    }

    /// Move every frame the queueing API queued into `sink` (for a writev).
    pub fn drain_output(&mut self, sink: &mut impl Extend<Bytes>) {
        if let Some(c) = self.cold.as_mut() {
            sink.extend(c.out.drain(..));
        }
    }

    pub fn has_output(&self) -> bool {
        self.cold.as_ref().is_some_and(|c| !c.out.is_empty())
    }

    /// Number of buffers the queueing API queued.
    pub fn queued_output(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.out.len())
    }

    // ---------------------------------------------------------------- timers

    /// The earliest time [`on_timer`](Self::on_timer) has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            WsState::Closed => None,
            WsState::CloseSent => Some(self.at),
            WsState::Open if self.ping_pending => {
                Some(self.at.saturating_add(u64::from(self.pong_timeout_ms)))
            }
            WsState::Open => (self.ping_interval_ms != NO_PING)
                .then(|| self.at.saturating_add(u64::from(self.ping_interval_ms))),
        }
    }

    /// Run the timers due at `now`: the close-reply deadline, the keepalive PING, and
    /// the PONG deadline (lws' ws_ping_pong_interval / validity checks). A PING is
    /// queued for [`poll_transmit`](Self::poll_transmit).
    pub fn on_timer(&mut self, now: u64) -> Action {
        self.with_queue(|this, tx| this.on_timer_into(now, tx.out))
    }

    /// [`on_timer`](Self::on_timer), appending a keepalive PING to `out`.
    pub fn on_timer_into(&mut self, now: u64, out: &mut impl Extend<Bytes>) -> Action {
        match self.next_deadline() {
            Some(d) if now >= d => {}
            _ => return Action::Idle,
        }
        match self.state {
            WsState::Closed => Action::Idle,
            WsState::CloseSent => {
                self.state = WsState::Closed;
                Action::Hangup
            }
            WsState::Open if self.ping_pending => {
                // No traffic since the PING, for the whole pong timeout.
                self.state = WsState::Closed;
                Action::Hangup
            }
            WsState::Open => {
                let mask = self.next_mask();
                if let Ok(p) = encode_ping(&[], mask) {
                    out.extend(std::iter::once(p));
                }
                self.ping_pending = true;
                self.at = now;
                Action::Write
            }
        }
    }
}
