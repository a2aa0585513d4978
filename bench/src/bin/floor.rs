//! `lwsd-floor PORT FILE [--defer-accept SECS]`: the floor of HTTP/1.1 CPU per request
//! and of WebSocket connection set-up, a benchmark reference, not a server.
//!
//! It reproduces the first line of `shared/anchors.md` ("minimal io_uring responder
//! (multishot recv, buffer ring, httparse, fixed answer): the floor", 5.40 µs of server
//! CPU per keep-alive request there), so that lwsd's "≤ 1.15 × the floor" target is
//! measured against a floor taken on the same machine in the same run
//! (`bench/compare_http.py`, column `lwsd / floor`).
//!
//! What it does, and nothing more: one thread, one io_uring set up like lwsd's worker
//! (single issuer, deferred task running), a multishot accept on 127.0.0.1:PORT, a
//! multishot recv per connection drawing from a provided buffer ring of 256 × 8 KiB
//! (lwsd's own [`BufRing`], so the kernel side is identical; all 256 are published from
//! the start, where lwsd's worker publishes 64 and grows them under load), each request parsed with
//! httparse, and the answers to every request received in one pass over the completion
//! queue leaving in one send per connection (at most one send in flight per connection;
//! lwsd's loop also flushes once per pass). A request with `Connection: close` (or HTTP/1.0) gets its
//! answer with `Connection: close`, then the recv is cancelled and the socket closed with
//! a ring Close op: the new-connection-per-request workload.
//!
//! The answer is built once at start and has the same header set, order and sizes as
//! lwsd's answer for the same file (Server, Date, Content-Length, [Connection: close],
//! Content-Type, Last-Modified, ETag, Accept-Ranges), with lwsd's own formatters for the
//! values, so the bytes on the wire match and the comparison is of the code paths only.
//! The Date is the start time, never refreshed (lwsd's date cache costs one compare per
//! request while the second does not change).
//!
//! WebSocket set-up (`bench/compare_ws.py`, column `lwsd / floor`): a GET/HTTP/1.1 request
//! with `Upgrade: websocket`, a `Connection` naming `upgrade` (tokens, any case) and a
//! `Sec-WebSocket-Key` gets lwsd's own 101 head
//! ([`server_response_head`]:
//! Upgrade, Connection, Sec-WebSocket-Accept, and Sec-WebSocket-Protocol naming the first
//! protocol the client offered, if any; no extension is ever accepted), after any
//! answers owed to requests before it. The 101 is built per connection in a small heap
//! buffer freed once sent. From then on the connection is idle: its multishot recv stays
//! armed and everything received is discarded unread; EOF or an error closes it. This is
//! not a WebSocket implementation (no frames are parsed or sent, no close handshake, no
//! pings, the key's form and `Sec-WebSocket-Version` are not checked): it is what
//! accepting a WebSocket and holding it idle costs at the least, in CPU and in memory
//! per connection (one 64-byte [`Conn`] slot plus the kernel's socket), for comparing
//! with lwsd's supervisor-accepts-and-hands-off path.
//!
//! `--defer-accept SECS` sets TCP_DEFER_ACCEPT on the listener (0: off, the default), as
//! lwsd's supervisor does with 1 s unless told otherwise: a connection is accepted once
//! its first bytes arrive, so measure both servers with the same setting.
//!
//! Not a server: any method and path get the file; request bodies are not read (a
//! request with a body is misparsed); no timeouts, no error statuses (bad input closes
//! the connection), no connection limit. The only bound is the one that keeps memory
//! bounded on peer input: a request head cut by a recv boundary is kept up to
//! [`MAX_PARTIAL`] bytes.

use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs, io, process};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use lwsd::listen::defer_accept;
use lwsd_worker::mount::file::validators::file_etag;
use lwsd_worker::mount::mime::mime_for;
use lwsd_worker::roles::h1::fmt_http_date;
use lwsd_worker::roles::ws::handshake::{accept_key, server_response_head};
use lwsd_worker::service::bufring::{BufRing, RecvBuf};

/// Submission queue entries; the completion queue is 4× this (lwsd's worker default).
const RING_ENTRIES: u32 = 1024;
/// Provided buffers for recv, and their size: lwsd's worker defaults (`LoopConfig`).
const BUF_COUNT: u16 = 256;
const BUF_SIZE: u32 = 8 * 1024;
/// The buffer group id of the ring.
const BUF_GROUP: u16 = 0;
/// listen(2) backlog, as lwsd's supervisor (`LISTEN_BACKLOG`) and the nginx config of
/// `compare_http.py` ask: a burst of connects must not overflow it.
const LISTEN_BACKLOG: i32 = 4096;
/// Header fields httparse may return per request: wrk and h2load send 2-4; a browser
/// about 10. More makes the request an error (the connection is closed).
const MAX_HEADERS: usize = 32;
/// A request head cut by the end of a recv is kept until the rest arrives, up to this
/// many bytes (one recv buffer: no benchmark client sends a longer head). A longer one
/// closes the connection, so peer input cannot grow memory without bound.
const MAX_PARTIAL: usize = BUF_SIZE as usize;
/// Keep-alive answers laid out back to back in the answer block, so up to this many
/// answers leave in one send without a copy: as many as the shortest request
/// (`GET / HTTP/1.1\r\n\r\n`, 18 bytes) fits in one recv buffer, rounded up. Answers owed
/// beyond that (a recv arriving while a send is in flight) go in the next send.
const MAX_BATCH: usize = 512;

/// Operation kinds, in the low byte of a completion's user_data.
const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_CANCEL: u64 = 4;
const OP_CLOSE: u64 = 5;
const OP_LISTEN: u64 = 6;

/// user_data = generation << 32 | slot << 8 | op: a completion for a closed slot that was
/// reused carries the old generation and is dropped.
fn token(op: u64, slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | (u64::from(slot) << 8) | op
}

/// The fixed answers: `MAX_BATCH` keep-alive answers, then one `Connection: close`
/// answer, in one block. `n` keep-alive answers are `block[..n * ka]`; `n` keep-alive
/// answers followed by the closing one are `block[(MAX_BATCH - n) * ka..]`.
struct Answers {
    block: Box<[u8]>,
    ka: usize,
}

impl Answers {
    fn new(path: &str, body: &[u8], mtime: u64, now: u64) -> Answers {
        let one = |close: bool| {
            let mut a = Vec::with_capacity(body.len() + 256);
            a.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: lwsd/0.1.0\r\nDate: ");
            a.extend_from_slice(&fmt_http_date(now));
            a.extend_from_slice(b"\r\nContent-Length: ");
            a.extend_from_slice(body.len().to_string().as_bytes());
            a.extend_from_slice(b"\r\n");
            if close {
                a.extend_from_slice(b"Connection: close\r\n");
            }
            a.extend_from_slice(b"Content-Type: ");
            a.extend_from_slice(mime_for(path.as_bytes()).as_bytes());
            a.extend_from_slice(b"\r\nLast-Modified: ");
            a.extend_from_slice(&fmt_http_date(mtime));
            a.extend_from_slice(b"\r\nETag: ");
            a.extend_from_slice(&file_etag(mtime, body.len() as u64));
            a.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\n\r\n");
            a.extend_from_slice(body);
            a
        };
        let ka = one(false);
        let close = one(true);
        let mut block = Vec::with_capacity(ka.len() * MAX_BATCH + close.len());
        for _ in 0..MAX_BATCH {
            block.extend_from_slice(&ka);
        }
        block.extend_from_slice(&close);
        Answers {
            block: block.into_boxed_slice(),
            ka: ka.len(),
        }
    }
}

/// Where a connection stands with WebSocket. One byte: it fits in `Conn`'s padding.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Ws {
    /// Plain HTTP/1.1: requests are parsed and answered.
    #[default]
    Http,
    /// Upgraded: the 101 (in `Conn::partial`) leaves once the `owed` answers are out.
    Owed,
    /// The 101's send is in flight: `Conn::out` indexes `Conn::partial`.
    Sending,
    /// The 101 is out (or can no longer be sent) and its buffer freed: the connection is
    /// held idle and what it receives is discarded.
    Idle,
}

/// One connection.
#[derive(Default)]
struct Conn {
    /// -1: the slot is free.
    fd: RawFd,
    generation: u32,
    recv_armed: bool,
    cancel_sent: bool,
    send_inflight: bool,
    /// In `Floor::dirty`: to be sent to (or closed) at the end of this pass.
    dirty: bool,
    /// Keep-alive answers owed and not yet handed to a send.
    owed: usize,
    /// A request asked to close: its answer goes after the `owed` ones, then the close.
    close_after: bool,
    /// No more requests are read; the socket closes once the output is out.
    closing: bool,
    /// WebSocket state; anything but `Http`: input is discarded.
    ws: Ws,
    /// The part of the current send's buffer not sent yet: of the answer block, or of
    /// `partial` while `ws` is `Sending`.
    out: (usize, usize),
    /// A request head cut by the end of a recv (at most `MAX_PARTIAL` bytes); once the
    /// connection is upgraded, the 101 answer instead, freed when its send completes (its
    /// heap buffer is neither written nor freed while that send is in flight).
    partial: Vec<u8>,
}

/// The responder.
struct Floor {
    // Field order matters: the ring is dropped (closed) before the buffer memory it uses.
    ring: IoUring,
    bufs: BufRing,
    listener: TcpListener,
    answers: Answers,
    conns: Vec<Conn>,
    free: Vec<u32>,
    cqes: Vec<(u64, i32, u32)>,
    /// Connections with news from this pass (slot, generation), see [`Floor::mark`].
    dirty: Vec<(u32, u32)>,
}

impl Floor {
    fn new(listener: TcpListener, answers: Answers) -> io::Result<Floor> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(RING_ENTRIES * 4)
            .build(RING_ENTRIES)?;
        let bufs = BufRing::new(&ring.submitter(), BUF_GROUP, BUF_COUNT, BUF_SIZE)?;
        Ok(Floor {
            ring,
            bufs,
            listener,
            answers,
            conns: Vec::new(),
            free: Vec::new(),
            cqes: Vec::with_capacity(1024),
            dirty: Vec::with_capacity(1024),
        })
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: no entry points at memory that can move or be freed before its
        // completion: recv ops use the provided buffer ring (`self.bufs`, dropped after
        // the ring); sends point into `self.answers.block`, a boxed slice never changed
        // nor dropped while the ring lives, or into a connection's 101 (the heap buffer
        // of `Conn::partial`, which does not move when `conns` grows, and which nothing
        // writes, reallocates or frees while `ws` is `Sending`: `parse` returns at once
        // in WebSocket mode, `on_send` frees it only after that send's completion, and
        // the slot is not closed or reused while a send is in flight); accept, listen,
        // cancel and close carry no pointers.
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                // The queue is full: hand what is queued to the kernel and retry.
                match self.ring.submit() {
                    Ok(_) => {}
                    Err(err) if err.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                    Err(err) => panic!("io_uring submit failed: {err}"),
                }
            }
        }
    }

    /// Moves every ready completion into `self.cqes`.
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    fn arm_accept(&mut self) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token(OP_ACCEPT, 0, 0));
        self.push(e);
    }

    fn arm_recv(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.recv_armed = true;
        let e = opcode::RecvMulti::new(types::Fd(c.fd), BUF_GROUP)
            .build()
            .user_data(token(OP_RECV, slot, c.generation));
        self.push(e);
    }

    fn run(&mut self) -> io::Result<()> {
        let e = opcode::Listen::new(types::Fd(self.listener.as_raw_fd()), LISTEN_BACKLOG)
            .build()
            .user_data(token(OP_LISTEN, 0, 0));
        self.push(e);
        self.arm_accept();
        let mut cqes = Vec::with_capacity(1024);
        let mut dirty = Vec::with_capacity(1024);
        loop {
            if self.cqes.is_empty() {
                match self.ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.reap();
            std::mem::swap(&mut cqes, &mut self.cqes);
            for &(ud, res, flags) in &cqes {
                self.complete(ud, res, flags);
            }
            cqes.clear();
            // The answers to everything received in this pass, one send per connection.
            std::mem::swap(&mut dirty, &mut self.dirty);
            for &(slot, generation) in &dirty {
                let c = &mut self.conns[slot as usize];
                if c.generation == generation && c.fd >= 0 {
                    c.dirty = false;
                    self.kick(slot);
                }
            }
            dirty.clear();
            self.bufs.publish();
        }
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let op = ud & 0xff;
        let slot = ((ud >> 8) & 0xff_ffff) as u32;
        let generation = (ud >> 32) as u32;
        match op {
            OP_ACCEPT => {
                if res >= 0 {
                    self.adopt(res);
                }
                if !cqueue::more(flags) {
                    self.arm_accept();
                }
                return;
            }
            OP_LISTEN => {
                if res < 0 {
                    eprintln!(
                        "lwsd-floor: IORING_OP_LISTEN failed ({}): backlog stays at std's 128",
                        io::Error::from_raw_os_error(-res)
                    );
                }
                return;
            }
            OP_CANCEL | OP_CLOSE => return,
            _ => {}
        }
        let live = self
            .conns
            .get(slot as usize)
            .is_some_and(|c| c.fd >= 0 && c.generation == generation);
        if !live {
            // A buffer handed with a completion for a gone connection still goes back.
            // SAFETY: this completion of a recv on our ring is handled once, here.
            if let Some(buf) = unsafe { RecvBuf::from_completion(res, flags) } {
                self.bufs.recycle(buf);
            }
            return;
        }
        match op {
            OP_RECV => self.on_recv(slot, res, flags),
            OP_SEND => self.on_send(slot, res),
            _ => {}
        }
    }

    fn adopt(&mut self, fd: RawFd) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(Conn::default());
            (self.conns.len() - 1) as u32
        });
        let c = &mut self.conns[slot as usize];
        // Keep the generation (bumped at close) and the partial buffer's allocation.
        let mut partial = std::mem::take(&mut c.partial);
        partial.clear();
        *c = Conn {
            fd,
            generation: c.generation,
            partial,
            ..Conn::default()
        };
        self.arm_recv(slot);
    }

    fn on_recv(&mut self, slot: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.conns[slot as usize].recv_armed = false;
        }
        if res > 0 {
            // SAFETY: this completion of a recv on our ring is handled once, here.
            if let Some(buf) = unsafe { RecvBuf::from_completion(res, flags) } {
                if !self.conns[slot as usize].closing {
                    let data = self.bufs.data(&buf);
                    parse(&mut self.conns[slot as usize], data);
                }
                self.bufs.recycle(buf);
            }
        } else if res != -libc::ENOBUFS {
            // 0: the peer sent FIN (answer what is owed, then close); < 0: a socket
            // error (ECONNRESET, ECANCELED after our cancel): nothing more can be sent.
            let c = &mut self.conns[slot as usize];
            c.closing = true;
            if res < 0 {
                c.owed = 0;
                c.close_after = false;
                if c.ws == Ws::Owed {
                    // Not handed to a send yet, so it can go now.
                    c.ws = Ws::Idle;
                    c.partial = Vec::new();
                }
            }
        }
        let c = &self.conns[slot as usize];
        if !c.closing && !c.recv_armed {
            // Ended without MORE (ENOBUFS included): re-arm.
            self.arm_recv(slot);
        }
        self.mark(slot);
    }

    fn on_send(&mut self, slot: u32, res: i32) {
        let c = &mut self.conns[slot as usize];
        c.send_inflight = false;
        if res < 0 {
            c.out = (0, 0);
            c.owed = 0;
            c.close_after = false;
            c.closing = true;
            if c.ws != Ws::Http {
                // No send is in flight now: a 101 not yet out is dropped.
                c.ws = Ws::Idle;
                c.partial = Vec::new();
            }
        } else {
            c.out.0 += res as usize;
            if c.ws == Ws::Sending && c.out.0 >= c.out.1 {
                // The 101 is out: an idle connection keeps no buffer.
                c.ws = Ws::Idle;
                c.partial = Vec::new();
                c.out = (0, 0);
            }
        }
        self.mark(slot);
    }

    /// Queues `slot` for [`Floor::kick`] at the end of the pass, so all the answers owed
    /// by the recvs of one pass leave in one send (as lwsd's loop flushes once per pass).
    fn mark(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push((slot, c.generation));
        }
    }

    /// Starts the next send if none is in flight, or the close once nothing is left.
    fn kick(&mut self, slot: u32) {
        let ka = self.answers.ka;
        let total = self.answers.block.len();
        let c = &mut self.conns[slot as usize];
        if c.send_inflight {
            return;
        }
        if c.out.0 >= c.out.1 {
            if c.owed == 0 && c.ws == Ws::Owed {
                // The answers to the requests before the upgrade are out: the 101.
                c.ws = Ws::Sending;
                c.out = (0, c.partial.len());
            } else if c.owed == 0 && !c.close_after {
                if c.closing {
                    self.close(slot);
                }
                return;
            } else if c.close_after && c.owed <= MAX_BATCH {
                c.out = ((MAX_BATCH - c.owed) * ka, total);
                c.owed = 0;
                c.close_after = false;
            } else {
                let n = c.owed.min(MAX_BATCH);
                c.out = (0, n * ka);
                c.owed -= n;
            }
        }
        c.send_inflight = true;
        let (from, to) = c.out;
        let buf = if c.ws == Ws::Sending {
            &c.partial[from..to]
        } else {
            &self.answers.block[from..to]
        };
        let e = opcode::Send::new(types::Fd(c.fd), buf.as_ptr(), buf.len() as u32)
            .build()
            .user_data(token(OP_SEND, slot, c.generation));
        self.push(e);
    }

    /// Cancels the recv, then (once it has ended and no send is in flight) closes the
    /// socket with a ring Close op and frees the slot.
    fn close(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if c.recv_armed {
            if !c.cancel_sent {
                c.cancel_sent = true;
                let e = opcode::AsyncCancel::new(token(OP_RECV, slot, c.generation))
                    .build()
                    .user_data(token(OP_CANCEL, slot, c.generation));
                self.push(e);
            }
            return;
        }
        let fd = c.fd;
        c.fd = -1;
        c.generation = c.generation.wrapping_add(1);
        self.free.push(slot);
        let e = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(token(OP_CLOSE, slot, 0));
        self.push(e);
    }
}

/// Finds the complete requests in `data` (after any head kept from the last recv) and
/// counts the answers they are owed. What is kept between recvs never exceeds
/// [`MAX_PARTIAL`]; while joining, the buffer holds at most that plus one recv. Once a
/// request upgraded the connection, `partial` holds its 101 and everything received
/// (the rest of that recv included) is discarded.
fn parse(c: &mut Conn, data: &[u8]) {
    if c.ws != Ws::Http {
        return;
    }
    if c.partial.is_empty() {
        let used = parse_requests(c, data);
        let rest = data.get(used..).unwrap_or_default();
        if !c.closing && !rest.is_empty() {
            if rest.len() > MAX_PARTIAL {
                c.closing = true;
            } else {
                c.partial.extend_from_slice(rest);
            }
        }
    } else {
        let mut buf = std::mem::take(&mut c.partial);
        buf.extend_from_slice(data);
        let used = parse_requests(c, &buf);
        if c.ws != Ws::Http {
            // `c.partial` is the 101 now; the joined bytes are dropped.
            return;
        }
        buf.drain(..used.min(buf.len()));
        if c.closing || buf.len() > MAX_PARTIAL {
            c.closing = true;
            buf.clear();
        }
        c.partial = buf;
    }
}

/// Parses requests from `buf` until it ends or one asks to close or upgrades; returns the
/// bytes used.
fn parse_requests(c: &mut Conn, buf: &[u8]) -> usize {
    let mut off = 0;
    while let Some(rest) = buf.get(off..).filter(|r| !r.is_empty()) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => {
                off += n;
                if let Some(head) = upgrade_answer(&req) {
                    // What follows is WebSocket frames: not read.
                    c.partial = head;
                    c.ws = Ws::Owed;
                    return buf.len();
                }
                if wants_close(&req) {
                    // RFC 9112 9.6: the answer says `Connection: close`, then we close;
                    // whatever follows is not read.
                    c.close_after = true;
                    c.closing = true;
                    return buf.len();
                }
                c.owed += 1;
            }
            Ok(httparse::Status::Partial) => break,
            Err(_) => {
                c.closing = true;
                return buf.len();
            }
        }
    }
    off
}

/// RFC 9112 9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 closes unless
/// `Connection: keep-alive` (which the floor does not honour: lwsd would answer it with
/// a `Connection: keep-alive` header, which the fixed answers lack).
fn wants_close(req: &httparse::Request<'_, '_>) -> bool {
    if req.version == Some(0) {
        return true;
    }
    req.headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection") && has_token(h.value, b"close"))
}

/// The comma-separated elements of a list header (RFC 9110 5.6.1), trimmed, empty ones
/// skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn has_token(v: &[u8], tok: &[u8]) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(tok))
}

/// The 101 answer to a WebSocket upgrade (RFC 6455 4.2.1, as far as the floor checks:
/// GET, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, a non-empty
/// `Sec-WebSocket-Key`), or None for any other request. lwsd's own head, so the bytes
/// match lwsd's answer to lwsd-load (which offers no extension); the protocol echoed
/// is the first one offered (lwsd picks the first it serves).
fn upgrade_answer(req: &httparse::Request<'_, '_>) -> Option<Vec<u8>> {
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let (mut upgrade, mut connection) = (false, false);
    let mut key: Option<&[u8]> = None;
    let mut protocol: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, b"websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, b"upgrade");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            key = key.or(Some(h.value.trim_ascii()));
        } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = protocol.or_else(|| tokens(h.value).next());
        }
    }
    let key = key.filter(|k| !k.is_empty())?;
    if !(upgrade && connection) {
        return None;
    }
    // httparse allows no CR or LF in a value; a non-UTF-8 name is not echoed.
    let protocol = protocol.and_then(|p| std::str::from_utf8(p).ok());
    Some(server_response_head(&accept_key(key), protocol, None))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const USAGE: &str = "usage: lwsd-floor PORT FILE [--defer-accept SECS]";

/// The command line after the program name: PORT, FILE, then optionally
/// `--defer-accept SECS` (0: off, the default).
fn parse_args(args: &[String]) -> Result<(u16, &str, u32), String> {
    let (Some(port), Some(path)) = (args.first(), args.get(1)) else {
        return Err(USAGE.to_string());
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("lwsd-floor: bad PORT {port:?}\n{USAGE}"))?;
    let defer = match &args[2..] {
        [] => 0,
        [flag, secs] if flag == "--defer-accept" => secs.parse::<u32>().map_err(|_| {
            format!("lwsd-floor: --defer-accept wants whole seconds, not {secs:?}\n{USAGE}")
        })?,
        [flag] if flag == "--defer-accept" => {
            return Err(format!("lwsd-floor: --defer-accept needs SECS\n{USAGE}"));
        }
        [other, ..] => return Err(format!("lwsd-floor: unexpected {other:?}\n{USAGE}")),
    };
    Ok((port, path, defer))
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let (port, path, defer_secs) = parse_args(&args).unwrap_or_else(|msg| {
        eprintln!("{msg}");
        process::exit(2);
    });
    let fail = |what: &str, e: io::Error| -> ! {
        eprintln!("lwsd-floor: {what}: {e}");
        process::exit(1);
    };
    let body = fs::read(path).unwrap_or_else(|e| fail(path, e));
    let mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .map(unix_secs)
        .unwrap_or_else(|e| fail(path, e));
    let answers = Answers::new(path, &body, mtime, unix_secs(SystemTime::now()));
    // std sets SO_REUSEADDR on Unix listeners; the backlog is raised by a ring Listen op.
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| fail(&format!("bind 127.0.0.1:{port}"), e));
    if defer_secs > 0 {
        defer_accept(listener.as_fd(), defer_secs).unwrap_or_else(|e| fail("TCP_DEFER_ACCEPT", e));
    }
    let mut floor = Floor::new(listener, answers).unwrap_or_else(|e| fail("io_uring setup", e));
    if let Err(e) = floor.run() {
        fail("io_uring", e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers::new("x/favicon.ico", b"0123456789", 784_111_777, 1_700_000_000)
    }

    #[test]
    fn answer_block_layout() {
        let a = answers();
        let ka = &a.block[..a.ka];
        assert!(ka.starts_with(b"HTTP/1.1 200 OK\r\nServer: lwsd/0.1.0\r\nDate: "));
        assert!(ka.ends_with(b"\r\nAccept-Ranges: bytes\r\n\r\n0123456789"));
        let text = std::str::from_utf8(ka).unwrap();
        assert!(text.contains("\r\nContent-Length: 10\r\nContent-Type: image/"));
        assert!(text.contains("\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(!text.contains("Connection"));
        // Every keep-alive copy is identical; the closing answer is last and differs
        // only by its Connection header.
        for i in 0..MAX_BATCH {
            assert_eq!(&a.block[i * a.ka..(i + 1) * a.ka], ka);
        }
        let close = &a.block[MAX_BATCH * a.ka..];
        assert_eq!(close.len(), a.ka + b"Connection: close\r\n".len());
        assert!(
            std::str::from_utf8(close)
                .unwrap()
                .contains("\r\nContent-Length: 10\r\nConnection: close\r\nContent-Type: ")
        );
    }

    #[test]
    fn pipelined_split_and_close() {
        let req: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut c = Conn::default();
        let mut first = req.repeat(3);
        first.extend_from_slice(&req[..7]);
        parse(&mut c, &first);
        assert_eq!((c.owed, c.partial.len(), c.closing), (3, 7, false));
        let mut second = req[7..].to_vec();
        second.extend_from_slice(b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        second.extend_from_slice(req);
        parse(&mut c, &second);
        // The request after the closing one is not answered.
        assert_eq!((c.owed, c.close_after, c.closing), (4, true, true));
        assert!(c.partial.is_empty());
    }

    #[test]
    fn http10_closes_and_garbage_closes() {
        let mut c = Conn::default();
        parse(&mut c, b"GET / HTTP/1.0\r\n\r\n");
        assert!(c.close_after && c.closing && c.owed == 0);
        let mut c = Conn::default();
        parse(&mut c, b"\x00\x01 nonsense\r\n\r\n");
        assert!(c.closing && !c.close_after && c.owed == 0);
    }

    #[test]
    fn split_head_then_full_recv_of_requests() {
        let req: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let mut c = Conn::default();
        parse(&mut c, &req[..5]);
        let mut full = req[5..].to_vec();
        while full.len() + req.len() <= BUF_SIZE as usize {
            full.extend_from_slice(req);
        }
        let n = 1 + (full.len() - (req.len() - 5)) / req.len();
        parse(&mut c, &full);
        assert_eq!((c.owed, c.closing, c.partial.len()), (n, false, 0));
    }

    #[test]
    fn partial_head_is_bounded() {
        let mut c = Conn::default();
        let chunk = vec![b'a'; 1000];
        parse(&mut c, b"GET /");
        let mut fed = 5;
        while !c.closing {
            parse(&mut c, &chunk);
            fed += chunk.len();
            assert!(fed <= MAX_PARTIAL + chunk.len(), "kept {fed} bytes");
        }
        assert!(c.partial.len() <= MAX_PARTIAL);
        assert_eq!(c.owed, 0);
    }

    /// RFC 6455 section 1.3's example handshake.
    const RFC_UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    const RFC_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    #[test]
    fn upgrade_gets_101_with_rfc_accept_key() {
        let mut c = Conn::default();
        parse(&mut c, RFC_UPGRADE);
        assert_eq!(c.ws, Ws::Owed);
        assert_eq!(c.partial, RFC_101);
        assert_eq!((c.owed, c.close_after, c.closing), (0, false, false));
        // Tokens in any case, among others, and lwsd's own bytes.
        let mut c = Conn::default();
        parse(
            &mut c,
            b"GET / HTTP/1.1\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
              sec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\n\r\n",
        );
        assert_eq!(c.ws, Ws::Owed);
        assert_eq!(c.partial, RFC_101);
        let lwsd = server_response_head(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), None, None);
        assert_eq!(c.partial, lwsd);
    }

    #[test]
    fn upgrade_echoes_first_offered_protocol() {
        let req = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Protocol: lws-mirror-protocol, chat\r\n\
            Sec-WebSocket-Protocol: superchat\r\n\r\n";
        let mut c = Conn::default();
        parse(&mut c, req);
        assert_eq!(c.ws, Ws::Owed);
        let want = server_response_head(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            Some("lws-mirror-protocol"),
            None,
        );
        assert_eq!(c.partial, want);
        let text = std::str::from_utf8(&c.partial).unwrap();
        assert!(text.ends_with(
            "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: lws-mirror-protocol\r\n\r\n"
        ));
        assert!(!text.contains("chat"));
    }

    #[test]
    fn request_without_upgrade_answered_as_before() {
        let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let not_upgrades = [
            format!("GET / HTTP/1.1\r\nConnection: Upgrade\r\n{key}\r\n"),
            format!("GET / HTTP/1.1\r\nUpgrade: websocket\r\n{key}\r\n"),
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".into(),
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: \r\n\r\n"
                .into(),
            format!("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n{key}\r\n"),
            format!("GET / HTTP/1.1\r\nUpgrade: websocketx\r\nConnection: Upgrades\r\n{key}\r\n"),
            format!("POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}\r\n"),
        ];
        for req in &not_upgrades {
            let mut c = Conn::default();
            parse(&mut c, req.repeat(2).as_bytes());
            assert_eq!((c.ws, c.owed, c.closing), (Ws::Http, 2, false), "{req}");
            assert!(c.partial.is_empty());
        }
        // HTTP/1.0 with the upgrade headers: the closing answer, as before.
        let mut c = Conn::default();
        parse(
            &mut c,
            format!("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}\r\n")
                .as_bytes(),
        );
        assert_eq!(
            (c.ws, c.owed, c.close_after, c.closing),
            (Ws::Http, 0, true, true)
        );
    }

    #[test]
    fn data_after_101_discarded_and_bounded() {
        // Requests before the upgrade are answered first; the frames after it in the same
        // recv, and every later recv, are dropped: nothing is kept but the 101.
        let mut c = Conn::default();
        let mut first = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n".to_vec();
        first.extend_from_slice(RFC_UPGRADE);
        first.extend_from_slice(
            b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58GET / HTTP/1.1\r\n\r\n",
        );
        parse(&mut c, &first);
        assert_eq!((c.ws, c.owed, c.closing), (Ws::Owed, 2, false));
        assert_eq!(c.partial, RFC_101);
        let chunk = vec![0x82u8; BUF_SIZE as usize];
        for _ in 0..1000 {
            parse(&mut c, &chunk);
            parse(&mut c, b"GET / HTTP/1.1\r\n\r\n");
        }
        assert_eq!(
            (c.ws, c.owed, c.close_after, c.closing),
            (Ws::Owed, 2, false, false)
        );
        assert_eq!(c.partial, RFC_101);
        // An upgrade head cut by a recv boundary: joined, answered, the rest dropped.
        let mut c = Conn::default();
        parse(&mut c, &RFC_UPGRADE[..40]);
        assert_eq!(c.partial.len(), 40);
        let mut rest = RFC_UPGRADE[40..].to_vec();
        rest.extend_from_slice(&chunk);
        parse(&mut c, &rest);
        assert_eq!((c.ws, c.owed, c.closing), (Ws::Owed, 0, false));
        assert_eq!(c.partial, RFC_101);
        // Once idle (101 sent, buffer freed) nothing is kept either.
        c.ws = Ws::Idle;
        c.partial = Vec::new();
        parse(&mut c, &chunk);
        assert_eq!((c.partial.capacity(), c.owed, c.closing), (0, 0, false));
    }

    #[test]
    fn conn_stays_small() {
        // The idle-memory comparison counts this per connection: 64 bytes before the
        // WebSocket mode too (`Ws` sits in the padding).
        assert!(
            std::mem::size_of::<Conn>() <= 64,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }

    #[test]
    fn command_line() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(parse_args(&args("7950 f")), Ok((7950, "f", 0)));
        assert_eq!(
            parse_args(&args("7950 f --defer-accept 1")),
            Ok((7950, "f", 1))
        );
        for bad in [
            "7950",
            "x f",
            "7950 f --defer-accept",
            "7950 f --defer-accept -1",
            "7950 f --defer 1",
            "7950 f --defer-accept 1 x",
        ] {
            let e = parse_args(&args(bad)).unwrap_err();
            assert!(e.ends_with(USAGE), "{bad}: {e}");
        }
    }

    /// The whole loop over loopback: keep-alive answers, then the 101 after them on the
    /// same connection, input after it ignored while the connection stays open, EOF
    /// closes it; TCP_DEFER_ACCEPT set on the listener.
    #[test]
    fn loopback_upgrade_then_idle() {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        use std::time::Duration;

        let a = answers();
        let ka = a.block[..a.ka].to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        defer_accept(listener.as_fd(), 1).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut floor = Floor::new(listener, a).expect("io_uring setup");
            floor.run().expect("io_uring");
        });
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        };
        let read_n = |s: &mut TcpStream, n: usize| {
            let mut b = vec![0; n];
            s.read_exact(&mut b).unwrap();
            b
        };

        let mut ws = connect();
        let mut req = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        req.extend_from_slice(RFC_UPGRADE);
        ws.write_all(&req).unwrap();
        assert_eq!(read_n(&mut ws, ka.len()), ka);
        assert_eq!(read_n(&mut ws, RFC_101.len()), RFC_101);
        ws.write_all(&vec![0x81; 64 * 1024]).unwrap();
        ws.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();

        // Another connection is answered meanwhile.
        let mut http = connect();
        http.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_n(&mut http, ka.len()), ka);

        // Nothing came back on the WebSocket, and it is still open.
        ws.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        let e = ws.read(&mut b).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        // EOF from the client: the floor closes.
        ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ws.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(ws.read(&mut b).unwrap(), 0);
    }
}
