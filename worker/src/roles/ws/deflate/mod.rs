//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! - Negotiation, RFC 7692 section 7.1, over the `Sec-WebSocket-Extensions` grammar of
//!   RFC 6455 section 9.1: [`negotiate_server`] picks the first acceptable offer and
//!   builds the response; [`client_offer`] / [`client_accept`] are the client side.
//! - [`Pmd`]: the per-connection compressor and decompressor, RFC 7692 section 7.2:
//!   messages are raw DEFLATE (RFC 1951) ended by a sync flush whose `00 00 ff ff` tail
//!   is stripped by the sender (7.2.1) and appended by the receiver (7.2.2).
//!
//! Sans-IO: bytes in, bytes out; no sockets, no clocks.
//!
//! Why hand-written: the DEFLATE codec itself is `flate2` with the pure-Rust `zlib-rs`
//! backend (which has window-bits control); what is written here is the RFC 7692 layer,
//! which no maintained crate offers separately from a particular WebSocket stack, and
//! which lwsd needs with lws' policies (memory limits, lazy streams, inflate bounds).
//!
//! # Memory per connection (zlib-rs 0.6 through flate2, memLevel 8)
//!
//! Measured by `worker/tests/pmd_memory.rs` with a counting allocator (heap held by one
//! connection after one message each way; `size_of::<Pmd>()` is 32 bytes besides):
//!
//! | window bits | deflate (ours) | inflate (peer's) |
//! | ----------- | -------------- | ---------------- |
//! | 15          | 371 KiB        | 46.6 KiB         |
//! | 12          | 259 KiB        | 46.6 KiB         |
//! | 9           | 245 KiB        | 46.6 KiB         |
//! | no context takeover, any bits | 0 after [`Pmd::release_idle`] (same peak while sending) | 0 likewise |
//!
//! zlib's textbook formulas (deflate `(1 << (wbits + 2)) + (1 << (memLevel + 9))`,
//! inflate `(1 << wbits)` + ~7 KiB) do not hold for zlib-rs: its deflate has ~245 KiB
//! that does not depend on the window (hash table, pending and symbol buffers at
//! flate2's fixed memLevel 8), and its inflate always allocates the full 32 KiB window.
//! So a smaller window saves little here; no context takeover is what saves memory,
//! because the streams then hold no context between messages and can be freed when
//! the connection is idle, or after every message (see [`Pmd`]). Streams are
//! also allocated lazily, on the first compressed message in each direction.
//! (flate2 does not expose memLevel; `zlib_rs::DeflateConfig` does, if ever needed.)
//!
//! # Close codes
//!
//! [`PmdError::TooBig`] maps to 1009 (RFC 6455 7.4.1, "message too big to process").
//! [`PmdError::Corrupt`] maps to 1007: RFC 7692 section 8 only says "_Fail the WebSocket
//! Connection_"; the frame itself is well formed (so not 1002), it is the message's data
//! that is inconsistent with its (compressed) type, the same class as invalid UTF-8 in a
//! text message (RFC 6455 7.4.1). The Node `ws` library uses 1007 too. Autobahn has no
//! case that sends corrupt DEFLATE data (its 12.* and 13.* cases send valid compressed
//! messages), so either code passes there; 1007 is the more precise one.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::fmt;

/// The extension token (RFC 7692 section 7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The tail that a sync flush leaves and that the sender strips (RFC 7692 7.2.1) and
/// the receiver appends before inflating (7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest LZ77 window RFC 7692 allows (7.1.2.1, 7.1.2.2: "8 to 15, inclusive").
pub const MIN_WINDOW_BITS: u8 = 8;
/// Largest LZ77 window, and the default when a parameter is absent (RFC 7692 7.1.2).
pub const MAX_WINDOW_BITS: u8 = 15;
/// Smallest window zlib's raw deflate can compress with: zlib (and zlib-rs, and flate2's
/// API) reject `windowBits = 8` for raw streams. So we never promise to compress with 8;
/// inflating data compressed with an 8-bit window works with a 9-bit window (a larger
/// decoder window is always compatible).
pub const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// First output reservation of an inflate step. Output then grows geometrically (the
/// size of `out` so far) but never beyond what the message may still produce plus one
/// byte, so a compression bomb cannot make `out` larger than `max_total + 1`. 4 KiB: a
/// page, big enough that small messages inflate in one call.
const INFLATE_MIN_STEP: usize = 4096;

/// Extra output room reserved when compressing, beyond the message length: a sync flush
/// adds at most a few bytes, stored blocks 5 bytes per 64 KiB, and zlib wants slack.
const COMPRESS_SLACK: usize = 64;

/// Messages shorter than this, when no context is to be kept (no context takeover on
/// our side, or [`compress_standalone`]), are encoded as one fixed-Huffman block of
/// literals (`encode_literals`) instead of through zlib. At these lengths DEFLATE finds
/// nothing to gain without context (measured, `pmd_tests.rs` `measure_compression`:
/// 4..24-byte text comes out 1.55..1.00 of raw, 32 bytes 0.92), while zlib's stream
/// reset (it clears its hash tables) costs 3..4 µs a message (`ws/tiny` bench); the
/// literal block costs nanoseconds and is at most 2 bytes longer than ASCII raw.
pub const LITERAL_BLOCK_BELOW: usize = 32;

/// Default compression level: 1 (fastest). lwsd is judged on CPU per message; on chat-
/// and JSON-like WebSocket traffic level 1 gets most of level 6's ratio at a fraction
/// of the CPU. Use [`Pmd::with_level`] for another trade-off.
pub const DEFAULT_LEVEL: u32 = 1;

/// Which end of the connection a [`Pmd`] is: it decides which negotiated window and
/// context-takeover parameter applies to compression and which to decompression.
pub use super::Side;

/// Negotiated (or, for [`client_offer`], requested) permessage-deflate parameters,
/// RFC 7692 section 7.1. Window bits of 15 mean "parameter absent" (15 is the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmdParams {
    /// 7.1.1.1: the server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// 7.1.1.2: the client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// 7.1.2.1: LZ77 window the server compresses with, 8..=15.
    pub server_max_window_bits: u8,
    /// 7.1.2.2: LZ77 window the client compresses with, 8..=15.
    pub client_max_window_bits: u8,
}

impl Default for PmdParams {
    fn default() -> Self {
        PmdParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// What the server is willing to do; applied by [`negotiate_server`].
///
/// Memory trade-off (module docs): a deflate stream costs 245..371 KiB per connection
/// (9..15 bits) and an inflate stream ~47 KiB. No context takeover empties the stream
/// between messages, so it can be freed when idle ([`Pmd::release_idle`]), at the price
/// of compression ratio across messages; smaller windows shrink the deflate stream a
/// little, and the ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmdPolicy {
    /// Announce `server_no_context_takeover` even when the client did not ask (7.1.1.1
    /// allows it): our compressor is freed after each message.
    pub server_no_context_takeover: bool,
    /// Ask the client for `client_no_context_takeover` (7.1.1.2 allows it in a response
    /// even when not offered): our decompressor is freed after each message.
    pub client_no_context_takeover: bool,
    /// Largest window we compress with, 9..=15 (values below 9 act as 9: zlib cannot
    /// compress with 8). Announced as `server_max_window_bits` when below 15 (7.1.2.1).
    pub server_max_window_bits: u8,
    /// Largest window we ask the client to compress with, 8..=15; only sent when the
    /// client offered `client_max_window_bits` (7.1.2.2).
    pub client_max_window_bits: u8,
}

impl Default for PmdPolicy {
    fn default() -> Self {
        PmdPolicy {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

mod negotiate;
pub use negotiate::{PmdNegotiationError, client_accept, client_offer, negotiate_server};

// ---------------------------------------------------------------------------------------
// Compression and decompression (RFC 7692 section 7.2)
// ---------------------------------------------------------------------------------------

/// A decompression failure; either way the connection is failed (RFC 7692 section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmdError {
    /// The inflated message would exceed `max_total`: close 1009 (RFC 6455 7.4.1).
    TooBig,
    /// The data is not valid DEFLATE (or references data outside the window): close
    /// 1007 (see the module docs for why not 1002).
    Corrupt,
}

impl PmdError {
    /// The WebSocket close code to send (RFC 6455 7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            PmdError::TooBig => 1009,
            PmdError::Corrupt => 1007,
        }
    }
}

impl fmt::Display for PmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PmdError::TooBig => "inflated message too big",
            PmdError::Corrupt => "invalid compressed data",
        })
    }
}

impl std::error::Error for PmdError {}

/// Per-connection permessage-deflate state: one compressor for the messages we send,
/// one decompressor for the messages we receive, each allocated on first use.
///
/// With no context takeover in a direction (RFC 7692 7.1.1) that direction's stream is
/// reset after every message, and then holds no context: [`Pmd::release_idle`] frees it
/// (0 instead of ~371 KiB deflate / ~47 KiB inflate at 15 bits) and the next message
/// allocates it again. Freeing after *every* message was measured to cost too much for
/// the default (`pmd_memory.rs` timing test, 2 KB JSON message, release build: 12.4 µs
/// with a fresh 15-bit compressor vs 8.3 µs with a reset one; the init zeroes ~250 KiB
/// of tables), so it is opt-in with [`Pmd::set_free_after_message`]; the intended use
/// is for the service to call `release_idle` when a connection goes idle.
#[derive(Debug)]
pub struct Pmd {
    level: Compression,
    /// Window bits of our compressor (>= 9).
    tx_bits: u8,
    /// Our side has no context takeover: a fresh compressor per message.
    tx_fresh: bool,
    /// Window bits of our decompressor (>= 9; data from an 8-bit window inflates fine).
    rx_bits: u8,
    /// The peer has no context takeover: a fresh decompressor per message.
    rx_fresh: bool,
    tx: Option<Box<Compress>>,
    rx: Option<Box<Decompress>>,
    /// Bytes inflated so far for the message being received.
    rx_msg_len: usize,
    /// A received message is in progress (a non-fin frame was inflated).
    rx_in_msg: bool,
    /// Free (rather than reset) a stream without context takeover after each message.
    free_after_message: bool,
    /// A message not made by our compressor went out ([`Pmd::foreign_message_sent`]):
    /// with context takeover the compressor's window no longer matches the peer's, so
    /// it starts afresh before its next message.
    tx_stale: bool,
    /// A fragmented message is being compressed ([`Pmd::compress_fragment`]).
    tx_in_msg: bool,
}

impl Pmd {
    /// A connection's state for the negotiated `params`, at [`DEFAULT_LEVEL`].
    pub fn new(side: Side, params: &PmdParams) -> Self {
        Self::with_level(side, params, DEFAULT_LEVEL)
    }

    /// As [`Pmd::new`] with a zlib compression level 0..=9 (higher values act as 9).
    pub fn with_level(side: Side, params: &PmdParams, level: u32) -> Self {
        let (tx_bits, tx_fresh, rx_bits, rx_fresh) = match side {
            Side::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            Side::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        Pmd {
            level: Compression::new(level.min(9)),
            tx_bits: tx_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
            tx_fresh,
            rx_bits: rx_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
            rx_fresh,
            tx: None,
            rx: None,
            rx_msg_len: 0,
            rx_in_msg: false,
            free_after_message: false,
            tx_stale: false,
            tx_in_msg: false,
        }
    }

    /// Free streams that carry no context after every message instead of resetting
    /// them: least memory for idle connections, at the cost of an allocation and a
    /// table init per message (see the type docs for the measured price).
    pub fn set_free_after_message(&mut self, free: bool) {
        self.free_after_message = free;
    }

    /// Frees the streams that hold no context between messages: our compressor when we
    /// have no context takeover, our decompressor when the peer has none and no message
    /// is being received. Streams with context takeover are kept (freeing them would
    /// lose the shared window). Returns whether anything was freed.
    pub fn release_idle(&mut self) -> bool {
        let mut freed = false;
        if (self.tx_fresh || self.tx_stale) && !self.tx_in_msg && self.tx.is_some() {
            self.tx = None;
            freed = true;
        }
        if self.rx_fresh && !self.rx_in_msg && self.rx.is_some() {
            self.rx = None;
            freed = true;
        }
        freed
    }

    /// Compresses one whole message and appends the payload to send (with RSV1 set) to
    /// `out`: DEFLATE with a sync flush, the `00 00 ff ff` tail removed (RFC 7692
    /// 7.2.1). An empty message is the single byte `0x00` (7.2.3.6).
    pub fn compress(&mut self, msg: &[u8], out: &mut Vec<u8>) {
        if msg.is_empty() && !self.tx_in_msg {
            // 7.2.3.6: a non-final stored block header with no data; our compressor is
            // byte aligned after every sync flush, so this does not disturb its stream.
            out.push(0x00);
            return;
        }
        if self.tx_fresh && !self.tx_in_msg && msg.len() < LITERAL_BLOCK_BELOW {
            // No context to keep: the compressor is not needed (nor reset).
            encode_literals(msg, out);
            return;
        }
        self.compress_fragment(msg, true, out);
    }

    /// Compresses one fragment of a message (RFC 7692 6.1: the compressed data of a
    /// message may be split over its frames; RSV1 goes on the first frame only) and
    /// appends it to `out`. Every fragment ends with a sync flush, so the peer can
    /// inflate what it has received at once; a non-final fragment keeps the flush's
    /// `00 00 ff ff` (an empty stored block, valid DEFLATE data), the final one has it
    /// removed (7.2.1). A final fragment may come out empty: the tail the receiver
    /// appends (7.2.2) then completes the message.
    pub fn compress_fragment(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) {
        if self.tx_stale && !self.tx_in_msg {
            // A message our compressor did not make went out in between: the peer's
            // window holds it, ours does not, so forget ours (7.2.3.2 back-references
            // must reach the same bytes on both sides).
            self.tx_stale = false;
            if let Some(c) = self.tx.as_mut() {
                c.reset();
            }
        }
        let start = out.len();
        let (bits, level) = (self.tx_bits, self.level);
        let c = self
            .tx
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(level, false, bits)));
        out.reserve(data.len() + COMPRESS_SLACK);
        let mut input = data;
        let mut ok = true;
        loop {
            let before = c.total_in();
            if c.compress_vec(input, out, FlushCompress::Sync).is_err() {
                ok = false;
                break;
            }
            let used = usize::try_from(c.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            // zlib is done with the flush when it left output room unused.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(COMPRESS_SLACK));
        }
        // A sync flush with no new input after another one adds nothing (zlib: no
        // progress possible); that is the only way to produce no tail.
        let flushed = out.len() >= start + TAIL.len() && out.ends_with(&TAIL);
        if !ok || !(flushed || data.is_empty()) {
            // zlib failed (not expected: only misuse makes it fail). Send the data as
            // stored blocks, which any inflater at any context decodes (the stream is
            // byte aligned after the previous fragment's flush), and start the
            // compressor afresh so its stream never mixes with this one.
            out.truncate(start);
            encode_stored(data, out);
            if !fin {
                // encode_stored ends with the header byte `0x00` of an empty stored
                // block whose LEN/NLEN the receiver's appended tail supplies (7.2.2);
                // mid-message, supply them here.
                out.extend_from_slice(&TAIL);
            }
            self.tx = None;
            self.tx_in_msg = !fin;
            return;
        }
        if fin && flushed {
            // 7.2.1: remove the sync flush's empty stored block tail.
            out.truncate(out.len() - TAIL.len());
        }
        self.tx_in_msg = !fin;
        if fin && self.tx_fresh {
            // 7.1.1: no context takeover: the next message starts a fresh stream.
            if self.free_after_message {
                self.tx = None;
            } else {
                c.reset();
            }
        }
    }

    /// Tells the compressor that a message it did not produce (e.g. a
    /// [`compress_standalone`] broadcast) was sent on this connection. With context
    /// takeover our compressor's history then differs from the peer's window, so its
    /// next message starts from an empty history (cheap: nothing happens when no
    /// compressor exists yet).
    pub fn foreign_message_sent(&mut self) {
        if !self.tx_fresh && self.tx.is_some() {
            self.tx_stale = true;
        }
    }

    /// Window bits our compressor may use (9..=15): a [`compress_standalone`] message of
    /// at most `1 << bits` bytes fits it.
    pub fn tx_window_bits(&self) -> u8 {
        self.tx_bits
    }

    /// Inflates one frame's payload of a compressed message, appending to `out`. `fin`:
    /// this is the message's last frame; the `00 00 ff ff` tail is then appended to the
    /// input (RFC 7692 7.2.2). `max_total` bounds the inflated size of the whole message
    /// (all its frames): [`PmdError::TooBig`] as soon as it is exceeded.
    ///
    /// Memory: `out` grows in bounded steps, never beyond `max_total + 1` bytes inflated
    /// for this message (room already spare in `out` is used as it is). After an error
    /// the decompressor is dropped; the connection must be failed.
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_total: usize,
    ) -> Result<(), PmdError> {
        let mut r = self.inflate(data, out, max_total);
        if fin && r.is_ok() {
            r = self.inflate(&TAIL, out, max_total);
        }
        self.rx_in_msg = !fin && r.is_ok();
        if r.is_err() {
            self.rx = None;
            self.rx_msg_len = 0;
        } else if fin {
            self.rx_msg_len = 0;
            if self.rx_fresh {
                // 7.1.1: the peer starts each message with a fresh stream.
                if self.free_after_message {
                    self.rx = None;
                } else if let Some(d) = self.rx.as_mut() {
                    d.reset(false);
                }
            }
        }
        r
    }

    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), PmdError> {
        let bits = self.rx_bits;
        let d = self
            .rx
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        loop {
            if out.len() == out.capacity() {
                // Room for what the message may still produce, plus one byte to see
                // that it produces more.
                let allowed = max.saturating_sub(self.rx_msg_len).saturating_add(1);
                out.reserve_exact(allowed.min(out.len().max(INFLATE_MIN_STEP)));
            }
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| PmdError::Corrupt)?;
            let used = usize::try_from(d.total_in() - in0).unwrap_or(usize::MAX);
            let produced = usize::try_from(d.total_out() - out0).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            self.rx_msg_len = self.rx_msg_len.saturating_add(produced);
            if self.rx_msg_len > max {
                return Err(PmdError::TooBig);
            }
            match status {
                Status::StreamEnd => {
                    // 7.2.3.4: a block with BFINAL set ends zlib's stream; what follows
                    // (at least the 0x00 byte and the appended tail) is decoded the
                    // same way, by a fresh stream. A sender that ends a stream restarts
                    // its own, so there is no context to keep.
                    if used == 0 {
                        return Err(PmdError::Corrupt);
                    }
                    // (zlib-rs resets to a 15-bit window; decoding with a larger
                    // window than the sender's is always correct.)
                    d.reset(false);
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                Status::Ok | Status::BufError => {
                    let room_left = out.len() < out.capacity();
                    if input.is_empty() && room_left {
                        return Ok(());
                    }
                    if used == 0 && produced == 0 && room_left {
                        // No progress with input and room: cannot happen with a sane
                        // inflater; never spin.
                        return Err(PmdError::Corrupt);
                    }
                }
            }
        }
    }

    /// Whether a compressor is currently allocated (for memory accounting and tests).
    pub fn has_compressor(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether a decompressor is currently allocated (for memory accounting and tests).
    pub fn has_decompressor(&self) -> bool {
        self.rx.is_some()
    }
}

thread_local! {
    /// The compressor [`compress_standalone`] reuses (reset after each message): one
    /// per worker thread, so a broadcast costs a reset rather than a 250 KiB init.
    static STANDALONE: std::cell::RefCell<Option<Compress>> = const { std::cell::RefCell::new(None) };
}

/// Compresses `msg` as one whole permessage-deflate message with no context (a fresh
/// stream, [`MAX_WINDOW_BITS`] window, [`DEFAULT_LEVEL`]) and appends the payload to
/// `out`, tail removed (RFC 7692 7.2.1). Its back-references reach only into the
/// message itself (so less than `msg.len()` bytes back), so any receiver decodes it
/// whatever it received before (7.2.3.2), given a window of at least `msg.len()` bytes:
/// one encoding serves every connection, whatever its context takeover. After sending
/// it on a connection, call that connection's [`Pmd::foreign_message_sent`].
pub fn compress_standalone(msg: &[u8], out: &mut Vec<u8>) {
    if msg.is_empty() {
        out.push(0x00); // 7.2.3.6
        return;
    }
    if msg.len() < LITERAL_BLOCK_BELOW {
        encode_literals(msg, out);
        return;
    }
    STANDALONE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let c = cell.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(DEFAULT_LEVEL), false, MAX_WINDOW_BITS)
        });
        c.reset();
        let start = out.len();
        out.reserve(msg.len() + COMPRESS_SLACK);
        let mut input = msg;
        loop {
            let before = c.total_in();
            if c.compress_vec(input, out, FlushCompress::Sync).is_err() {
                break;
            }
            let used = usize::try_from(c.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(COMPRESS_SLACK));
        }
        if input.is_empty() && out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            // zlib failed (not expected): stored blocks decode anywhere too.
            out.truncate(start);
            encode_stored(msg, out);
            *cell = None;
        }
    });
}

/// Encodes `msg` in RFC 7692's message form as one DEFLATE block with the fixed
/// Huffman code (RFC 1951 3.2.6) holding only literals (8 bits for bytes 0..=143, 9 for
/// 144..=255), its end-of-block code, then the 3-bit header of the empty stored block
/// that a sync flush leaves, padded to a byte (its LEN/NLEN are the `00 00 ff ff` the
/// receiver appends, 7.2.1). No back-references, so it decodes at any receiver whatever
/// its window and history.
fn encode_literals(msg: &[u8], out: &mut Vec<u8>) {
    // RFC 1951 3.1.1: bits fill bytes from the least significant bit; Huffman codes are
    // sent most significant bit first, hence the reversal.
    let mut acc: u64 = 0b010; // BFINAL 0, BTYPE 01 (fixed Huffman)
    let mut n: u32 = 3;
    out.reserve(msg.len() + msg.len() / 8 + 3);
    for &b in msg {
        let (code, len) = if b < 144 {
            (0x30 + u64::from(b), 8)
        } else {
            (0x190 + u64::from(b) - 144, 9)
        };
        acc |= (code.reverse_bits() >> (64 - len)) << n;
        n += len;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    }
    // End of block (code 256: seven 0 bits), then BFINAL 0 + BTYPE 00 (three 0 bits),
    // then padding to the byte boundary: all zero bits.
    n += 10;
    while n > 0 {
        out.push(acc as u8);
        acc >>= 8;
        n = n.saturating_sub(8);
    }
}

/// Encodes `msg` as DEFLATE stored blocks (RFC 1951 3.2.4) in RFC 7692's message form:
/// non-final blocks of at most 65535 bytes, then the `0x00` that, with the receiver's
/// appended tail, is an empty stored block (7.2.3.3, 7.2.3.6).
fn encode_stored(msg: &[u8], out: &mut Vec<u8>) {
    for chunk in msg.chunks(usize::from(u16::MAX)) {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00);
}

#[cfg(test)]
mod tests;
