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

// ---------------------------------------------------------------------------------------
// Sec-WebSocket-Extensions parsing (RFC 6455 section 9.1, tokens of RFC 7230 3.2.6)
//
//   extension-list = 1#extension
//   extension      = extension-token *( ";" extension-param )
//   extension-param = token [ "=" (token | quoted-string) ]
//       ; a quoted-string value, once unescaped, MUST be a token
// ---------------------------------------------------------------------------------------

/// RFC 7230 3.2.6 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A parameter value, as it appears on the wire.
#[derive(Clone, Copy)]
enum RawValue<'a> {
    Token(&'a [u8]),
    /// The inside of a quoted-string, escapes not yet removed.
    Quoted(&'a [u8]),
}

/// Longest parameter value we unescape: every value RFC 7692 defines is at most two
/// digits, so anything longer is invalid anyway.
const MAX_VALUE_LEN: usize = 4;

impl RawValue<'_> {
    /// Parses a window-bits value: a decimal integer without leading zeroes, 8..=15
    /// (RFC 7692 7.1.2.1 / 7.1.2.2). Quoted values are unescaped first (RFC 6455 9.1).
    fn window_bits(self) -> Option<u8> {
        let mut buf = [0u8; MAX_VALUE_LEN];
        let v: &[u8] = match self {
            RawValue::Token(t) => t,
            RawValue::Quoted(q) => {
                let mut n = 0;
                let mut esc = false;
                for &b in q {
                    if !esc && b == b'\\' {
                        esc = true;
                        continue;
                    }
                    esc = false;
                    *buf.get_mut(n)? = b;
                    n += 1;
                }
                buf.get(..n)?
            }
        };
        let bits = match v {
            [d @ b'8'..=b'9'] => d - b'0',
            [b'1', d @ b'0'..=b'5'] => 10 + (d - b'0'),
            _ => return None,
        };
        Some(bits)
    }
}

/// A parameter: its name and its value if it has one.
type Param<'a> = (&'a [u8], Option<RawValue<'a>>);

/// The header value is not valid RFC 6455 9.1 syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SyntaxError;

/// A cursor over one header value. Use: `next_extension()`, then `next_param()` until it
/// returns `None`, then `next_extension()` again.
struct ExtCursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> ExtCursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        ExtCursor { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// OWS = *( SP / HTAB ) (RFC 7230 3.2.3).
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Result<&'a [u8], SyntaxError> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        match self.b.get(start..self.i) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(SyntaxError),
        }
    }

    /// quoted-string (RFC 7230 3.2.6); returns the inside, escapes kept.
    fn quoted(&mut self) -> Result<&'a [u8], SyntaxError> {
        self.i += 1; // the opening DQUOTE
        let start = self.i;
        loop {
            match self.peek() {
                None => return Err(SyntaxError),
                Some(b'"') => break,
                Some(b'\\') => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    match self.b.get(self.i + 1) {
                        Some(&c) if c == b'\t' || c >= 0x20 && c != 0x7f => self.i += 2,
                        _ => return Err(SyntaxError),
                    }
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                Some(c) if c == b'\t' || c >= 0x20 && c != 0x7f => self.i += 1,
                Some(_) => return Err(SyntaxError),
            }
        }
        let inner = self.b.get(start..self.i).ok_or(SyntaxError)?;
        self.i += 1; // the closing DQUOTE
        Ok(inner)
    }

    /// The next extension's name, skipping empty list elements (RFC 7230 7: a recipient
    /// accepts empty elements of a #list). `None` at the end of the value.
    fn next_extension(&mut self) -> Result<Option<&'a [u8]>, SyntaxError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(None),
                Some(b',') => self.i += 1,
                Some(_) => return self.token().map(Some),
            }
        }
    }

    /// The next parameter of the current extension, `None` when it ends (at `,` or at
    /// the end of the value).
    fn next_param(&mut self) -> Result<Option<Param<'a>>, SyntaxError> {
        self.skip_ows();
        match self.peek() {
            None | Some(b',') => return Ok(None),
            Some(b';') => self.i += 1,
            Some(_) => return Err(SyntaxError),
        }
        self.skip_ows();
        let name = self.token()?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Ok(Some((name, None)));
        }
        self.i += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            let q = self.quoted()?;
            // RFC 6455 9.1: an unescaped quoted value must itself be a token.
            if q.is_empty() || !q.iter().all(|&b| b == b'\\' || is_tchar(b)) {
                return Err(SyntaxError);
            }
            RawValue::Quoted(q)
        } else {
            RawValue::Token(self.token()?)
        };
        Ok(Some((name, Some(value))))
    }
}

/// Checks the whole header (every line) for RFC 6455 9.1 syntax.
fn check_syntax(lines: &[&[u8]]) -> Result<(), SyntaxError> {
    for line in lines {
        let mut c = ExtCursor::new(line);
        while c.next_extension()?.is_some() {
            while c.next_param()?.is_some() {}
        }
    }
    Ok(())
}

/// One permessage-deflate offer (or response) with its parameters checked: known
/// names, no duplicates, values 8..=15 (RFC 7692 7.1: "If ... has any extension
/// parameter not defined for use in an offer/response, or has any extension parameter
/// with an invalid value, or has multiple extension parameters with the same name",
/// the offer is declined / the connection failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RawOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer, 7.1.2.2).
    client_max_window_bits: Option<Option<u8>>,
}

/// Why a permessage-deflate element was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmdNegotiationError {
    /// The header is not RFC 6455 9.1 syntax.
    Syntax,
    /// The response has no permessage-deflate element, or other extensions we did not
    /// offer, or more than one element (RFC 6455 9.1: only offered extensions may be
    /// answered).
    Unexpected,
    /// A parameter name not defined by RFC 7692 7.1.
    UnknownParam,
    /// The same parameter twice (7.1).
    DuplicateParam,
    /// A value missing, not 8..=15, or with leading zeroes (7.1.2).
    BadValue,
    /// The response breaks a rule of 7.1: a window larger than offered, or a parameter
    /// we asked for that the server did not confirm.
    Violation,
    /// The server asks us to compress with an 8-bit window, which zlib cannot do.
    Unsupported,
}

impl fmt::Display for PmdNegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Syntax => "malformed Sec-WebSocket-Extensions",
            Self::Unexpected => "unexpected extension in response",
            Self::UnknownParam => "unknown permessage-deflate parameter",
            Self::DuplicateParam => "duplicate permessage-deflate parameter",
            Self::BadValue => "invalid permessage-deflate parameter value",
            Self::Violation => "permessage-deflate response does not match the offer",
            Self::Unsupported => "client_max_window_bits=8 cannot be honoured by zlib",
        };
        f.write_str(s)
    }
}

impl std::error::Error for PmdNegotiationError {}

/// Reads the parameters of the current extension element of `c` into a [`RawOffer`].
/// `is_offer`: whether a valueless `client_max_window_bits` is allowed (7.1.2.2). The
/// element's parameters are always consumed entirely, even on error.
fn read_params(c: &mut ExtCursor<'_>, is_offer: bool) -> Result<RawOffer, PmdNegotiationError> {
    let mut o = RawOffer::default();
    let mut err = None;
    while let Some((name, value)) = c.next_param().map_err(|_| PmdNegotiationError::Syntax)? {
        if err.is_some() {
            continue;
        }
        let check = |bad: bool, e| if bad { Err(e) } else { Ok(()) };
        let r = if name.eq_ignore_ascii_case(b"server_no_context_takeover") {
            // 7.1.1.1: no value.
            check(
                o.server_no_context_takeover,
                PmdNegotiationError::DuplicateParam,
            )
            .and_then(|()| check(value.is_some(), PmdNegotiationError::BadValue))
            .map(|()| o.server_no_context_takeover = true)
        } else if name.eq_ignore_ascii_case(b"client_no_context_takeover") {
            // 7.1.1.2: no value.
            check(
                o.client_no_context_takeover,
                PmdNegotiationError::DuplicateParam,
            )
            .and_then(|()| check(value.is_some(), PmdNegotiationError::BadValue))
            .map(|()| o.client_no_context_takeover = true)
        } else if name.eq_ignore_ascii_case(b"server_max_window_bits") {
            // 7.1.2.1: a value is required.
            check(
                o.server_max_window_bits.is_some(),
                PmdNegotiationError::DuplicateParam,
            )
            .and_then(|()| {
                value
                    .and_then(RawValue::window_bits)
                    .ok_or(PmdNegotiationError::BadValue)
            })
            .map(|bits| o.server_max_window_bits = Some(bits))
        } else if name.eq_ignore_ascii_case(b"client_max_window_bits") {
            // 7.1.2.2: valueless in an offer, a value required in a response.
            check(
                o.client_max_window_bits.is_some(),
                PmdNegotiationError::DuplicateParam,
            )
            .and_then(|()| match value {
                None if is_offer => Ok(None),
                None => Err(PmdNegotiationError::BadValue),
                Some(v) => v
                    .window_bits()
                    .map(Some)
                    .ok_or(PmdNegotiationError::BadValue),
            })
            .map(|bits| o.client_max_window_bits = Some(bits))
        } else {
            Err(PmdNegotiationError::UnknownParam)
        };
        err = r.err();
    }
    match err {
        Some(e) => Err(e),
        None => Ok(o),
    }
}

/// Writes a response or offer element.
fn format_element(
    out: &mut String,
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    client_bits: Option<Option<u8>>,
) {
    use std::fmt::Write as _;
    out.push_str(EXTENSION_NAME);
    if server_nct {
        out.push_str("; server_no_context_takeover");
    }
    if client_nct {
        out.push_str("; client_no_context_takeover");
    }
    if let Some(b) = server_bits {
        let _ = write!(out, "; server_max_window_bits={b}");
    }
    match client_bits {
        Some(Some(b)) => {
            let _ = write!(out, "; client_max_window_bits={b}");
        }
        Some(None) => out.push_str("; client_max_window_bits"),
        None => {}
    }
}

/// Server side of RFC 7692 7.1: given the client's `Sec-WebSocket-Extensions` header
/// lines (in order; RFC 7230 3.2.2 lets a list span several lines), accepts the first
/// acceptable permessage-deflate offer and returns the parameters in force plus the
/// response element to send (`permessage-deflate; ...`). `None`: no acceptable offer,
/// or the header is malformed (then no extension is negotiated at all).
///
/// An offer is declined when it has unknown or duplicated parameters or bad values
/// (7.1), or asks for `server_max_window_bits=8`: zlib cannot compress with 8 bits and
/// 7.1.2.1 forbids using a larger window than the client allows.
pub fn negotiate_server(offers: &[&[u8]], policy: &PmdPolicy) -> Option<(PmdParams, String)> {
    check_syntax(offers).ok()?;
    for line in offers {
        let mut c = ExtCursor::new(line);
        while let Ok(Some(name)) = c.next_extension() {
            let is_pmd = name.eq_ignore_ascii_case(EXTENSION_NAME.as_bytes());
            let Ok(offer) = read_params(&mut c, true) else {
                continue;
            };
            if !is_pmd {
                continue;
            }
            if let Some(accepted) = accept_offer(&offer, policy) {
                return Some(accepted);
            }
        }
    }
    None
}

/// Decides one well-formed offer (RFC 7692 7.1.1 and 7.1.2, server side).
fn accept_offer(o: &RawOffer, policy: &PmdPolicy) -> Option<(PmdParams, String)> {
    let policy_server_bits = policy
        .server_max_window_bits
        .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
    // 7.1.2.1: use the same or a smaller window than offered; we may announce one even
    // when not offered.
    let server_bits = o
        .server_max_window_bits
        .unwrap_or(MAX_WINDOW_BITS)
        .min(policy_server_bits);
    if server_bits < MIN_ZLIB_WINDOW_BITS {
        return None;
    }
    let server_bits_param = (o.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS)
        .then_some(server_bits);
    // 7.1.2.2: only if offered; the same or smaller than an offered value (the value in
    // the offer is a hint we follow, so our inflate window can be smaller).
    let client_bits = o.client_max_window_bits.map(|v| {
        v.unwrap_or(MAX_WINDOW_BITS).min(
            policy
                .client_max_window_bits
                .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
        )
    });
    let client_bits_param = client_bits.filter(|&b| b < MAX_WINDOW_BITS);
    // 7.1.1.1: accepting an offer with server_no_context_takeover means including it.
    let server_nct = o.server_no_context_takeover || policy.server_no_context_takeover;
    // 7.1.1.2: echoing the client's hint lets us reset (and free) our inflater.
    let client_nct = o.client_no_context_takeover || policy.client_no_context_takeover;
    let params = PmdParams {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits_param.unwrap_or(MAX_WINDOW_BITS),
    };
    let mut s = String::with_capacity(128);
    format_element(
        &mut s,
        server_nct,
        client_nct,
        server_bits_param,
        client_bits_param.map(Some),
    );
    Some((params, s))
}

/// Client side: the offer element to send in `Sec-WebSocket-Extensions`. It always
/// carries `client_max_window_bits` (valueless when `client_max_window_bits` is 15)
/// since we can compress with any window the server picks from 9 up (7.1.2.2);
/// `client_max_window_bits` below 9 is sent as 9 (zlib cannot compress with 8).
/// `server_max_window_bits` is sent when below 15 (8 is fine: we inflate with 9).
pub fn client_offer(wanted: &PmdParams) -> String {
    let client_bits = wanted
        .client_max_window_bits
        .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
    let server_bits = wanted
        .server_max_window_bits
        .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    let mut s = String::with_capacity(128);
    format_element(
        &mut s,
        wanted.server_no_context_takeover,
        wanted.client_no_context_takeover,
        (server_bits < MAX_WINDOW_BITS).then_some(server_bits),
        Some((client_bits < MAX_WINDOW_BITS).then_some(client_bits)),
    );
    s
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` response against what
/// [`client_offer`] sent for `offered` (RFC 7692 7.1) and returns the parameters in
/// force. Any error means the client must _Fail the WebSocket Connection_.
pub fn client_accept(
    response_value: &[u8],
    offered: &PmdParams,
) -> Result<PmdParams, PmdNegotiationError> {
    let mut c = ExtCursor::new(response_value);
    let name = c
        .next_extension()
        .map_err(|_| PmdNegotiationError::Syntax)?
        .ok_or(PmdNegotiationError::Unexpected)?;
    if !name.eq_ignore_ascii_case(EXTENSION_NAME.as_bytes()) {
        return Err(PmdNegotiationError::Unexpected);
    }
    let r = read_params(&mut c, false)?;
    // We offered exactly one extension: anything after it was not offered.
    if c.next_extension()
        .map_err(|_| PmdNegotiationError::Syntax)?
        .is_some()
    {
        return Err(PmdNegotiationError::Unexpected);
    }
    // 7.1.1.1: asked for server_no_context_takeover, the server must confirm it.
    if offered.server_no_context_takeover && !r.server_no_context_takeover {
        return Err(PmdNegotiationError::Violation);
    }
    // 7.1.2.1: the same or a smaller window than offered, and present when offered.
    let server_bits = match r.server_max_window_bits {
        Some(b) => b,
        None if offered.server_max_window_bits < MAX_WINDOW_BITS => {
            return Err(PmdNegotiationError::Violation);
        }
        None => MAX_WINDOW_BITS,
    };
    if server_bits > offered.server_max_window_bits.max(MIN_WINDOW_BITS) {
        return Err(PmdNegotiationError::Violation);
    }
    // 7.1.2.2: our offer always had client_max_window_bits (see client_offer), so the
    // server may set it; it must not exceed a value we sent.
    let offered_client = offered
        .client_max_window_bits
        .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
    let client_bits = match r.client_max_window_bits {
        Some(Some(b)) => b,
        _ => offered_client,
    };
    if client_bits > offered_client {
        return Err(PmdNegotiationError::Violation);
    }
    if client_bits < MIN_ZLIB_WINDOW_BITS {
        return Err(PmdNegotiationError::Unsupported);
    }
    Ok(PmdParams {
        server_no_context_takeover: r.server_no_context_takeover,
        client_no_context_takeover: r.client_no_context_takeover
            || offered.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

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
        if self.tx_fresh && self.tx.is_some() {
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
        if msg.is_empty() {
            // 7.2.3.6: a non-final stored block header with no data; our compressor is
            // byte aligned after every sync flush, so this does not disturb its stream.
            out.push(0x00);
            return;
        }
        let start = out.len();
        let (bits, level) = (self.tx_bits, self.level);
        let c = self
            .tx
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(level, false, bits)));
        out.reserve(msg.len() + COMPRESS_SLACK);
        let mut input = msg;
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
        // 7.2.1: remove the sync flush's empty stored block tail.
        if ok && out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            // zlib failed (not expected: only misuse makes it fail). Send the message
            // as stored blocks, which any inflater at any context decodes, and start
            // the compressor afresh so its stream never mixes with this one.
            out.truncate(start);
            encode_stored(msg, out);
            self.tx = None;
            return;
        }
        if self.tx_fresh {
            // 7.1.1: no context takeover: the next message starts a fresh stream.
            if self.free_after_message {
                self.tx = None;
            } else {
                c.reset();
            }
        }
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
mod tests {
    use super::*;

    // RFC 7692 7.2.3.1: "Hello" in one compressed DEFLATE block.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    // 7.2.3.2: the same message again, referring to the first through the shared window.
    const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];
    // 7.2.3.3: "Hello" in a DEFLATE block with no compression.
    const HELLO_STORED: [u8; 11] = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    // 7.2.3.4: "Hello" in a block with BFINAL set, then the 0x00 byte.
    const HELLO_BFINAL: [u8; 8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    // 7.2.3.5: "He" and "llo" in two DEFLATE blocks.
    const HELLO_TWO_BLOCKS: [u8; 13] = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];

    const UNLIMITED: usize = usize::MAX;

    fn server() -> Pmd {
        Pmd::new(Side::Server, &PmdParams::default())
    }

    fn inflate_one(p: &mut Pmd, data: &[u8]) -> Result<Vec<u8>, PmdError> {
        let mut out = Vec::new();
        p.decompress(data, true, &mut out, UNLIMITED)?;
        Ok(out)
    }

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// A message: random bytes, or text-like data from a small alphabet with
        /// repeats (compressible, so matches reach far back in the window).
        fn message(&mut self, max_len: usize) -> Vec<u8> {
            let len = self.below(max_len + 1);
            if matches!(self.next() % 3, 0) {
                (0..len).map(|_| self.next() as u8).collect()
            } else {
                let words: [&[u8]; 6] =
                    [b"hello ", b"world ", b"lwsd ", b"{\"k\":1}", b"\n", b"zz"];
                let mut v = Vec::with_capacity(len);
                while v.len() < len {
                    v.extend_from_slice(words[self.below(words.len())]);
                }
                v.truncate(len);
                v
            }
        }
    }

    // ---- RFC 7692 7.2.3 examples ----

    #[test]
    fn hello_compresses_to_rfc_bytes() {
        let mut p = server();
        let mut out = Vec::new();
        p.compress(b"Hello", &mut out);
        assert_eq!(out, HELLO, "7.2.3.1");
        assert_eq!(inflate_one(&mut server(), &HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn shared_window_second_message() {
        // 7.2.3.2: decode the RFC's bytes with context takeover.
        let mut rx = server();
        assert_eq!(inflate_one(&mut rx, &HELLO).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut rx, &HELLO_AGAIN).unwrap(), b"Hello");
        // Without the shared window the second form refers to missing data.
        let mut fresh = server();
        assert_eq!(
            inflate_one(&mut fresh, &HELLO_AGAIN),
            Err(PmdError::Corrupt)
        );
        // What our compressor yields for the second message, and that it round-trips.
        let mut tx = server();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tx.compress(b"Hello", &mut a);
        tx.compress(b"Hello", &mut b);
        assert_eq!(a, HELLO);
        // zlib-rs 0.6 at level 1 gives 02 13 00 00 here, not the RFC's f2 00 11 00 00
        // (DEFLATE output is not unique); both decode to "Hello" with the shared window.
        assert!(
            b.len() < HELLO.len(),
            "second message uses the window: {b:02x?}"
        );
        let mut rx = server();
        assert_eq!(inflate_one(&mut rx, &a).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut rx, &b).unwrap(), b"Hello");
    }

    #[test]
    fn fragmented_message_every_split() {
        // 7.2.3.1's fragmented example and 7.2.3.5's two blocks, split into two and
        // three frames at every position.
        for msg in [&HELLO[..], &HELLO_TWO_BLOCKS[..]] {
            for i in 0..=msg.len() {
                for j in i..=msg.len() {
                    let mut p = server();
                    let mut out = Vec::new();
                    p.decompress(&msg[..i], false, &mut out, UNLIMITED).unwrap();
                    p.decompress(&msg[i..j], false, &mut out, UNLIMITED)
                        .unwrap();
                    p.decompress(&msg[j..], true, &mut out, UNLIMITED).unwrap();
                    assert_eq!(out, b"Hello", "split at {i},{j}");
                }
            }
        }
        // The RFC's own frames: "0x41 0x03 0xf2 0x48 0xcd" and "0x80 0x04 0xc9 0xc9 0x07 0x00".
        let mut p = server();
        let mut out = Vec::new();
        p.decompress(&[0xf2, 0x48, 0xcd], false, &mut out, UNLIMITED)
            .unwrap();
        p.decompress(&[0xc9, 0xc9, 0x07, 0x00], true, &mut out, UNLIMITED)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn no_compression_block() {
        assert_eq!(inflate_one(&mut server(), &HELLO_STORED).unwrap(), b"Hello");
        let mut out = Vec::new();
        encode_stored(b"Hello", &mut out);
        assert_eq!(out, HELLO_STORED, "7.2.3.3");
        // Stored blocks longer than one block (65535 bytes) round-trip.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        encode_stored(&big, &mut out);
        assert_eq!(inflate_one(&mut server(), &out).unwrap(), big);
    }

    #[test]
    fn bfinal_block_then_more_messages() {
        // 7.2.3.4, then further messages on the same context-takeover decompressor.
        let mut p = server();
        assert_eq!(inflate_one(&mut p, &HELLO_BFINAL).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut p, &HELLO_BFINAL).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut p, &HELLO).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut p, &HELLO_AGAIN).unwrap(), b"Hello");
        // Split across frames too.
        let mut p = server();
        let mut out = Vec::new();
        p.decompress(&HELLO_BFINAL[..7], false, &mut out, UNLIMITED)
            .unwrap();
        p.decompress(&HELLO_BFINAL[7..], true, &mut out, UNLIMITED)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn empty_message() {
        // 7.2.3.6: an empty message is the single byte 0x00.
        let mut p = server();
        let mut out = Vec::new();
        p.compress(b"", &mut out);
        assert_eq!(out, [0x00]);
        assert!(!p.has_compressor(), "no stream for an empty message");
        assert_eq!(inflate_one(&mut server(), &[0x00]).unwrap(), b"");
        // Between messages with context takeover, both ways.
        let mut rx = server();
        for m in [&b"abcabc"[..], b"", b"abcabc", b""] {
            let mut c = Vec::new();
            p.compress(m, &mut c);
            assert_eq!(inflate_one(&mut rx, &c).unwrap(), m);
        }
    }

    // ---- limits and bad data ----

    #[test]
    fn max_total_exact_boundary() {
        let msg = vec![b'a'; 10_000];
        let mut c = Vec::new();
        server().compress(&msg, &mut c);
        let mut out = Vec::new();
        server().decompress(&c, true, &mut out, 10_000).unwrap();
        assert_eq!(out, msg);
        let mut out = Vec::new();
        assert_eq!(
            server().decompress(&c, true, &mut out, 9_999),
            Err(PmdError::TooBig)
        );
        assert_eq!(PmdError::TooBig.close_code(), 1009);
        // The bound is per message, across frames.
        let mut p = server();
        let mut out = Vec::new();
        let half = c.len() / 2;
        let r1 = p.decompress(&c[..half], false, &mut Vec::new(), 6_000);
        let r2 = r1.and_then(|()| p.decompress(&c[half..], true, &mut out, 6_000));
        assert_eq!(r2, Err(PmdError::TooBig));
    }

    #[test]
    fn bomb_fails_early_with_bounded_output() {
        // 100 MiB of zeros, compressed in 1 MiB pieces into one message.
        let zeros = vec![0u8; 1 << 20];
        let mut c = Compress::new_with_window_bits(Compression::new(9), false, 15);
        let mut bomb = Vec::with_capacity(200 << 10);
        for _ in 0..100 {
            let mut input = &zeros[..];
            while !input.is_empty() {
                bomb.reserve(64 << 10);
                let before = c.total_in();
                c.compress_vec(input, &mut bomb, FlushCompress::None)
                    .unwrap();
                input = &input[(c.total_in() - before) as usize..];
            }
        }
        loop {
            bomb.reserve(64 << 10);
            c.compress_vec(&[], &mut bomb, FlushCompress::Sync).unwrap();
            if bomb.len() < bomb.capacity() {
                break;
            }
        }
        assert!(bomb.ends_with(&TAIL));
        bomb.truncate(bomb.len() - 4);
        assert!(bomb.len() < 200 << 10, "bomb is {} bytes", bomb.len());

        const MAX: usize = 1 << 20;
        let mut p = server();
        let mut out = Vec::new();
        // Feed it in frames of 16 KiB; it must fail long before the end.
        let mut frames = 0;
        let mut result = Ok(());
        for (i, frame) in bomb.chunks(16 << 10).enumerate() {
            let fin = (i + 1) * (16 << 10) >= bomb.len();
            result = p.decompress(frame, fin, &mut out, MAX);
            frames += 1;
            assert!(out.capacity() <= MAX + 1, "capacity {}", out.capacity());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(PmdError::TooBig));
        assert!(out.len() <= MAX + 1);
        assert!(frames <= 2, "failed after {frames} frames");
        assert!(!p.has_decompressor(), "stream dropped after an error");
    }

    #[test]
    fn corrupt_data() {
        assert_eq!(PmdError::Corrupt.close_code(), 1007);
        // BTYPE 11 is reserved (RFC 1951 3.2.3).
        assert_eq!(
            inflate_one(&mut server(), &[0xff, 0xff]),
            Err(PmdError::Corrupt)
        );
        // A stored block whose NLEN is not LEN's complement.
        assert_eq!(
            inflate_one(&mut server(), &[0x00, 0x05, 0x00, 0x00, 0x00, b'x']),
            Err(PmdError::Corrupt)
        );
        // A peer that negotiated no context takeover but refers to its previous
        // message: our fresh decompressor has no such data.
        let params = PmdParams {
            client_no_context_takeover: true,
            ..PmdParams::default()
        };
        let mut rx = Pmd::new(Side::Server, &params);
        let mut tx = Pmd::new(Side::Client, &PmdParams::default());
        let mut rng = Rng(7);
        let block: Vec<u8> = (0..2000).map(|_| rng.next() as u8).collect();
        let (mut c1, mut c2) = (Vec::new(), Vec::new());
        tx.compress(&block, &mut c1);
        tx.compress(&block, &mut c2);
        assert!(c2.len() < 100, "second message is a back reference");
        assert!(inflate_one(&mut rx, &c1).unwrap() == block);
        assert!(matches!(inflate_one(&mut rx, &c2), Err(PmdError::Corrupt)));
        // Fuzz-style garbage never panics and never exceeds the bound.
        for seed in 1..300u64 {
            let mut rng = Rng(seed);
            let data = rng.message(64);
            let mut p = server();
            let mut out = Vec::new();
            let _ = p.decompress(&data, seed % 2 == 0, &mut out, 100);
            assert!(out.len() <= 101);
        }
    }

    // ---- round trips ----

    fn round_trip(params: &PmdParams, seed: u64, messages: usize, max_len: usize, free: bool) {
        let mut server = Pmd::new(Side::Server, params);
        let mut client = Pmd::new(Side::Client, params);
        server.set_free_after_message(free);
        client.set_free_after_message(free);
        let mut rng = Rng(seed);
        for n in 0..messages {
            let msg = rng.message(max_len);
            for to_client in [true, false] {
                let (tx, rx) = if to_client {
                    (&mut server, &mut client)
                } else {
                    (&mut client, &mut server)
                };
                let mut c = Vec::new();
                tx.compress(&msg, &mut c);
                // Split into 1..=4 frames at random points.
                let mut out = Vec::new();
                let mut rest = &c[..];
                loop {
                    let take = if matches!(rng.next() % 4, 0) {
                        rest.len()
                    } else {
                        rng.below(rest.len() + 1)
                    };
                    let (frame, tail) = rest.split_at(take);
                    rest = tail;
                    rx.decompress(frame, rest.is_empty(), &mut out, msg.len())
                        .unwrap_or_else(|e| panic!("{params:?} msg {n}: {e}"));
                    if rest.is_empty() {
                        break;
                    }
                }
                assert!(out == msg, "{params:?} msg {n} len {}", msg.len());
            }
        }
        let fresh_tx = params.server_no_context_takeover;
        let fresh_rx = params.client_no_context_takeover;
        // Streams without context are freed after each message (free) or kept reset
        // until release_idle; streams with context are never freed.
        let kept = |fresh: bool| !fresh || !free;
        assert_eq!(server.has_compressor(), kept(fresh_tx));
        assert_eq!(server.has_decompressor(), kept(fresh_rx));
        assert_eq!(client.has_compressor(), kept(fresh_rx));
        assert_eq!(client.has_decompressor(), kept(fresh_tx));
        server.release_idle();
        client.release_idle();
        assert_eq!(server.has_compressor(), !fresh_tx);
        assert_eq!(server.has_decompressor(), !fresh_rx);
        assert_eq!(client.has_compressor(), !fresh_rx);
        assert_eq!(client.has_decompressor(), !fresh_tx);
    }

    #[test]
    fn round_trip_all_windows_and_takeover() {
        for bits in 9..=15u8 {
            for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
                let params = PmdParams {
                    server_no_context_takeover: snct,
                    client_no_context_takeover: cnct,
                    server_max_window_bits: bits,
                    client_max_window_bits: 24 - bits,
                };
                let params = PmdParams {
                    client_max_window_bits: params.client_max_window_bits.min(15),
                    ..params
                };
                let seed = u64::from(bits) * 31 + 1;
                round_trip(&params, seed, 12, 40_000, bits % 2 == 0);
            }
        }
    }

    #[test]
    fn round_trip_large_and_levels() {
        for level in [0, 1, 6, 9] {
            let mut tx = Pmd::with_level(Side::Server, &PmdParams::default(), level);
            let mut rx = Pmd::new(Side::Client, &PmdParams::default());
            let mut rng = Rng(level as u64 + 99);
            for _ in 0..3 {
                let msg = rng.message(300_000);
                let mut c = Vec::new();
                tx.compress(&msg, &mut c);
                assert_eq!(inflate_one(&mut rx, &c).unwrap(), msg);
            }
        }
    }

    #[test]
    fn release_idle_keeps_context_and_partial_messages() {
        let nct = PmdParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..PmdParams::default()
        };
        let mut p = Pmd::new(Side::Server, &nct);
        let mut c = Vec::new();
        p.compress(b"Hello", &mut c);
        let mut out = Vec::new();
        p.decompress(&HELLO[..3], false, &mut out, UNLIMITED)
            .unwrap();
        assert!(p.release_idle(), "compressor freed");
        assert!(!p.has_compressor());
        assert!(p.has_decompressor(), "not in the middle of a message");
        p.decompress(&HELLO[3..], true, &mut out, UNLIMITED)
            .unwrap();
        assert_eq!(out, b"Hello");
        assert!(p.release_idle() && !p.has_decompressor());
        assert!(!p.release_idle());
        // With context takeover nothing is ever released.
        let mut p = server();
        p.compress(b"Hello", &mut c);
        assert_eq!(inflate_one(&mut p, &HELLO).unwrap(), b"Hello");
        assert!(!p.release_idle());
        assert_eq!(inflate_one(&mut p, &HELLO_AGAIN).unwrap(), b"Hello");
    }

    #[test]
    fn compress_appends_to_existing_output() {
        let mut out = vec![0x81, 0x05];
        server().compress(b"Hello", &mut out);
        assert_eq!(&out[2..], HELLO);
        let mut out = b"prefix".to_vec();
        server().decompress(&HELLO, true, &mut out, 5).unwrap();
        assert_eq!(out, b"prefixHello");
    }

    // ---- negotiation (RFC 7692 7.1) ----

    fn neg(lines: &[&str]) -> Option<(PmdParams, String)> {
        neg_with(lines, &PmdPolicy::default())
    }

    fn neg_with(lines: &[&str], policy: &PmdPolicy) -> Option<(PmdParams, String)> {
        let v: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        negotiate_server(&v, policy)
    }

    fn resp(lines: &[&str]) -> Option<String> {
        neg(lines).map(|(_, s)| s)
    }

    #[test]
    fn negotiate_plain_and_each_parameter() {
        let (p, s) = neg(&["permessage-deflate"]).unwrap();
        assert_eq!(p, PmdParams::default());
        assert_eq!(s, "permessage-deflate");

        let (p, s) = neg(&["permessage-deflate; server_no_context_takeover"]).unwrap();
        assert!(p.server_no_context_takeover);
        assert_eq!(s, "permessage-deflate; server_no_context_takeover");

        let (p, s) = neg(&["permessage-deflate; client_no_context_takeover"]).unwrap();
        assert!(p.client_no_context_takeover);
        assert_eq!(s, "permessage-deflate; client_no_context_takeover");

        let (p, s) = neg(&["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(s, "permessage-deflate; server_max_window_bits=10");

        // An explicit 15 is confirmed (7.1.2.1: accepting means including it).
        let s = resp(&["permessage-deflate; server_max_window_bits=15"]).unwrap();
        assert_eq!(s, "permessage-deflate; server_max_window_bits=15");

        // Valueless client_max_window_bits: nothing to answer at the default policy.
        let (p, s) = neg(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        assert_eq!(s, "permessage-deflate");

        let (p, s) = neg(&["permessage-deflate; client_max_window_bits=8"]).unwrap();
        assert_eq!(p.client_max_window_bits, 8);
        assert_eq!(s, "permessage-deflate; client_max_window_bits=8");

        let (p, s) = neg(&[
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=12; \
             client_no_context_takeover; server_no_context_takeover",
        ])
        .unwrap();
        assert_eq!(
            p,
            PmdParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 12,
                client_max_window_bits: 9,
            }
        );
        assert_eq!(
            s,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=9"
        );
    }

    #[test]
    fn negotiate_policy() {
        let policy = PmdPolicy {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 12,
            client_max_window_bits: 11,
        };
        // Not offered: we may still announce our own limits and no-takeover.
        let (p, s) = neg_with(&["permessage-deflate"], &policy).unwrap();
        assert_eq!(
            s,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12"
        );
        assert_eq!(
            p.client_max_window_bits, 15,
            "client window only if offered"
        );
        // Offered: the smaller of the two.
        let (p, s) = neg_with(
            &["permessage-deflate; server_max_window_bits=10; client_max_window_bits"],
            &policy,
        )
        .unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (10, 11)
        );
        assert!(s.ends_with("server_max_window_bits=10; client_max_window_bits=11"));
        let (p, _) = neg_with(&["permessage-deflate; client_max_window_bits=9"], &policy).unwrap();
        assert_eq!(p.client_max_window_bits, 9);
        // A policy below zlib's minimum acts as 9.
        let low = PmdPolicy {
            server_max_window_bits: 8,
            ..PmdPolicy::default()
        };
        let (p, s) = neg_with(&["permessage-deflate"], &low).unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        assert_eq!(s, "permessage-deflate; server_max_window_bits=9");
    }

    #[test]
    fn negotiate_rejects_bad_offers() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1x",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"16\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; foo",
            "permessage-deflate; x-webkit=1",
            // Syntax errors: the whole header is ignored.
            "permessage-deflate;",
            "permessage-deflate; ; client_no_context_takeover",
            "permessage-deflate client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; a=b=c",
            "permessage-deflate, x; y=\"\"",
            "permessage-deflate, x; y=\"q,;\"",
            "=permessage-deflate",
            "permessage-deflate\u{1}",
            "",
            "x-webkit-deflate-frame",
            "deflate-frame, permessage-deflat, permessage-deflatex",
        ] {
            assert_eq!(resp(&[bad]), None, "{bad:?}");
        }
    }

    #[test]
    fn negotiate_window_8_declined_next_offer_taken() {
        // 7.1.2.1: a server must not use a larger window than asked; zlib cannot do 8.
        assert_eq!(
            resp(&["permessage-deflate; server_max_window_bits=8"]),
            None
        );
        let (p, s) = neg(&[
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; foo=1, \
             permessage-deflate; server_max_window_bits=9",
        ])
        .unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        assert_eq!(s, "permessage-deflate; server_max_window_bits=9");
    }

    #[test]
    fn negotiate_lists_lines_quotes_case() {
        // Several offers, the first acceptable one wins; other extensions skipped.
        let s = resp(&[
            "x-foo; a=\"q\", permessage-deflate; client_no_context_takeover, \
             permessage-deflate",
        ]);
        assert_eq!(
            s.as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        // Across header lines, empty list elements and OWS.
        let s = resp(&[
            "x-webkit-deflate-frame",
            " , ,\tpermessage-deflate ;\tserver_max_window_bits = 11 ,",
        ]);
        assert_eq!(
            s.as_deref(),
            Some("permessage-deflate; server_max_window_bits=11")
        );
        // Quoted values, escapes included (RFC 6455 9.1).
        let s = resp(&["permessage-deflate; server_max_window_bits=\"12\""]);
        assert_eq!(
            s.as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
        let s = resp(&["permessage-deflate; client_max_window_bits=\"1\\3\""]);
        assert_eq!(
            s.as_deref(),
            Some("permessage-deflate; client_max_window_bits=13")
        );
        // Case-insensitive tokens.
        let s =
            resp(&["PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=10"]);
        assert_eq!(
            s.as_deref(),
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
        );
        // A malformed later line voids the header.
        assert_eq!(resp(&["permessage-deflate", "foo;"]), None);
    }

    #[test]
    fn client_offer_strings() {
        assert_eq!(
            client_offer(&PmdParams::default()),
            "permessage-deflate; client_max_window_bits"
        );
        let p = PmdParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 8,
            client_max_window_bits: 8,
        };
        assert_eq!(
            client_offer(&p),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=8; client_max_window_bits=9"
        );
    }

    #[test]
    fn client_accept_rules() {
        let d = PmdParams::default();
        let ok = |r: &str, o: &PmdParams| client_accept(r.as_bytes(), o);
        assert_eq!(ok("permessage-deflate", &d), Ok(d));
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=8", &d)
                .map(|p| p.server_max_window_bits),
            Ok(8)
        );
        // The server may add no-takeover parameters and a client window.
        let p = ok(
            "Permessage-Deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits=10",
            &d,
        )
        .unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(p.client_max_window_bits, 10);

        let asked = PmdParams {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..d
        };
        assert_eq!(
            ok(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                &asked
            )
            .map(|p| (p.server_max_window_bits, p.client_max_window_bits)),
            Ok((9, 12))
        );
        use PmdNegotiationError as E;
        for (r, o, e) in [
            (
                "permessage-deflate; server_max_window_bits=10",
                &asked,
                E::Violation,
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                &asked,
                E::Violation,
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
                &asked,
                E::Violation,
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                 client_max_window_bits=13",
                &asked,
                E::Violation,
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                &d,
                E::Unsupported,
            ),
            (
                "permessage-deflate; client_max_window_bits",
                &d,
                E::BadValue,
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                &d,
                E::BadValue,
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                &d,
                E::BadValue,
            ),
            ("permessage-deflate; foo", &d, E::UnknownParam),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                &d,
                E::DuplicateParam,
            ),
            ("x-other", &d, E::Unexpected),
            ("permessage-deflate, permessage-deflate", &d, E::Unexpected),
            ("", &d, E::Unexpected),
            ("permessage-deflate;", &d, E::Syntax),
        ] {
            assert_eq!(ok(r, o), Err(e), "{r:?}");
        }
    }

    #[test]
    fn client_and_server_agree() {
        let wanted = [
            PmdParams::default(),
            PmdParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 11,
            },
            PmdParams {
                server_max_window_bits: 9,
                ..PmdParams::default()
            },
        ];
        let policies = [
            PmdPolicy::default(),
            PmdPolicy {
                server_no_context_takeover: true,
                client_no_context_takeover: false,
                server_max_window_bits: 12,
                client_max_window_bits: 9,
            },
        ];
        for w in &wanted {
            for pol in &policies {
                let offer = client_offer(w);
                let (server_params, response) =
                    negotiate_server(&[offer.as_bytes()], pol).expect("accepted");
                let client_params = client_accept(response.as_bytes(), w).expect("valid");
                assert_eq!(server_params, client_params, "{offer} -> {response}");
                round_trip(&server_params, 5, 4, 5000, false);
            }
        }
    }
}
