//! permessage-deflate negotiation (RFC 7692 section 7.1) over the `Sec-WebSocket-Extensions`
//! grammar of RFC 6455 section 9.1: the server's choice among offers and its response, the
//! client's offer and its check of the response.

use std::fmt;

use super::{
    EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS, MIN_ZLIB_WINDOW_BITS, PmdParams, PmdPolicy,
};

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
