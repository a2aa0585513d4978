//! The sans-IO HTTP/1.1 server role (RFC 9112, with RFC 9110 semantics).
//!
//! [`H1Server`] is the per-connection state machine. The caller owns the socket and
//! the receive buffer; it hands [`H1Server::feed`] the bytes it has (one recv, or its
//! reassembly buffer of leftover + new bytes) and gets back how many bytes were
//! consumed and one [`Event`]. Unconsumed bytes stay with the caller, who passes them
//! again, followed by more, next time. A complete head parses straight out of the
//! caller's buffer: [`RequestHead`] borrows it, nothing is copied.
//!
//! ```text
//!              ┌────────────── keep-alive ───────────────┐
//!              ▼                                          │
//!   ──▶ ReadingHead ──Head──▶ (body?) ──▶ Body* ──▶ BodyEnd ──┤
//!              │                 │                            │ Connection: close /
//!              │                 └── no body ─────────────────┤ HTTP/1.0
//!              │ Upgrade (websocket/h2c) ─▶ Upgraded (caller  ▼
//!              │     takes the bytes after `consumed`)      Closed
//!              │ H2 preface (first request) ─▶ H2Preface
//!              └── bad input ─▶ Error(status) ─▶ Closed
//! ```
//!
//! Several requests in one buffer (pipelining, RFC 9112 9.3.2) come out one after
//! another; the caller answers them in order. Any [`H1Error`] means "answer with its
//! status, then close": after a framing error the request boundaries are lost
//! (RFC 9112 9.3 / 6.3).
//!
//! Submodules: [`parse`] (heads, with httparse), [`chunked`] (chunked coding in and
//! out), [`response`] (response heads and error pages), [`date`] (IMF-fixdate).

pub mod chunked;
pub mod date;
pub mod parse;
pub mod response;
#[cfg(test)]
mod tests;

pub use chunked::{CHUNK_END, LAST_CHUNK, MAX_CHUNK_LINE, write_chunk, write_chunk_header};
pub use date::{DateCache, HTTP_DATE_LEN, fmt_http_date, parse_http_date};
pub use parse::{
    BodyKind, HEADER_SLOTS, Hdr, HeaderIter, Method, RequestHead, RequestHeadRef, TargetForm,
    Upgrade, Version,
};
pub use response::{
    CONTINUE_100, Framing, ResponseBody, ResponseHead, error_body, error_response, reason_phrase,
    write_header, write_response_head, write_status_page,
};

use chunked::{ChunkedDecoder, Step};

/// Limits on what a peer may send, each answered with its own status. The defaults
/// follow what nginx and browsers live with; `lwsd` sets them with `--max-request-line`,
/// `--max-headers`, `--max-header-bytes` and `--max-body`.
#[derive(Clone, Debug)]
pub struct H1Limits {
    /// Longest request line (method SP target SP version, without CRLF) -> 414.
    /// 8 KiB: nginx's `large_client_header_buffers` line size and RFC 9112 3's
    /// "at least 8000 octets" recommendation; real URLs stay far below.
    pub max_request_line: usize,
    /// Most header fields -> 431. 64: browsers send ~10-20; 64 leaves room for proxies'
    /// additions while keeping the per-request parse bounded. Clamped to
    /// [`HEADER_SLOTS`].
    pub max_headers: usize,
    /// Most bytes in the header section (after the request line, up to and including
    /// the empty line) -> 431. 16 KiB holds large cookies (browsers cap one cookie at
    /// 4 KiB) and bounds the reassembly buffer per connection.
    pub max_header_bytes: usize,
    /// Largest request body (Content-Length, or the running chunked total) -> 413.
    /// 16 MiB: enough for form posts and uploads through a plugin; a server taking
    /// larger uploads raises it.
    pub max_body: u64,
}

impl Default for H1Limits {
    fn default() -> Self {
        H1Limits {
            max_request_line: 8 * 1024,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_body: 16 * 1024 * 1024,
        }
    }
}

/// What went wrong, and so which status answers it. Every kind is the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request line: bad method token, bad target characters, bad
    /// delimiters, not `HTTP/x.y` (RFC 9112 3) -> 400.
    BadRequestLine,
    /// Request-target form not allowed for the method, bad authority, fragment
    /// (RFC 9112 3.2) -> 400.
    BadTarget,
    /// Malformed header line: whitespace before the colon, obs-fold, CTLs, bad name
    /// (RFC 9112 5) -> 400.
    BadHeader,
    /// HTTP/1.1 without Host (RFC 9112 3.2) -> 400.
    MissingHost,
    /// More than one Host (RFC 9112 3.2) -> 400.
    DuplicateHost,
    /// Host value not `uri-host [":" port]` (RFC 9112 3.2) -> 400.
    BadHost,
    /// Content-Length not one run of digits: a list (`1, 1`), an empty element, or the
    /// field repeated (RFC 9110 8.6, RFC 9112 6.3 rule 5: rejected, not merged) -> 400.
    BadContentLength,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 6.1) -> 400.
    ContentLengthWithTransferEncoding,
    /// chunked not last / repeated, empty TE, or TE on HTTP/1.0 (RFC 9112 6.1) -> 400.
    BadTransferEncoding,
    /// A transfer coding other than chunked (RFC 9112 6.1) -> 501.
    UnsupportedTransferEncoding,
    /// Malformed chunked framing (RFC 9112 7.1) -> 400.
    BadChunk,
    /// Request line longer than `max_request_line` (RFC 9110 15.5.15) -> 414.
    RequestLineTooLong,
    /// More than `max_headers` fields (RFC 6585 5) -> 431.
    TooManyHeaders,
    /// Header or trailer section over `max_header_bytes` (RFC 6585 5) -> 431.
    HeadersTooLarge,
    /// Body over `max_body` (RFC 9110 15.5.14) -> 413.
    BodyTooLarge,
    /// `HTTP/<digit>...` other than 1.0 and 1.1 (RFC 9110 15.6.6) -> 505.
    VersionNotSupported,
}

/// A request the server must refuse: send [`response::error_response`] for
/// [`H1Error::status`], then close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H1Error {
    pub kind: ErrorKind,
}

impl H1Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        H1Error { kind }
    }

    /// The status code that answers this error.
    pub fn status(self) -> u16 {
        match self.kind {
            ErrorKind::BadRequestLine
            | ErrorKind::BadTarget
            | ErrorKind::BadHeader
            | ErrorKind::MissingHost
            | ErrorKind::DuplicateHost
            | ErrorKind::BadHost
            | ErrorKind::BadContentLength
            | ErrorKind::ContentLengthWithTransferEncoding
            | ErrorKind::BadTransferEncoding
            | ErrorKind::BadChunk => 400,
            ErrorKind::UnsupportedTransferEncoding => 501,
            ErrorKind::RequestLineTooLong => 414,
            ErrorKind::TooManyHeaders | ErrorKind::HeadersTooLarge => 431,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::VersionNotSupported => 505,
        }
    }
}

impl std::fmt::Display for H1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.kind, self.status())
    }
}

impl std::error::Error for H1Error {}

/// The HTTP/2 connection preface (RFC 9113 3.4): a client with prior knowledge of h2c
/// starts with it instead of an HTTP/1.1 request.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What [`H1Server::feed`] found.
// `Head` is ~220 bytes (spans of the known headers) against 16 for the others: moved
// once per request, far cheaper than boxing it (an allocation per request).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete request head. When `head.body.has_body()`, `Body` events and one
    /// `BodyEnd` follow; otherwise the next request may follow at once.
    Head(RequestHeadRef<'a>),
    /// A piece of the request body, a subslice of the input (chunk framing removed).
    Body(&'a [u8]),
    /// The request body is complete (also after a chunked trailer section).
    BodyEnd,
    /// Nothing more can be done with these bytes: keep `input[consumed..]`, add the
    /// next recv, call again.
    NeedMore,
    /// The last request asked to switch protocols (websocket or h2c): the state machine
    /// stops reading. `input[consumed..]` belongs to the new protocol. If the caller
    /// refuses the upgrade it answers normally and calls
    /// [`H1Server::decline_upgrade`].
    Upgraded,
    /// The connection opened with the h2 preface (RFC 9113 3.4); nothing consumed:
    /// hand the whole input to the h2 role.
    H2Preface,
    /// No further requests are read here (after `Connection: close`, an HTTP/1.0
    /// request without keep-alive, or an error): answer what is pending, then close.
    Closed,
    /// Answer with `err.status()` and close (RFC 9112 9.3: framing is lost).
    Error(H1Error),
}

/// Result of one [`H1Server::feed`] call.
#[derive(Debug)]
pub struct Feed<'a> {
    /// Bytes of the input used up; the caller drops them.
    pub consumed: usize,
    pub event: Event<'a>,
}

#[derive(Debug)]
enum State {
    Head,
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// Body data all delivered; `BodyEnd` is next.
    BodyEnd,
    Upgraded,
    Closed,
}

/// What happens once the current message is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Next,
    Upgrade,
    Close,
}

/// The HTTP/1.1 server side of one connection.
#[derive(Debug)]
pub struct H1Server {
    limits: H1Limits,
    state: State,
    after: After,
    /// Request-line/empty-line bytes skipped before the current head (RFC 9112 2.2),
    /// counted against `max_request_line` so a CRLF flood is refused.
    leading: usize,
    requests: u64,
}

impl H1Server {
    pub fn new(limits: H1Limits) -> Self {
        H1Server {
            limits,
            state: State::Head,
            after: After::Next,
            leading: 0,
            requests: 0,
        }
    }

    /// Requests whose heads were parsed so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// True while no byte of a request has been accepted yet (first request, nothing
    /// consumed): the place for a raw-protocol fallback decision.
    pub fn is_fresh(&self) -> bool {
        self.requests == 0 && self.leading == 0 && matches!(self.state, State::Head)
    }

    /// True when no request is in progress (between requests): an idle keep-alive
    /// connection may be closed without cutting a request in half.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// True from a head that announced a body until that body's end has been reported:
    /// the connection waits for body bytes (its idle timer is the body timeout, not the
    /// header or keep-alive one).
    pub fn in_body(&self) -> bool {
        matches!(
            self.state,
            State::Length { .. } | State::Chunked(_) | State::BodyEnd
        )
    }

    pub fn limits(&self) -> &H1Limits {
        &self.limits
    }

    /// After [`Event::Upgraded`], the caller chose to answer over HTTP/1.1 (no ws
    /// protocol, h2c not enabled): resume reading requests.
    pub fn decline_upgrade(&mut self) {
        if matches!(self.state, State::Upgraded) {
            self.state = State::Head;
            self.after = After::Next;
        }
    }

    /// Stop reading requests (the caller decided to close after the current answer).
    pub fn close(&mut self) {
        self.state = State::Closed;
    }

    /// Advance over `input`. See [`Event`] for what to do with each result; keep
    /// calling while events come out, stop at `NeedMore`, `Upgraded`, `H2Preface`,
    /// `Closed` or `Error`.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Feed<'a> {
        match &mut self.state {
            State::Head => self.feed_head(input),
            State::Length { remaining } => {
                if input.is_empty() {
                    return Feed {
                        consumed: 0,
                        event: Event::NeedMore,
                    };
                }
                let n = (*remaining).min(input.len() as u64) as usize;
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = State::BodyEnd;
                }
                Feed {
                    consumed: n,
                    event: Event::Body(input.get(..n).unwrap_or(&[])),
                }
            }
            State::Chunked(dec) => match dec.decode(input, &self.limits) {
                Ok((n, Step::Data(d))) => Feed {
                    consumed: n,
                    event: Event::Body(d),
                },
                Ok((n, Step::NeedMore)) => Feed {
                    consumed: n,
                    event: Event::NeedMore,
                },
                Ok((n, Step::Done)) => {
                    self.message_done();
                    Feed {
                        consumed: n,
                        event: Event::BodyEnd,
                    }
                }
                Err(e) => self.fail(0, e),
            },
            State::BodyEnd => {
                self.message_done();
                Feed {
                    consumed: 0,
                    event: Event::BodyEnd,
                }
            }
            State::Upgraded => Feed {
                consumed: 0,
                event: Event::Upgraded,
            },
            State::Closed => Feed {
                consumed: 0,
                event: Event::Closed,
            },
        }
    }

    fn message_done(&mut self) {
        self.state = match self.after {
            After::Next => State::Head,
            After::Upgrade => State::Upgraded,
            After::Close => State::Closed,
        };
    }

    fn fail<'a>(&mut self, consumed: usize, e: H1Error) -> Feed<'a> {
        self.state = State::Closed;
        Feed {
            consumed,
            event: Event::Error(e),
        }
    }

    fn feed_head<'a>(&mut self, input: &'a [u8]) -> Feed<'a> {
        // RFC 9112 2.2: ignore empty lines before a request line. They are consumed
        // here (whole CRLF / LF only) so the head parses from offset 0.
        let mut skip = 0usize;
        loop {
            match input.get(skip..) {
                Some([b'\r', b'\n', ..]) => skip += 2,
                Some([b'\n', ..]) => skip += 1,
                _ => break,
            }
        }
        if skip > 0 {
            self.leading += skip;
            if self.leading > self.limits.max_request_line {
                return self.fail(skip, H1Error::new(ErrorKind::RequestLineTooLong));
            }
        }
        let buf = input.get(skip..).unwrap_or(&[]);
        if buf.is_empty() || buf == b"\r" {
            return Feed {
                consumed: skip,
                event: Event::NeedMore,
            };
        }
        if self.requests == 0 && self.leading == 0 && buf.first() == Some(&b'P') {
            // RFC 9113 3.4: h2 prior knowledge. A prefix of the preface may still
            // become one; wait for the rest before parsing it as HTTP/1.1.
            let n = buf.len().min(H2_PREFACE.len());
            if buf.get(..n) == H2_PREFACE.get(..n) {
                let event = if n == H2_PREFACE.len() {
                    Event::H2Preface
                } else {
                    Event::NeedMore
                };
                return Feed { consumed: 0, event };
            }
        }
        match parse::parse_head(buf, &self.limits) {
            Ok(None) => Feed {
                consumed: skip,
                event: Event::NeedMore,
            },
            Err(e) => self.fail(skip, e),
            Ok(Some(p)) => {
                self.leading = 0;
                self.requests += 1;
                let head = p.head;
                self.after = match head.upgrade {
                    Some(Upgrade::WebSocket | Upgrade::H2c) => After::Upgrade,
                    _ if !head.keep_alive => After::Close,
                    _ => After::Next,
                };
                self.state = match head.body {
                    BodyKind::Length(n) if n > 0 => State::Length { remaining: n },
                    BodyKind::Chunked => State::Chunked(ChunkedDecoder::new()),
                    _ => match self.after {
                        After::Next => State::Head,
                        After::Upgrade => State::Upgraded,
                        After::Close => State::Closed,
                    },
                };
                Feed {
                    consumed: skip + p.len,
                    event: Event::Head(head),
                }
            }
        }
    }
}

impl Default for H1Server {
    fn default() -> Self {
        H1Server::new(H1Limits::default())
    }
}
