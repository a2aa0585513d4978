//! The plugin API: libwebsockets' protocols and callbacks, in Rust (DESIGN.md section 5).
//!
//! | libwebsockets | lwsd |
//! | --- | --- |
//! | `struct lws_protocols` + callback switch | [`Protocol`]: one method per callback reason |
//! | per-session data (pss) | [`Protocol::Session`], owned by the connection |
//! | `lws_callback_on_writable(wsi)` | [`Conn::callback_on_writable`], [`Vhost::callback_on_writable`] |
//! | `lws_callback_on_writable_all_protocol` | [`Vhost::callback_on_writable_all_protocol`] |
//! | `lws_write()` once per WRITEABLE | [`Conn::write`] inside [`Protocol::writeable`]; a second is [`WriteError::AlreadyWrote`] |
//! | `lws_rx_flow_control()` | [`Conn::rx_flow_control`], [`Vhost::rx_flow_control`] |
//! | `lws_is_final_fragment`, `lws_remaining_packet_payload` | [`FrameInfo`] |
//! | `lws_cancel_service()` + EVENT_WAIT_CANCELLED | [`crate::ServiceHandle`] + [`Protocol::event_wait_cancelled`] |
//! | pvo (per-vhost options) | [`PluginInit::options`], given when the vhost creates the protocol |
//! | PROTOCOL_INIT / PROTOCOL_DESTROY | [`Protocol::init`] / [`Protocol::destroy`], once per worker's vhost |
//! | `lws_timed_callback_vh_protocol` | [`Vhost::set_timer`] + [`Protocol::timer`] |
//! | `lws_add_http_header_by_name` | [`HttpResponse::with_header`] |
//! | LWS_CALLBACK_HTTP / _HTTP_BODY / _HTTP_BODY_COMPLETION | [`Protocol::http`], [`Protocol::http_body`], [`Protocol::http_body_completion`] |
//! | LWS_CALLBACK_HTTP_WRITEABLE + `lws_write(LWS_WRITE_HTTP[_FINAL])` | [`HttpAnswer::Stream`], then [`Protocol::http_writeable`] and [`HttpConn::write`] (`fin`: the last piece) |
//!
//! # Streaming an HTTP response
//!
//! A callback protocol that does not know its answer's length up front (a CGI, a proxy,
//! a long generated page) answers [`HttpAnswer::Stream`]: the head (status and fields
//! of the [`HttpResponse`], whose body, if any, is the first piece) goes out at once,
//! then [`Protocol::http_writeable`] is called with the session, the first time without
//! asking and afterwards each time the protocol asked with
//! [`HttpConn::callback_on_writable`] (or, from elsewhere, [`Vhost::callback_on_writable`]
//! with [`HttpConn::id`]) and the stream can take more: no send in flight and credit
//! left ([`HttpConn::credit`]; on HTTP/1.1 the connection's output below its high-water
//! mark), so a client that stops reading stops the callbacks and memory stays bounded.
//! Each callback may [`write`](HttpConn::write) once (a second write is
//! [`WriteError::AlreadyWrote`]); the write with `fin` ends the body and drops the
//! session. On HTTP/1.1 the body is sent chunked (close-delimited to an HTTP/1.0
//! client); a HEAD request gets the head only. A session that ends without its `fin`
//! write (the connection went away, the client reset it, a callback returned
//! `Err`, a HEAD request, a send timeout) comes back through [`Protocol::closed`], once.
//!
//! Every callback runs on the worker's service thread; nothing here is `Send`. A
//! callback returns `Err(Close)` to close its connection (lws' `return -1`). Actions on
//! *other* connections ([`Vhost::callback_on_writable`], [`Vhost::rx_flow_control`]) are
//! queued and applied by the loop right after the callback returns.
//!
//! Cross-worker traffic goes over the bus: [`Vhost::publish`] reaches
//! [`Protocol::bus`] of the same protocol on every worker, this one included, in order
//! per publisher.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use bytes::Bytes;

use crate::handle::ServiceHandle;
use crate::roles::ws::conn::WsConn;
pub use crate::roles::ws::frame::{DataKind, SharedFrame};
use crate::session::{SessionId, Stream};
use crate::sink::{Extender, Sink};

/// A connection's identity, stable for its life and never reused while it lives (slot
/// plus generation), and the stream on it: 0 for the connection itself (HTTP/1.1, a
/// WebSocket upgraded from it), the stream id for a WebSocket carried by an HTTP/2
/// stream (RFC 8441), so each of several WebSockets on one connection is addressed on
/// its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) stream: u32,
}

impl ConnId {
    /// The connection `slot`/`generation`, stream 0.
    pub(crate) const fn conn(slot: u32, generation: u32) -> ConnId {
        ConnId {
            slot,
            generation,
            stream: 0,
        }
    }

    /// The same connection, stream `stream`.
    pub(crate) const fn with_stream(self, stream: u32) -> ConnId {
        ConnId { stream, ..self }
    }
}

/// Close a connection, with a WebSocket close code (RFC 6455 7.4) and a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    /// 1000: a normal close.
    pub const NORMAL: Close = Close {
        code: 1000,
        reason: "",
    };
    /// 1008: the peer sent something the protocol does not accept.
    pub const POLICY: Close = Close {
        code: 1008,
        reason: "policy violation",
    };
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL: Close = Close {
        code: 1011,
        reason: "internal error",
    };

    pub const fn new(code: u16, reason: &'static str) -> Close {
        Close { code, reason }
    }
}

/// A callback's verdict.
pub type CbResult = Result<(), Close>;

/// What a piece of received data is (lws' `lws_is_first_fragment`,
/// `lws_is_final_fragment`, `lws_frame_is_binary`, `lws_remaining_packet_payload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The first piece of a message.
    pub first: bool,
    /// The last piece of a message.
    pub last: bool,
    pub binary: bool,
    /// Bytes of the current frame still to come.
    pub remaining: u64,
}

/// Why a write was refused. Each is API misuse, not a peer fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// `write` outside [`Protocol::writeable`]: ask with `callback_on_writable` first.
    NotWriteable,
    /// A second `write` in one `writeable` callback (lws allows exactly one).
    AlreadyWrote,
    /// The connection is closing; nothing more is sent.
    Closing,
    /// A fragment sequence was broken (continuation without a start, a new message
    /// before the last ended) or a control frame was too big.
    Framing,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteError::NotWriteable => "write outside the writeable callback",
            WriteError::AlreadyWrote => "second write in one writeable callback",
            WriteError::Closing => "connection is closing",
            WriteError::Framing => "broken fragment sequence",
        })
    }
}

impl std::error::Error for WriteError {}

/// What a write sends (lws' `LWS_WRITE_TEXT`, `LWS_WRITE_BINARY`, `LWS_WRITE_CONTINUATION`
/// with or without `LWS_WRITE_NO_FIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Text,
    Binary,
    /// The next fragment of the message opened by an earlier non-final write.
    Continuation,
}

/// Actions a callback asks for on a connection, applied by the loop afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnAction {
    Writeable,
    RxFlow(bool),
    Close(Close),
}

/// Worker-wide state the plugin API reaches: queued actions, bus, timers.
pub struct PluginShared {
    pub(crate) worker: usize,
    pub(crate) workers: usize,
    pub(crate) now_ms: u64,
    pub(crate) now_unix: u64,
    pub(crate) actions: Vec<(ConnId, ConnAction)>,
    pub(crate) writable_all: Vec<u16>,
    /// (channel, payload) to publish on the bus.
    pub(crate) bus_out: Vec<(u16, Vec<u8>)>,
    pub(crate) timers: BinaryHeap<Reverse<(u64, u16, u64)>>,
    /// Messages other threads posted through a [`ServiceHandle`], not yet taken.
    pub posted: Vec<crate::Posted>,
    pub(crate) handle: Option<ServiceHandle>,
    /// Figures for lws-server-status (this worker's).
    pub(crate) snapshot: WorkerFigures,
}

/// One worker's figures, as a status protocol shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerFigures {
    pub index: usize,
    pub pid: u32,
    pub conns: u32,
    pub ws_conns: u32,
    pub accepted: u64,
    pub requests: u64,
    pub ws_msgs_rx: u64,
    pub ws_msgs_tx: u64,
}

impl PluginShared {
    pub(crate) fn new(worker: usize, workers: usize) -> PluginShared {
        PluginShared {
            worker,
            workers,
            now_ms: 0,
            now_unix: 0,
            actions: Vec::new(),
            writable_all: Vec::new(),
            bus_out: Vec::new(),
            timers: BinaryHeap::new(),
            posted: Vec::new(),
            handle: None,
            snapshot: WorkerFigures::default(),
        }
    }

    pub(crate) fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }
}

/// The vhost as a protocol's callbacks see it (lws' `vhost` + `protocol` pair).
pub struct Vhost<'a> {
    pub(crate) shared: &'a mut PluginShared,
    pub(crate) protocol: u16,
}

impl Vhost<'_> {
    /// This worker's index (0-based) and the number of workers.
    pub fn worker(&self) -> (usize, usize) {
        (self.shared.worker, self.shared.workers)
    }

    /// The loop's clock in milliseconds (monotonic; read once per loop pass).
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms
    }

    /// Wall-clock seconds since the Unix epoch.
    pub fn now_unix(&self) -> u64 {
        self.shared.now_unix
    }

    /// Every connection of this protocol on this vhost (this worker) gets a
    /// `writeable` callback as soon as it can write.
    pub fn callback_on_writable_all_protocol(&mut self) {
        if !self.shared.writable_all.contains(&self.protocol) {
            self.shared.writable_all.push(self.protocol);
        }
    }

    /// `id` gets a `writeable` callback as soon as it can write.
    pub fn callback_on_writable(&mut self, id: ConnId) {
        self.shared.actions.push((id, ConnAction::Writeable));
    }

    /// Stops (`false`) or resumes (`true`) reading from `id`. While stopped nothing is
    /// read from its socket, so TCP backpressure reaches the sender.
    pub fn rx_flow_control(&mut self, id: ConnId, enable: bool) {
        self.shared.actions.push((id, ConnAction::RxFlow(enable)));
    }

    /// Closes `id` (a WebSocket close handshake with `close`'s code).
    pub fn close(&mut self, id: ConnId, close: Close) {
        self.shared.actions.push((id, ConnAction::Close(close)));
    }

    /// Publishes `payload` to this protocol on every worker, this one included
    /// ([`Protocol::bus`]), in order. At most [`lwsd_proto::MAX_BUS_PAYLOAD`] bytes.
    pub fn publish(&mut self, payload: &[u8]) -> Result<(), BusTooBig> {
        if payload.len() > lwsd_proto::MAX_BUS_PAYLOAD {
            return Err(BusTooBig(payload.len()));
        }
        self.shared.bus_out.push((self.protocol, payload.to_vec()));
        Ok(())
    }

    /// Calls [`Protocol::timer`] with `id` after `after` (lws_sul).
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        let at = self.shared.now_ms + after.as_millis() as u64;
        self.shared.timers.push(Reverse((at, self.protocol, id)));
    }

    /// A handle other threads use to post messages to this worker and wake it.
    pub fn service_handle(&self) -> Option<ServiceHandle> {
        self.shared.handle.clone()
    }

    /// Takes every message of type `T` posted through a [`ServiceHandle`] so far.
    pub fn take_posted<T: Any>(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        let mut rest = Vec::with_capacity(self.shared.posted.len());
        for m in self.shared.posted.drain(..) {
            match m.downcast::<T>() {
                Ok(t) => out.push(*t),
                Err(m) => rest.push(m),
            }
        }
        self.shared.posted = rest;
        out
    }

    /// This worker's current figures (for status protocols).
    pub fn figures(&self) -> WorkerFigures {
        self.shared.snapshot
    }
}

/// A bus payload over [`lwsd_proto::MAX_BUS_PAYLOAD`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusTooBig(pub usize);

/// Bytes kept in front of a [`Payload`] for its frame header (lws' `LWS_PRE`): the
/// longest WebSocket header, 2 + 8 length bytes + 4 mask bytes (RFC 6455 5.2).
pub const LWS_PRE: usize = crate::roles::ws::frame::MAX_HEADER_LEN;

/// A WebSocket message payload with [`LWS_PRE`] bytes of room in front, for
/// [`Conn::write_payload`]. Sized with [`Payload::with_capacity`] and filled to that
/// size, it is one allocation for the whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    buf: bytes::BytesMut,
}

impl Payload {
    /// An empty payload with room for `n` bytes (and the header in front).
    pub fn with_capacity(n: usize) -> Payload {
        let mut buf = bytes::BytesMut::with_capacity(LWS_PRE + n);
        buf.resize(LWS_PRE, 0);
        Payload { buf }
    }

    /// A payload holding a copy of `data`, sized exactly.
    pub fn copy_from_slice(data: &[u8]) -> Payload {
        let mut p = Payload::with_capacity(data.len());
        p.extend_from_slice(data);
        p
    }

    /// Appends `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if self.buf.is_empty() {
            self.buf.resize(LWS_PRE, 0);
        }
        self.buf.extend_from_slice(data);
    }

    /// Payload bytes (the room not counted).
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(LWS_PRE)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(LWS_PRE..).unwrap_or(&[])
    }
}

/// A connection's per-callback state (flags the loop reads afterwards). 16 bytes: the
/// requested close is boxed because it is rare and a `Close` is 24 bytes (its reason is
/// a `&'static str`), which every idle connection would otherwise carry.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnFlags {
    pub want_writeable: bool,
    pub rx_disabled: bool,
    pub in_writeable: bool,
    pub wrote: bool,
    /// `established` ran (the WebSocket role's session exists, or it refused).
    pub established: bool,
    /// A message was delivered and the protocol asked to answer it: input waits until
    /// `writeable` ran, so a later frame (a protocol error, say) cannot overtake the
    /// answer, even when it arrives in a separate read (Autobahn 4.1.5, sent octet by
    /// octet).
    pub answer_pending: bool,
    pub close: Option<Box<Close>>,
}

/// A WebSocket connection as its protocol's callbacks see it (lws' `wsi`).
pub struct Conn<'a> {
    pub(crate) id: ConnId,
    /// Present inside `writeable` only: the only place a write is allowed.
    pub(crate) ws: Option<&'a mut WsConn>,
    pub(crate) out: &'a mut dyn Sink,
    pub(crate) flags: &'a mut ConnFlags,
    pub(crate) vhost: Vhost<'a>,
    /// Payload bytes the callback queued with `write`/`write_shared` (for
    /// `lwsd_ws_bytes_total{direction="tx"}`).
    pub(crate) written: u64,
}

impl<'a> Conn<'a> {
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The vhost (to reach other connections, the bus, timers).
    pub fn vhost(&mut self) -> &mut Vhost<'a> {
        &mut self.vhost
    }

    /// Asks for a `writeable` callback as soon as this connection can write (no send in
    /// flight).
    pub fn callback_on_writable(&mut self) {
        self.flags.want_writeable = true;
    }

    /// Stops (`false`) or resumes (`true`) reading: while stopped, nothing is read from
    /// the socket and TCP backpressure reaches the peer.
    pub fn rx_flow_control(&mut self, enable: bool) {
        self.flags.rx_disabled = !enable;
    }

    /// Starts the close handshake with `close`'s code after this callback.
    pub fn close(&mut self, close: Close) {
        self.flags.close = Some(Box::new(close));
    }

    /// Bytes queued on this connection and not yet sent.
    pub fn send_buffered(&self) -> usize {
        self.out.queued()
    }

    /// Sends one frame: the whole message, or (with `fin` false / [`WriteKind::Continuation`])
    /// a fragment of one. Only inside `writeable`, once.
    pub fn write(&mut self, kind: WriteKind, fin: bool, data: Bytes) -> Result<(), WriteError> {
        let (dk, cont) = match kind {
            WriteKind::Text => (DataKind::Text, false),
            WriteKind::Binary => (DataKind::Binary, false),
            WriteKind::Continuation => (DataKind::Binary, true),
        };
        let len = data.len() as u64;
        self.with_writer(|ws, out| ws.send_frame_into(dk, cont, fin, data, out))?;
        self.written += len;
        Ok(())
    }

    /// Sends one frame like [`write`](Self::write), from a [`Payload`] that has room for
    /// the frame header in front of it (lws' `LWS_PRE`): the header is written into that
    /// room and the frame leaves as the one buffer, with no copy and no allocation for the
    /// framing. Only inside `writeable`, once.
    pub fn write_payload(
        &mut self,
        kind: WriteKind,
        fin: bool,
        payload: Payload,
    ) -> Result<(), WriteError> {
        let (dk, cont) = match kind {
            WriteKind::Text => (DataKind::Text, false),
            WriteKind::Binary => (DataKind::Binary, false),
            WriteKind::Continuation => (DataKind::Binary, true),
        };
        let len = payload.len() as u64;
        self.with_writer(|ws, out| ws.send_room_into(dk, cont, fin, payload.buf, out))?;
        self.written += len;
        Ok(())
    }

    /// Sends a whole message encoded once for many connections (a broadcast: the bytes
    /// are shared, not copied). Only inside `writeable`, once.
    pub fn write_shared(&mut self, frame: &SharedFrame) -> Result<(), WriteError> {
        self.with_writer(|ws, out| ws.send_shared_into(frame, out))?;
        self.written += frame.payload.len() as u64;
        Ok(())
    }

    fn with_writer(
        &mut self,
        f: impl FnOnce(&mut WsConn, &mut Extender<'_>) -> Result<(), crate::roles::ws::UsageError>,
    ) -> Result<(), WriteError> {
        if self.flags.wrote {
            return Err(WriteError::AlreadyWrote);
        }
        let Some(ws) = self.ws.as_deref_mut() else {
            return Err(WriteError::NotWriteable);
        };
        // The frame goes straight to the connection's output queue.
        f(ws, &mut Extender(&mut *self.out)).map_err(map_usage)?;
        self.flags.wrote = true;
        Ok(())
    }
}

fn map_usage(e: crate::roles::ws::UsageError) -> WriteError {
    use crate::roles::ws::UsageError as U;
    match e {
        U::Closing => WriteError::Closing,
        _ => WriteError::Framing,
    }
}

/// An HTTP request routed to a protocol (lwsws `callback://` mounts).
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path relative to the mountpoint, still percent-encoded.
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub content_length: Option<u64>,
}

/// A complete HTTP response from a protocol. The server writes the status line,
/// `Date`, `Server`, `Content-Length`, `Content-Type` and the connection headers; a
/// protocol adds any other field with [`with_header`](Self::with_header) (lws'
/// `lws_add_http_header_by_name`).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Checked by `with_header`: a token name, a value without CR, LF or NUL.
    headers: Vec<(Box<str>, Box<str>)>,
}

/// Header fields the server writes itself (or that would break the framing it chose):
/// a protocol may not add them.
const SERVER_FIELDS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "date",
    "keep-alive",
    "server",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Why [`HttpResponse::with_header`] refused a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    pub name: String,
    pub why: &'static str,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response header {:?}: {}", self.name, self.why)
    }
}

impl std::error::Error for HeaderError {}

impl HttpResponse {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds the field `name: value`. Refused: a name that is not a token (RFC 9110
    /// 5.1), a value with CR, LF or NUL (5.5: they would split the response), and the
    /// fields the server writes itself ([`HttpResponse::content_type`] sets the type).
    /// Leading and trailing blanks of the value are dropped (5.5).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<HttpResponse, HeaderError> {
        let err = |why| HeaderError {
            name: name.to_owned(),
            why,
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(err("the name is not a token (RFC 9110 5.1)"));
        }
        if SERVER_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return Err(err("the server writes this field itself"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(err("the value holds CR, LF or NUL (RFC 9110 5.5)"));
        }
        self.headers
            .push((name.into(), value.trim_matches([' ', '\t']).into()));
        Ok(self)
    }

    /// The fields added with [`with_header`](Self::with_header), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (&**n, &**v))
    }
}

/// RFC 9110 5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a protocol does with an HTTP request.
pub enum HttpAnswer<S> {
    /// Answer now (the request body, if any, is read and dropped).
    Respond(HttpResponse),
    /// Read the body into [`Protocol::http_body`] with this session, then answer from
    /// [`Protocol::http_body_completion`]. (Not an answer to the body's completion:
    /// there it is a 500.)
    ReadBody(S),
    /// Answer with this head and a body of unknown length that the session streams
    /// through [`Protocol::http_writeable`] (see "Streaming an HTTP response" above).
    /// The response's body, if not empty, is the first piece. A request body, if any,
    /// is read and dropped first.
    Stream(HttpResponse, S),
}

impl<S> From<HttpResponse> for HttpAnswer<S> {
    fn from(r: HttpResponse) -> Self {
        HttpAnswer::Respond(r)
    }
}

impl<S> HttpAnswer<S> {
    fn map<T>(self, f: impl FnOnce(S) -> T) -> HttpAnswer<T> {
        match self {
            HttpAnswer::Respond(r) => HttpAnswer::Respond(r),
            HttpAnswer::ReadBody(s) => HttpAnswer::ReadBody(f(s)),
            HttpAnswer::Stream(r, s) => HttpAnswer::Stream(r, f(s)),
        }
    }
}

/// An HTTP exchange streaming its response, as [`Protocol::http_writeable`] sees it
/// (lws' `wsi` in LWS_CALLBACK_HTTP_WRITEABLE).
pub struct HttpConn<'a> {
    pub(crate) stream: &'a mut dyn Stream,
    pub(crate) vhost: Vhost<'a>,
    pub(crate) wrote: bool,
    pub(crate) fin: bool,
    pub(crate) want_writeable: bool,
    /// Payload bytes written (the body, without the carrier's framing).
    pub(crate) written: u64,
}

impl<'a> HttpConn<'a> {
    /// The exchange's connection and stream (for [`Vhost::callback_on_writable`] from
    /// another callback).
    pub fn id(&self) -> ConnId {
        self.stream.id().conn_id()
    }

    /// The exchange's identity: its connection and its stream on it.
    pub fn session_id(&self) -> SessionId {
        self.stream.id()
    }

    /// The vhost (other connections, the bus, timers).
    pub fn vhost(&mut self) -> &mut Vhost<'a> {
        &mut self.vhost
    }

    /// Asks for another `http_writeable` callback as soon as the stream can take more.
    pub fn callback_on_writable(&mut self) {
        self.want_writeable = true;
    }

    /// How many bytes the stream takes now without queueing beyond its limit (a write
    /// may be bigger; the next callback then waits until it has drained).
    pub fn credit(&self) -> usize {
        self.stream.credit()
    }

    /// Sends the next piece of the body; `fin` makes it the last (`data` may then be
    /// empty). Once per callback.
    pub fn write(&mut self, data: Bytes, fin: bool) -> Result<(), WriteError> {
        if self.fin {
            return Err(WriteError::Closing);
        }
        if self.wrote {
            return Err(WriteError::AlreadyWrote);
        }
        self.wrote = true;
        self.fin = fin;
        self.written += data.len() as u64;
        self.stream.send_data(data, fin);
        Ok(())
    }
}

/// A protocol: what a WebSocket subprotocol (and optionally an HTTP callback mount) does.
pub trait Protocol: 'static {
    /// Per-connection state (lws' per-session data).
    type Session: 'static;

    /// A WebSocket connection chose this protocol and completed its handshake
    /// (LWS_CALLBACK_ESTABLISHED). Returns its session, or a close.
    fn established(&mut self, conn: &mut Conn<'_>) -> Result<Self::Session, Close>;

    /// Data arrived (LWS_CALLBACK_RECEIVE), possibly a piece of a message: see `frame`.
    fn receive(
        &mut self,
        _conn: &mut Conn<'_>,
        _session: &mut Self::Session,
        _data: &[u8],
        _frame: FrameInfo,
    ) -> CbResult {
        Ok(())
    }

    /// The connection can take one write (LWS_CALLBACK_SERVER_WRITEABLE).
    fn writeable(&mut self, _conn: &mut Conn<'_>, _session: &mut Self::Session) -> CbResult {
        Ok(())
    }

    /// The connection is gone (LWS_CALLBACK_CLOSED); the session is handed back. Also
    /// for a session of [`HttpAnswer::ReadBody`] whose connection closed before the body
    /// was complete (LWS_CALLBACK_CLOSED_HTTP): `http_body_completion` is then never
    /// called.
    fn closed(&mut self, _vhost: &mut Vhost<'_>, _id: ConnId, _session: Self::Session) {}

    /// Another thread called `cancel_service()` or `post()` (LWS_CALLBACK_EVENT_WAIT_CANCELLED).
    fn event_wait_cancelled(&mut self, _vhost: &mut Vhost<'_>) {}

    /// A timer set with [`Vhost::set_timer`] is due.
    fn timer(&mut self, _vhost: &mut Vhost<'_>, _id: u64) {}

    /// A bus publication of this protocol (from any worker, `origin`).
    fn bus(&mut self, _vhost: &mut Vhost<'_>, _origin: usize, _payload: &[u8]) {}

    /// Whether a WebSocket connection of this protocol may use permessage-deflate
    /// (RFC 7692) when the client offers it; `false` answers without the extension.
    /// lws decides this from the protocol's receive buffer (under 128 bytes: no
    /// deflate); a protocol of tiny messages gains nothing from compression, and lws
    /// clients with such a buffer offer deflate but cannot use it on that protocol.
    fn permessage_deflate(&self) -> bool {
        true
    }

    /// An HTTP request on a `callback://` mount of this protocol (LWS_CALLBACK_HTTP).
    fn http(
        &mut self,
        _vhost: &mut Vhost<'_>,
        _req: &HttpRequest<'_>,
    ) -> HttpAnswer<Self::Session> {
        HttpAnswer::Respond(HttpResponse::new(
            404,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found\n"),
        ))
    }

    /// A piece of the request body (LWS_CALLBACK_HTTP_BODY).
    fn http_body(
        &mut self,
        _vhost: &mut Vhost<'_>,
        _session: &mut Self::Session,
        _chunk: &[u8],
    ) -> CbResult {
        Ok(())
    }

    /// The body is complete (LWS_CALLBACK_HTTP_BODY_COMPLETION): the answer, a whole
    /// response (`HttpResponse::into()`) or [`HttpAnswer::Stream`].
    fn http_body_completion(
        &mut self,
        _vhost: &mut Vhost<'_>,
        _session: Self::Session,
    ) -> HttpAnswer<Self::Session> {
        HttpAnswer::Respond(HttpResponse::new(
            200,
            "text/plain; charset=utf-8",
            Bytes::new(),
        ))
    }

    /// A streamed answer ([`HttpAnswer::Stream`]) can take its next piece
    /// (LWS_CALLBACK_HTTP_WRITEABLE): one [`HttpConn::write`]. `Err` ends the exchange
    /// by closing the connection (the body is cut short) and hands the session to
    /// [`closed`](Self::closed).
    fn http_writeable(
        &mut self,
        _http: &mut HttpConn<'_>,
        _session: &mut Self::Session,
    ) -> CbResult {
        Ok(())
    }

    /// The vhost is up (LWS_CALLBACK_PROTOCOL_INIT), once per worker, right after the
    /// instance was created from its options ([`PluginInit`]) and before any
    /// connection: the place to start per-vhost timers or publish on the bus.
    fn init(&mut self, _vhost: &mut Vhost<'_>) {}

    /// The vhost is going away (LWS_CALLBACK_PROTOCOL_DESTROY), once, when the worker's
    /// loop ends (a drain finished, or the supervisor went away).
    fn destroy(&mut self, _vhost: &mut Vhost<'_>) {}
}

/// The type-erased form of a [`Protocol`] the worker stores.
pub trait DynProtocol {
    fn established(&mut self, conn: &mut Conn<'_>) -> Result<Box<dyn Any>, Close>;
    fn receive(
        &mut self,
        conn: &mut Conn<'_>,
        s: &mut dyn Any,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult;
    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut dyn Any) -> CbResult;
    fn closed(&mut self, vh: &mut Vhost<'_>, id: ConnId, s: Box<dyn Any>);
    fn event_wait_cancelled(&mut self, vh: &mut Vhost<'_>);
    fn timer(&mut self, vh: &mut Vhost<'_>, id: u64);
    fn bus(&mut self, vh: &mut Vhost<'_>, origin: usize, payload: &[u8]);
    fn permessage_deflate(&self) -> bool;
    fn http(&mut self, vh: &mut Vhost<'_>, req: &HttpRequest<'_>) -> HttpAnswer<Box<dyn Any>>;
    fn http_body(&mut self, vh: &mut Vhost<'_>, s: &mut dyn Any, chunk: &[u8]) -> CbResult;
    fn http_body_completion(
        &mut self,
        vh: &mut Vhost<'_>,
        s: Box<dyn Any>,
    ) -> HttpAnswer<Box<dyn Any>>;
    fn http_writeable(&mut self, http: &mut HttpConn<'_>, s: &mut dyn Any) -> CbResult;
    fn init(&mut self, vh: &mut Vhost<'_>);
    fn destroy(&mut self, vh: &mut Vhost<'_>);
}

impl<P: Protocol> DynProtocol for P {
    fn established(&mut self, conn: &mut Conn<'_>) -> Result<Box<dyn Any>, Close> {
        Protocol::established(self, conn).map(|s| Box::new(s) as Box<dyn Any>)
    }
    fn receive(
        &mut self,
        conn: &mut Conn<'_>,
        s: &mut dyn Any,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult {
        match s.downcast_mut::<P::Session>() {
            Some(s) => Protocol::receive(self, conn, s, data, f),
            None => Err(Close::INTERNAL),
        }
    }
    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut dyn Any) -> CbResult {
        match s.downcast_mut::<P::Session>() {
            Some(s) => Protocol::writeable(self, conn, s),
            None => Err(Close::INTERNAL),
        }
    }
    fn closed(&mut self, vh: &mut Vhost<'_>, id: ConnId, s: Box<dyn Any>) {
        if let Ok(s) = s.downcast::<P::Session>() {
            Protocol::closed(self, vh, id, *s);
        }
    }
    fn event_wait_cancelled(&mut self, vh: &mut Vhost<'_>) {
        Protocol::event_wait_cancelled(self, vh)
    }
    fn timer(&mut self, vh: &mut Vhost<'_>, id: u64) {
        Protocol::timer(self, vh, id)
    }
    fn bus(&mut self, vh: &mut Vhost<'_>, origin: usize, payload: &[u8]) {
        Protocol::bus(self, vh, origin, payload)
    }
    fn permessage_deflate(&self) -> bool {
        Protocol::permessage_deflate(self)
    }
    fn http(&mut self, vh: &mut Vhost<'_>, req: &HttpRequest<'_>) -> HttpAnswer<Box<dyn Any>> {
        Protocol::http(self, vh, req).map(|s| Box::new(s) as Box<dyn Any>)
    }
    fn http_body(&mut self, vh: &mut Vhost<'_>, s: &mut dyn Any, chunk: &[u8]) -> CbResult {
        match s.downcast_mut::<P::Session>() {
            Some(s) => Protocol::http_body(self, vh, s, chunk),
            None => Err(Close::INTERNAL),
        }
    }
    fn http_body_completion(
        &mut self,
        vh: &mut Vhost<'_>,
        s: Box<dyn Any>,
    ) -> HttpAnswer<Box<dyn Any>> {
        match s.downcast::<P::Session>() {
            Ok(s) => {
                Protocol::http_body_completion(self, vh, *s).map(|s| Box::new(s) as Box<dyn Any>)
            }
            Err(_) => HttpAnswer::Respond(HttpResponse::new(500, "text/plain", Bytes::new())),
        }
    }
    fn http_writeable(&mut self, http: &mut HttpConn<'_>, s: &mut dyn Any) -> CbResult {
        match s.downcast_mut::<P::Session>() {
            Some(s) => Protocol::http_writeable(self, http, s),
            None => Err(Close::INTERNAL),
        }
    }
    fn init(&mut self, vh: &mut Vhost<'_>) {
        Protocol::init(self, vh)
    }
    fn destroy(&mut self, vh: &mut Vhost<'_>) {
        Protocol::destroy(self, vh)
    }
}

/// What a protocol is created from when a vhost starts (LWS_CALLBACK_PROTOCOL_INIT).
pub struct PluginInit<'a> {
    /// The protocol's per-vhost options (lwsws `ws-protocols` pvos).
    pub options: &'a BTreeMap<String, String>,
    /// This worker's index and the number of workers.
    pub worker: usize,
    pub workers: usize,
}

/// Creates a protocol instance for a vhost.
pub type CreateFn = dyn Fn(&PluginInit<'_>) -> Result<Box<dyn DynProtocol>, String> + Send + Sync;

/// A protocol compiled into the binary, registered by name.
pub struct Plugin {
    pub name: &'static str,
    pub create: Box<CreateFn>,
}

impl Plugin {
    /// Registers protocol `P` under `name`, built by `create` for each vhost.
    pub fn new<P: Protocol>(
        name: &'static str,
        create: impl Fn(&PluginInit<'_>) -> Result<P, String> + Send + Sync + 'static,
    ) -> Plugin {
        Plugin {
            name,
            create: Box::new(move |init| create(init).map(|p| Box::new(p) as Box<dyn DynProtocol>)),
        }
    }
}

/// The protocols of the (one, for now) vhost of a worker.
pub struct Protocols {
    pub(crate) names: Vec<&'static str>,
    pub(crate) list: Vec<Option<Box<dyn DynProtocol>>>,
    /// Index of the protocol a WebSocket client that names none gets.
    pub(crate) default: Option<u16>,
}

impl Protocols {
    /// No protocols (HTTP only).
    pub fn empty() -> Protocols {
        Protocols {
            names: Vec::new(),
            list: Vec::new(),
            default: None,
        }
    }

    /// Instantiates every plugin for a vhost.
    pub fn new(
        plugins: &[Plugin],
        options: &BTreeMap<String, BTreeMap<String, String>>,
        default: Option<&str>,
        worker: usize,
        workers: usize,
    ) -> Result<Protocols, String> {
        let empty = BTreeMap::new();
        let mut names = Vec::new();
        let mut list = Vec::new();
        for p in plugins {
            let init = PluginInit {
                options: options.get(p.name).unwrap_or(&empty),
                worker,
                workers,
            };
            let inst = (p.create)(&init).map_err(|e| format!("protocol {}: {e}", p.name))?;
            names.push(p.name);
            list.push(Some(inst));
        }
        let default = match default {
            Some(d) => Some(names.iter().position(|n| *n == d).ok_or_else(|| {
                format!(
                    "--ws-default {d}: no such protocol (have: {})",
                    names.join(", ")
                )
            })? as u16),
            None => None,
        };
        Ok(Protocols {
            names,
            list,
            default,
        })
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    pub fn index(&self, name: &str) -> Option<u16> {
        self.names.iter().position(|n| *n == name).map(|i| i as u16)
    }

    /// Whether protocol `i` allows permessage-deflate ([`Protocol::permessage_deflate`]).
    pub(crate) fn permessage_deflate(&self, i: u16) -> bool {
        self.list
            .get(usize::from(i))
            .and_then(Option::as_ref)
            .is_none_or(|p| p.permessage_deflate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_fields_are_checked() {
        let r = HttpResponse::new(405, "text/plain", "no")
            .with_header("Allow", " GET, HEAD ")
            .unwrap()
            .with_header("X-Custom_1", "")
            .unwrap();
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            [("Allow", "GET, HEAD"), ("X-Custom_1", "")]
        );
        let refused = |name: &str, value: &str| {
            HttpResponse::new(200, "text/plain", "")
                .with_header(name, value)
                .unwrap_err()
        };
        // Response splitting (RFC 9110 5.5).
        for v in ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b"] {
            assert_eq!(
                refused("X-A", v).why,
                "the value holds CR, LF or NUL (RFC 9110 5.5)"
            );
        }
        // Not a token (5.1).
        for n in ["", "X A", "X:A", "X\r\nA", "é", "(x)"] {
            assert_eq!(
                refused(n, "v").why,
                "the name is not a token (RFC 9110 5.1)"
            );
        }
        // The server's own fields, whatever their case.
        for n in [
            "Content-Length",
            "transfer-encoding",
            "CONNECTION",
            "Content-Type",
            "Date",
        ] {
            assert_eq!(refused(n, "1").why, "the server writes this field itself");
        }
        assert_eq!(
            refused("Server", "x").to_string(),
            "response header \"Server\": the server writes this field itself"
        );
    }
}
