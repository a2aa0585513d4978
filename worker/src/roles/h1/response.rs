//! Writing HTTP/1.1 response heads (RFC 9112 4 and 6, RFC 9110 6.6 and 15) into the
//! connection's output `BytesMut`, plus the small HTML status pages.
//!
//! Hand-written: the head is a handful of `put_slice` calls and one integer format,
//! with no `fmt` machinery and no allocation beyond the output buffer's growth.
//!
//! Framing rules applied here, so every caller gets them right:
//! - The status line always says `HTTP/1.1`, also to HTTP/1.0 clients (RFC 9110 2.5:
//!   a server sends the highest minor version it conforms to).
//! - 1xx and 204 carry neither Content-Length nor Transfer-Encoding (RFC 9110 8.6,
//!   RFC 9112 6.1); 304 may carry the representation's Content-Length.
//! - A streamed body is chunked for HTTP/1.1; an HTTP/1.0 client cannot read chunked
//!   (RFC 9112 6.1: "MUST NOT send ... Transfer-Encoding unless the request indicates
//!   HTTP/1.1"), so it gets a close-delimited body (RFC 9112 6.3 rule 8).
//! - `Connection: close` whenever the connection will close (RFC 9112 9.6); an HTTP/1.0
//!   client that asked for keep-alive gets `Connection: keep-alive` (RFC 9112 C.2.2).

use bytes::{BufMut, Bytes, BytesMut};

use super::Version;

/// The interim response sent before reading a body the client held back with
/// `Expect: 100-continue` (RFC 9110 10.1.1, 15.2.1).
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// `Content-Length: n` (also for HEAD and 304, where no body bytes follow).
    Length(u64),
    /// Length unknown up front: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
    Streamed,
    /// No body and no length header (1xx, 204, or a 304 without a length).
    Empty,
}

/// What the caller must do after writing the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Send the body with [`super::write_chunk_header`] / [`super::CHUNK_END`] and end
    /// it with [`super::LAST_CHUNK`].
    pub chunked: bool,
    /// False: close the connection after the body (the head says `Connection: close`).
    pub keep_alive: bool,
}

/// Everything in a response head. `headers` are written as given (Content-Type,
/// ETag, Location, ...): no validation, so they must come from the server, not
/// from peer input.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    pub status: u16,
    /// `None`: the standard phrase from [`reason_phrase`].
    pub reason: Option<&'a [u8]>,
    /// The request's version (decides chunked vs close-delimited, keep-alive header).
    pub version: Version,
    /// The request allowed keep-alive and the server agrees.
    pub keep_alive: bool,
    pub body: ResponseBody,
    /// IMF-fixdate from [`super::DateCache`]; empty: no Date header.
    pub date: &'a [u8],
    /// Server header value; empty: none.
    pub server: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
}

/// Write one header line.
#[inline]
pub fn write_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

impl ResponseHead<'_> {
    /// Write the status line and the standard headers but not the final CRLF, so the
    /// caller can append more with [`write_header`] and then `b"\r\n"`.
    pub fn write_open(&self, out: &mut BytesMut) -> Framing {
        let no_body_framing = self.status < 200 || self.status == 204;
        let mut keep_alive = self.keep_alive;
        let mut chunked = false;
        if !no_body_framing && self.body == ResponseBody::Streamed {
            if self.version == Version::Http11 {
                chunked = true;
            } else {
                keep_alive = false;
            }
        }
        out.reserve(128);
        out.put_slice(b"HTTP/1.1 ");
        let s = self.status.min(999);
        out.put_slice(&[
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        let reason = match self.reason {
            Some(r) => r,
            None => reason_phrase(self.status).as_bytes(),
        };
        out.put_slice(reason);
        out.put_slice(b"\r\n");
        if !self.server.is_empty() {
            write_header(out, b"Server", self.server);
        }
        if !self.date.is_empty() {
            write_header(out, b"Date", self.date);
        }
        if !no_body_framing {
            match self.body {
                ResponseBody::Length(n) => {
                    let mut tmp = itoa::Buffer::new();
                    write_header(out, b"Content-Length", tmp.format(n).as_bytes());
                }
                ResponseBody::Streamed if chunked => {
                    out.put_slice(b"Transfer-Encoding: chunked\r\n");
                }
                _ => {}
            }
        }
        if self.status >= 200 {
            if !keep_alive {
                out.put_slice(b"Connection: close\r\n");
            } else if self.version == Version::Http10 {
                out.put_slice(b"Connection: keep-alive\r\n");
            }
        }
        for (n, v) in self.headers {
            write_header(out, n, v);
        }
        Framing {
            chunked,
            keep_alive,
        }
    }
}

/// Write a complete response head (status line, headers, empty line).
#[inline]
pub fn write_response_head(out: &mut BytesMut, head: &ResponseHead<'_>) -> Framing {
    let f = head.write_open(out);
    out.put_slice(b"\r\n");
    f
}

macro_rules! statuses {
    ($( $code:literal => $reason:literal ),* $(,)?) => {
        /// The standard reason phrase (RFC 9110 15), or "" for codes we do not name
        /// (RFC 9112 4: the phrase may be empty).
        pub fn reason_phrase(status: u16) -> &'static str {
            match status {
                $( $code => $reason, )*
                _ => "",
            }
        }

        /// A small HTML page naming the status, for error and redirect answers.
        pub fn error_body(status: u16) -> &'static [u8] {
            match status {
                $( $code => concat!(
                    "<!DOCTYPE html>\n<html><head><title>", $code, " ", $reason,
                    "</title></head>\n<body><h1>", $code, " ", $reason, "</h1></body></html>\n"
                ).as_bytes(), )*
                _ => b"<!DOCTYPE html>\n<html><head><title>Error</title></head>\n<body><h1>Error</h1></body></html>\n",
            }
        }
    };
}

statuses! {
    100 => "Continue",
    101 => "Switching Protocols",
    200 => "OK",
    201 => "Created",
    202 => "Accepted",
    204 => "No Content",
    206 => "Partial Content",
    301 => "Moved Permanently",
    302 => "Found",
    303 => "See Other",
    304 => "Not Modified",
    307 => "Temporary Redirect",
    308 => "Permanent Redirect",
    400 => "Bad Request",
    401 => "Unauthorized",
    403 => "Forbidden",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    411 => "Length Required",
    412 => "Precondition Failed",
    413 => "Content Too Large",
    414 => "URI Too Long",
    415 => "Unsupported Media Type",
    416 => "Range Not Satisfiable",
    417 => "Expectation Failed",
    421 => "Misdirected Request",
    426 => "Upgrade Required",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    502 => "Bad Gateway",
    503 => "Service Unavailable",
    504 => "Gateway Timeout",
    505 => "HTTP Version Not Supported",
}

/// Write a complete response whose body is the status page from [`error_body`]
/// (`text/html`). `head_only`: a HEAD request, the length is sent without the body.
pub fn write_status_page(
    out: &mut BytesMut,
    status: u16,
    version: Version,
    keep_alive: bool,
    head_only: bool,
    date: &[u8],
    server: &[u8],
) -> Framing {
    let body = error_body(status);
    let f = write_response_head(
        out,
        &ResponseHead {
            status,
            reason: None,
            version,
            keep_alive,
            body: ResponseBody::Length(body.len() as u64),
            date,
            server,
            headers: &[(b"Content-Type", b"text/html; charset=utf-8")],
        },
    );
    if !head_only {
        out.put_slice(body);
    }
    f
}

/// A complete error response with `Connection: close`, for an [`super::H1Error`]
/// (the connection closes after it, RFC 9112 9.6).
pub fn error_response(status: u16, date: &[u8], server: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + error_body(status).len());
    write_status_page(
        &mut out,
        status,
        Version::Http11,
        false,
        false,
        date,
        server,
    );
    out.freeze()
}
