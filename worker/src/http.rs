//! The HTTP/1.1 server role: drives the sans-IO parser ([`crate::roles::h1`]) for one
//! connection, routes each request to the vhost's mounts, and queues the answers on the
//! connection in request order (pipelining).
//!
//! Answers to every request found in one recv are queued together, so they leave in one
//! writev. A large file body is streamed in [`STREAM_CHUNK`] pieces read with `pread`
//! once the previous piece has been sent, never read whole; while a body streams, or while
//! more than [`OUT_HIGH_WATER`] bytes wait to be sent, the role stops consuming requests
//! (the loop buffers a little, then stops reading: TCP backpressure reaches a client
//! that pipelines faster than it reads).
//!
//! Timers: a request head must be complete within `header_timeout` of its first byte
//! (else 408 and close: slowloris); once the head is complete, a request body may go
//! `body_timeout` between two reads (else 408 and close; nginx's `client_body_timeout`,
//! so a slow upload that keeps moving is never cut off); an idle keep-alive connection
//! is closed after `keepalive_timeout`; a response that makes no progress for
//! [`SEND_TIMEOUT_MS`] is abandoned.

use std::os::unix::fs::FileExt;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::App;
use crate::api::{ConnId, HttpAnswer, HttpRequest, HttpResponse, Vhost as PluginVhost};
use crate::mount::file::{FileBody, FileRequest, FileResponse};
use crate::roles::h1::{
    self, CONTINUE_100, Event, H1Server, Hdr, Method, RequestHeadRef, ResponseBody, ResponseHead,
    Version,
};
use crate::roles::ws::conn::WsConn;
use crate::roles::ws::{deflate, handshake};
use crate::service::conn::OutQueue;
use crate::service::{Cx, Flow, Role, RoleFactory};
use crate::session::ws::WsSession;
use crate::upgraded::Upgraded;
use crate::vhost::{MountId, Route, Vhost};

/// Size of each piece of a streamed file body. 128 KiB: large enough that a loopback
/// client downloading at memory speed costs few syscalls per MiB, small enough that a
/// thousand concurrent downloads hold 128 MiB at most.
pub const STREAM_CHUNK: usize = 128 * 1024;

/// Queued output above which the role stops reading further pipelined requests until
/// the queue drains. 256 KiB: a burst of pipelined small answers fits many times over.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// Largest request body the server reads and throws away to keep a connection alive
/// after answering a request that has no use for its body (nginx's discard-body does the
/// same). Above it the answer says `Connection: close` instead.
pub const DISCARD_MAX: u64 = 1024 * 1024;

/// A response that makes no progress (no send completes) for this long is abandoned:
/// the client stopped reading. 60 s, nginx's `send_timeout`.
pub const SEND_TIMEOUT_MS: u64 = 60_000;

/// Per-worker HTTP state shared by every connection.
pub struct HttpShared {
    pub vhost: Vhost,
    pub date: h1::DateCache,
    pub server: Bytes,
    pub limits: h1::H1Limits,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub keepalive_ms: u64,
    /// Response heads are written here and split off as `Bytes`: one allocation serves
    /// many heads.
    scratch: BytesMut,
}

impl HttpShared {
    pub fn new(vhost: Vhost, cfg: &crate::config::WorkerConfig) -> HttpShared {
        HttpShared {
            vhost,
            date: h1::DateCache::new(),
            server: Bytes::from(cfg.server_string.clone()),
            limits: cfg.h1_limits.clone(),
            header_timeout_ms: cfg.header_timeout.as_millis() as u64,
            body_timeout_ms: cfg.body_timeout.as_millis() as u64,
            keepalive_ms: cfg.keepalive_timeout.as_millis() as u64,
            scratch: BytesMut::new(),
        }
    }

    /// A complete response head (status line, Server, Date, framing, `headers`) as
    /// `Bytes` split off the shared scratch buffer.
    fn head(
        &mut self,
        now_unix: u64,
        status: u16,
        version: Version,
        keep_alive: bool,
        body: ResponseBody,
        headers: &[(&[u8], &[u8])],
    ) -> Bytes {
        if self.scratch.capacity() - self.scratch.len() < 1024 {
            self.scratch.reserve(64 * 1024);
        }
        let date = *self.date.get(now_unix);
        h1::write_response_head(
            &mut self.scratch,
            &ResponseHead {
                status,
                reason: None,
                version,
                keep_alive,
                body,
                date: &date,
                server: &self.server,
                headers,
            },
        );
        self.scratch.split().freeze()
    }
}

/// Builds the worker's HTTP state from its config and returns the factory the loop uses
/// for every new connection.
pub fn role_factory(app: &mut App) -> std::io::Result<RoleFactory> {
    let vhost = Vhost::from_config(&app.config).map_err(std::io::Error::other)?;
    app.http = Some(HttpShared::new(vhost, &app.config));
    Ok(Box::new(|app: &mut App, _listener| {
        let limits = app
            .http
            .as_ref()
            .map(|h| h.limits.clone())
            .unwrap_or_default();
        Box::new(HttpConn::new(limits)) as Box<dyn Role>
    }))
}

/// A body being streamed from a file.
struct Streaming {
    file: Rc<std::fs::File>,
    offset: u64,
    remaining: u64,
}

/// A request body being delivered to a protocol.
struct CallbackBody {
    proto: u16,
    kind: CallbackKind,
    version: Version,
    keep_alive: bool,
}

enum CallbackKind {
    /// The body goes to `http_body`; the answer comes from `http_body_completion`.
    Read(Box<dyn std::any::Any>),
    /// The protocol answered at the head; the body is dropped, then this is sent.
    Ready(HttpResponse),
}

/// One HTTP/1.1 connection.
pub struct HttpConn {
    h1: H1Server,
    streaming: Option<Box<Streaming>>,
    /// A request whose body is being read (and dropped); answered at its end.
    deferred: Option<Box<h1::RequestHead<Bytes>>>,
    /// A request whose body goes to a protocol's `http_body` (a `callback://` mount).
    callback: Option<Box<CallbackBody>>,
    /// When the first byte of the current (incomplete) request head arrived.
    head_started: Option<u64>,
    /// No more requests: close once the queued answers are sent.
    closing: bool,
}

impl HttpConn {
    /// A connection reading requests within `limits` (the worker's configured ones).
    pub fn new(limits: h1::H1Limits) -> HttpConn {
        HttpConn {
            h1: H1Server::new(limits),
            streaming: None,
            deferred: None,
            callback: None,
            head_started: None,
            closing: false,
        }
    }

    fn idle_deadline(&mut self, cx: &mut Cx<'_>, partial_head: bool) {
        let http = cx.app.http.as_ref().expect("http state");
        if self.streaming.is_some() {
            *cx.deadline = cx.now_ms + SEND_TIMEOUT_MS;
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

    /// A request head arrived. A request without a body is answered at once; one with a
    /// body is answered when the body has been read (and dropped: no mount uses request
    /// bodies yet), so a malformed body still gets its 400 and the connection stays
    /// usable. Returns the flow when the connection must close.
    fn on_head(&mut self, cx: &mut Cx<'_>, head: &RequestHeadRef<'_>) -> Option<Flow> {
        let http = cx.app.http.as_mut().expect("http state");
        let mount = http.vhost.resolve(head.path());
        if http.vhost.is_callback(mount) {
            let Route::Callback(name, path) = http.vhost.target(mount, head.path()) else {
                unreachable!("is_callback said so");
            };
            let path = path.to_vec();
            let proto = cx.app.protocols.index(name);
            return self.callback_head(cx, head, proto, &path);
        }
        if head.body.has_body() {
            let small = match head.body {
                h1::BodyKind::Length(n) => n <= DISCARD_MAX,
                _ => true, // chunked: bounded by H1Limits::max_body while discarding
            };
            if small {
                if head.expect_continue {
                    // RFC 9110 10.1.1: the client waits for this before sending the body.
                    cx.out.push(Bytes::from_static(CONTINUE_100));
                }
                self.deferred = Some(Box::new(head.to_owned_head()));
                return None;
            }
            // Too big to read just to drop it: answer now and close (RFC 9110 10.1.1
            // lets a server answer before the content; it must then close).
            return self.answer(cx, head, false, mount);
        }
        self.answer(cx, head, true, mount)
    }

    /// Answers a request (routing it to its mount). `reusable`: the request has been read
    /// entirely, so the connection may stay open for the next one.
    fn answer<B: AsRef<[u8]>>(
        &mut self,
        cx: &mut Cx<'_>,
        head: &h1::RequestHead<B>,
        reusable: bool,
        mount: Option<MountId>,
    ) -> Option<Flow> {
        let now_unix = cx.app.now_unix;
        let keep_alive = head.keep_alive && reusable && !cx.draining;
        let head_only = head.method == Method::Head;
        let http = cx.app.http.as_mut().expect("http state");
        let status = match (head.method, http.vhost.target(mount, head.path())) {
            (Method::Get | Method::Head, Route::File(mount, path)) => {
                let req = FileRequest {
                    head_only,
                    path,
                    query: head.query(),
                    if_match: head.get(Hdr::IfMatch),
                    if_unmodified_since: head.get(Hdr::IfUnmodifiedSince),
                    if_none_match: head.get(Hdr::IfNoneMatch),
                    if_modified_since: head.get(Hdr::IfModifiedSince),
                    range: head.get(Hdr::Range),
                    if_range: head.get(Hdr::IfRange),
                    now_unix,
                };
                let resp = mount.serve(&req);
                let status = resp.status;
                self.write_file_response(http, cx.out, head.version, keep_alive, now_unix, resp);
                status
            }
            (_, Route::Callback(..)) => {
                // Reached only for a deferred request; callback routes are taken at the head.
                self.status_page(cx, head.version, head_only, 500, false, &[]);
                500
            }
            (Method::Get | Method::Head, Route::NotFound) => {
                self.status_page(cx, head.version, head_only, 404, keep_alive, &[]);
                404
            }
            (Method::Other, _) => {
                // RFC 9110 15.6.2: a method the server does not implement.
                self.status_page(cx, head.version, head_only, 501, keep_alive, &[]);
                501
            }
            _ => {
                // A file mount answers GET and HEAD only (RFC 9110 15.5.6: 405 with Allow).
                self.status_page(
                    cx,
                    head.version,
                    head_only,
                    405,
                    keep_alive,
                    &[(b"Allow", b"GET, HEAD")],
                );
                405
            }
        };
        count_status(cx.app, status);
        if !keep_alive {
            self.closing = true;
            self.h1.close();
            // Linger when request bytes may still be in flight towards us.
            return Some(Flow::CloseAfterFlush { linger: !reusable });
        }
        None
    }

    /// A request on a `callback://` mount: the protocol answers, possibly after reading
    /// the body through `http_body`.
    fn callback_head(
        &mut self,
        cx: &mut Cx<'_>,
        head: &RequestHeadRef<'_>,
        proto: Option<u16>,
        path: &[u8],
    ) -> Option<Flow> {
        let keep_alive = head.keep_alive && !cx.draining;
        let Some(proto) = proto else {
            self.status_page(
                cx,
                head.version,
                head.method == Method::Head,
                404,
                keep_alive,
                &[],
            );
            count_status(cx.app, 404);
            return None;
        };
        let method = std::str::from_utf8(head.method_raw()).unwrap_or("");
        let req = HttpRequest {
            method,
            path,
            query: head.query(),
            content_type: head.get(Hdr::ContentType),
            content_length: match head.body {
                h1::BodyKind::Length(n) => Some(n),
                _ => None,
            },
        };
        let app = &mut *cx.app;
        let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) else {
            return None;
        };
        let mut vh = PluginVhost {
            shared: &mut app.plugin,
            protocol: proto,
        };
        match p.http(&mut vh, &req) {
            HttpAnswer::Respond(resp) => {
                if head.body.has_body() {
                    // Answer after the (dropped) body, so the connection stays in sync.
                    self.callback = Some(Box::new(CallbackBody {
                        proto,
                        kind: CallbackKind::Ready(resp),
                        version: head.version,
                        keep_alive,
                    }));
                    if head.expect_continue {
                        cx.out.push(Bytes::from_static(CONTINUE_100));
                    }
                    return None;
                }
                self.write_callback_response(
                    cx,
                    head.version,
                    keep_alive,
                    head.method == Method::Head,
                    resp,
                )
            }
            HttpAnswer::ReadBody(session) => {
                if head.expect_continue {
                    cx.out.push(Bytes::from_static(CONTINUE_100));
                }
                if !head.body.has_body() {
                    // No body at all: complete at once.
                    let app = &mut *cx.app;
                    let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) else {
                        return None;
                    };
                    let mut vh = PluginVhost {
                        shared: &mut app.plugin,
                        protocol: proto,
                    };
                    let resp = p.http_body_completion(&mut vh, session);
                    return self.write_callback_response(cx, head.version, keep_alive, false, resp);
                }
                self.callback = Some(Box::new(CallbackBody {
                    proto,
                    kind: CallbackKind::Read(session),
                    version: head.version,
                    keep_alive,
                }));
                None
            }
        }
    }

    fn write_callback_response(
        &mut self,
        cx: &mut Cx<'_>,
        version: Version,
        keep_alive: bool,
        head_only: bool,
        resp: HttpResponse,
    ) -> Option<Flow> {
        let now_unix = cx.app.now_unix;
        let http = cx.app.http.as_mut().expect("http state");
        let headers: Vec<(&[u8], &[u8])> =
            std::iter::once((&b"Content-Type"[..], resp.content_type.as_bytes()))
                .chain(resp.headers().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
                .collect();
        let len = ResponseBody::Length(resp.body.len() as u64);
        cx.out
            .push(http.head(now_unix, resp.status, version, keep_alive, len, &headers));
        if !head_only {
            cx.out.push(resp.body);
        }
        count_status(cx.app, resp.status);
        if !keep_alive {
            self.closing = true;
            self.h1.close();
            return Some(Flow::CloseAfterFlush { linger: false });
        }
        None
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
                let http = cx.app.http.as_mut().expect("http state");
                let len = ResponseBody::Length(e.why.len() as u64);
                let version = head.version;
                cx.out
                    .push(http.head(now_unix, e.status, version, false, len, e.headers()));
                if head.method != Method::Head {
                    cx.out.push(Bytes::from(e.why.into_owned()));
                }
                count_status(cx.app, e.status);
                self.closing = true;
                self.h1.close();
                Some(Flow::CloseAfterFlush { linger: true })
            }
        }
    }

    fn status_page(
        &mut self,
        cx: &mut Cx<'_>,
        version: Version,
        head_only: bool,
        status: u16,
        keep_alive: bool,
        extra: &[(&[u8], &[u8])],
    ) {
        let now_unix = cx.app.now_unix;
        let http = cx.app.http.as_mut().expect("http state");
        let body = h1::response::error_body(status);
        let mut headers: [(&[u8], &[u8]); 4] = [(b"", b""); 4];
        headers[0] = (b"Content-Type", b"text/html; charset=utf-8");
        let n = 1 + extra.len().min(3);
        headers[1..n].copy_from_slice(&extra[..n - 1]);
        let len = ResponseBody::Length(body.len() as u64);
        cx.out
            .push(http.head(now_unix, status, version, keep_alive, len, &headers[..n]));
        if !head_only {
            cx.out.push(Bytes::from_static(body));
        }
    }

    fn write_file_response(
        &mut self,
        http: &mut HttpShared,
        out: &mut OutQueue,
        version: Version,
        keep_alive: bool,
        now_unix: u64,
        resp: FileResponse,
    ) {
        let mut headers: [(&[u8], &[u8]); 6] = [(b"", b""); 6];
        let mut n = 0;
        let mut cr_buf = [0u8; 64];
        if let Some(ct) = &resp.content_type {
            headers[n] = (b"Content-Type", ct);
            n += 1;
        }
        if let Some(v) = &resp.last_modified {
            headers[n] = (b"Last-Modified", v);
            n += 1;
        }
        if let Some(v) = &resp.etag {
            headers[n] = (b"ETag", v);
            n += 1;
        }
        if resp.accept_ranges {
            headers[n] = (b"Accept-Ranges", b"bytes");
            n += 1;
        }
        if let Some(cr) = &resp.content_range {
            let mut w = &mut cr_buf[..];
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{cr}"));
            let len = 64 - w.len();
            headers[n] = (b"Content-Range", &cr_buf[..len]);
            n += 1;
        }
        if let Some(loc) = &resp.location {
            headers[n] = (b"Location", loc);
            n += 1;
        }
        let body = if resp.status == 304 {
            ResponseBody::Empty
        } else {
            ResponseBody::Length(resp.content_length)
        };
        out.push(http.head(
            now_unix,
            resp.status,
            version,
            keep_alive,
            body,
            &headers[..n],
        ));
        match resp.body {
            FileBody::Empty => {}
            FileBody::Bytes(b) => out.push(b),
            FileBody::File { file, offset, len } => {
                self.streaming = Some(Box::new(Streaming {
                    file,
                    offset,
                    remaining: len,
                }));
                self.stream_next(out);
            }
        }
    }

    /// Queues the next piece of a streamed body. Returns false on a read error.
    fn stream_next(&mut self, out: &mut OutQueue) -> bool {
        let Some(s) = self.streaming.as_mut() else {
            return true;
        };
        let want = (s.remaining as usize).min(STREAM_CHUNK);
        // Zero-filled first so the read goes into an initialised slice (no unsafe); the
        // memset costs ~1 % of moving the bytes through loopback.
        let mut buf = BytesMut::with_capacity(want);
        buf.put_bytes(0, want);
        let mut filled = 0;
        while filled < want {
            match s.file.read_at(&mut buf[filled..], s.offset + filled as u64) {
                Ok(0) => return false, // the file shrank under us: the length is now a lie
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        s.offset += want as u64;
        s.remaining -= want as u64;
        out.push(buf.freeze());
        if s.remaining == 0 {
            self.streaming = None;
        }
        true
    }
}

impl Default for HttpConn {
    fn default() -> Self {
        Self::new(h1::H1Limits::default())
    }
}

fn count_status(app: &mut App, status: u16) {
    let class = (status / 100).clamp(1, 5) as usize - 1;
    app.stats.wire.http_requests_total[class] += 1;
}

impl Role for HttpConn {
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        let mut pos = 0;
        let mut flow = Flow::Continue;
        while self.streaming.is_none() && cx.out.len() < OUT_HIGH_WATER && !self.closing {
            let f = self.h1.feed(&data[pos..]);
            pos += f.consumed;
            match f.event {
                Event::Head(head) => {
                    self.head_started = None;
                    let fl = if head.upgrade == Some(h1::Upgrade::WebSocket) {
                        self.upgrade_websocket(cx, &head)
                    } else {
                        self.on_head(cx, &head)
                    };
                    if let Some(fl) = fl {
                        flow = fl;
                        break;
                    }
                }
                Event::Body(chunk) => {
                    if let Some(cb) = self.callback.as_mut()
                        && let CallbackKind::Read(session) = &mut cb.kind
                    {
                        let app = &mut *cx.app;
                        if let Some(Some(p)) = app.protocols.list.get_mut(cb.proto as usize) {
                            let mut vh = PluginVhost {
                                shared: &mut app.plugin,
                                protocol: cb.proto,
                            };
                            if p.http_body(&mut vh, session.as_mut(), chunk).is_err() {
                                // The session stays: `on_closed` hands it to `closed`.
                                flow = Flow::Abort;
                                break;
                            }
                        }
                    }
                }
                Event::BodyEnd => {
                    if let Some(cb) = self.callback.take() {
                        let app = &mut *cx.app;
                        let resp = match (cb.kind, app.protocols.list.get_mut(cb.proto as usize)) {
                            (CallbackKind::Ready(r), _) => r,
                            (CallbackKind::Read(session), Some(Some(p))) => {
                                let mut vh = PluginVhost {
                                    shared: &mut app.plugin,
                                    protocol: cb.proto,
                                };
                                p.http_body_completion(&mut vh, session)
                            }
                            _ => HttpResponse::new(500, "text/plain", Bytes::new()),
                        };
                        if let Some(fl) =
                            self.write_callback_response(cx, cb.version, cb.keep_alive, false, resp)
                        {
                            flow = fl;
                            break;
                        }
                    }
                    if let Some(head) = self.deferred.take() {
                        let http = cx.app.http.as_ref().expect("http state");
                        let mount = http.vhost.resolve(head.path());
                        if let Some(fl) = self.answer(cx, &head, true, mount) {
                            flow = fl;
                            break;
                        }
                    }
                }
                Event::NeedMore => break,
                Event::Upgraded => {
                    // No upgrade is offered yet: the request was answered over HTTP/1.1.
                    self.h1.decline_upgrade();
                }
                Event::H2Preface => {
                    // Prior-knowledge h2c is not served (yet): 505 as for any HTTP/2.0
                    // request line, then close (RFC 9113 3.3 leaves it to the server).
                    let now_unix = cx.app.now_unix;
                    let http = cx.app.http.as_mut().expect("http state");
                    let date = *http.date.get(now_unix);
                    cx.out.push(h1::error_response(505, &date, &http.server));
                    count_status(cx.app, 505);
                    self.closing = true;
                    flow = Flow::CloseAfterFlush { linger: true };
                    break;
                }
                Event::Closed => {
                    self.closing = true;
                    flow = Flow::CloseAfterFlush { linger: false };
                    break;
                }
                Event::Error(e) => {
                    let now_unix = cx.app.now_unix;
                    let http = cx.app.http.as_mut().expect("http state");
                    let date = *http.date.get(now_unix);
                    cx.out
                        .push(h1::error_response(e.status(), &date, &http.server));
                    count_status(cx.app, e.status());
                    self.closing = true;
                    flow = Flow::CloseAfterFlush { linger: true };
                    break;
                }
            }
        }
        let partial = pos < data.len() && self.h1.is_idle();
        self.idle_deadline(cx, partial);
        (pos, flow)
    }

    fn on_sent(&mut self, cx: &mut Cx<'_>) -> Flow {
        if self.streaming.is_some() {
            if !self.stream_next(cx.out) {
                return Flow::Abort;
            }
            *cx.deadline = cx.now_ms + SEND_TIMEOUT_MS;
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
        if self.streaming.is_some() || !cx.out.is_empty() {
            return Flow::Abort; // the client stopped reading
        }
        if self.head_started.is_some() || self.h1.in_body() {
            // RFC 9110 15.5.9: 408 for a request not completed in time (a head past
            // `--header-timeout`, a body silent for `--body-timeout`), then close.
            let now_unix = cx.app.now_unix;
            let http = cx.app.http.as_mut().expect("http state");
            let date = *http.date.get(now_unix);
            cx.out.push(h1::error_response(408, &date, &http.server));
            count_status(cx.app, 408);
            self.closing = true;
            return Flow::CloseAfterFlush { linger: true };
        }
        Flow::Abort // idle keep-alive connection: close quietly
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) -> Flow {
        if self.streaming.is_none()
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
        // reading them: `printf 'GET / ...' | nc` half-closes).
        self.closing = true;
        if cx.out.is_empty() && self.streaming.is_none() {
            Flow::Abort
        } else {
            Flow::CloseAfterFlush { linger: false }
        }
    }

    fn wants_input(&self) -> bool {
        self.streaming.is_none() && !self.closing
    }

    /// A protocol still reading a request body (peer gone, body timeout, an error, the
    /// drain's end) gets its session back through `closed`, as a WebSocket session does
    /// (lws' LWS_CALLBACK_CLOSED_HTTP): whatever it holds for the upload is released.
    fn on_closed(&mut self, app: &mut App, id: ConnId) {
        let Some(cb) = self.callback.take() else {
            return;
        };
        if let CallbackKind::Read(session) = cb.kind
            && let Some(Some(p)) = app.protocols.list.get_mut(cb.proto as usize)
        {
            let mut vh = PluginVhost {
                shared: &mut app.plugin,
                protocol: cb.proto,
            };
            p.closed(&mut vh, id, session);
        }
    }
}
