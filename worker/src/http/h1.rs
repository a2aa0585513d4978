//! The HTTP/1.1 carrier: drives the sans-IO parser ([`crate::roles::h1`]) for one
//! connection, hands each request to an HTTP exchange ([`HttpExchange`]) as a
//! protocol-neutral [`Request`], and serialises the exchange's [`Response`] as
//! HTTP/1.1, answers in request order (pipelining).
//!
//! The exchange answers through [`H1Stream`], the connection's output as a
//! [`Stream`]: the head gets Date, Server, `Connection` and its framing
//! (`Content-Length`; for a body of unknown length `Transfer-Encoding: chunked`, or
//! close-delimited to an HTTP/1.0 client, RFC 9112 6.1 and 6.3); streamed data is
//! chunk-framed; a HEAD answer loses its body (RFC 9110 9.3.2). Answers to every request
//! found in one recv are queued together, so they leave in one writev. A file body is
//! streamed in [`STREAM_CHUNK`] pieces read with `pread` once the previous piece has
//! been sent, never read whole; while a body streams (a file, or a protocol's
//! `http_writeable` pieces), or while more than [`OUT_HIGH_WATER`] bytes wait to be
//! sent, the carrier stops consuming requests (the loop buffers a little, then stops
//! reading: TCP backpressure reaches a client that pipelines faster than it reads).
//!
//! An answer sent before its request's body has been read (a body too big to drop, an
//! error) ends the connection after it, lingering: the rest of the body may be on its
//! way (RFC 9112 9.6).
//!
//! Timers: a request head must be complete within `header_timeout` of its first byte
//! (else 408 and close: slowloris); once the head is complete, a request body may go
//! `body_timeout` between two reads (else 408 and close; nginx's `client_body_timeout`,
//! so a slow upload that keeps moving is never cut off); an idle keep-alive connection
//! is closed after `keepalive_timeout`; a response that makes no progress for
//! [`SEND_TIMEOUT_MS`] is abandoned.

use bytes::Bytes;

use super::h2::H2Conn;
use super::{FileBody, HeadWriter};
use crate::App;
use crate::api::{ConnAction, ConnId};
use crate::roles::h1::{
    self, CHUNK_END, CONTINUE_100, Event, H1Server, Hdr, LAST_CHUNK, RequestHeadRef, ResponseBody,
    Version,
};
use crate::roles::ws::conn::WsConn;
use crate::roles::ws::{deflate, handshake};
use crate::service::conn::OutQueue;
use crate::service::{Cx, Flow, Role};
use crate::session::http::{self as exchange, HttpExchange, Request, count_status};
use crate::session::ws::WsSession;
use crate::session::{Body, BodyLength, Next, NotHttp, Response, SessionCx, SessionId, Stream};
use crate::sink::Sink;
use crate::upgraded::Upgraded;

/// Size of each piece of a streamed file body. 128 KiB: large enough that a loopback
/// client downloading at memory speed costs few syscalls per MiB, small enough that a
/// thousand concurrent downloads hold 128 MiB at most.
pub const STREAM_CHUNK: usize = 128 * 1024;

/// Queued output above which the carrier stops reading further pipelined requests until
/// the queue drains, and a streaming exchange has no credit. 256 KiB: a burst of
/// pipelined small answers fits many times over.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// A response that makes no progress (no send completes, no piece is written) for this
/// long is abandoned: the client stopped reading, or the protocol streaming it stalled.
/// 60 s, nginx's `send_timeout`.
pub const SEND_TIMEOUT_MS: u64 = 60_000;

/// The answer to the current request, as the carrier frames it.
struct Answer {
    version: Version,
    /// The request allows keep-alive.
    req_keep_alive: bool,
    head_only: bool,
    /// The request's body has been read to its end (or it had none).
    body_done: bool,
    /// The head has been queued.
    sent_head: bool,
    /// The head said the connection stays open.
    keep_alive: bool,
    /// A streamed body is open: `Some(chunked)`, until its `fin`.
    open_body: Option<bool>,
    /// A file body being sent piece by piece.
    file: Option<Box<FileBody>>,
    /// Reading the file failed: the length the head announced is a lie.
    failed: bool,
}

impl Answer {
    fn new(version: Version, req_keep_alive: bool, head_only: bool, body_done: bool) -> Answer {
        Answer {
            version,
            req_keep_alive,
            head_only,
            body_done,
            sent_head: false,
            keep_alive: false,
            open_body: None,
            file: None,
            failed: false,
        }
    }

    /// Body bytes are still to be queued.
    fn responding(&self) -> bool {
        self.open_body.is_some() || self.file.is_some()
    }

    /// Queues the next piece of a file body.
    fn file_next(&mut self, out: &mut OutQueue) {
        let Some(s) = self.file.as_mut() else {
            return;
        };
        match s.read_next(STREAM_CHUNK) {
            Some(b) => out.push(b),
            None => {
                self.failed = true;
                return;
            }
        }
        if s.remaining == 0 {
            self.file = None;
        }
    }
}

/// The connection's output as the [`Stream`] of its current exchange.
pub struct H1Stream<'a> {
    id: SessionId,
    out: &'a mut OutQueue,
    w: &'a mut HeadWriter,
    now_unix: u64,
    draining: bool,
    a: &'a mut Answer,
}

impl Sink for H1Stream<'_> {
    fn push(&mut self, b: Bytes) {
        self.out.push(b);
    }

    fn queued(&self) -> usize {
        self.out.len()
    }
}

impl Stream for H1Stream<'_> {
    fn id(&self) -> SessionId {
        self.id
    }

    /// A piece of a streamed body: a chunk (RFC 9112 7.1) on HTTP/1.1, the bytes as they
    /// are on a close-delimited HTTP/1.0 body; `fin` writes the last chunk. Dropped when
    /// no streamed body is open (HEAD).
    fn send_data(&mut self, data: Bytes, fin: bool) {
        let Some(chunked) = self.a.open_body else {
            return;
        };
        if chunked {
            if !data.is_empty() {
                self.out.push(self.w.chunk_header(data.len() as u64));
                self.out.push(data);
                self.out.push(Bytes::from_static(CHUNK_END));
            }
            if fin {
                self.out.push(Bytes::from_static(LAST_CHUNK));
            }
        } else if !data.is_empty() {
            self.out.push(data);
        }
        if fin {
            self.a.open_body = None;
        }
    }

    fn credit(&self) -> usize {
        OUT_HIGH_WATER.saturating_sub(self.out.len())
    }

    fn respond(&mut self, resp: Response<'_>, body: Body) -> Result<(), NotHttp> {
        let a = &mut *self.a;
        if a.sent_head {
            return Err(NotHttp);
        }
        // Keep-alive only when the request has been read entirely: the next request
        // starts where this one's body ends.
        let keep_alive = a.req_keep_alive && a.body_done && !self.draining;
        let rb = match resp.length {
            BodyLength::None => ResponseBody::Empty,
            BodyLength::Known(n) => ResponseBody::Length(n),
            BodyLength::Streamed => ResponseBody::Streamed,
        };
        let (head, framing) = self.w.h1_head(
            self.now_unix,
            resp.status,
            a.version,
            keep_alive,
            rb,
            resp.headers,
        );
        self.out.push(head);
        a.sent_head = true;
        a.keep_alive = framing.keep_alive;
        // 1xx, 204 and 304 have no content (RFC 9110 6.4.1), HEAD answers none.
        let no_content = resp.status < 200 || resp.status == 204 || resp.status == 304;
        if a.head_only || no_content {
            return Ok(());
        }
        match (resp.length, body) {
            (_, Body::Empty) => {}
            (BodyLength::Streamed, Body::Bytes(b)) => {
                a.open_body = Some(framing.chunked);
                self.send_data(b, false);
            }
            (_, Body::Bytes(b)) => self.out.push(b),
            (BodyLength::Streamed, Body::File { .. }) => return Err(NotHttp),
            (_, Body::File { file, offset, len }) => {
                a.file = Some(Box::new(FileBody {
                    file,
                    offset,
                    remaining: len,
                }));
                a.file_next(self.out);
            }
        }
        if resp.length == BodyLength::Streamed {
            self.a.open_body = Some(framing.chunked);
        }
        Ok(())
    }
}

/// The exchange's view of an HTTP/1.1 request head.
fn request<B: AsRef<[u8]>>(head: &h1::RequestHead<B>, listener: u16) -> Request<'_> {
    Request {
        listener,
        authority: head.get(Hdr::Host),
        method: match head.method {
            h1::Method::Get => exchange::Method::Get,
            h1::Method::Head => exchange::Method::Head,
            h1::Method::Other => exchange::Method::Unknown,
            _ => exchange::Method::Known,
        },
        method_raw: head.method_raw(),
        path: head.path(),
        query: head.query(),
        content_type: head.get(Hdr::ContentType),
        if_match: head.get(Hdr::IfMatch),
        if_unmodified_since: head.get(Hdr::IfUnmodifiedSince),
        if_none_match: head.get(Hdr::IfNoneMatch),
        if_modified_since: head.get(Hdr::IfModifiedSince),
        range: head.get(Hdr::Range),
        if_range: head.get(Hdr::IfRange),
        has_body: head.body.has_body(),
        content_length: match head.body {
            h1::BodyKind::Length(n) => Some(n),
            _ => None,
        },
    }
}

/// The configured send timeout (`--send-timeout`, [`SEND_TIMEOUT_MS`] by default).
fn send_timeout(cx: &Cx<'_>) -> u64 {
    cx.app
        .http
        .as_ref()
        .map_or(SEND_TIMEOUT_MS, |h| h.send_timeout_ms)
}

fn session_id(conn: ConnId) -> SessionId {
    SessionId { conn, stream: 0 }
}

/// One HTTP/1.1 connection.
pub struct H1Conn {
    h1: H1Server,
    /// The current request's exchange (reading a body for a protocol, or a protocol
    /// streaming the answer; idle otherwise).
    exchange: HttpExchange,
    /// The current request's answer as framed here.
    answer: Answer,
    /// A request whose answer waits for the end of its (dropped) body.
    deferred: Option<Box<h1::RequestHead<Bytes>>>,
    /// When the first byte of the current (incomplete) request head arrived.
    head_started: Option<u64>,
    /// No more requests: close once the queued answers are sent.
    closing: bool,
    /// The listener the connection came in on (picks the vhost with the Host field).
    listener: u16,
}

impl H1Conn {
    /// A connection reading requests within `limits` (the worker's configured ones).
    pub fn new(limits: h1::H1Limits, listener: u16) -> H1Conn {
        H1Conn {
            h1: H1Server::new(limits),
            exchange: HttpExchange::default(),
            answer: Answer::new(Version::Http11, false, false, true),
            deferred: None,
            head_started: None,
            closing: false,
            listener,
        }
    }

    fn idle_deadline(&mut self, cx: &mut Cx<'_>, partial_head: bool) {
        let http = cx.app.http.as_ref().expect("http state");
        if self.answer.responding() {
            *cx.deadline = cx.now_ms + send_timeout(cx);
        } else if partial_head {
            let started = *self.head_started.get_or_insert(cx.now_ms);
            *cx.deadline = started + http.header_timeout_ms;
        } else if self.h1.in_body() {
            // An idle timer, restarted by every read: the head deadline ended with the
            // head, and a body as slow as it likes is fine while it keeps coming.
            *cx.deadline = cx.now_ms + http.body_timeout_ms;
        } else {
            self.head_started = None;
            *cx.deadline = cx.now_ms + http.keepalive_ms;
        }
    }

    /// Runs `f` on the exchange with a [`SessionCx`] whose stream is this connection.
    fn with_session<R>(
        &mut self,
        cx: &mut Cx<'_>,
        f: impl FnOnce(&mut HttpExchange, &mut SessionCx<'_>) -> R,
    ) -> R {
        let id = session_id(cx.id);
        let mut w = cx.app.http.as_mut().expect("http state").take_writer();
        let mut stream = H1Stream {
            id,
            out: &mut *cx.out,
            w: &mut w,
            now_unix: cx.app.now_unix,
            draining: cx.draining,
            a: &mut self.answer,
        };
        let mut scx = SessionCx {
            id,
            app: &mut *cx.app,
            stream: &mut stream,
            now_ms: cx.now_ms,
            deadline: &mut *cx.deadline,
            draining: cx.draining,
        };
        let r = f(&mut self.exchange, &mut scx);
        cx.app.http.as_mut().expect("http state").put_writer(w);
        r
    }

    /// After the exchange acted: what the connection does next. `None`: go on.
    fn settle(&mut self, cx: &mut Cx<'_>, next: Next) -> Option<Flow> {
        match next {
            Next::Continue => {}
            Next::Abort => return Some(Flow::Abort),
            Next::Close { linger } => {
                self.closing = true;
                self.h1.close();
                return Some(Flow::CloseAfterFlush { linger });
            }
        }
        if self.answer.failed {
            return Some(Flow::Abort);
        }
        if !self.answer.sent_head || self.answer.open_body.is_some() {
            return None;
        }
        if self.exchange.is_streaming() {
            // The answer ended without the protocol's `fin` (HEAD, 204, 304): its
            // session goes back through `closed`.
            self.exchange.end_with_closed(cx.app, session_id(cx.id));
        }
        if !self.answer.keep_alive || self.closing {
            self.closing = true;
            self.h1.close();
            // Linger when request bytes may still be in flight towards us. A file body
            // still streams: the loop asks for it while flushing.
            return Some(Flow::CloseAfterFlush {
                linger: !self.answer.body_done,
            });
        }
        None
    }

    /// A request head arrived: the exchange answers it now, or after its body.
    fn on_head(&mut self, cx: &mut Cx<'_>, head: &RequestHeadRef<'_>) -> Option<Flow> {
        self.answer = Answer::new(
            head.version,
            head.keep_alive,
            head.method == h1::Method::Head,
            !head.body.has_body(),
        );
        let req = request(head, self.listener);
        let next = self.with_session(cx, |ex, scx| ex.on_head(scx, &req));
        if self.exchange.keeps_request() {
            self.deferred = Some(Box::new(head.to_owned_head()));
        }
        if head.body.has_body() && head.expect_continue && !self.answer.sent_head {
            // RFC 9110 10.1.1: the client waits for this before sending the body.
            cx.out.push(Bytes::from_static(CONTINUE_100));
        }
        self.settle(cx, next)
    }

    fn on_body_end(&mut self, cx: &mut Cx<'_>) -> Option<Flow> {
        self.answer.body_done = true;
        let deferred = self.deferred.take();
        let listener = self.listener;
        let req = deferred.as_deref().map(|h| request(h, listener));
        let next = self.with_session(cx, |ex, scx| ex.on_body_end(scx, req.as_ref()));
        self.settle(cx, next)
    }

    /// An answer the carrier makes itself (parse errors, timeouts, h2c): the error page
    /// with `Connection: close`.
    fn error(&mut self, cx: &mut Cx<'_>, status: u16) -> Flow {
        let now_unix = cx.app.now_unix;
        let w = cx.app.http.as_mut().expect("http state").writer();
        let date = *w.date.get(now_unix);
        cx.out.push(h1::error_response(status, &date, &w.server));
        count_status(cx.app, status);
        self.closing = true;
        Flow::CloseAfterFlush { linger: true }
    }

    /// An `Upgrade: websocket` request (RFC 6455 4.2): answer 101 and hand the
    /// connection to the WebSocket role with the protocol the handshake chose.
    fn upgrade_websocket(&mut self, cx: &mut Cx<'_>, head: &RequestHeadRef<'_>) -> Option<Flow> {
        if cx.app.protocols.names().is_empty() {
            // No WebSocket protocols here: an ordinary request (RFC 9110 7.8 lets a
            // server ignore Upgrade).
            return self.on_head(cx, head);
        }
        let protos = &cx.app.protocols;
        let default = protos.default.map(|i| protos.names[i as usize]);
        let minor = if head.version == Version::Http11 {
            1
        } else {
            0
        };
        match handshake::server_accept(
            head.method_raw(),
            minor,
            head.headers(),
            protos.names(),
            default,
        ) {
            Ok(acc) => {
                // A client naming no protocol gets the default, else the first one (lws
                // binds such a client to the vhost's first protocol).
                let proto = acc.protocol.and_then(|n| protos.index(n)).unwrap_or(0);
                // permessage-deflate (RFC 7692) when offered and allowed (by the
                // command line and by the protocol).
                let pmd = if cx.app.config.ws_deflate && protos.permessage_deflate(proto) {
                    deflate::negotiate_server(&acc.extensions_offer, &deflate::PmdPolicy::default())
                } else {
                    None
                };
                let resp = handshake::server_response_head(
                    &acc.accept_key,
                    acc.response_protocol(),
                    pmd.as_ref().map(|(_, h)| h.as_str()),
                );
                cx.out.push(Bytes::from(resp));
                count_status(cx.app, 101);
                let cfg = cx.app.config.ws_config();
                let mut ws = WsConn::server(cfg, cx.now_ms);
                if let Some((params, _)) = pmd {
                    ws.set_compression(deflate::Pmd::new(deflate::Side::Server, &params));
                }
                self.closing = true; // this role is done with the connection
                Some(Flow::Upgrade(Box::new(Upgraded::new(WsSession::new(
                    ws, proto,
                )))))
            }
            Err(e) => {
                // The server's own head (Date, Server, Connection: close) like every
                // other answer, with the handshake's fields and reason as the body.
                let now_unix = cx.app.now_unix;
                let w = cx.app.http.as_mut().expect("http state").writer();
                let len = ResponseBody::Length(e.why.len() as u64);
                let (h, _) = w.h1_head(now_unix, e.status, head.version, false, len, e.headers());
                cx.out.push(h);
                if head.method != h1::Method::Head {
                    cx.out.push(Bytes::from(e.why.into_owned()));
                }
                count_status(cx.app, e.status);
                self.closing = true;
                self.h1.close();
                Some(Flow::CloseAfterFlush { linger: true })
            }
        }
    }
}

/// The decoded `HTTP2-Settings` of an `Upgrade: h2c` request (RFC 7540 3.2.1: exactly
/// one, base64url without padding), or None to answer over HTTP/1.1 instead.
fn h2c_settings(head: &RequestHeadRef<'_>) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut found = None;
    for (n, v) in head.headers() {
        if n.eq_ignore_ascii_case(b"http2-settings") {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    let v = found?;
    let v = v.strip_suffix(b"=").unwrap_or(v);
    let v = v.strip_suffix(b"=").unwrap_or(v);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .ok()?;
    raw.len().is_multiple_of(6).then_some(raw)
}

/// The request of an `Upgrade: h2c` as the HTTP/2 stream 1 it becomes (RFC 7540 3.2):
/// pseudo-header fields from the request line and Host, the other fields lowercased
/// without the HTTP/1.1 connection management ones.
fn h2_request(head: &RequestHeadRef<'_>) -> crate::roles::h2::conn::Request {
    let mut req = crate::roles::h2::conn::Request::default();
    let f = &mut req.fields;
    f.push(b":method", head.method_raw());
    f.push(b":scheme", b"http");
    let mut target = head.path().to_vec();
    if let Some(q) = head.query() {
        target.push(b'?');
        target.extend_from_slice(q);
    }
    f.push(b":path", &target);
    if let Some(h) = head.get(Hdr::Host) {
        f.push(b":authority", h);
    }
    for (n, v) in head.headers() {
        let skip = [
            &b"host"[..],
            b"connection",
            b"upgrade",
            b"http2-settings",
            b"keep-alive",
            b"proxy-connection",
            b"transfer-encoding",
            b"te",
        ];
        if skip.iter().any(|s| n.eq_ignore_ascii_case(s)) {
            continue;
        }
        f.push(&n.to_ascii_lowercase(), v);
    }
    req
}

impl Default for H1Conn {
    fn default() -> Self {
        Self::new(h1::H1Limits::default(), 0)
    }
}

impl H1Conn {
    /// `Upgrade: h2c` (RFC 7540 3.2; RFC 9113 3.1 deprecates it, curl and others
    /// still send it): 101, then the connection is HTTP/2 and this request is stream 1.
    fn upgrade_h2c(
        &mut self,
        cx: &mut Cx<'_>,
        head: &RequestHeadRef<'_>,
        settings: &[u8],
    ) -> Option<Flow> {
        let req = h2_request(head);
        match H2Conn::upgraded(cx.app, self.listener, settings, req) {
            Ok(h2) => {
                cx.out.push(Bytes::from_static(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                ));
                count_status(cx.app, 101);
                self.closing = true;
                Some(Flow::Upgrade(Box::new(h2)))
            }
            // Settings that do not decode: answered over HTTP/1.1 (the upgrade is
            // optional for the server).
            Err(_) => self.on_head(cx, head),
        }
    }
}

impl Role for H1Conn {
    fn on_handshake(&mut self, cx: &mut Cx<'_>, alpn: Option<&[u8]>) -> Flow {
        if alpn == Some(b"h2") {
            // RFC 9113 3.2: TLS with ALPN "h2"; the client preface follows.
            self.closing = true;
            return Flow::Upgrade(Box::new(H2Conn::new(cx.app, self.listener)));
        }
        self.on_data(cx, &mut []).1
    }

    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        let mut pos = 0;
        let mut flow = Flow::Continue;
        while !self.answer.responding() && cx.out.len() < OUT_HIGH_WATER && !self.closing {
            let f = self.h1.feed(&data[pos..]);
            pos += f.consumed;
            let fl = match f.event {
                Event::Head(head) => {
                    self.head_started = None;
                    if head.upgrade == Some(h1::Upgrade::WebSocket) {
                        self.upgrade_websocket(cx, &head)
                    } else if head.upgrade == Some(h1::Upgrade::H2c)
                        && !cx.secure
                        && !head.body.has_body()
                        && let Some(settings) = h2c_settings(&head)
                    {
                        self.upgrade_h2c(cx, &head, &settings)
                    } else {
                        self.on_head(cx, &head)
                    }
                }
                Event::Body(chunk) => {
                    let next = self.with_session(cx, |ex, scx| ex.on_body(scx, chunk));
                    self.settle(cx, next)
                }
                Event::BodyEnd => self.on_body_end(cx),
                Event::NeedMore => break,
                Event::Upgraded => {
                    // No upgrade is offered yet: the request was answered over HTTP/1.1.
                    self.h1.decline_upgrade();
                    None
                }
                // RFC 9113 3.3: h2c with prior knowledge; the preface (not consumed)
                // is the new role's first input.
                Event::H2Preface => {
                    self.closing = true;
                    Some(Flow::Upgrade(Box::new(H2Conn::new(cx.app, self.listener))))
                }
                Event::Closed => {
                    self.closing = true;
                    Some(Flow::CloseAfterFlush { linger: false })
                }
                Event::Error(e) => Some(self.error(cx, e.status())),
            };
            if let Some(fl) = fl {
                flow = fl;
                break;
            }
        }
        let partial = pos < data.len() && self.h1.is_idle();
        self.idle_deadline(cx, partial);
        (pos, flow)
    }

    fn on_sent(&mut self, cx: &mut Cx<'_>) -> Flow {
        if self.answer.file.is_some() {
            self.answer.file_next(cx.out);
            if self.answer.failed {
                return Flow::Abort;
            }
            *cx.deadline = cx.now_ms + send_timeout(cx);
            return Flow::Continue;
        }
        if self.answer.open_body.is_some() {
            // A protocol is streaming: its writeable callback follows (the loop notes
            // it after this); the stream made progress.
            *cx.deadline = cx.now_ms + send_timeout(cx);
            return Flow::Continue;
        }
        if self.closing {
            return Flow::CloseAfterFlush { linger: false };
        }
        if cx.draining && self.h1.is_idle() {
            return Flow::CloseAfterFlush { linger: false };
        }
        self.idle_deadline(cx, false);
        Flow::Continue
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>) -> Flow {
        if self.answer.responding() || !cx.out.is_empty() {
            return Flow::Abort; // the client stopped reading, or the protocol stalled
        }
        if self.head_started.is_some() || self.h1.in_body() {
            // RFC 9110 15.5.9: 408 for a request not completed in time (a head past
            // `--header-timeout`, a body silent for `--body-timeout`), then close.
            return self.error(cx, 408);
        }
        Flow::Abort // idle keep-alive connection: close quietly
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) -> Flow {
        if !self.answer.responding()
            && cx.out.is_empty()
            && self.h1.is_idle()
            && self.head_started.is_none()
        {
            return Flow::CloseAfterFlush { linger: false };
        }
        Flow::Continue
    }

    fn on_peer_eof(&mut self, cx: &mut Cx<'_>) -> Flow {
        // The client finished sending; answers still queued are delivered (it may be
        // reading them: `printf 'GET / ...' | nc` half-closes), a streamed one to its end.
        self.closing = true;
        if self.answer.open_body.is_some() {
            return Flow::Continue;
        }
        if cx.out.is_empty() && !self.answer.responding() {
            Flow::Abort
        } else {
            Flow::CloseAfterFlush { linger: false }
        }
    }

    fn wants_input(&self) -> bool {
        !self.answer.responding() && !self.closing
    }

    fn wants_writeable(&self) -> bool {
        self.answer.open_body.is_some() && self.exchange.wants_writeable()
    }

    fn on_writeable(&mut self, cx: &mut Cx<'_>) -> Flow {
        let next = self.with_session(cx, |ex, scx| ex.on_writeable(scx));
        *cx.deadline = cx.now_ms + send_timeout(cx);
        match self.settle(cx, next) {
            Some(fl) => fl,
            None => {
                if !self.answer.responding() {
                    self.idle_deadline(cx, false);
                }
                Flow::Continue
            }
        }
    }

    fn on_action(&mut self, cx: &mut Cx<'_>, _stream: u32, action: ConnAction) -> Flow {
        let next = self.exchange.on_action(action);
        self.settle(cx, next).unwrap_or(Flow::Continue)
    }

    /// A protocol still reading a request body or streaming an answer (peer gone, a
    /// timeout, an error, the drain's end) gets its session back through `closed`, as a
    /// WebSocket session does (lws' LWS_CALLBACK_CLOSED_HTTP).
    fn on_closed(&mut self, app: &mut App, id: ConnId) {
        self.exchange.end_with_closed(app, session_id(id));
    }
}
