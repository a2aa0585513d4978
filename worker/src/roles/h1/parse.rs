//! Request-head parsing: request line and header section (RFC 9112 sections 2 to 6,
//! RFC 9110 sections 5, 7 and 10).
//!
//! The syntax is checked by `httparse` (SIMD-accelerated, fuzzed for years, and the
//! parser hyper uses); this module adds what httparse leaves to its caller: the size
//! limits, the message-framing rules that guard against request smuggling (RFC 9112
//! 6.1 and 6.3), Host rules (RFC 9112 3.2), request-target forms (RFC 9112 3.2),
//! Connection / keep-alive (RFC 9112 9.3), Expect (RFC 9110 10.1.1) and Upgrade
//! (RFC 9110 7.8).
//!
//! The parsed head does not copy the request: [`RequestHead`] keeps the bytes it was
//! parsed from (a borrowed slice on the fast path, or `Bytes` after
//! [`RequestHead::to_owned_head`]) plus small `u32` spans into them. The headers a
//! server usually needs ([`Hdr`]) are located during the single parse pass; any other
//! header is found by re-scanning the (already validated) header section.

use bytes::Bytes;
use std::mem::MaybeUninit;

use super::{ErrorKind, H1Error, H1Limits};

/// How many `httparse::Header` slots live on the stack during a parse. The configured
/// `max_headers` is clamped to this; 256 slots are 8 KiB of stack and left
/// uninitialised, so the size costs nothing per request.
pub const HEADER_SLOTS: usize = 256;

/// Request method (RFC 9110 9). Methods are case-sensitive (RFC 9110 9.1): `get` is a
/// valid token but not `GET`, so it is [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    /// A syntactically valid token we have no name for: the caller answers 501
    /// (RFC 9110 9.1) or hands it to a plugin.
    Other,
}

impl Method {
    fn from_token(t: &[u8]) -> Method {
        match t {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// Protocol version of the request (RFC 9112 2.3). Other versions are refused with 505.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// Which of the four request-target forms was used (RFC 9112 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query` (3.2.1).
    Origin,
    /// `http://host/path?query` (3.2.2): the authority replaces the Host header.
    Absolute,
    /// `host:port`, only with CONNECT (3.2.3).
    Authority,
    /// `*`, only with OPTIONS (3.2.4).
    Asterisk,
}

/// How the request body is delimited (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: no body (6.3 rule 7).
    None,
    /// Content-Length: exactly this many bytes (6.3 rule 6).
    Length(u64),
    /// Transfer-Encoding: chunked (6.3 rule 4, section 7.1).
    Chunked,
}

impl BodyKind {
    /// True when `Body`/`BodyEnd` events follow the head (a non-empty length, or chunked).
    #[inline]
    pub fn has_body(self) -> bool {
        matches!(self, BodyKind::Chunked) || matches!(self, BodyKind::Length(n) if n > 0)
    }
}

/// An Upgrade the request asked for (RFC 9110 7.8), only reported when the request is
/// HTTP/1.1 and carries the `upgrade` connection option as 7.8 requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// `Upgrade: websocket` (RFC 6455 4.1); the ws role validates the rest.
    WebSocket,
    /// `Upgrade: h2c` (RFC 7540 3.2; deprecated by RFC 9113 3.1 but still used).
    H2c,
    /// Some other protocol: the server ignores it and answers over HTTP/1.1; the
    /// state machine does not pause for it.
    Other,
}

/// Headers located during the parse pass, read with [`RequestHead::get`] without a
/// re-scan. For a header sent more than once the first occurrence is kept (Host sent
/// twice is an error, RFC 9112 3.2); use [`RequestHead::headers`] to see every line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Hdr {
    Host,
    ContentType,
    Range,
    IfRange,
    IfModifiedSince,
    IfNoneMatch,
    IfMatch,
    IfUnmodifiedSince,
    AcceptEncoding,
    Origin,
    Cookie,
    Authorization,
    UserAgent,
    Referer,
    SecWebSocketKey,
    SecWebSocketVersion,
    SecWebSocketProtocol,
    SecWebSocketExtensions,
    Http2Settings,
}

const KNOWN: usize = Hdr::Http2Settings as usize + 1;

/// A byte range inside the head bytes. `u32` keeps the head small; a head is at most
/// `max_request_line + max_header_bytes` long, far below 4 GiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    #[inline]
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
    #[inline]
    fn sub(self, from: usize, to: usize) -> Span {
        Span {
            start: self.start + from as u32,
            end: self.start + to as u32,
        }
    }
}

/// What [`header_framing`] found in the header section that shapes the message.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    te_seen: bool,
    chunked_last: bool,
    hosts: u8,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    expect_continue: bool,
}

/// A parsed request head. `B` holds the head bytes: `&[u8]` straight out of the
/// caller's receive buffer, or `Bytes` once owned. Accessors never panic: spans were
/// computed from these very bytes.
#[derive(Clone, Debug)]
pub struct RequestHead<B> {
    buf: B,
    pub method: Method,
    pub version: Version,
    pub target_form: TargetForm,
    /// RFC 9112 9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// RFC 9110 10.1.1: `Expect: 100-continue` on an HTTP/1.1 request (ignored on 1.0).
    pub expect_continue: bool,
    pub body: BodyKind,
    pub upgrade: Option<Upgrade>,
    method_span: Span,
    target_span: Span,
    /// Offset of `?` inside the target, or the target length when there is none.
    query_at: u32,
    /// Path start inside the target (non-zero for absolute-form).
    path_at: u32,
    /// Authority inside the target (absolute- and authority-form).
    authority: Span,
    header_block: Span,
    present: u32,
    known: [Span; KNOWN],
}

/// A head borrowing the receive buffer.
pub type RequestHeadRef<'a> = RequestHead<&'a [u8]>;

impl<B: AsRef<[u8]>> RequestHead<B> {
    #[inline]
    fn slice(&self, s: Span) -> &[u8] {
        self.buf
            .as_ref()
            .get(s.start as usize..s.end as usize)
            .unwrap_or(&[])
    }

    /// The method token as sent.
    #[inline]
    pub fn method_raw(&self) -> &[u8] {
        self.slice(self.method_span)
    }

    /// The raw request-target, exactly as sent (RFC 9112 3.2).
    #[inline]
    pub fn target(&self) -> &[u8] {
        self.slice(self.target_span)
    }

    /// Path part of the target without the query, still percent-encoded. For
    /// absolute-form it starts after the authority; an empty path is `/`
    /// (RFC 9110 4.2.3). Authority- and asterisk-form give the target itself.
    #[inline]
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        let p = t
            .get(self.path_at as usize..self.query_at as usize)
            .unwrap_or(&[]);
        if p.is_empty() { b"/" } else { p }
    }

    /// The query after `?`, if any (without the `?`).
    #[inline]
    pub fn query(&self) -> Option<&[u8]> {
        self.target().get(self.query_at as usize + 1..)
    }

    /// The host the request is for: the authority of an absolute-form target
    /// (RFC 9112 3.2.2 says it overrides Host), else the Host header.
    #[inline]
    pub fn host(&self) -> Option<&[u8]> {
        if self.target_form == TargetForm::Absolute {
            Some(self.slice(self.authority))
        } else {
            self.get(Hdr::Host)
        }
    }

    /// Value of a header located during parsing (first occurrence).
    #[inline]
    pub fn get(&self, h: Hdr) -> Option<&[u8]> {
        let i = h as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        self.known.get(i).map(|s| self.slice(*s))
    }

    /// First header named `name` (ASCII case-insensitive), by scanning the header
    /// section. Prefer [`RequestHead::get`] for the headers in [`Hdr`].
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header line in order, as (name, value) with the value's surrounding
    /// whitespace removed (RFC 9110 5.5).
    pub fn headers(&self) -> HeaderIter<'_> {
        HeaderIter {
            rest: self.slice(self.header_block),
        }
    }

    /// The head bytes this head was parsed from (request line through the empty line).
    #[inline]
    pub fn raw(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Copy the head bytes into one `Bytes` (one allocation) so the head can outlive
    /// the receive buffer.
    pub fn to_owned_head(&self) -> RequestHead<Bytes> {
        self.with_buf(Bytes::copy_from_slice(self.buf.as_ref()))
    }

    /// Re-home the spans onto other storage holding the same bytes (e.g.
    /// `Bytes::slice_ref` of a shared receive buffer: zero-copy ownership).
    pub fn with_buf<C: AsRef<[u8]>>(&self, buf: C) -> RequestHead<C> {
        RequestHead {
            buf,
            method: self.method,
            version: self.version,
            target_form: self.target_form,
            keep_alive: self.keep_alive,
            expect_continue: self.expect_continue,
            body: self.body,
            upgrade: self.upgrade,
            method_span: self.method_span,
            target_span: self.target_span,
            query_at: self.query_at,
            path_at: self.path_at,
            authority: self.authority,
            header_block: self.header_block,
            present: self.present,
            known: self.known,
        }
    }
}

/// Iterator over the header lines of a head that httparse already validated: lines end
/// in CRLF or LF, names are tokens directly followed by `:` (no obs-fold, RFC 9112 5.2).
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return None;
            }
            if let Some(c) = line.iter().position(|&b| b == b':') {
                return Some((&line[..c], trim_ows(&line[c + 1..])));
            }
        }
    }
}

/// Remove optional whitespace (SP / HTAB, RFC 9110 5.6.3) on both sides.
#[inline]
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Comma-separated list elements (RFC 9110 5.6.1), trimmed, empty ones skipped.
#[inline]
fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Header names the parser acts on or remembers.
#[derive(Clone, Copy)]
enum Class {
    Known(Hdr),
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
}

/// `name` (a token, as httparse guarantees) equals the lowercase literal `lit`,
/// ignoring ASCII case. Setting bit 0x20 lowercases letters and leaves `-` and digits
/// as they are; no other token byte can map onto a letter, `-` or a digit that way
/// (only CTLs would), so the OR-compare is exact for tokens. Eight bytes per step.
#[inline]
fn eq_lower(name: &[u8], lit: &[u8]) -> bool {
    if name.len() != lit.len() {
        return false;
    }
    let mut a = name.chunks_exact(8);
    let mut b = lit.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        if x | 0x2020_2020_2020_2020 != y {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(&x, &y)| x | 0x20 == y)
}

/// Classify a header name with one literal compare: dispatch on (length, first
/// letter) first.
#[inline]
fn classify(name: &[u8]) -> Option<Class> {
    let first = name.first().copied().unwrap_or(0) | 0x20;
    let (lit, class): (&[u8], Class) = match (name.len(), first) {
        (4, b'h') => (b"host", Class::Known(Hdr::Host)),
        (5, b'r') => (b"range", Class::Known(Hdr::Range)),
        (6, b'o') => (b"origin", Class::Known(Hdr::Origin)),
        (6, b'c') => (b"cookie", Class::Known(Hdr::Cookie)),
        (6, b'e') => (b"expect", Class::Expect),
        (7, b'r') => (b"referer", Class::Known(Hdr::Referer)),
        (7, b'u') => (b"upgrade", Class::Upgrade),
        // Two names share (8, 'i'): the fourth byte tells them apart.
        (8, b'i') if name.get(3).is_some_and(|&b| b | 0x20 == b'm') => {
            (b"if-match", Class::Known(Hdr::IfMatch))
        }
        (8, b'i') => (b"if-range", Class::Known(Hdr::IfRange)),
        (10, b'u') => (b"user-agent", Class::Known(Hdr::UserAgent)),
        (10, b'c') => (b"connection", Class::Connection),
        (12, b'c') => (b"content-type", Class::Known(Hdr::ContentType)),
        (13, b'i') => (b"if-none-match", Class::Known(Hdr::IfNoneMatch)),
        (13, b'a') => (b"authorization", Class::Known(Hdr::Authorization)),
        (14, b'h') => (b"http2-settings", Class::Known(Hdr::Http2Settings)),
        (14, b'c') => (b"content-length", Class::ContentLength),
        (15, b'a') => (b"accept-encoding", Class::Known(Hdr::AcceptEncoding)),
        (17, b'i') => (b"if-modified-since", Class::Known(Hdr::IfModifiedSince)),
        (17, b's') => (b"sec-websocket-key", Class::Known(Hdr::SecWebSocketKey)),
        (17, b't') => (b"transfer-encoding", Class::TransferEncoding),
        (19, b'i') => (b"if-unmodified-since", Class::Known(Hdr::IfUnmodifiedSince)),
        (21, b's') => (
            b"sec-websocket-version",
            Class::Known(Hdr::SecWebSocketVersion),
        ),
        (22, b's') => (
            b"sec-websocket-protocol",
            Class::Known(Hdr::SecWebSocketProtocol),
        ),
        (24, b's') => (
            b"sec-websocket-extensions",
            Class::Known(Hdr::SecWebSocketExtensions),
        ),
        _ => return None,
    };
    eq_lower(name, lit).then_some(class)
}

/// RFC 9110 8.6: `Content-Length = 1*DIGIT`, one value. A list (`5, 5`, `5,6`, `5,`)
/// is refused even when its elements agree: RFC 9110 8.6 and RFC 9112 6.3 rule 5 let a
/// recipient either merge identical values or reject the message, and a server that
/// merges while an intermediary in front of it takes the first (or last) element frames
/// the body differently from it: a request-smuggling gap. nginx rejects them too.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = trim_ows(v);
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// RFC 9110 7.2 / RFC 3986 3.2.2: `uri-host [ ":" port ]`. Allows reg-name, IPv4 and
/// IP-literal characters; refuses anything else (`/`, `\`, `@`, spaces, controls), so a
/// Host can never smuggle a path into a vhost lookup or a log line.
#[inline]
fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&b| HOST_CHARS[b as usize])
}

/// Bytes allowed in a Host value, as a table: one load per byte.
static HOST_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            );
        i += 1;
    }
    t
};

/// What the head parser returns for a complete head.
pub(crate) struct Parsed<'a> {
    pub head: RequestHeadRef<'a>,
    pub len: usize,
}

#[inline]
fn err(kind: ErrorKind) -> H1Error {
    H1Error::new(kind)
}

/// The length of the request line when it is already complete in `buf`, or how long
/// it is so far, plus where the header section starts.
fn scan_line(buf: &[u8]) -> (usize, Option<usize>) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let len = if nl > 0 && buf.get(nl - 1) == Some(&b'\r') {
                nl - 1
            } else {
                nl
            };
            (len, Some(nl + 1))
        }
        None => {
            let len = buf.len() - usize::from(buf.last() == Some(&b'\r'));
            (len, None)
        }
    }
}

/// Map an httparse error to our error. httparse refuses a version other than
/// `HTTP/1.0` / `HTTP/1.1` at its first differing byte; we look at the whole version
/// token: a well-formed `HTTP/<d>.<d>` is a version we do not speak (505, RFC 9110
/// 15.6.6), anything else is a malformed request line (400, RFC 9112 2.3), and a
/// token cut short by the end of the buffer that may still become `HTTP/<d>.<d>`
/// waits for more (`Ok(None)`), so the verdict never depends on how bytes arrive.
fn map_httparse_error(
    e: httparse::Error,
    buf: &[u8],
    target_end: Option<usize>,
) -> Result<Option<Parsed<'_>>, H1Error> {
    let kind = match e {
        httparse::Error::TooManyHeaders => ErrorKind::TooManyHeaders,
        httparse::Error::HeaderName | httparse::Error::HeaderValue => ErrorKind::BadHeader,
        httparse::Error::Version => {
            let v = target_end.and_then(|e| buf.get(e + 1..)).unwrap_or(&[]);
            let end = v.iter().position(|&b| b == b'\r' || b == b'\n');
            let tok = &v[..end.unwrap_or(v.len())];
            let pattern_ok = tok.len() <= 8
                && tok.iter().enumerate().all(|(i, &b)| match i {
                    5 | 7 => b.is_ascii_digit(),
                    6 => b == b'.',
                    _ => b == b"HTTP/"[i],
                });
            match (end, pattern_ok, tok.len()) {
                (Some(_), true, 8) => ErrorKind::VersionNotSupported,
                (None, true, _) => return Ok(None),
                _ => ErrorKind::BadRequestLine,
            }
        }
        httparse::Error::Token | httparse::Error::NewLine | httparse::Error::Status => {
            ErrorKind::BadRequestLine
        }
    };
    Err(err(kind))
}

/// The error httparse finds in `buf` alone, if any (a prefix that only needs more
/// bytes is no error).
fn probe_error(buf: &[u8], nslots: usize) -> Option<H1Error> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; HEADER_SLOTS] =
        [const { MaybeUninit::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let res = req.parse_with_uninit_headers(buf, &mut slots[..nslots.min(HEADER_SLOTS)]);
    let target_end = req.path.map(|p| Span::of(buf, p.as_bytes()).end as usize);
    match res {
        Err(e) => map_httparse_error(e, buf, target_end).err(),
        Ok(_) => None,
    }
}

/// Parse one request head from the start of `buf` (no leading empty lines: the server
/// strips those, RFC 9112 2.2). `Ok(None)` means the head is incomplete and still
/// within the limits; errors are decided as early as the bytes allow.
pub(crate) fn parse_head<'a>(
    buf: &'a [u8],
    limits: &H1Limits,
) -> Result<Option<Parsed<'a>>, H1Error> {
    let mut slots: [MaybeUninit<httparse::Header<'a>>; HEADER_SLOTS] =
        [const { MaybeUninit::uninit() }; HEADER_SLOTS];
    let nslots = limits.max_headers.min(HEADER_SLOTS);
    let mut req = httparse::Request::new(&mut []);
    let res = req.parse_with_uninit_headers(buf, &mut slots[..nslots]);
    let target_end = req.path.map(|p| Span::of(buf, p.as_bytes()).end as usize);
    let len = match res {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // Decide limits on an incomplete head now rather than buffer more.
            let (line_len, headers_at) = scan_line(buf);
            if line_len > limits.max_request_line {
                return Err(err(ErrorKind::RequestLineTooLong));
            }
            if let Some(h) = headers_at
                && buf.len() - h > limits.max_header_bytes
            {
                return Err(err(ErrorKind::HeadersTooLarge));
            }
            return Ok(None);
        }
        Err(e) => {
            // Whichever the peer hit first decides: the malformed byte or the limit.
            // An incremental delivery stops at the first byte past a limit, so judge
            // the whole buffer as that prefix would be judged: the verdict must not
            // depend on how the bytes were split into recvs.
            let (line_len, headers_at) = scan_line(buf);
            let (cut, limit) = if line_len > limits.max_request_line {
                (limits.max_request_line + 1, ErrorKind::RequestLineTooLong)
            } else if let Some(h) = headers_at
                && buf.len() - h > limits.max_header_bytes
            {
                (h + limits.max_header_bytes + 1, ErrorKind::HeadersTooLarge)
            } else {
                return map_httparse_error(e, buf, target_end);
            };
            return Err(probe_error(buf.get(..cut).unwrap_or(buf), nslots).unwrap_or(err(limit)));
        }
    };
    let (Some(method), Some(target), Some(minor), Some(target_end)) =
        (req.method, req.path, req.version, target_end)
    else {
        return Err(err(ErrorKind::BadRequestLine));
    };
    // Request line = method SP target SP "HTTP/1.x" (8 bytes), then CRLF or LF.
    let line_len = target_end + 9;
    if line_len > limits.max_request_line {
        return Err(err(ErrorKind::RequestLineTooLong));
    }
    let headers_at = line_len
        + if buf.get(line_len) == Some(&b'\r') {
            2
        } else {
            1
        };
    if len.saturating_sub(headers_at) > limits.max_header_bytes {
        return Err(err(ErrorKind::HeadersTooLarge));
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    let method_e = Method::from_token(method.as_bytes());
    let target_b = target.as_bytes();
    let target_span = Span::of(buf, target_b);

    // Request-target form (RFC 9112 3.2) and its path/query split.
    let mut query_at = target_b.len();
    let mut path_at = 0usize;
    let mut authority = Span::default();
    let form = match target_b.first() {
        Some(b'/') => TargetForm::Origin,
        Some(b'*') if target_b.len() == 1 && method_e == Method::Options => TargetForm::Asterisk,
        _ if method_e == Method::Connect => {
            // 3.2.3: authority-form is host:port only.
            if !valid_host(target_b) || !target_b.contains(&b':') {
                return Err(err(ErrorKind::BadTarget));
            }
            authority = target_span;
            query_at = target_b.len();
            TargetForm::Authority
        }
        _ => {
            // 3.2.2 absolute-form: we serve http and https URIs only.
            let after = if target_b.len() > 7 && target_b[..7].eq_ignore_ascii_case(b"http://") {
                7
            } else if target_b.len() > 8 && target_b[..8].eq_ignore_ascii_case(b"https://") {
                8
            } else {
                return Err(err(ErrorKind::BadTarget));
            };
            let rest = &target_b[after..];
            let auth_len = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let auth = &rest[..auth_len];
            if auth.is_empty() || !valid_host(auth) {
                return Err(err(ErrorKind::BadTarget));
            }
            authority = target_span.sub(after, after + auth_len);
            path_at = after + auth_len;
            TargetForm::Absolute
        }
    };
    if matches!(form, TargetForm::Origin | TargetForm::Absolute) {
        // One pass: the query split, and no fragment (not part of request-target,
        // RFC 9112 3.2; a `#` here is a client bug or an attack on path matching).
        for (i, &b) in target_b.iter().enumerate().skip(path_at) {
            if b == b'#' {
                return Err(err(ErrorKind::BadTarget));
            }
            if b == b'?' && query_at == target_b.len() {
                query_at = i;
            }
        }
    }
    if method_e == Method::Connect && form != TargetForm::Authority {
        return Err(err(ErrorKind::BadTarget));
    }

    let mut f = Framing::default();
    let mut present: u32 = 0;
    let mut known = [Span::default(); KNOWN];
    let mut upgrade_v: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        let Some(class) = classify(name) else {
            continue;
        };
        match class {
            Class::Known(k) => {
                let bit = 1u32 << (k as u32);
                if k == Hdr::Host {
                    f.hosts = f.hosts.saturating_add(1);
                }
                if present & bit == 0 {
                    present |= bit;
                    known[k as usize] = Span::of(buf, value);
                }
            }
            Class::ContentLength => {
                let n =
                    parse_content_length(value).ok_or_else(|| err(ErrorKind::BadContentLength))?;
                // A repeated field line is refused like a list in one line (see
                // parse_content_length), whether or not the values agree.
                if f.content_length.is_some() {
                    return Err(err(ErrorKind::BadContentLength));
                }
                f.content_length = Some(n);
            }
            Class::TransferEncoding => {
                f.te_seen = true;
                let mut any = false;
                for coding in list(value) {
                    any = true;
                    if f.chunked_last {
                        // RFC 9112 7: chunked applied more than once, or something
                        // after chunked: the body length cannot be determined (6.1: 400).
                        return Err(err(ErrorKind::BadTransferEncoding));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        f.chunked_last = true;
                    } else {
                        // RFC 9112 6.1: a coding we do not understand -> 501.
                        return Err(err(ErrorKind::UnsupportedTransferEncoding));
                    }
                }
                if !any {
                    return Err(err(ErrorKind::BadTransferEncoding));
                }
            }
            Class::Connection => {
                for opt in list(value) {
                    if opt.eq_ignore_ascii_case(b"close") {
                        f.conn_close = true;
                    } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                        f.conn_keep_alive = true;
                    } else if opt.eq_ignore_ascii_case(b"upgrade") {
                        f.conn_upgrade = true;
                    }
                }
            }
            Class::Upgrade => {
                if upgrade_v.is_none() {
                    upgrade_v = Some(value);
                }
            }
            Class::Expect => {
                f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
        }
    }
    let header_block = req
        .headers
        .first()
        .map(|h| Span {
            start: Span::of(buf, h.name.as_bytes()).start,
            end: len as u32,
        })
        .unwrap_or_default();

    // RFC 9112 3.2: HTTP/1.1 needs exactly one Host; more than one, or an invalid
    // value, is 400 whatever the version.
    if f.hosts > 1 {
        return Err(err(ErrorKind::DuplicateHost));
    }
    if f.hosts == 0 && version == Version::Http11 {
        return Err(err(ErrorKind::MissingHost));
    }
    if present & (1 << Hdr::Host as u32) != 0 {
        let s = known[Hdr::Host as usize];
        if !valid_host(buf.get(s.start as usize..s.end as usize).unwrap_or(&[])) {
            return Err(err(ErrorKind::BadHost));
        }
    }

    // Message framing, RFC 9112 6.3.
    let body = if f.te_seen {
        if version == Version::Http10 {
            // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            return Err(err(ErrorKind::BadTransferEncoding));
        }
        if f.content_length.is_some() {
            // RFC 9112 6.1 / 6.3 rule 3: both is how requests are smuggled; refuse.
            return Err(err(ErrorKind::ContentLengthWithTransferEncoding));
        }
        BodyKind::Chunked
    } else if let Some(n) = f.content_length {
        if n > limits.max_body {
            return Err(err(ErrorKind::BodyTooLarge));
        }
        BodyKind::Length(n)
    } else {
        BodyKind::None
    };

    // RFC 9112 9.3: persistence.
    let keep_alive = match version {
        Version::Http11 => !f.conn_close,
        Version::Http10 => f.conn_keep_alive && !f.conn_close,
    };
    // RFC 9110 7.8: Upgrade counts only with the "upgrade" connection option, and is
    // ignored on HTTP/1.0.
    let upgrade = match (upgrade_v, version, f.conn_upgrade) {
        (Some(v), Version::Http11, true) => Some(
            list(v)
                .find_map(|p| {
                    // A protocol may carry a version: "websocket", "h2c", "foo/1".
                    let name = p.split(|&b| b == b'/').next().unwrap_or(p);
                    if name.eq_ignore_ascii_case(b"websocket") {
                        Some(Upgrade::WebSocket)
                    } else if name.eq_ignore_ascii_case(b"h2c") {
                        Some(Upgrade::H2c)
                    } else {
                        None
                    }
                })
                .unwrap_or(Upgrade::Other),
        ),
        _ => None,
    };

    Ok(Some(Parsed {
        head: RequestHead {
            buf: &buf[..len],
            method: method_e,
            version,
            target_form: form,
            keep_alive,
            expect_continue: f.expect_continue && version == Version::Http11,
            body,
            upgrade,
            method_span: Span::of(buf, method.as_bytes()),
            target_span,
            query_at: query_at as u32,
            path_at: path_at as u32,
            authority,
            header_block,
            present,
            known,
        },
        len,
    }))
}
