//! The HTTP exchange: one request routed to the vhost's mount and answered through the
//! [`Stream`](super::Stream) that carries it, whatever the carrier (an HTTP/1.1
//! connection today, an HTTP/2 stream next). It sees a protocol-neutral [`Request`]
//! (method, path, query, the header fields it uses) and answers with a
//! [`Response`] and a [`Body`]; the carrier serialises them and owns the framing, the
//! connection's life and the request-body decoding.
//!
//! Routes: a file mount answers GET and HEAD (405 with `Allow` otherwise, 501 for a
//! method nobody implements), a `callback://` mount hands the request to its protocol
//! (the body to `http_body`; the answer whole, or streamed through `http_writeable`,
//! see [`crate::api`]), a path no mount covers is 404.
//!
//! Request bodies: a body no mount reads is read and dropped before the answer, so a
//! malformed body still gets its own 400 and the connection stays usable; one announced
//! larger than [`DISCARD_MAX`] is not worth reading just to drop it: the answer goes at
//! once (RFC 9110 10.1.1 lets a server answer before the content) and the carrier, seeing
//! an answer before the body's end, closes the connection after it.

use std::any::Any;

use bytes::Bytes;

use super::{Body, BodyLength, Next, Response, SessionCx, SessionId};
use crate::App;
use crate::api::{ConnAction, HttpAnswer, HttpConn, HttpRequest, HttpResponse, Vhost};
use crate::mount::file::{FileBody, FileRequest, FileResponse};
use crate::vhost::Route;

/// Largest request body read and thrown away to keep a connection alive after
/// answering a request that has no use for its body (nginx's discard-body does the
/// same). Above it the answer goes at once and the connection closes after it.
pub const DISCARD_MAX: u64 = 1024 * 1024;

/// What the exchange needs to know about the method (RFC 9110 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A method of RFC 9110 (or PATCH) other than GET and HEAD.
    Known,
    /// A valid token nobody here implements (RFC 9110 15.6.2: 501).
    Unknown,
}

/// A request as the carrier decoded it, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: Method,
    /// The method token as sent.
    pub method_raw: &'a [u8],
    /// The listener the request came in on (by index).
    pub listener: u16,
    /// `Host` on HTTP/1.1, `:authority` on HTTP/2: picks the vhost by name.
    pub authority: Option<&'a [u8]>,
    /// The path, still percent-encoded, without the query.
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    /// A body follows the head.
    pub has_body: bool,
    /// Its length, when announced.
    pub content_length: Option<u64>,
}

/// The state of one exchange between its head and its answer's end.
#[derive(Default)]
enum State {
    /// Nothing left for the exchange to do (answered; a file body is the carrier's).
    #[default]
    Idle,
    /// Route and answer when the (dropped) body has ended: the carrier keeps the request.
    AtBodyEnd,
    /// A protocol answered at the head; sent once the (dropped) body has ended.
    Ready(Box<HttpAnswer<Box<dyn Any>>>, u16),
    /// The body goes to the protocol's `http_body`.
    Reading { proto: u16, session: Box<dyn Any> },
    /// The protocol streams the body through `http_writeable`.
    Streaming {
        proto: u16,
        session: Box<dyn Any>,
        want_writeable: bool,
    },
}

/// One HTTP exchange. An idle one holds nothing; a carrier keeps one per stream.
#[derive(Default)]
pub struct HttpExchange {
    state: State,
}

/// Counts an answer in `lwsd_http_requests_total{code_class}`.
pub fn count_status(app: &mut App, status: u16) {
    let class = (status / 100).clamp(1, 5) as usize - 1;
    app.stats.wire.http_requests_total[class] += 1;
}

/// Sends a complete response; a stream that cannot take one ends the exchange.
fn respond(cx: &mut SessionCx<'_>, resp: Response<'_>, body: Body) -> Next {
    count_status(cx.app, resp.status);
    match cx.stream.respond(resp, body) {
        Ok(()) => Next::Continue,
        Err(_) => Next::Abort,
    }
}

/// The server's HTML page for `status`, with `extra` fields.
fn status_page(cx: &mut SessionCx<'_>, status: u16, extra: &[(&[u8], &[u8])]) -> Next {
    let body = crate::roles::h1::error_body(status);
    let mut headers: [(&[u8], &[u8]); 4] = [(b"", b""); 4];
    headers[0] = (b"Content-Type", b"text/html; charset=utf-8");
    let n = 1 + extra.len().min(3);
    headers[1..n].copy_from_slice(&extra[..n - 1]);
    let resp = Response {
        status,
        headers: &headers[..n],
        length: BodyLength::Known(body.len() as u64),
    };
    respond(cx, resp, Body::Bytes(Bytes::from_static(body)))
}

fn file_response(cx: &mut SessionCx<'_>, resp: FileResponse) -> Next {
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
    let length = if resp.status == 304 {
        BodyLength::None
    } else {
        BodyLength::Known(resp.content_length)
    };
    let body = match resp.body {
        FileBody::Empty => Body::Empty,
        FileBody::Bytes(b) => Body::Bytes(b),
        FileBody::File { file, offset, len } => Body::File { file, offset, len },
    };
    let r = Response {
        status: resp.status,
        headers: &headers[..n],
        length,
    };
    respond(cx, r, body)
}

/// A protocol's whole answer. Fields other than Content-Type are few; they are gathered
/// on the stack when they fit.
fn callback_response(cx: &mut SessionCx<'_>, mut resp: HttpResponse, length: BodyLength) -> Next {
    let body = std::mem::take(&mut resp.body);
    const INLINE: usize = 8;
    let extra = resp.headers().count();
    let mut inline: [(&[u8], &[u8]); INLINE] = [(b"", b""); INLINE];
    let heap: Vec<(&[u8], &[u8])>;
    let fields = std::iter::once((&b"Content-Type"[..], resp.content_type.as_bytes()))
        .chain(resp.headers().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let headers: &[(&[u8], &[u8])] = if extra < INLINE {
        for (slot, f) in inline.iter_mut().zip(fields) {
            *slot = f;
        }
        &inline[..extra + 1]
    } else {
        heap = fields.collect();
        &heap
    };
    let length = match length {
        BodyLength::Streamed => BodyLength::Streamed,
        _ => BodyLength::Known(body.len() as u64),
    };
    let r = Response {
        status: resp.status,
        headers,
        length,
    };
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Bytes(body)
    };
    respond(cx, r, body)
}

impl HttpExchange {
    /// A request head arrived: route it, answer now or get ready for its body.
    pub fn on_head(&mut self, cx: &mut SessionCx<'_>, req: &Request<'_>) -> Next {
        let Some(vi) = cx.app.vhost_for(req.listener, req.authority) else {
            // No vhost serves this listener (RFC 9110 15.5.20).
            return status_page(cx, 421, &[]);
        };
        let vhost = &mut cx.app.vhosts[vi];
        let mount = vhost.resolve(req.path);
        if vhost.is_callback(mount) {
            let Route::Callback(name, path) = vhost.target(mount, req.path) else {
                unreachable!("is_callback said so");
            };
            let proto = cx.app.protocols.index(name);
            // The path relative to the mountpoint is a piece of the request's (or "/"):
            // found again in it, so the vhost's borrow can end.
            let off = (path.as_ptr() as usize).wrapping_sub(req.path.as_ptr() as usize);
            let rel: &[u8] = req
                .path
                .get(off..off.wrapping_add(path.len()))
                .filter(|r| r.as_ptr() == path.as_ptr())
                .unwrap_or(b"/");
            return self.callback_head(cx, req, proto, rel);
        }
        // A body too big to read just to drop it is answered now; the carrier closes
        // after. A chunked one is bounded by the carrier's body limit while dropped.
        if req.has_body && req.content_length.is_none_or(|n| n <= DISCARD_MAX) {
            self.state = State::AtBodyEnd;
            return Next::Continue;
        }
        self.answer_via(cx, req, vi, mount)
    }

    /// Whether the exchange needs the request again at the body's end
    /// ([`on_body_end`](Self::on_body_end)): the carrier keeps it until then.
    pub fn keeps_request(&self) -> bool {
        matches!(self.state, State::AtBodyEnd)
    }

    /// Routes a request whose body (if any) has been dealt with, and answers it.
    fn answer(&mut self, cx: &mut SessionCx<'_>, req: &Request<'_>) -> Next {
        let Some(vi) = cx.app.vhost_for(req.listener, req.authority) else {
            return status_page(cx, 421, &[]);
        };
        let mount = cx.app.vhosts[vi].resolve(req.path);
        self.answer_via(cx, req, vi, mount)
    }

    /// [`answer`](Self::answer) through vhost `vi`'s mount `mount`, already found (at the
    /// head: the vhost and mount are looked up once per request).
    fn answer_via(
        &mut self,
        cx: &mut SessionCx<'_>,
        req: &Request<'_>,
        vi: usize,
        mount: Option<crate::vhost::MountId>,
    ) -> Next {
        let now_unix = cx.app.now_unix;
        let vhost = &mut cx.app.vhosts[vi];
        match (req.method, vhost.target(mount, req.path)) {
            (Method::Get | Method::Head, Route::File(mount, path)) => {
                let freq = FileRequest {
                    head_only: req.method == Method::Head,
                    path,
                    query: req.query,
                    if_match: req.if_match,
                    if_unmodified_since: req.if_unmodified_since,
                    if_none_match: req.if_none_match,
                    if_modified_since: req.if_modified_since,
                    range: req.range,
                    if_range: req.if_range,
                    now_unix,
                };
                let resp = mount.serve(&freq);
                file_response(cx, resp)
            }
            // Reached only for a deferred request; callback routes are taken at the head.
            (_, Route::Callback(..)) => status_page(cx, 500, &[]),
            (Method::Get | Method::Head, Route::NotFound) => status_page(cx, 404, &[]),
            // RFC 9110 15.6.2: a method the server does not implement.
            (Method::Unknown, _) => status_page(cx, 501, &[]),
            // A file mount answers GET and HEAD only (RFC 9110 15.5.6: 405 with Allow).
            _ => status_page(cx, 405, &[(b"Allow", b"GET, HEAD")]),
        }
    }

    /// A request on a `callback://` mount: the protocol answers, possibly after reading
    /// the body through `http_body`.
    fn callback_head(
        &mut self,
        cx: &mut SessionCx<'_>,
        req: &Request<'_>,
        proto: Option<u16>,
        path: &[u8],
    ) -> Next {
        let Some(proto) = proto else {
            return status_page(cx, 404, &[]);
        };
        let hreq = HttpRequest {
            method: std::str::from_utf8(req.method_raw).unwrap_or(""),
            path,
            query: req.query,
            content_type: req.content_type,
            content_length: req.content_length,
        };
        let app = &mut *cx.app;
        let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) else {
            return status_page(cx, 500, &[]);
        };
        let mut vh = Vhost {
            shared: &mut app.plugin,
            protocol: proto,
        };
        match p.http(&mut vh, &hreq) {
            HttpAnswer::ReadBody(session) => {
                self.state = State::Reading { proto, session };
                if !req.has_body {
                    // No body at all: complete at once.
                    return self.on_body_end(cx, None);
                }
                Next::Continue
            }
            answer if req.has_body => {
                // Answer after the (dropped) body, so the connection stays in sync.
                self.state = State::Ready(Box::new(answer), proto);
                Next::Continue
            }
            answer => self.deliver(cx, answer, proto),
        }
    }

    /// Sends a protocol's answer (whole, or the head of a streamed one).
    fn deliver(
        &mut self,
        cx: &mut SessionCx<'_>,
        answer: HttpAnswer<Box<dyn Any>>,
        proto: u16,
    ) -> Next {
        match answer {
            HttpAnswer::Respond(resp) => {
                self.state = State::Idle;
                callback_response(cx, resp, BodyLength::Known(0))
            }
            HttpAnswer::Stream(resp, session) => {
                let next = callback_response(cx, resp, BodyLength::Streamed);
                // The first writeable comes without asking.
                self.state = State::Streaming {
                    proto,
                    session,
                    want_writeable: true,
                };
                next
            }
            HttpAnswer::ReadBody(session) => {
                // Not an answer to a completed body: API misuse.
                crate::service::log(
                    2,
                    "protocol answered a completed HTTP body with ReadBody: 500",
                );
                self.state = State::Reading { proto, session };
                self.end_with_closed(cx.app, cx.id);
                status_page(cx, 500, &[])
            }
        }
    }

    /// A piece of the request body.
    pub fn on_body(&mut self, cx: &mut SessionCx<'_>, chunk: &[u8]) -> Next {
        let State::Reading { proto, session } = &mut self.state else {
            return Next::Continue; // dropped
        };
        let app = &mut *cx.app;
        if let Some(Some(p)) = app.protocols.list.get_mut(*proto as usize) {
            let mut vh = Vhost {
                shared: &mut app.plugin,
                protocol: *proto,
            };
            if p.http_body(&mut vh, session.as_mut(), chunk).is_err() {
                // The session stays: `on_closed` hands it to `closed`.
                return Next::Abort;
            }
        }
        Next::Continue
    }

    /// The request body ended (or there was none, for a deferred request). `req` is the
    /// request again when [`keeps_request`](Self::keeps_request) said so.
    pub fn on_body_end(&mut self, cx: &mut SessionCx<'_>, req: Option<&Request<'_>>) -> Next {
        match std::mem::take(&mut self.state) {
            State::Idle => Next::Continue,
            State::AtBodyEnd => match req {
                Some(req) => self.answer(cx, req),
                None => status_page(cx, 500, &[]),
            },
            State::Ready(answer, proto) => self.deliver(cx, *answer, proto),
            State::Reading { proto, session } => {
                let app = &mut *cx.app;
                let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) else {
                    return status_page(cx, 500, &[]);
                };
                let mut vh = Vhost {
                    shared: &mut app.plugin,
                    protocol: proto,
                };
                let answer = p.http_body_completion(&mut vh, session);
                self.deliver(cx, answer, proto)
            }
            s @ State::Streaming { .. } => {
                self.state = s;
                Next::Continue
            }
        }
    }

    /// A protocol is streaming the answer's body.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// The protocol asked for an `http_writeable` callback.
    pub fn wants_writeable(&self) -> bool {
        matches!(
            self.state,
            State::Streaming {
                want_writeable: true,
                ..
            }
        )
    }

    pub fn request_writeable(&mut self) {
        if let State::Streaming { want_writeable, .. } = &mut self.state {
            *want_writeable = true;
        }
    }

    /// The stream can take more: one `http_writeable` callback, if the protocol asked
    /// and the stream has credit.
    pub fn on_writeable(&mut self, cx: &mut SessionCx<'_>) -> Next {
        let State::Streaming {
            proto,
            session,
            want_writeable,
        } = &mut self.state
        else {
            return Next::Continue;
        };
        if !*want_writeable || cx.stream.credit() == 0 {
            return Next::Continue;
        }
        *want_writeable = false;
        let app = &mut *cx.app;
        let Some(Some(p)) = app.protocols.list.get_mut(*proto as usize) else {
            return Next::Abort;
        };
        let mut h = HttpConn {
            stream: &mut *cx.stream,
            vhost: Vhost {
                shared: &mut app.plugin,
                protocol: *proto,
            },
            wrote: false,
            fin: false,
            want_writeable: false,
            written: 0,
        };
        let r = p.http_writeable(&mut h, session.as_mut());
        let (fin, want) = (h.fin, h.want_writeable);
        *want_writeable |= want;
        if r.is_err() {
            // The body is cut short: the connection closes, `closed` gets the session.
            return Next::Abort;
        }
        if fin {
            // The protocol finished its answer: the session is done with.
            self.state = State::Idle;
        }
        Next::Continue
    }

    /// Another callback asked something of this exchange.
    pub fn on_action(&mut self, action: ConnAction) -> Next {
        match (action, &self.state) {
            (ConnAction::Writeable, _) => {
                self.request_writeable();
                Next::Continue
            }
            // Closing a streaming or reading exchange cuts it short.
            (ConnAction::Close(_), State::Streaming { .. } | State::Reading { .. }) => Next::Abort,
            _ => Next::Continue,
        }
    }

    /// The exchange ends without the protocol finishing it (the connection is gone, a
    /// HEAD request needs no body, ...): its session, if any, goes to `closed`
    /// (LWS_CALLBACK_CLOSED_HTTP), once.
    pub fn end_with_closed(&mut self, app: &mut App, id: SessionId) {
        let (proto, session) = match std::mem::take(&mut self.state) {
            State::Reading { proto, session } | State::Streaming { proto, session, .. } => {
                (proto, session)
            }
            State::Ready(answer, proto) => match *answer {
                HttpAnswer::Stream(_, s) | HttpAnswer::ReadBody(s) => (proto, s),
                HttpAnswer::Respond(_) => return,
            },
            State::Idle | State::AtBodyEnd => return,
        };
        if let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) {
            let mut vh = Vhost {
                shared: &mut app.plugin,
                protocol: proto,
            };
            p.closed(&mut vh, id.conn_id(), session);
        }
    }
}
