//! The server side of one HTTP/2 connection (RFC 9113), sans-IO: the preface, SETTINGS
//! and their acknowledgement, the stream table, flow control both ways, HPACK, request
//! validation, GOAWAY, and the limits that protect a server from a hostile peer.
//!
//! [`Connection::recv`] consumes received bytes and reports what matters to the carrier
//! through a [`Handler`]: a request head, request data, trailers, a reset, more send
//! credit. Everything the connection answers by itself (SETTINGS ACK, PING ACK,
//! WINDOW_UPDATE, RST_STREAM, GOAWAY) and the frames the carrier asks for
//! ([`Connection::send_headers`], [`Connection::send_data_head`]) are appended to
//! [`Connection::out`], which the carrier moves to the connection's output queue; a
//! DATA frame's payload is not copied (the carrier queues it right after its header).
//!
//! Flow control (5.2, 6.9): what the peer sends on a stream is credited back with
//! WINDOW_UPDATE only as the carrier consumes it ([`Connection::release`]), on the
//! stream and on the connection, so a stream whose consumer paused (a WebSocket
//! protocol that turned rx flow control off) holds at most its stream window of the
//! peer's data while the socket is still read (PING, SETTINGS and other streams keep
//! flowing). Sending is gated by min(stream, connection) window and the peer's
//! SETTINGS_MAX_FRAME_SIZE.
//!
//! Protection (each a GOAWAY with ENHANCE_YOUR_CALM unless said otherwise):
//! - frames that make the server work without asking anything of the application
//!   (SETTINGS, PING, PRIORITY, empty DATA, WINDOW_UPDATE, RST_STREAM, unknown types)
//!   spend a budget ([`Limits::idle_frames`]); opening a request and each DATA frame
//!   this side sends (the peer's WINDOW_UPDATEs answer them) refill it;
//! - rapid reset (CVE-2023-44487): a stream the peer resets before its answer ended
//!   spends [`Limits::resets`]; every answer completed refills one;
//! - CONTINUATION floods and oversized field blocks: the frame parser's limits;
//! - a header list larger than SETTINGS_MAX_HEADER_LIST_SIZE is decoded to the end (so
//!   HPACK stays in step) and the stream is answered with 431 by the carrier
//!   ([`Handler::too_large`]); a broken block is a COMPRESSION_ERROR (4.3);
//! - streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused (RST_STREAM
//!   REFUSED_STREAM, 5.1.2), which spends the idle-frame budget too.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::error::{ErrorCode, H2Error, Scope};
use super::frame::settings::{self, DEFAULT_WINDOW_SIZE, Setting, SettingsValues};
use super::frame::{
    Data, Frame, FrameError, GoAway, HEADER_LEN, Head, Headers, Kind, Parser, Ping, Priority,
    RstStream, Side, StreamId, WindowUpdate, flags,
};
use super::hpack::{Decoder, Encoder, HpackError};
use super::state::{Cause, Event as Ev, State, StreamIds, Verdict, Window};

/// The client connection preface (RFC 9113 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connection's limits and the values of the SETTINGS it sends.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window.
    pub stream_window: u32,
    /// The connection's receive window (raised from 65,535 by a WINDOW_UPDATE).
    pub conn_window: u32,
    pub max_header_list: u32,
    /// Largest field block (frame payload bytes) and most CONTINUATION frames in one.
    pub max_field_block: u32,
    pub max_continuations: u32,
    /// Budget of frames that do no work (see the module docs).
    pub idle_frames: u32,
    /// Budget of streams reset by the peer before their answer ended.
    pub resets: u32,
    /// RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL.
    pub enable_connect: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            conn_window: 1024 * 1024,
            max_header_list: 64 * 1024,
            max_field_block: super::frame::DEFAULT_MAX_FIELD_BLOCK,
            max_continuations: super::frame::DEFAULT_MAX_CONTINUATIONS,
            idle_frames: 1000,
            resets: 200,
            enable_connect: true,
        }
    }
}

/// A request's header fields, decoded into one buffer. Names are lowercase (8.2.1).
#[derive(Clone, Debug, Default)]
pub struct Fields {
    buf: Vec<u8>,
    /// (name start, name end, value end) into `buf`; the value starts at name end.
    spans: Vec<(u32, u32, u32)>,
}

impl Fields {
    /// Appends a field (the caller lowercases the name).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let a = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let b = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.spans.push((a, b, self.buf.len() as u32));
    }

    /// Every field in order, pseudo-header fields first.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(a, b, c)| {
            (
                &self.buf[a as usize..b as usize],
                &self.buf[b as usize..c as usize],
            )
        })
    }

    /// The first field called `name` (lowercase).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All fields but the pseudo-header ones.
    pub fn regular(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter().filter(|(n, _)| !n.starts_with(b":"))
    }
}

/// A validated request head (RFC 9113 8.3.1; RFC 8441 4 for `:protocol`).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub fields: Fields,
    pub content_length: Option<u64>,
}

impl Request {
    pub fn method(&self) -> &[u8] {
        self.fields.get(b":method").unwrap_or(b"")
    }
    pub fn path(&self) -> &[u8] {
        self.fields.get(b":path").unwrap_or(b"")
    }
    pub fn authority(&self) -> Option<&[u8]> {
        self.fields
            .get(b":authority")
            .or_else(|| self.fields.get(b"host"))
    }
    /// `:protocol` of an extended CONNECT (RFC 8441 4).
    pub fn protocol(&self) -> Option<&[u8]> {
        self.fields.get(b":protocol")
    }
}

/// What the connection reports to its carrier while reading.
pub trait Handler {
    /// A request head on a new stream (`end_stream`: it has no body).
    fn request(&mut self, c: &mut Connection, stream: u32, req: Request, end_stream: bool);
    /// Request data; the carrier calls [`Connection::release`] once it consumed it.
    fn data(&mut self, c: &mut Connection, stream: u32, data: &[u8], end_stream: bool);
    /// Trailers ended the request body (their fields are not used).
    fn trailers(&mut self, c: &mut Connection, stream: u32);
    /// The stream ended abnormally: the peer reset it, or this side did for a stream
    /// error. The carrier drops whatever it keeps for it.
    fn reset(&mut self, c: &mut Connection, stream: u32, code: ErrorCode);
    /// The header list of a new request was over the limit: answer 431.
    fn too_large(&mut self, c: &mut Connection, stream: u32);
    /// Send credit grew (WINDOW_UPDATE, or a larger SETTINGS_INITIAL_WINDOW_SIZE).
    fn credit(&mut self, _c: &mut Connection) {}
    /// The peer acknowledged a PING this side sent (the graceful GOAWAY's round trip).
    fn ping_ack(&mut self, _c: &mut Connection) {}
}

/// A counter for the worker's metrics, queued while the connection works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    RstRx(u32),
    RstTx(u32),
    GoAwayTx(u32),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u32,
    state: State,
    send: Window,
    recv: Window,
    /// Received bytes consumed but not yet credited back.
    unacked: u32,
    /// Request body bytes expected and seen (8.1.1: content-length must match).
    content_length: Option<u64>,
    received: u64,
    /// A request head was delivered to the carrier.
    delivered: bool,
    /// The highest the send window has been (WINDOW_UPDATEs up to it are free).
    send_peak: i32,
}

/// Where the reading side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) the client preface.
    Preface,
    /// Preface read; the first frame must be SETTINGS (3.4).
    FirstSettings,
    Frames,
    /// A connection error was sent (GOAWAY): nothing more is read.
    Failed,
}

/// How many recently closed streams are remembered, to tell a frame that crossed their
/// close (ignored, or STREAM_CLOSED) from one on a never-used identifier.
const RECENT: usize = 32;

/// One HTTP/2 connection, server side.
pub struct Connection {
    limits: Limits,
    phase: Phase,
    parser: Parser,
    decoder: Decoder,
    encoder: Encoder,
    ids: StreamIds,
    streams: Vec<Entry>,
    recent: VecDeque<(u32, Cause)>,
    peer: SettingsValues,
    /// Our SETTINGS were acknowledged.
    acked: bool,
    conn_send: Window,
    /// The highest the connection's send window has been.
    conn_peak: i32,
    conn_recv: Window,
    conn_unacked: u32,
    /// A field block being gathered (HEADERS without END_HEADERS, then CONTINUATION).
    block: Vec<u8>,
    block_stream: u32,
    block_end_stream: bool,
    idle_budget: i64,
    reset_budget: i64,
    /// The GOAWAY sent (its last stream id), if any.
    goaway_sent: Option<u32>,
    /// The peer sent GOAWAY: it opens no more streams.
    pub goaway_received: bool,
    /// Frames to send. Empty (no allocation) between callbacks when the carrier lends
    /// it a shared buffer.
    pub out: BytesMut,
    /// Counters for the worker's metrics, drained by the carrier.
    pub counts: Vec<Count>,
    /// The connection error that ended it, for the carrier's log line.
    pub error: Option<H2Error>,
    /// Lowercased response field names (reused).
    names: Vec<u8>,
    /// Request field buffers of finished streams, reused by the next requests.
    spare: Vec<Fields>,
}

impl Connection {
    /// A server connection with `limits`; its SETTINGS (and the connection window's
    /// WINDOW_UPDATE) are queued at once (3.4: the server preface).
    pub fn new(limits: Limits) -> Connection {
        let mut parser = Parser::new(Side::Server);
        parser.set_field_block_limits(limits.max_field_block, limits.max_continuations);
        let mut decoder = Decoder::new(settings::DEFAULT_HEADER_TABLE_SIZE as usize);
        decoder.set_max_header_list_size(limits.max_header_list as usize);
        let mut c = Connection {
            phase: Phase::Preface,
            parser,
            decoder,
            encoder: Encoder::new(),
            ids: StreamIds::new(Side::Server),
            streams: Vec::new(),
            recent: VecDeque::new(),
            peer: SettingsValues::default(),
            acked: false,
            conn_send: Window::new(DEFAULT_WINDOW_SIZE),
            conn_peak: DEFAULT_WINDOW_SIZE as i32,
            conn_recv: Window::new(limits.conn_window.max(DEFAULT_WINDOW_SIZE)),
            conn_unacked: 0,
            block: Vec::new(),
            block_stream: 0,
            block_end_stream: false,
            idle_budget: i64::from(limits.idle_frames),
            reset_budget: i64::from(limits.resets),
            goaway_sent: None,
            goaway_received: false,
            out: BytesMut::new(),
            counts: Vec::new(),
            error: None,
            names: Vec::new(),
            spare: Vec::new(),
            limits,
        };
        c.server_preface();
        c
    }

    fn server_preface(&mut self) {
        let l = &self.limits;
        let mut s = vec![
            Setting::MaxConcurrentStreams(l.max_concurrent_streams),
            Setting::MaxHeaderListSize(l.max_header_list),
            Setting::EnablePush(false),
        ];
        if l.stream_window != DEFAULT_WINDOW_SIZE {
            s.push(Setting::InitialWindowSize(l.stream_window));
        }
        if l.enable_connect {
            s.push(Setting::EnableConnectProtocol(true));
        }
        let mut out = BytesMut::with_capacity(64);
        settings::encode_settings(&s, &mut out);
        if l.conn_window > DEFAULT_WINDOW_SIZE {
            WindowUpdate {
                stream: StreamId::ZERO,
                increment: l.conn_window - DEFAULT_WINDOW_SIZE,
            }
            .encode(&mut out);
        }
        self.out.extend_from_slice(&out);
    }

    /// The preface was already read by someone else (an HTTP/1.1 carrier that saw it),
    /// or the connection came by `Upgrade: h2c` with these settings (3.2: the
    /// HTTP2-Settings payload counts as the client's first SETTINGS) and stream 1
    /// already half-closed (remote) with the upgrading request.
    pub fn upgraded(&mut self, settings_payload: &[u8]) -> Result<(), H2Error> {
        let mut p = Parser::new(Side::Server);
        p.set_max_frame_size(settings::MAX_MAX_FRAME_SIZE);
        let mut frame = BytesMut::with_capacity(HEADER_LEN + settings_payload.len());
        Head::new(
            Kind::Settings,
            0,
            StreamId::ZERO,
            settings_payload.len() as u32,
        )
        .encode(&mut frame);
        frame.extend_from_slice(settings_payload);
        match p.decode(&frame) {
            Ok(Some((Frame::Settings(s), _))) => self.apply_settings(&s)?,
            _ => {
                return Err(H2Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "bad HTTP2-Settings",
                ));
            }
        }
        // 3.2: "The HTTP/1.1 request that is sent prior to upgrade is assigned a stream
        // identifier of 1 ... Stream 1 is implicitly "half-closed" from the client".
        self.ids.open_remote(StreamId::new(1))?;
        let e = self.entry_new(1, State::HalfClosedRemote);
        self.streams.push(Entry {
            delivered: true,
            ..e
        });
        self.idle_budget += 8;
        Ok(())
    }

    fn entry_new(&self, id: u32, state: State) -> Entry {
        Entry {
            id,
            state,
            send: Window::new(self.peer.initial_window_size),
            recv: Window::new(self.limits.stream_window),
            unacked: 0,
            content_length: None,
            received: 0,
            delivered: false,
            send_peak: Window::new(self.peer.initial_window_size).get(),
        }
    }

    /// The peer's SETTINGS_MAX_FRAME_SIZE: the largest DATA payload to send.
    pub fn max_frame(&self) -> usize {
        self.peer.max_frame_size as usize
    }

    /// Whether a connection error (or a final GOAWAY) ended the connection.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// Streams open or half-closed.
    pub fn active(&self) -> usize {
        self.streams.iter().filter(|e| e.state.is_active()).count()
    }

    /// The GOAWAY sent, if any (its last stream id).
    pub fn goaway_sent(&self) -> Option<u32> {
        self.goaway_sent
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|e| e.id == id)
    }

    /// Consumes `buf`; returns the bytes used (the rest is an incomplete frame to be
    /// offered again with more). A connection error queues its GOAWAY, sets
    /// [`error`](Self::error) and is returned: the carrier sends what is queued and
    /// closes.
    pub fn recv(&mut self, buf: &[u8], h: &mut impl Handler) -> Result<usize, H2Error> {
        let mut pos = 0;
        if self.phase == Phase::Preface {
            let n = buf.len().min(PREFACE.len());
            if buf[..n] != PREFACE[..n] {
                return Err(self.fail(H2Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "bad client connection preface",
                )));
            }
            if n < PREFACE.len() {
                return Ok(0);
            }
            pos = PREFACE.len();
            self.phase = Phase::FirstSettings;
        }
        while self.phase != Phase::Failed {
            let frame = match self.parser.decode(&buf[pos..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(FrameError { error, skip }) => {
                    if error.is_connection_error() || skip == 0 {
                        return Err(self.fail(error));
                    }
                    let Scope::Stream(id) = error.scope else {
                        unreachable!()
                    };
                    // A stream error on an idle stream is a connection error (5.1).
                    if self.state_of(id.get()) == State::Idle {
                        return Err(self.fail(H2Error::connection(error.code, error.reason)));
                    }
                    self.stream_error(id.get(), error.code, h);
                    pos += skip;
                    continue;
                }
            };
            let (f, used) = frame;
            if self.phase == Phase::FirstSettings {
                // 3.4: "the first frame ... MUST be a SETTINGS frame".
                if !matches!(f, Frame::Settings(s) if !s.ack) {
                    return Err(self.fail(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "first frame is not SETTINGS",
                    )));
                }
                self.phase = Phase::Frames;
            }
            pos += used;
            if let Err(e) = self.frame(f, h) {
                if e.is_connection_error() {
                    return Err(self.fail(e));
                }
                let Scope::Stream(id) = e.scope else {
                    unreachable!()
                };
                self.stream_error(id.get(), e.code, h);
            }
        }
        Ok(pos)
    }

    /// Spends the idle-frame budget.
    fn idle(&mut self, n: i64) -> Result<(), H2Error> {
        self.idle_budget -= n;
        if self.idle_budget < 0 {
            return Err(H2Error::limit(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many frames that do no work",
            ));
        }
        Ok(())
    }

    fn frame(&mut self, f: Frame<'_>, h: &mut impl Handler) -> Result<(), H2Error> {
        match f {
            Frame::Settings(s) => {
                self.idle(1)?;
                if s.ack {
                    if !self.acked {
                        self.acked = true;
                    }
                    return Ok(());
                }
                let before = self.peer.initial_window_size;
                self.apply_settings(&s)?;
                // 6.5.3: acknowledge once applied.
                settings::encode_settings_ack(&mut self.out);
                if self.peer.initial_window_size > before {
                    h.credit(self);
                }
                Ok(())
            }
            Frame::Ping(p) => {
                self.idle(1)?;
                if p.ack {
                    h.ping_ack(self);
                } else {
                    p.pong().encode(&mut self.out);
                }
                Ok(())
            }
            Frame::GoAway(_) => {
                self.goaway_received = true;
                Ok(())
            }
            Frame::WindowUpdate(w) => self.window_update(w, h),
            Frame::Priority(p) => {
                self.idle(1)?;
                self.priority(p)
            }
            Frame::RstStream(r) => self.rst_stream(r, h),
            Frame::Headers(hd) => self.headers(hd, h),
            Frame::Continuation(c) => {
                self.block.extend_from_slice(c.fragment);
                if c.end_headers {
                    self.end_block(h)?;
                }
                Ok(())
            }
            Frame::Data(d) => self.data(d, h),
            // 8.4: refused by the parser for a server.
            Frame::PushPromise(_) => Err(H2Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            // 5.5: unknown frame types are ignored.
            Frame::Unknown(_) => self.idle(1),
        }
    }

    fn apply_settings(&mut self, s: &settings::Settings<'_>) -> Result<(), H2Error> {
        let before = self.peer;
        self.peer.apply_all(s)?;
        if self.peer.initial_window_size != before.initial_window_size {
            // 6.9.2: adjust every stream's send window by the difference.
            for e in &mut self.streams {
                e.send
                    .adjust(before.initial_window_size, self.peer.initial_window_size)?;
            }
        }
        if self.peer.header_table_size != before.header_table_size {
            self.encoder
                .set_peer_max_table_size(self.peer.header_table_size as usize);
        }
        Ok(())
    }

    fn priority(&mut self, p: Priority) -> Result<(), H2Error> {
        // 5.3.1: "A stream cannot depend on itself ... stream error of type
        // PROTOCOL_ERROR."
        if p.spec.dependency == p.stream {
            return Err(H2Error::stream(
                p.stream,
                ErrorCode::PROTOCOL_ERROR,
                "stream depends on itself",
            ));
        }
        Ok(())
    }

    /// A stream's state, tracked or not.
    fn state_of(&self, id: u32) -> State {
        if let Some(i) = self.find(id) {
            return self.streams[i].state;
        }
        if let Some(&(_, cause)) = self.recent.iter().find(|(i, _)| *i == id) {
            return State::Closed(cause);
        }
        self.ids.untracked(StreamId::new(id))
    }

    /// Moves a stream the peer sent `ev` on; returns its index in the table (None for
    /// a frame to ignore).
    fn recv_on(&mut self, id: u32, ev: Ev) -> Result<Option<usize>, H2Error> {
        let sid = StreamId::new(id);
        if let Some(i) = self.find(id) {
            let v = self.streams[i].state.recv(sid, ev)?;
            return Ok((v == Verdict::Process).then_some(i));
        }
        let mut st = self.state_of(id);
        if let (State::Closed(Cause::EndStream | Cause::ResetRemote), Ev::Headers { .. }) = (st, ev)
        {
            // 5.1, closed: a peer that opens a stream it closed itself again may be
            // answered with a connection error of type STREAM_CLOSED (h2spec's strict
            // expectation); the identifier cannot be reused (5.1.1).
            return Err(H2Error::connection(
                ErrorCode::STREAM_CLOSED,
                "HEADERS on a closed stream",
            ));
        }
        if st == State::Idle && matches!(ev, Ev::Headers { .. }) {
            self.ids.open_remote(sid)?;
        }
        let v = st.recv(sid, ev)?;
        if v == Verdict::Ignore || st.is_closed() {
            return Ok(None);
        }
        self.streams.push(self.entry_new(id, st));
        Ok(Some(self.streams.len() - 1))
    }

    /// WINDOW_UPDATE (6.9). One that only gives back what this side's DATA used (the
    /// window does not rise above the highest it has been) is the peer's normal
    /// answer, however finely it cuts its updates, and costs nothing; one that opens a
    /// window further spends the idle-frame budget (a flood of tiny updates while
    /// nothing is being sent runs it out).
    fn window_update(&mut self, w: WindowUpdate, h: &mut impl Handler) -> Result<(), H2Error> {
        if w.stream.is_zero() {
            self.conn_send.increase(w.stream, w.increment)?;
            let now = self.conn_send.get();
            if now > self.conn_peak {
                self.conn_peak = now;
                self.idle(1)?;
            }
            h.credit(self);
            return Ok(());
        }
        let Some(i) = self.recv_on(w.stream.get(), Ev::WindowUpdate)? else {
            return self.idle(1);
        };
        let e = &mut self.streams[i];
        e.send.increase(w.stream, w.increment)?;
        let now = e.send.get();
        if now > e.send_peak {
            e.send_peak = now;
            self.idle(1)?;
        }
        h.credit(self);
        Ok(())
    }

    fn rst_stream(&mut self, r: RstStream, h: &mut impl Handler) -> Result<(), H2Error> {
        self.idle(1)?;
        let id = r.stream.get();
        let answered = self
            .find(id)
            .map(|i| !self.streams[i].state.can_send_data());
        let Some(i) = self.recv_on(id, Ev::RstStream)? else {
            return Ok(());
        };
        self.counts.push(Count::RstRx(r.code.0));
        let delivered = self.streams[i].delivered;
        self.forget(i);
        if answered == Some(false) {
            // Reset before its answer ended: the rapid-reset pattern when repeated.
            self.reset_budget -= 1;
            if self.reset_budget < 0 {
                return Err(H2Error::limit(
                    ErrorCode::ENHANCE_YOUR_CALM,
                    "too many streams reset before their answer (rapid reset)",
                ));
            }
        }
        if delivered {
            h.reset(self, id, r.code);
        }
        Ok(())
    }

    fn headers(&mut self, hd: Headers<'_>, h: &mut impl Handler) -> Result<(), H2Error> {
        if let Some(p) = hd.priority
            && p.dependency == hd.stream
        {
            // 5.3.1: a HEADERS frame that depends on its own stream.
            self.skip_block(hd.end_headers, hd.fragment)?;
            return Err(H2Error::stream(
                hd.stream,
                ErrorCode::PROTOCOL_ERROR,
                "stream depends on itself",
            ));
        }
        self.block.clear();
        self.block.extend_from_slice(hd.fragment);
        self.block_stream = hd.stream.get();
        self.block_end_stream = hd.end_stream;
        if hd.end_headers {
            self.end_block(h)?;
        }
        Ok(())
    }

    /// A block whose stream is already in error: decoded for HPACK's sake only.
    fn skip_block(&mut self, end_headers: bool, fragment: &[u8]) -> Result<(), H2Error> {
        if end_headers {
            self.decode_discard(fragment)
        } else {
            self.block.clear();
            self.block.extend_from_slice(fragment);
            self.block_stream = 0;
            Ok(())
        }
    }

    fn decode_discard(&mut self, block: &[u8]) -> Result<(), H2Error> {
        match self.decoder.decode(block, |_, _, _| {}) {
            Ok(()) => Ok(()),
            Err(e) if e.context_intact() => Ok(()),
            Err(_) => Err(compression_error()),
        }
    }

    /// A whole field block arrived (END_HEADERS).
    fn end_block(&mut self, h: &mut impl Handler) -> Result<(), H2Error> {
        let block = std::mem::take(&mut self.block);
        let r = self.field_block(&block, h);
        self.block = block;
        self.block.clear();
        if self.block.capacity() > 16 * 1024 {
            self.block = Vec::new();
        }
        r
    }

    fn field_block(&mut self, block: &[u8], h: &mut impl Handler) -> Result<(), H2Error> {
        let id = self.block_stream;
        if id == 0 {
            return self.decode_discard(block);
        }
        let end_stream = self.block_end_stream;
        let sid = StreamId::new(id);
        let existing = self.find(id);
        let is_new = existing.is_none() && self.state_of(id) == State::Idle;
        // Decode first, always: the dynamic table must stay in step with the peer's
        // encoder whatever happens to the stream (4.3).
        let mut req = Request::default();
        if is_new && let Some(f) = self.spare.pop() {
            req.fields = f;
        }
        if is_new {
            // Sized once: decoded fields are about twice the block (Huffman, indices).
            req.fields.buf.reserve(block.len() * 2 + 64);
            req.fields.spans.reserve(12);
        }
        let mut v = Validator::new(is_new, self.limits.enable_connect);
        let r = self.decoder.decode(block, |n, val, _| {
            v.field(&mut req.fields, n, val);
        });
        let too_large = match r {
            Ok(()) => false,
            Err(HpackError::HeaderListTooLarge { .. }) => true,
            Err(_) => return Err(compression_error()),
        };
        let Some(i) = self.recv_on(id, Ev::Headers { end_stream })? else {
            return Ok(()); // on a stream this side reset: ignored
        };
        if !is_new {
            // Trailers (8.1): a second field block must end the stream and carry no
            // pseudo-header fields.
            if !end_stream || v.pseudo_seen || v.bad.is_some() {
                return Err(H2Error::stream(
                    sid,
                    ErrorCode::PROTOCOL_ERROR,
                    "malformed trailers",
                ));
            }
            self.check_length_at_end(i)?;
            let delivered = self.streams[i].delivered;
            self.after_recv_end(i);
            if delivered {
                h.trailers(self, id);
            }
            return Ok(());
        }
        if let Some(since) = self.goaway_sent
            && id > since
        {
            // 6.8: streams above the last id of a GOAWAY sent are not processed.
            self.forget(i);
            return Ok(());
        }
        self.idle_budget += 8;
        if self.active() > self.limits.max_concurrent_streams as usize {
            // 5.1.2: REFUSED_STREAM (the request was not processed; it can be retried).
            self.idle(8)?;
            return Err(H2Error::stream(
                sid,
                ErrorCode::REFUSED_STREAM,
                "over SETTINGS_MAX_CONCURRENT_STREAMS",
            ));
        }
        if too_large {
            self.streams[i].delivered = true;
            h.too_large(self, id);
            return Ok(());
        }
        if let Some(why) = v.finish() {
            // 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
            return Err(H2Error::stream(sid, ErrorCode::PROTOCOL_ERROR, why));
        }
        let cl = match req.fields.get(b"content-length") {
            None => None,
            Some(v) => match parse_len(v) {
                Some(n) => Some(n),
                None => {
                    return Err(H2Error::stream(
                        sid,
                        ErrorCode::PROTOCOL_ERROR,
                        "bad content-length",
                    ));
                }
            },
        };
        req.content_length = cl;
        self.streams[i].content_length = cl;
        if end_stream && cl.is_some_and(|n| n != 0) {
            return Err(H2Error::stream(
                sid,
                ErrorCode::PROTOCOL_ERROR,
                "content-length without the body",
            ));
        }
        self.streams[i].delivered = true;
        h.request(self, id, req, end_stream);
        Ok(())
    }

    fn check_length_at_end(&self, i: usize) -> Result<(), H2Error> {
        let e = &self.streams[i];
        if let Some(n) = e.content_length
            && n != e.received
        {
            return Err(H2Error::stream(
                StreamId::new(e.id),
                ErrorCode::PROTOCOL_ERROR,
                "body length differs from content-length",
            ));
        }
        Ok(())
    }

    fn data(&mut self, d: Data<'_>, h: &mut impl Handler) -> Result<(), H2Error> {
        let flow = d.flow_len();
        // 6.9: DATA counts against the connection window whatever the stream's state.
        self.conn_recv.recv(StreamId::ZERO, flow)?;
        let id = d.stream.get();
        let padding = flow - d.data.len() as u32;
        let i = match self.recv_on(
            id,
            Ev::Data {
                end_stream: d.end_stream,
            },
        ) {
            Ok(Some(i)) => i,
            Ok(None) => {
                self.credit_conn(flow);
                return Ok(());
            }
            Err(e) => {
                self.credit_conn(flow);
                return Err(e);
            }
        };
        if let Err(e) = self.streams[i].recv.recv(d.stream, flow) {
            self.credit_conn(flow);
            return Err(e);
        }
        if d.data.is_empty() && !d.end_stream {
            self.idle(1)?;
        }
        let e = &mut self.streams[i];
        e.received += d.data.len() as u64;
        if e.content_length.is_some_and(|n| e.received > n) {
            self.credit_conn(flow);
            return Err(H2Error::stream(
                d.stream,
                ErrorCode::PROTOCOL_ERROR,
                "body longer than content-length",
            ));
        }
        if d.end_stream
            && let Err(e) = self.check_length_at_end(i)
        {
            self.credit_conn(flow);
            return Err(e);
        }
        // Padding is consumed here and now.
        if padding > 0 {
            self.release(id, padding as usize);
        }
        let delivered = self.streams[i].delivered;
        if d.end_stream {
            self.after_recv_end(i);
        }
        if delivered {
            h.data(self, id, d.data, d.end_stream);
        } else {
            self.release(id, d.data.len());
        }
        Ok(())
    }

    /// The peer ended its side; a stream closed both ways leaves the table.
    fn after_recv_end(&mut self, i: usize) {
        if self.streams[i].state.is_closed() {
            self.forget(i);
        }
    }

    fn forget(&mut self, i: usize) {
        let e = self.streams.swap_remove(i);
        if e.unacked > 0 {
            self.credit_conn(e.unacked);
        }
        let cause = match e.state {
            State::Closed(c) => c,
            _ => Cause::ResetLocal,
        };
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((e.id, cause));
    }

    fn credit_conn(&mut self, n: u32) {
        self.conn_unacked = self.conn_unacked.saturating_add(n);
        if self.conn_unacked >= self.limits.conn_window / 2 {
            let inc = std::mem::take(&mut self.conn_unacked);
            if self.conn_recv.increase(StreamId::ZERO, inc).is_ok() {
                WindowUpdate {
                    stream: StreamId::ZERO,
                    increment: inc,
                }
                .encode(&mut self.out);
            }
        }
    }

    /// The carrier consumed `n` bytes of stream `id`'s data: credit them back to the
    /// peer (WINDOW_UPDATE once half a window is owed; a stream that will receive
    /// nothing more gets none, only the connection does).
    pub fn release(&mut self, id: u32, n: usize) {
        let n = n as u32;
        if n == 0 {
            return;
        }
        let Some(i) = self.find(id) else {
            self.credit_conn(n);
            return;
        };
        let e = &mut self.streams[i];
        let open = matches!(e.state, State::Open | State::HalfClosedLocal);
        if !open {
            self.credit_conn(n);
            return;
        }
        e.unacked += n;
        if e.unacked >= self.limits.stream_window / 2 {
            let inc = std::mem::take(&mut e.unacked);
            if e.recv.increase(StreamId::new(id), inc).is_ok() {
                WindowUpdate {
                    stream: StreamId::new(id),
                    increment: inc,
                }
                .encode(&mut self.out);
            }
        }
        self.credit_conn(n);
    }

    /// Bytes of DATA that may be sent on `id` now: min(stream, connection) window.
    pub fn send_credit(&self, id: u32) -> usize {
        let Some(i) = self.find(id) else {
            return 0;
        };
        let e = &self.streams[i];
        if !e.state.can_send_data() {
            return 0;
        }
        e.send.available().min(self.conn_send.available()) as usize
    }

    /// The connection window alone.
    pub fn conn_credit(&self) -> usize {
        self.conn_send.available() as usize
    }

    /// The stream's own send window (negative windows count as 0).
    pub fn stream_credit(&self, id: u32) -> usize {
        self.find(id)
            .map_or(0, |i| self.streams[i].send.available() as usize)
    }

    /// Whether the peer may still send on stream `id` (its side is open).
    pub fn can_receive(&self, id: u32) -> bool {
        self.find(id)
            .is_some_and(|i| matches!(self.streams[i].state, State::Open | State::HalfClosedLocal))
    }

    /// Whether this side may still send on stream `id`.
    pub fn can_send(&self, id: u32) -> bool {
        self.find(id)
            .is_some_and(|i| self.streams[i].state.can_send_data())
    }

    /// Sends a response head: `:status` and `fields` (names are lowercased, 8.2.1;
    /// connection-specific fields are dropped, 8.2.2), split into HEADERS and
    /// CONTINUATION frames of at most the peer's frame size.
    pub fn send_headers<'f>(
        &mut self,
        id: u32,
        status: u16,
        fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
        end_stream: bool,
    ) -> Result<(), H2Error> {
        let Some(i) = self.find(id) else {
            return Err(H2Error::local(StreamId::new(id), "HEADERS on no stream"));
        };
        self.streams[i]
            .state
            .send(StreamId::new(id), Ev::Headers { end_stream })?;
        let mut status_buf = [0u8; 3];
        let s = status.clamp(100, 999);
        status_buf[0] = b'0' + (s / 100) as u8;
        status_buf[1] = b'0' + (s / 10 % 10) as u8;
        status_buf[2] = b'0' + (s % 10) as u8;
        // Names lowercased into one reused buffer; values borrowed (no allocation per
        // response once the buffer has grown).
        const INLINE: usize = 24;
        let mut names = std::mem::take(&mut self.names);
        names.clear();
        let mut vals: [&[u8]; INLINE] = [&[]; INLINE];
        let mut ends = [0usize; INLINE + 1];
        let mut k = 0;
        let mut extra: Vec<(usize, usize, &[u8])> = Vec::new();
        for (n, v) in fields {
            if is_connection_specific(n) {
                continue;
            }
            let a = names.len();
            names.extend(n.iter().map(u8::to_ascii_lowercase));
            if k < INLINE {
                vals[k] = v;
                ends[k + 1] = names.len();
                k += 1;
            } else {
                extra.push((a, names.len(), v));
            }
        }
        let start = self.out.len();
        self.out.put_bytes(0, HEADER_LEN);
        let list = std::iter::once((&b":status"[..], &status_buf[..]))
            .chain((0..k).map(|j| (&names[ends[j]..ends[j + 1]], vals[j])))
            .chain(extra.iter().map(|&(a, b, v)| (&names[a..b], v)));
        self.encoder.encode(list, &mut self.out);
        self.names = names;
        let len = self.out.len() - start - HEADER_LEN;
        let max = self.max_frame();
        let sid = StreamId::new(id);
        let es = if end_stream { flags::END_STREAM } else { 0 };
        if len <= max {
            let head = Head::new(Kind::Headers, es | flags::END_HEADERS, sid, len as u32);
            self.out[start..start + HEADER_LEN].copy_from_slice(&head.to_bytes());
        } else {
            // Rare: a head larger than a frame goes out as HEADERS + CONTINUATION.
            let block = self.out.split_off(start + HEADER_LEN);
            self.out.truncate(start);
            let mut first = true;
            let mut rest = &block[..];
            loop {
                let (piece, tail) = rest.split_at(rest.len().min(max));
                let eh = if tail.is_empty() {
                    flags::END_HEADERS
                } else {
                    0
                };
                let (kind, fl) = if first {
                    (Kind::Headers, es | eh)
                } else {
                    (Kind::Continuation, eh)
                };
                Head::new(kind, fl, sid, piece.len() as u32).encode(&mut self.out);
                self.out.extend_from_slice(piece);
                first = false;
                rest = tail;
                if tail.is_empty() {
                    break;
                }
            }
        }
        if end_stream {
            self.after_send_end(id);
        }
        Ok(())
    }

    /// Writes a DATA frame header for `len` payload bytes on `id` (the carrier queues
    /// the payload right after it) and spends the windows. `len` must fit
    /// [`send_credit`](Self::send_credit) and [`max_frame`](Self::max_frame).
    pub fn send_data_head(&mut self, id: u32, len: usize, end_stream: bool) -> Result<(), H2Error> {
        let sid = StreamId::new(id);
        let Some(i) = self.find(id) else {
            return Err(H2Error::local(sid, "DATA on no stream"));
        };
        if len > self.max_frame() {
            return Err(H2Error::local(
                sid,
                "DATA larger than the peer's frame size",
            ));
        }
        let n = len as u32;
        if n > self.conn_send.available() {
            return Err(H2Error::local(sid, "DATA beyond the connection window"));
        }
        self.streams[i].send.send(sid, n)?;
        self.streams[i].state.send(sid, Ev::Data { end_stream })?;
        self.conn_send.send(StreamId::ZERO, n)?;
        let mut fl = 0;
        if end_stream {
            fl |= flags::END_STREAM;
        }
        Head::new(Kind::Data, fl, sid, n).encode(&mut self.out);
        if len > 0 {
            // The peer answers DATA with WINDOW_UPDATEs: they are not idle frames.
            self.idle_budget = (self.idle_budget + 1).min(i64::from(self.limits.idle_frames) * 4);
        }
        if end_stream {
            self.after_send_end(id);
        }
        Ok(())
    }

    fn after_send_end(&mut self, id: u32) {
        // An answer completed: one more reset is allowed.
        self.reset_budget = (self.reset_budget + 1).min(i64::from(self.limits.resets));
        if let Some(i) = self.find(id)
            && self.streams[i].state.is_closed()
        {
            self.forget(i);
        }
    }

    /// Resets stream `id` with `code` (RST_STREAM, 6.4).
    pub fn reset(&mut self, id: u32, code: ErrorCode) {
        let sid = StreamId::new(id);
        match self.find(id) {
            Some(i) => {
                if self.streams[i].state.send(sid, Ev::RstStream).is_err() {
                    return;
                }
                self.forget(i);
            }
            None => {
                if self.state_of(id) == State::Idle {
                    return;
                }
                // A late frame on a closed stream: answered, remembered as reset.
                if let Some(r) = self.recent.iter_mut().find(|(i, _)| *i == id) {
                    r.1 = Cause::ResetLocal;
                }
            }
        }
        RstStream { stream: sid, code }.encode(&mut self.out);
        self.counts.push(Count::RstTx(code.0));
    }

    fn stream_error(&mut self, id: u32, code: ErrorCode, h: &mut impl Handler) {
        let delivered = self.find(id).is_some_and(|i| self.streams[i].delivered);
        if self.find(id).is_none() && self.state_of(id) == State::Idle {
            // A stream error on a stream never opened: open it to reset it (5.4.2
            // allows RST_STREAM on any but idle streams; the identifier is now used).
            let _ = self.ids.open_remote(StreamId::new(id));
            self.streams.push(self.entry_new(id, State::Open));
        }
        self.reset(id, code);
        if delivered {
            h.reset(self, id, code);
        }
    }

    /// Queues GOAWAY with `code` and `last` stream id (6.8).
    fn goaway_frame(&mut self, last: u32, code: ErrorCode, debug: &[u8]) {
        GoAway {
            last_stream: StreamId::new(last),
            code,
            debug_data: debug,
        }
        .encode(&mut self.out);
        self.goaway_sent = Some(last);
        self.counts.push(Count::GoAwayTx(code.0));
    }

    fn fail(&mut self, e: H2Error) -> H2Error {
        if self.phase != Phase::Failed {
            let last = self.ids.last_remote().get();
            self.goaway_frame(last, e.code, e.reason.as_bytes());
            self.phase = Phase::Failed;
            self.error = Some(e);
        }
        e
    }

    /// Ends the connection with GOAWAY `code` (a local decision: a timeout, a peer
    /// that does not read): nothing more is read.
    pub fn close(&mut self, code: ErrorCode, why: &'static str) {
        self.fail(H2Error::limit(code, why));
    }

    /// The first step of a graceful shutdown (6.8): GOAWAY with the largest stream id
    /// and a PING; [`goaway_final`](Self::goaway_final) follows once it is answered.
    pub fn goaway_graceful(&mut self) {
        if self.goaway_sent.is_none() && self.phase != Phase::Failed {
            self.goaway_frame(StreamId::MAX.get(), ErrorCode::NO_ERROR, b"");
            Ping {
                ack: false,
                data: *b"lwsdbye!",
            }
            .encode(&mut self.out);
        }
    }

    /// The second step: GOAWAY with the last stream id actually opened; streams up to
    /// it finish, later ones are ignored.
    pub fn goaway_final(&mut self) {
        if self.phase == Phase::Failed {
            return;
        }
        let last = self.ids.last_remote().get();
        if self.goaway_sent != Some(last) {
            self.goaway_frame(last, ErrorCode::NO_ERROR, b"");
        }
    }

    /// A finished request: its buffers serve a later one (at most 16 kept).
    pub fn recycle(&mut self, req: Request) {
        let mut f = req.fields;
        if self.spare.len() < 16 && f.buf.capacity() <= 8 * 1024 {
            f.buf.clear();
            f.spans.clear();
            self.spare.push(f);
        }
    }

    /// Gives back the memory of per-stream bookkeeping once no stream is open (an idle
    /// connection keeps only its settings, windows and HPACK tables).
    pub fn shrink_idle(&mut self) {
        if self.streams.is_empty() {
            self.streams = Vec::new();
        }
        if self.block.is_empty() {
            self.block = Vec::new();
        }
        self.names = Vec::new();
        self.spare = Vec::new();
        // Counters still queued are the carrier's to read after this callback.
        if self.counts.is_empty() {
            self.counts = Vec::new();
        }
    }
}

fn compression_error() -> H2Error {
    H2Error::connection(ErrorCode::COMPRESSION_ERROR, "HPACK decoding failed")
}

fn parse_len(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// 8.2.2: fields that are HTTP/1.1 connection management.
fn is_connection_specific(n: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    ]
    .iter()
    .any(|c| n.eq_ignore_ascii_case(c))
}

/// Checks a request's fields as they are decoded (RFC 9113 8.2, 8.3; RFC 8441 4).
struct Validator {
    new: bool,
    connect_protocol: bool,
    pseudo_seen: bool,
    regular_seen: bool,
    seen: u8,
    method_connect: bool,
    bad: Option<&'static str>,
}

const P_METHOD: u8 = 1;
const P_SCHEME: u8 = 2;
const P_AUTHORITY: u8 = 4;
const P_PATH: u8 = 8;
const P_PROTOCOL: u8 = 16;

impl Validator {
    fn new(new: bool, connect_protocol: bool) -> Validator {
        Validator {
            new,
            connect_protocol,
            pseudo_seen: false,
            regular_seen: false,
            seen: 0,
            method_connect: false,
            bad: None,
        }
    }

    fn field(&mut self, fields: &mut Fields, name: &[u8], value: &[u8]) {
        if self.bad.is_some() {
            return;
        }
        // 8.2.1: no NUL, CR or LF in a value; a name with no uppercase letters.
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            self.bad = Some("control character in a field value");
            return;
        }
        if name.is_empty() || name.iter().skip(1).any(|&b| !is_name_char(b)) {
            self.bad = Some("invalid field name");
            return;
        }
        if let Some(p) = name.strip_prefix(b":") {
            self.pseudo_seen = true;
            // 8.3: pseudo-header fields come first, each once, only the defined ones.
            if self.regular_seen {
                self.bad = Some("pseudo-header field after a regular one");
                return;
            }
            let bit = match p {
                b"method" => P_METHOD,
                b"scheme" => P_SCHEME,
                b"authority" => P_AUTHORITY,
                b"path" => P_PATH,
                b"protocol" if self.connect_protocol => P_PROTOCOL,
                _ => {
                    self.bad = Some("unknown or response pseudo-header field");
                    return;
                }
            };
            if self.seen & bit != 0 {
                self.bad = Some("duplicate pseudo-header field");
                return;
            }
            self.seen |= bit;
            if bit == P_METHOD && value == b"CONNECT" {
                self.method_connect = true;
            }
            if bit == P_PATH && value.is_empty() {
                self.bad = Some("empty :path");
                return;
            }
        } else {
            if !is_name_char(name[0]) {
                self.bad = Some("invalid field name");
                return;
            }
            self.regular_seen = true;
            if is_connection_specific(name) {
                self.bad = Some("connection-specific field");
                return;
            }
            // 8.2.2: TE may only be "trailers".
            if name == b"te" && value != b"trailers" {
                self.bad = Some("te other than trailers");
                return;
            }
        }
        if self.new {
            fields.push(name, value);
        }
    }

    /// The whole request head checked: `Some(reason)` if malformed.
    fn finish(&self) -> Option<&'static str> {
        if let Some(b) = self.bad {
            return Some(b);
        }
        let s = self.seen;
        if s & P_PROTOCOL != 0 {
            // RFC 8441 4: an extended CONNECT has :scheme, :path and :authority.
            if !self.method_connect {
                return Some(":protocol without CONNECT");
            }
            if s & (P_SCHEME | P_PATH | P_AUTHORITY) != P_SCHEME | P_PATH | P_AUTHORITY {
                return Some("extended CONNECT without :scheme, :path or :authority");
            }
            return None;
        }
        if self.method_connect {
            // 8.5: CONNECT has :authority and neither :scheme nor :path.
            if s & (P_SCHEME | P_PATH) != 0 || s & P_AUTHORITY == 0 {
                return Some("malformed CONNECT");
            }
            return None;
        }
        // 8.3.1: :method, :scheme and :path are required.
        if s & (P_METHOD | P_SCHEME | P_PATH) != P_METHOD | P_SCHEME | P_PATH {
            return Some("missing :method, :scheme or :path");
        }
        None
    }
}

/// A character allowed in a field name: a token character that is not uppercase
/// (8.2.1, RFC 9110 5.1).
fn is_name_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*'
        | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

#[cfg(test)]
mod tests;
