//! The HTTP/2 carrier: drives the sans-IO connection ([`crate::roles::h2::conn`]) for
//! one connection and runs a session on each stream: an HTTP exchange
//! ([`HttpExchange`], the same one HTTP/1.1 uses, so file mounts, callback mounts, the
//! form POST demo and every plugin work unchanged) or, by RFC 8441's extended CONNECT,
//! a WebSocket session ([`WsSession`]).
//!
//! Output: each stream keeps what its session queued until flow control lets it go
//! (`Slot::pending`); `H2Conn::pump` frames it into DATA, taking streams in turn
//! (round robin, one frame's worth each) while the connection window, the stream's
//! window and the output high-water mark allow; file bodies are read piece by piece
//! as credit comes. Everything produced while handling one recv (control answers,
//! response heads, DATA) is queued on the connection's output, so it leaves in one
//! send. `writeable` callbacks go to streams in turn too, each only with credit.
//!
//! Input is never paused for one stream: request bodies are consumed at once and
//! credited back; a WebSocket whose protocol turned rx flow control off keeps what
//! arrives in its own buffer and withholds the WINDOW_UPDATEs, so the peer stops after
//! one stream window while PING, SETTINGS and other streams keep flowing. Only when
//! the peer does not read what is sent (control answers pile up past
//! [`OUT_HIGH_WATER`]) does the carrier stop consuming input, so the loop stops reading.
//!
//! Timers: the connection's deadline is the earliest of its streams' (a WebSocket's
//! ping and close timers; a stream with data blocked on flow control for
//! `send_timeout`) and its own (the keep-alive timeout when no stream is open, the
//! second step of a graceful GOAWAY).

use bytes::Bytes;

use super::{FileBody, HeadWriter};
use crate::App;
use crate::api::{ConnAction, ConnId};
use crate::roles::h2::conn::{self as h2, Connection, Count, Handler, Limits};
use crate::roles::h2::error::ErrorCode;
use crate::roles::ws::conn::WsConn;
use crate::roles::ws::{deflate, handshake};
use crate::service::conn::OutQueue;
use crate::service::{Cx, Flow, Role, log};
use crate::session::http::{self as exchange, HttpExchange, Request, count_status};
use crate::session::ws::WsSession;
use crate::session::{Body, BodyLength, Next, NotHttp, Response, SessionCx, SessionId, Stream};
use crate::sink::Sink;

/// Queued output above which the carrier frames no more DATA and stops consuming
/// input until the send completes.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// Most bytes a stream's session may queue beyond what flow control lets go now.
const PENDING_MAX: usize = 256 * 1024;

/// Size of each piece of a file body read (as on HTTP/1.1).
const FILE_PIECE: usize = 128 * 1024;

/// How long a connection is idle (no stream open) before its per-stream bookkeeping is
/// given back: not at once, since a client between two batches of requests (`h2load
/// -m 10`) would have it freed and allocated again for every batch.
const IDLE_SHRINK_MS: u64 = 1000;

/// How long the first step of a graceful GOAWAY waits for the PING answer.
const GOAWAY_GRACE_MS: u64 = 1000;

/// The HTTP exchange on a stream and its request (kept for an answer deferred to the
/// body's end).
struct HttpSlot {
    exchange: HttpExchange,
    req: h2::Request,
}

/// How a stream's HTTP answer is framed.
#[derive(Clone, Copy, Default)]
struct Answer {
    /// The stream carries an HTTP exchange.
    http: bool,
    head_only: bool,
    sent_head: bool,
    /// A streamed body is open (until the session's `fin`).
    open_body: bool,
    /// The request body ended (or there was none).
    body_done: bool,
}

enum Kind {
    Http(HttpSlot),
    Ws(Box<WsSession>),
    /// Answered (431, 501, ...) by the carrier: only its output is left.
    Done,
}

/// One stream's session and its output waiting for credit.
struct Slot {
    id: u32,
    kind: Kind,
    pending: std::collections::VecDeque<Bytes>,
    pending_len: usize,
    /// END_STREAM goes after the pending bytes.
    fin: bool,
    file: Option<Box<FileBody>>,
    /// A WebSocket's received bytes not consumed yet (rx flow control).
    rx: Vec<u8>,
    deadline: u64,
    /// When the stream last sent something (the send timeout counts from here).
    progress_ms: u64,
    failed: bool,
    a: Answer,
}

impl Slot {
    fn new(id: u32, kind: Kind, now: u64) -> Slot {
        Slot {
            id,
            a: Answer::default(),
            kind,
            pending: std::collections::VecDeque::new(),
            pending_len: 0,
            fin: false,
            file: None,
            rx: Vec::new(),
            deadline: u64::MAX,
            progress_ms: now,
            failed: false,
        }
    }

    /// Output is waiting (data, a file, or the END_STREAM).
    fn has_output(&self) -> bool {
        self.pending_len > 0 || self.file.is_some() || self.fin
    }

    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.pending_len += b.len();
            self.pending.push_back(b);
        }
    }

    fn wants_writeable(&self) -> bool {
        match &self.kind {
            Kind::Http(h) => self.a.open_body && h.exchange.wants_writeable(),
            Kind::Ws(w) => w.wants_writeable(),
            Kind::Done => false,
        }
    }
}

/// A stream as its session sees it.
struct H2Stream<'a> {
    id: SessionId,
    conn: &'a mut Connection,
    slot: &'a mut Slot,
    w: &'a mut HeadWriter,
    now_unix: u64,
}

impl Sink for H2Stream<'_> {
    fn push(&mut self, b: Bytes) {
        self.slot.push(b);
    }

    fn queued(&self) -> usize {
        self.slot.pending_len
    }
}

impl Stream for H2Stream<'_> {
    fn id(&self) -> SessionId {
        self.id
    }

    fn send_data(&mut self, data: Bytes, fin: bool) {
        let a = &mut self.slot.a;
        if a.http {
            if !a.open_body {
                return;
            }
            if fin {
                a.open_body = false;
            }
        }
        self.slot.push(data);
        if fin {
            self.slot.fin = true;
        }
    }

    fn credit(&self) -> usize {
        let window = self.conn.send_credit(self.slot.id).max(16 * 1024);
        window
            .min(PENDING_MAX)
            .saturating_sub(self.slot.pending_len)
    }

    fn respond(&mut self, resp: Response<'_>, body: Body) -> Result<(), NotHttp> {
        let a = &mut self.slot.a;
        if !a.http || a.sent_head {
            return Err(NotHttp);
        }
        a.sent_head = true;
        let no_content = resp.status < 200 || resp.status == 204 || resp.status == 304;
        let mut len_buf = [0u8; 20];
        let mut extra: [(&[u8], &[u8]); 3] = [(b"", b""); 3];
        let date = *self.w.date.get(self.now_unix);
        extra[0] = (b"server", &self.w.server);
        extra[1] = (b"date", &date);
        let mut n = 2;
        if let BodyLength::Known(len) = resp.length
            && !no_content
        {
            extra[2] = (b"content-length", fmt_u64(&mut len_buf, len));
            n = 3;
        }
        let empty_body = match (&body, resp.length) {
            (_, BodyLength::None) => true,
            (Body::Empty, BodyLength::Known(_)) => true,
            (Body::Bytes(b), BodyLength::Known(_)) => b.is_empty(),
            _ => false,
        };
        let end = a.head_only || no_content || empty_body;
        let fields = extra[..n]
            .iter()
            .copied()
            .chain(resp.headers.iter().copied());
        if self
            .conn
            .send_headers(self.slot.id, resp.status, fields, end)
            .is_err()
        {
            self.slot.failed = true;
            return Ok(());
        }
        if end {
            return Ok(());
        }
        match (resp.length, body) {
            (BodyLength::Streamed, Body::Bytes(b)) => {
                self.slot.a.open_body = true;
                self.slot.push(b);
            }
            (BodyLength::Streamed, Body::Empty) => self.slot.a.open_body = true,
            (BodyLength::Streamed, Body::File { .. }) => return Err(NotHttp),
            (_, Body::Bytes(b)) => {
                self.slot.push(b);
                self.slot.fin = true;
            }
            (_, Body::File { file, offset, len }) => {
                self.slot.file = Some(Box::new(FileBody {
                    file,
                    offset,
                    remaining: len,
                }));
            }
            (_, Body::Empty) => self.slot.fin = true,
        }
        Ok(())
    }
}

fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The session's view of an HTTP/2 request: one pass over the fields.
fn request<'r>(req: &'r h2::Request, listener: u16, end_stream: bool) -> Request<'r> {
    let mut r = Request {
        method: exchange::Method::Unknown,
        method_raw: b"",
        listener,
        authority: None,
        path: b"",
        query: None,
        content_type: None,
        if_match: None,
        if_unmodified_since: None,
        if_none_match: None,
        if_modified_since: None,
        range: None,
        if_range: None,
        has_body: !end_stream,
        content_length: req.content_length,
    };
    let mut host = None;
    for (n, v) in req.fields.iter() {
        let slot = match n {
            b":method" => {
                r.method_raw = v;
                continue;
            }
            b":path" => {
                match v.iter().position(|&b| b == b'?') {
                    Some(q) => (r.path, r.query) = (&v[..q], Some(&v[q + 1..])),
                    None => r.path = v,
                }
                continue;
            }
            b":authority" => &mut r.authority,
            b"host" => &mut host,
            b"content-type" => &mut r.content_type,
            b"if-match" => &mut r.if_match,
            b"if-unmodified-since" => &mut r.if_unmodified_since,
            b"if-none-match" => &mut r.if_none_match,
            b"if-modified-since" => &mut r.if_modified_since,
            b"range" => &mut r.range,
            b"if-range" => &mut r.if_range,
            _ => continue,
        };
        slot.get_or_insert(v);
    }
    r.authority = r.authority.or(host);
    r.method = match r.method_raw {
        b"GET" => exchange::Method::Get,
        b"HEAD" => exchange::Method::Head,
        b"POST" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE" | b"PATCH" | b"CONNECT" => {
            exchange::Method::Known
        }
        _ => exchange::Method::Unknown,
    };
    r
}

/// The graceful shutdown's progress (RFC 9113 6.8).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    No,
    /// GOAWAY with 2^31-1 and a PING sent; the final GOAWAY follows its answer.
    First {
        until: u64,
    },
    Final,
}

/// The per-callback context the connection's handler works with.
struct Pass<'s, 'c, 'a> {
    slots: &'s mut Vec<Slot>,
    cx: &'c mut Cx<'a>,
    listener: u16,
    rr: &'s mut usize,
    drain: &'s mut Drain,
}

/// One HTTP/2 connection.
pub struct H2Conn {
    conn: Connection,
    slots: Vec<Slot>,
    listener: u16,
    /// Round-robin cursor over the slots, for DATA and for `writeable` callbacks.
    rr: usize,
    drain: Drain,
    /// The request that came with `Upgrade: h2c`, answered on stream 1 once running.
    upgrade_req: Option<Box<h2::Request>>,
    counted: bool,
    /// When the last bytes arrived (the keep-alive timeout counts from here).
    last_input: u64,
    /// Since when no stream is open.
    idle_since: Option<u64>,
    /// The idle connection gave back its per-stream bookkeeping.
    shrunk: bool,
}

impl H2Conn {
    /// A connection whose client preface is still to come (prior knowledge; the
    /// bytes the HTTP/1.1 carrier saw are fed again; TLS with ALPN h2).
    pub fn new(app: &App, listener: u16) -> H2Conn {
        H2Conn {
            conn: Connection::new(limits(app)),
            slots: Vec::new(),
            listener,
            rr: 0,
            drain: Drain::No,
            upgrade_req: None,
            counted: false,
            last_input: 0,
            idle_since: None,
            shrunk: false,
        }
    }

    /// A connection upgraded from HTTP/1.1 (`Upgrade: h2c`, RFC 7540 3.2): the
    /// HTTP2-Settings payload applies as the client's SETTINGS, and `req` is stream 1.
    pub fn upgraded(
        app: &App,
        listener: u16,
        settings: &[u8],
        req: h2::Request,
    ) -> Result<H2Conn, crate::roles::h2::error::H2Error> {
        let mut c = H2Conn::new(app, listener);
        c.conn.upgraded(settings)?;
        c.upgrade_req = Some(Box::new(req));
        Ok(c)
    }

    /// The connection and, beside it, the handler that works on the streams (two
    /// borrows of `self` that do not overlap).
    fn split<'s, 'c, 'a>(
        &'s mut self,
        cx: &'c mut Cx<'a>,
    ) -> (&'s mut Connection, Pass<'s, 'c, 'a>) {
        let pass = Pass {
            slots: &mut self.slots,
            cx,
            listener: self.listener,
            rr: &mut self.rr,
            drain: &mut self.drain,
        };
        (&mut self.conn, pass)
    }

    /// Runs `f` with the worker's frame buffer lent to the connection, then moves
    /// what it produced to the connection's output and the counters to the stats.
    fn with_out<R>(&mut self, cx: &mut Cx<'_>, f: impl FnOnce(&mut Self, &mut Cx<'_>) -> R) -> R {
        // Frames queued before the first callback (the server preface) go first.
        flush(&mut self.conn, cx.out);
        let http = cx.app.http.as_mut().expect("http state");
        self.conn.out = std::mem::take(&mut http.frames);
        let r = f(self, cx);
        flush(&mut self.conn, cx.out);
        let http = cx.app.http.as_mut().expect("http state");
        http.frames = std::mem::take(&mut self.conn.out);
        for c in self.conn.counts.drain(..) {
            let s = &mut cx.app.stats.wire;
            match c {
                Count::RstRx(code) => s.count_h2_rst_rx(code),
                Count::RstTx(code) => s.count_h2_rst_tx(code),
                Count::GoAwayTx(code) => s.count_h2_goaway_tx(code),
            }
        }
        r
    }

    /// Frames pending output: streams in turn, one frame each per round, while credit
    /// and the high-water mark allow.
    fn pump(&mut self, cx: &mut Cx<'_>) {
        let max_frame = self.conn.max_frame();
        loop {
            let mut progressed = false;
            let n = self.slots.len();
            for k in 0..n {
                if cx.out.len() >= OUT_HIGH_WATER || self.conn.conn_credit() == 0 {
                    break;
                }
                let i = (self.rr + k) % n;
                let s = &mut self.slots[i];
                if !s.has_output() {
                    continue;
                }
                if s.pending_len == 0
                    && let Some(f) = s.file.as_mut()
                {
                    let want = FILE_PIECE.min(self.conn.send_credit(s.id).max(max_frame));
                    match f.read_next(want) {
                        Some(b) => {
                            let done = f.remaining == 0;
                            s.push(b);
                            if done {
                                s.file = None;
                                s.fin = true;
                            }
                        }
                        None => {
                            s.failed = true;
                            s.file = None;
                            continue;
                        }
                    }
                }
                let credit = self.conn.send_credit(s.id);
                let take = s.pending_len.min(credit).min(max_frame);
                if take == 0 && !(s.pending_len == 0 && s.fin) {
                    continue;
                }
                let end = s.fin && take == s.pending_len && s.file.is_none();
                if self.conn.send_data_head(s.id, take, end).is_err() {
                    s.failed = true;
                    continue;
                }
                flush(&mut self.conn, cx.out);
                let mut left = take;
                while left > 0 {
                    let front = s.pending.front_mut().expect("pending bytes");
                    if front.len() <= left {
                        left -= front.len();
                        cx.out.push(s.pending.pop_front().expect("front"));
                    } else {
                        cx.out.push(front.split_to(left));
                        left = 0;
                    }
                }
                s.pending_len -= take;
                s.progress_ms = cx.now_ms;
                if end {
                    s.fin = false;
                }
                progressed = true;
            }
            if n > 0 {
                self.rr = (self.rr + 1) % n;
            }
            if !progressed {
                break;
            }
        }
        self.reap(cx);
    }

    /// Drops streams whose session is over and whose output all left.
    fn reap(&mut self, cx: &mut Cx<'_>) {
        let conn_id = cx.id;
        let mut i = 0;
        while i < self.slots.len() {
            let s = &mut self.slots[i];
            if s.failed {
                self.conn.reset(s.id, ErrorCode::INTERNAL_ERROR);
                let s = self.slots.swap_remove(i);
                let _ = end_slot(cx.app, conn_id, s);
                continue;
            }
            let done = match &s.kind {
                Kind::Http(h) => s.a.sent_head && !s.a.open_body && !h.exchange.is_streaming(),
                Kind::Ws(_) | Kind::Done => true,
            } && !s.has_output()
                && !self.conn.can_send(s.id);
            if done {
                let s = self.slots.swap_remove(i);
                if s.a.http && !s.a.body_done && self.conn.can_receive(s.id) {
                    // Answered before the request body ended: the rest is not wanted
                    // (8.1: a server "can" answer early; NO_ERROR asks the client to
                    // stop sending it).
                    self.conn.reset(s.id, ErrorCode::NO_ERROR);
                }
                if let Some(req) = end_slot(cx.app, conn_id, s) {
                    self.conn.recycle(req);
                }
                continue;
            }
            i += 1;
        }
        if self.rr >= self.slots.len() {
            self.rr = 0;
        }
    }

    /// The connection's deadline: the earliest of its streams' and its own.
    fn set_deadline(&mut self, cx: &mut Cx<'_>) {
        let http = cx.app.http.as_ref().expect("http state");
        let send_timeout = http.send_timeout_ms;
        let mut dl = u64::MAX;
        for s in &mut self.slots {
            let mut d = s.deadline;
            if s.has_output() {
                d = d.min(s.progress_ms + send_timeout);
            }
            dl = dl.min(d);
        }
        if self.slots.is_empty() {
            dl = dl.min(self.last_input + http.keepalive_ms);
            if !self.shrunk {
                dl = dl.min(self.idle_since.unwrap_or(cx.now_ms) + IDLE_SHRINK_MS);
            }
        }
        if let Drain::First { until } = self.drain {
            dl = dl.min(until);
        }
        *cx.deadline = dl;
    }

    /// After any event: frame output, drop finished streams, set the timer, and say
    /// whether the connection is done.
    fn settle(&mut self, cx: &mut Cx<'_>) -> Flow {
        self.pump(cx);
        // WebSocket input held while the session's output was backed up: offered again
        // now that some has left.
        let mut fed = false;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if matches!(s.kind, Kind::Ws(_))
                && !s.rx.is_empty()
                && s.pending_len < crate::session::ws::OUT_HIGH_WATER
            {
                let (conn, mut p) = self.split(cx);
                p.feed_ws(conn, i);
                fed = true;
            }
        }
        if fed {
            self.pump(cx);
        }
        if self.slots.is_empty() {
            self.idle_since.get_or_insert(cx.now_ms);
        } else {
            self.idle_since = None;
            self.shrunk = false;
        }
        self.set_deadline(cx);
        if self.conn.is_failed() {
            return Flow::CloseAfterFlush { linger: true };
        }
        let draining = self.drain == Drain::Final || self.conn.goaway_received;
        if draining && self.slots.is_empty() && self.conn.active() == 0 {
            // Lingering: the peer may still be sending (WINDOW_UPDATEs for the last
            // DATA); closing at once would reset the connection under its unread tail.
            return Flow::CloseAfterFlush { linger: true };
        }
        Flow::Continue
    }

    fn first_call(&mut self, cx: &mut Cx<'_>) {
        if !self.counted {
            self.counted = true;
            self.last_input = cx.now_ms;
            cx.app.stats.wire.h2_conns += 1;
            cx.app.stats.wire.h2_conns_total += 1;
        }
        if let Some(req) = self.upgrade_req.take() {
            let (conn, mut p) = self.split(cx);
            p.request(conn, 1, *req, true);
        }
    }
}

/// Moves the connection's frames to the output queue.
fn flush(conn: &mut Connection, out: &mut OutQueue) {
    if !conn.out.is_empty() {
        out.push(conn.out.split().freeze());
    }
}

/// A stream's session is over: a protocol still holding one gets `closed`. Returns
/// the request, whose buffers the connection reuses.
fn end_slot(app: &mut App, conn: ConnId, s: Slot) -> Option<h2::Request> {
    let id = SessionId { conn, stream: s.id };
    match s.kind {
        Kind::Http(mut h) => {
            h.exchange.end_with_closed(app, id);
            Some(h.req)
        }
        Kind::Ws(mut w) => {
            w.on_closed(app, id);
            None
        }
        Kind::Done => None,
    }
}

/// The connection's limits from the worker's configuration.
fn limits(app: &App) -> Limits {
    Limits {
        enable_connect: !app.protocols.names().is_empty(),
        ..Limits::default()
    }
}

/// Runs a stream's session with a [`SessionCx`] over the stream.
fn with_session<R>(
    conn: &mut Connection,
    slot: &mut Slot,
    cx: &mut Cx<'_>,
    f: impl FnOnce(&mut Kind, &mut SessionCx<'_>) -> R,
) -> R {
    let id = SessionId {
        conn: cx.id,
        stream: slot.id,
    };
    let mut w = cx.app.http.as_mut().expect("http state").take_writer();
    let mut deadline = slot.deadline;
    let mut kind = std::mem::replace(&mut slot.kind, Kind::Done);
    let r = {
        let mut stream = H2Stream {
            id,
            conn,
            slot,
            w: &mut w,
            now_unix: cx.app.now_unix,
        };
        let mut scx = SessionCx {
            id,
            app: &mut *cx.app,
            stream: &mut stream,
            now_ms: cx.now_ms,
            deadline: &mut deadline,
            draining: cx.draining,
        };
        f(&mut kind, &mut scx)
    };
    slot.kind = kind;
    slot.deadline = deadline;
    cx.app.http.as_mut().expect("http state").put_writer(w);
    r
}

/// What a session's [`Next`] does to its stream.
fn apply_next(conn: &mut Connection, slot: &mut Slot, next: Next) {
    match next {
        Next::Continue => {}
        Next::Close { .. } => {
            // The session's side of the stream ends after what it queued.
            if slot.a.http {
                if !slot.a.sent_head {
                    slot.failed = true;
                    return;
                }
                slot.a.open_body = false;
            }
            if conn.can_send(slot.id) {
                slot.fin = true;
            }
        }
        Next::Abort => {
            conn.reset(slot.id, ErrorCode::CANCEL);
            slot.pending.clear();
            slot.pending_len = 0;
            slot.file = None;
            slot.fin = false;
            slot.a.open_body = false;
            slot.a.sent_head = true;
        }
    }
}

/// After an HTTP session acted: an answer that ended without the protocol's `fin`
/// (HEAD, 204, 304) gives the session back through `closed`.
fn settle_http(app: &mut App, conn_id: ConnId, slot: &mut Slot) {
    let id = SessionId {
        conn: conn_id,
        stream: slot.id,
    };
    if let Kind::Http(h) = &mut slot.kind
        && slot.a.sent_head
        && !slot.a.open_body
        && h.exchange.is_streaming()
    {
        h.exchange.end_with_closed(app, id);
    }
}

impl Pass<'_, '_, '_> {
    fn find(&mut self, id: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// An answer the carrier makes itself on a stream (431, 501, a refused
    /// WebSocket): a small HTML page or the handshake's reason.
    fn status(&mut self, c: &mut Connection, id: u32, status: u16, body: Bytes, head_only: bool) {
        count_status(self.cx.app, status);
        let mut len_buf = [0u8; 20];
        let now_unix = self.cx.app.now_unix;
        let w = self.cx.app.http.as_mut().expect("http state").writer();
        let date = *w.date.get(now_unix);
        let fields: [(&[u8], &[u8]); 4] = [
            (b"server", &w.server),
            (b"date", &date),
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", fmt_u64(&mut len_buf, body.len() as u64)),
        ];
        let end = body.is_empty() || head_only;
        if c.send_headers(id, status, fields, end).is_err() {
            return;
        }
        let mut s = Slot::new(id, Kind::Done, self.cx.now_ms);
        if !end {
            s.push(body);
            s.fin = true;
        }
        self.slots.push(s);
    }

    /// An extended CONNECT with `:protocol websocket` (RFC 8441 4, 5).
    fn websocket(&mut self, c: &mut Connection, id: u32, req: &h2::Request) {
        let app = &mut *self.cx.app;
        let protos = &app.protocols;
        let default = protos.default.map(|i| protos.names[i as usize]);
        let acc = match handshake::server_accept_h2(req.fields.regular(), protos.names(), default) {
            Ok(a) => a,
            Err(e) => {
                let why = Bytes::from(e.why.into_owned());
                return self.status(c, id, e.status, why, false);
            }
        };
        let proto = acc.protocol.and_then(|n| protos.index(n)).unwrap_or(0);
        let pmd = if app.config.ws_deflate && protos.permessage_deflate(proto) {
            deflate::negotiate_server(&acc.extensions_offer, &deflate::PmdPolicy::default())
        } else {
            None
        };
        let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(2);
        if let Some(p) = acc.response_protocol() {
            fields.push((b"sec-websocket-protocol", p.as_bytes()));
        }
        if let Some((_, h)) = &pmd {
            fields.push((b"sec-websocket-extensions", h.as_bytes()));
        }
        if c.send_headers(id, 200, fields, false).is_err() {
            return;
        }
        count_status(app, 200);
        app.stats.wire.h2_websockets_total += 1;
        let mut ws = WsConn::server(app.config.ws_config(), self.cx.now_ms);
        if let Some((params, _)) = pmd {
            ws.set_compression(deflate::Pmd::new(deflate::Side::Server, &params));
        }
        let mut slot = Slot::new(
            id,
            Kind::Ws(Box::new(WsSession::new(ws, proto))),
            self.cx.now_ms,
        );
        // Established now (the protocol's `established`), as after a 101.
        let next = with_session(c, &mut slot, self.cx, |k, scx| match k {
            Kind::Ws(w) => w.on_data(scx, &mut []).1,
            _ => Next::Continue,
        });
        apply_next(c, &mut slot, next);
        self.slots.push(slot);
    }

    /// Feeds a WebSocket stream's buffered input to its session.
    fn feed_ws(&mut self, c: &mut Connection, i: usize) {
        let slot = &mut self.slots[i];
        if slot.rx.is_empty() {
            return;
        }
        let mut rx = std::mem::take(&mut slot.rx);
        let (used, next) = with_session(c, slot, self.cx, |k, scx| match k {
            Kind::Ws(w) => w.on_data(scx, &mut rx),
            _ => (rx.len(), Next::Continue),
        });
        rx.drain(..used.min(rx.len()));
        slot.rx = rx;
        c.release(slot.id, used);
        if slot.rx.is_empty() && slot.rx.capacity() > 64 * 1024 {
            slot.rx = Vec::new();
        }
        apply_next(c, slot, next);
    }
}

impl Handler for Pass<'_, '_, '_> {
    fn request(&mut self, c: &mut Connection, id: u32, req: h2::Request, end_stream: bool) {
        self.cx.app.stats.wire.h2_streams_total += 1;
        if req.method() == b"CONNECT" {
            if req.protocol() == Some(b"websocket") && !self.cx.app.protocols.names().is_empty() {
                return self.websocket(c, id, &req);
            }
            // Plain CONNECT (a proxy's tunnel) or another protocol: not served here.
            let body = Bytes::from_static(crate::roles::h1::error_body(501));
            return self.status(c, id, 501, body, false);
        }
        let head_only = req.method() == b"HEAD";
        let mut slot = Slot::new(
            id,
            Kind::Http(HttpSlot {
                exchange: HttpExchange::default(),
                req,
            }),
            self.cx.now_ms,
        );
        slot.a = Answer {
            http: true,
            head_only,
            sent_head: false,
            open_body: false,
            body_done: end_stream,
        };
        let listener = self.listener;
        let next = with_session(c, &mut slot, self.cx, |k, scx| {
            let Kind::Http(h) = k else {
                return Next::Continue;
            };
            let HttpSlot { exchange, req, .. } = h;
            let r = request(req, listener, end_stream);
            exchange.on_head(scx, &r)
        });
        apply_next(c, &mut slot, next);
        settle_http(self.cx.app, self.cx.id, &mut slot);
        self.slots.push(slot);
    }

    fn data(&mut self, c: &mut Connection, id: u32, data: &[u8], end_stream: bool) {
        let Some(i) = self.find(id) else {
            c.release(id, data.len());
            return;
        };
        match self.slots[i].kind {
            Kind::Ws(_) => {
                self.slots[i].rx.extend_from_slice(data);
                self.feed_ws(c, i);
                if end_stream {
                    // The peer ended its side without a close frame first: as a TCP
                    // close without one (1006 for the protocol).
                    let s = &mut self.slots[i];
                    if c.can_send(id) {
                        s.fin = true;
                    }
                }
            }
            Kind::Http(_) => {
                let listener = self.listener;
                let slot = &mut self.slots[i];
                if end_stream {
                    slot.a.body_done = true;
                }
                let next = with_session(c, slot, self.cx, |k, scx| {
                    let Kind::Http(h) = k else {
                        return Next::Continue;
                    };
                    let mut next = h.exchange.on_body(scx, data);
                    if end_stream && next == Next::Continue {
                        let r = request(&h.req, listener, false);
                        next = h.exchange.on_body_end(scx, Some(&r));
                    }
                    next
                });
                c.release(id, data.len());
                apply_next(c, slot, next);
                settle_http(self.cx.app, self.cx.id, slot);
            }
            Kind::Done => c.release(id, data.len()),
        }
    }

    fn ping_ack(&mut self, c: &mut Connection) {
        // The graceful GOAWAY's round trip is over: every stream the peer opened
        // before seeing it has arrived (6.8).
        if matches!(self.drain, Drain::First { .. }) {
            c.goaway_final();
            *self.drain = Drain::Final;
        }
    }

    fn trailers(&mut self, c: &mut Connection, id: u32) {
        self.data(c, id, &[], true);
    }

    fn reset(&mut self, _c: &mut Connection, id: u32, _code: ErrorCode) {
        if let Some(i) = self.find(id) {
            let s = self.slots.swap_remove(i);
            let _ = end_slot(self.cx.app, self.cx.id, s);
            if *self.rr >= self.slots.len() {
                *self.rr = 0;
            }
        }
    }

    fn too_large(&mut self, c: &mut Connection, id: u32) {
        // RFC 6585 5 (431), as RFC 9113 10.5.1 suggests.
        let body = Bytes::from_static(crate::roles::h1::error_body(431));
        self.status(c, id, 431, body, false);
    }
}

impl Role for H2Conn {
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        self.with_out(cx, |me, cx| {
            me.first_call(cx);
            if !data.is_empty() {
                me.last_input = cx.now_ms;
            }
            if cx.out.len() >= OUT_HIGH_WATER {
                // The peer does not read what is sent: take no more input for now.
                return (0, me.settle(cx));
            }
            let (conn, mut p) = me.split(cx);
            let used = match conn.recv(data, &mut p) {
                Ok(n) => n,
                Err(e) => {
                    if crate::log_enabled(8) {
                        log(8, &format!("{e}"));
                    }
                    data.len()
                }
            };
            (used, me.settle(cx))
        })
    }

    fn on_sent(&mut self, cx: &mut Cx<'_>) -> Flow {
        self.with_out(cx, |me, cx| {
            for i in 0..me.slots.len() {
                if matches!(me.slots[i].kind, Kind::Ws(_)) {
                    let next = with_session(&mut me.conn, &mut me.slots[i], cx, |k, scx| match k {
                        Kind::Ws(w) => w.on_sent(scx),
                        _ => Next::Continue,
                    });
                    apply_next(&mut me.conn, &mut me.slots[i], next);
                }
            }
            me.settle(cx)
        })
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>) -> Flow {
        self.with_out(cx, |me, cx| {
            let now = cx.now_ms;
            let send_timeout = cx.app.http.as_ref().expect("http state").send_timeout_ms;
            if let Drain::First { until } = me.drain
                && now >= until
            {
                me.conn.goaway_final();
                me.drain = Drain::Final;
            }
            if me.slots.is_empty() && me.drain == Drain::No && !me.conn.is_failed() {
                let keepalive = cx.app.http.as_ref().expect("http state").keepalive_ms;
                if now >= me.last_input + keepalive {
                    // Idle past the keep-alive timeout: a graceful close (6.8).
                    me.conn.close(ErrorCode::NO_ERROR, "idle timeout");
                    return Flow::CloseAfterFlush { linger: true };
                }
                if !me.shrunk && now >= me.idle_since.unwrap_or(now) + IDLE_SHRINK_MS {
                    // Idle for a while: nothing per stream is kept (a held connection
                    // costs its HPACK tables and little else).
                    me.slots = Vec::new();
                    me.conn.shrink_idle();
                    me.shrunk = true;
                }
            }
            let mut conn_stuck = false;
            for i in 0..me.slots.len() {
                let s = &mut me.slots[i];
                if s.has_output() && s.progress_ms + send_timeout <= now {
                    if me.conn.stream_credit(s.id) == 0 || me.conn.conn_credit() > 0 {
                        // The peer never opened this stream's window.
                        me.conn.reset(s.id, ErrorCode::CANCEL);
                        s.pending.clear();
                        s.pending_len = 0;
                        s.file = None;
                        s.fin = false;
                        s.kind = match std::mem::replace(&mut s.kind, Kind::Done) {
                            Kind::Http(mut h) => {
                                h.exchange.end_with_closed(
                                    cx.app,
                                    SessionId {
                                        conn: cx.id,
                                        stream: s.id,
                                    },
                                );
                                Kind::Done
                            }
                            k => k,
                        };
                        s.failed = false;
                    } else {
                        conn_stuck = true;
                    }
                    continue;
                }
                if s.deadline <= now {
                    s.deadline = u64::MAX;
                    let next = with_session(&mut me.conn, s, cx, |k, scx| match k {
                        Kind::Ws(w) => w.on_timer(scx),
                        _ => Next::Continue,
                    });
                    apply_next(&mut me.conn, s, next);
                }
            }
            if conn_stuck {
                // The connection window stayed shut for the whole send timeout.
                me.conn
                    .close(ErrorCode::NO_ERROR, "send timeout: window never opened");
                return Flow::CloseAfterFlush { linger: false };
            }
            me.settle(cx)
        })
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) -> Flow {
        self.with_out(cx, |me, cx| {
            if me.drain == Drain::No {
                me.conn.goaway_graceful();
                me.drain = Drain::First {
                    until: cx.now_ms + GOAWAY_GRACE_MS,
                };
                for i in 0..me.slots.len() {
                    if matches!(me.slots[i].kind, Kind::Ws(_)) {
                        let next =
                            with_session(&mut me.conn, &mut me.slots[i], cx, |k, scx| match k {
                                Kind::Ws(w) => w.on_drain(scx),
                                _ => Next::Continue,
                            });
                        apply_next(&mut me.conn, &mut me.slots[i], next);
                    }
                }
            }
            me.settle(cx)
        })
    }

    fn on_peer_eof(&mut self, cx: &mut Cx<'_>) -> Flow {
        if cx.out.is_empty() {
            Flow::Abort
        } else {
            Flow::CloseAfterFlush { linger: false }
        }
    }

    fn wants_writeable(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.wants_writeable() && self.conn.send_credit(s.id) > 0)
    }

    fn request_writeable(&mut self) {
        for s in &mut self.slots {
            if let Kind::Ws(w) = &mut s.kind {
                w.request_writeable();
            }
        }
    }

    fn request_writeable_protocol(&mut self, proto: u16) -> bool {
        let mut any = false;
        for s in &mut self.slots {
            if let Kind::Ws(w) = &mut s.kind
                && w.protocol() == Some(proto)
            {
                w.request_writeable();
                any = true;
            }
        }
        any
    }

    fn is_mux(&self) -> bool {
        true
    }

    fn on_writeable(&mut self, cx: &mut Cx<'_>) -> Flow {
        self.with_out(cx, |me, cx| {
            let n = me.slots.len();
            for k in 0..n {
                let i = (me.rr + k) % n;
                if !me.slots[i].wants_writeable() || me.conn.send_credit(me.slots[i].id) == 0 {
                    continue;
                }
                me.rr = (i + 1) % n;
                let next = with_session(&mut me.conn, &mut me.slots[i], cx, |k, scx| match k {
                    Kind::Ws(w) => w.on_writeable(scx),
                    Kind::Http(h) => h.exchange.on_writeable(scx),
                    Kind::Done => Next::Continue,
                });
                me.slots[i].progress_ms = cx.now_ms;
                apply_next(&mut me.conn, &mut me.slots[i], next);
                settle_http(cx.app, cx.id, &mut me.slots[i]);
                break;
            }
            me.settle(cx)
        })
    }

    fn on_action(&mut self, cx: &mut Cx<'_>, stream: u32, action: ConnAction) -> Flow {
        self.with_out(cx, |me, cx| {
            let Some(i) = me.slots.iter().position(|s| s.id == stream) else {
                return me.settle(cx);
            };
            let next = with_session(&mut me.conn, &mut me.slots[i], cx, |k, scx| match k {
                Kind::Ws(w) => w.on_action(scx, action),
                Kind::Http(h) => h.exchange.on_action(action),
                Kind::Done => Next::Continue,
            });
            apply_next(&mut me.conn, &mut me.slots[i], next);
            if matches!(action, ConnAction::RxFlow(true)) {
                let (conn, mut p) = me.split(cx);
                p.feed_ws(conn, i);
            }
            me.settle(cx)
        })
    }

    fn on_closed(&mut self, app: &mut App, id: ConnId) {
        if self.counted {
            app.stats.wire.h2_conns = app.stats.wire.h2_conns.saturating_sub(1);
        }
        for s in self.slots.drain(..) {
            let _ = end_slot(app, id, s);
        }
    }
}
