//! Sessions: an HTTP exchange or a WebSocket session, separate from the connection that
//! carries it (DESIGN.md section 3, "the shape of a worker").
//!
//! A carrier (HTTP/1.1 today, an HTTP/2 stream next) turns a connection's bytes into
//! sessions and gives each a [`Stream`]: send a response head, send data with an
//! end-of-stream flag, how much may be sent now. A session reports whether it wants a
//! `writeable` callback, and the carrier schedules it (on HTTP/2: gated by the stream's
//! credit). Written against this interface, the same session code runs on an HTTP/1.1
//! connection and on an HTTP/2 stream:
//!
//! - [`ws::WsSession`]: a WebSocket protocol over the stream's data (on HTTP/1.1 after
//!   the upgrade the stream is the connection itself; by RFC 8441 it is an h2 stream).
//! - the HTTP exchange: a request routed to a mount, answered with a protocol-neutral
//!   [`Response`] that the carrier serialises (HTTP/1.1 text with Content-Length or
//!   chunked framing; HEADERS and DATA frames on h2).

pub mod http;
pub mod ws;

use std::rc::Rc;

use bytes::Bytes;

use crate::api::ConnId;
use crate::sink::Sink;

/// A session's identity: the connection carrying it and its stream on that connection
/// (0 on HTTP/1.1, where a connection carries one session at a time; the h2 stream id
/// on HTTP/2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    pub conn: ConnId,
    pub stream: u32,
}

impl SessionId {
    /// The identity plugins see for this session ([`ConnId`] with the stream).
    pub fn conn_id(&self) -> ConnId {
        self.conn.with_stream(self.stream)
    }
}

/// A protocol-neutral HTTP response: the carrier adds the fields that depend on it
/// (Date, Server, framing, connection management) and serialises it.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    pub status: u16,
    /// Fields as given (Content-Type, ETag, Location, ...): they come from the server or
    /// from a protocol through the checked [`crate::api::HttpResponse::with_header`].
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// How the body's length is known.
    pub length: BodyLength,
}

/// What the head says about the body that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body and no length (1xx, 204, a 304).
    None,
    /// Exactly this many bytes follow (also for HEAD, where none do).
    Known(u64),
    /// Unknown up front: the session streams it and ends it with `fin` (chunked on
    /// HTTP/1.1, close-delimited on HTTP/1.0, END_STREAM on HTTP/2).
    Streamed,
}

/// A response body the carrier sends by itself.
#[derive(Debug)]
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, read as the stream can take them.
    File {
        file: Rc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

/// What a session sees of the stream that carries it. [`Sink::push`] queues stream
/// data without ending it; [`Sink::queued`] is what waits to be sent.
pub trait Stream: Sink {
    /// The session's identity.
    fn id(&self) -> SessionId;
    /// Queues stream data; `fin` ends the session's side of the stream.
    fn send_data(&mut self, data: Bytes, fin: bool);
    /// How many more bytes the session may queue now (the connection's high-water mark on
    /// HTTP/1.1; the stream's and connection's flow-control credit on HTTP/2).
    fn credit(&self) -> usize;
    /// Sends a response head and, for [`Body::Bytes`] and [`Body::File`], its body: the
    /// carrier serialises the head with the fields that depend on it (HTTP/1.1: Date,
    /// Server, Connection, Content-Length or `Transfer-Encoding: chunked`) and sends a
    /// file by itself as the stream takes it. With [`BodyLength::Streamed`] the body
    /// follows in [`send_data`](Self::send_data) calls, the last with `fin`; `body`
    /// is then its first piece. The body of a response to HEAD is dropped by the
    /// carrier. A stream that carries no HTTP exchange (an upgraded connection)
    /// refuses.
    fn respond(&mut self, _resp: Response<'_>, _body: Body) -> Result<(), NotHttp> {
        Err(NotHttp)
    }
}

/// [`Stream::respond`] on a stream that carries no HTTP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotHttp;

/// A [`Stream`] as the `Extend<Bytes>` the sans-IO roles write frames into.
pub struct StreamExtend<'a>(pub &'a mut dyn Stream);

impl Extend<Bytes> for StreamExtend<'_> {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.0.send_data(b, false);
        }
    }
}

/// What a session sees of the worker and its stream during a callback.
pub struct SessionCx<'a> {
    pub id: SessionId,
    pub app: &'a mut crate::App,
    pub stream: &'a mut dyn Stream,
    /// Loop clock, milliseconds.
    pub now_ms: u64,
    /// The session's timer (loop-clock ms, `u64::MAX` for none).
    pub deadline: &'a mut u64,
    /// The worker is draining: finish and close.
    pub draining: bool,
}

/// What a session asks of its carrier after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Send what is queued, then end the stream (on HTTP/1.1: close the connection,
    /// lingering when the peer may still be sending).
    Close {
        linger: bool,
    },
    /// End now, dropping queued output (the peer broke the protocol or vanished).
    Abort,
}
