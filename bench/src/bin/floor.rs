//! `lwsd-floor PORT FILE`: the floor of HTTP/1.1 CPU per request, a benchmark reference,
//! not a server.
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
//! (lwsd's own [`BufRing`], so the kernel side is identical), each request parsed with
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
//! Not a server: any method and path get the file; request bodies are not read (a
//! request with a body is misparsed); no timeouts, no error statuses (bad input closes
//! the connection), no connection limit. The only bound is the one that keeps memory
//! bounded on peer input: a request head cut by a recv boundary is kept up to
//! [`MAX_PARTIAL`] bytes.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs, io, process};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use lwsd_worker::mount::file::validators::file_etag;
use lwsd_worker::mount::mime::mime_for;
use lwsd_worker::roles::h1::fmt_http_date;
use lwsd_worker::service::bufring::BufRing;

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
    /// The part of the answer block the current send has not sent yet.
    out: (usize, usize),
    /// A request head cut by the end of a recv (at most `MAX_PARTIAL` bytes).
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
        // nor dropped while the ring lives; accept, listen, cancel and close carry no
        // pointers.
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
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.recycle(bid);
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
            if let Some(bid) = cqueue::buffer_select(flags) {
                if !self.conns[slot as usize].closing {
                    let data = self.bufs.data(bid, res as usize);
                    parse(&mut self.conns[slot as usize], data);
                }
                self.bufs.recycle(bid);
            }
        } else if res != -libc::ENOBUFS {
            // 0: the peer sent FIN (answer what is owed, then close); < 0: a socket
            // error (ECONNRESET, ECANCELED after our cancel): nothing more can be sent.
            let c = &mut self.conns[slot as usize];
            c.closing = true;
            if res < 0 {
                c.owed = 0;
                c.close_after = false;
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
        } else {
            c.out.0 += res as usize;
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
            if c.owed == 0 && !c.close_after {
                if c.closing {
                    self.close(slot);
                }
                return;
            }
            if c.close_after && c.owed <= MAX_BATCH {
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
        let buf = &self.answers.block[from..to];
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
/// [`MAX_PARTIAL`]; while joining, the buffer holds at most that plus one recv.
fn parse(c: &mut Conn, data: &[u8]) {
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
        buf.drain(..used.min(buf.len()));
        if c.closing || buf.len() > MAX_PARTIAL {
            c.closing = true;
            buf.clear();
        }
        c.partial = buf;
    }
}

/// Parses requests from `buf` until it ends or one asks to close; returns the bytes used.
fn parse_requests(c: &mut Conn, buf: &[u8]) -> usize {
    let mut off = 0;
    while let Some(rest) = buf.get(off..).filter(|r| !r.is_empty()) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => {
                off += n;
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
    req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let (Some(port), Some(path)) = (args.get(1).and_then(|p| p.parse::<u16>().ok()), args.get(2))
    else {
        eprintln!("usage: lwsd-floor PORT FILE");
        process::exit(2);
    };
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
}
