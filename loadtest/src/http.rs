//! The HTTP/1.1 load (wrk-like): C connections each keep `pipeline` GET requests in
//! flight on a keep-alive connection, or (`close`) send one request with
//! `Connection: close` and reconnect after each response.
//!
//! [`RespParser`] is a sans-IO response reader: heads parsed with httparse, bodies
//! skipped without being buffered, framed by Content-Length, chunked coding (RFC 9112
//! section 7.1) or the close of the connection (RFC 9112 section 6.3, rule 8); 1xx
//! interim responses are skipped (RFC 9110 section 15.2). Only a head or a chunk-size
//! line cut by a read is kept, bounded by [`MAX_RESPONSE_HEAD`].

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::live::Shared;
use crate::pacer::Pacer;
use crate::spec::{Rate, Target};
use crate::stats::Stats;
use crate::sys::{Clock, OutQueue, err_name, start_connect};

/// Largest response head (or cut chunk-size line plus trailers) kept across reads:
/// 16 KiB is above what real servers send (nginx answers with well under 1 KiB).
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Header lines parsed per response.
const MAX_RESPONSE_HEADERS: usize = 64;
/// Requests in flight per connection at most (`--pipeline`): each costs one entry of
/// send time; 1024 is far beyond what any server pipelines usefully.
pub const MAX_PIPELINE: usize = 1024;
const SCRATCH: usize = 64 * 1024;
const RAMP_BURST: u64 = 256;
const MAX_WAIT_MS: u64 = 50;
const EVENTS: usize = 1024;

/// The options of an HTTP run.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub target: Target,
    pub addr: SocketAddr,
    pub conns: usize,
    pub threads: usize,
    pub ramp: Rate,
    pub duration: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight per connection (1: plain keep-alive).
    pub pipeline: usize,
    /// `Connection: close` and a new connection per request.
    pub close: bool,
    pub max_requests: Option<u64>,
    pub src_ips: Vec<Ipv4Addr>,
}

impl HttpOptions {
    /// The request, encoded once and shared by every send.
    pub fn request(&self) -> Bytes {
        let conn = if self.close {
            "Connection: close\r\n"
        } else {
            ""
        };
        Bytes::from(format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lwsd-load\r\n{conn}\r\n",
            self.target.path, self.target.host_header
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Waiting for a status line and headers.
    Head,
    /// Content-Length bytes left.
    Length(u64),
    /// Chunked: a chunk-size line is next.
    ChunkSize,
    /// Chunked: data bytes left in the chunk, then its CRLF.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data (bytes of it left).
    ChunkCrlf(u8),
    /// Chunked: trailer lines until an empty one.
    Trailer,
    /// No framing: the body ends when the server closes.
    UntilClose,
}

/// A sans-IO HTTP/1.1 response reader for a connection. See the module docs.
#[derive(Debug)]
pub struct RespParser {
    state: Body,
    status: u16,
    /// Bytes of a head or line cut by a read.
    stash: Vec<u8>,
}

impl Default for RespParser {
    fn default() -> Self {
        RespParser {
            state: Body::Head,
            status: 0,
            stash: Vec::new(),
        }
    }
}

/// Parse outcome of one slice.
enum Need {
    /// Consumed this many bytes; go on.
    Used(usize),
    /// The rest is an incomplete head or line.
    More,
}

impl RespParser {
    /// Feed received bytes; `on_response(status, bytes)` is called for each complete
    /// final response.
    pub fn feed(&mut self, data: &[u8], mut on_response: impl FnMut(u16)) -> Result<(), String> {
        if self.stash.is_empty() {
            let used = self.run(data, &mut on_response)?;
            let rest = &data[used..];
            if rest.len() > MAX_RESPONSE_HEAD {
                return Err("response head too large".into());
            }
            self.stash.extend_from_slice(rest);
        } else {
            let mut buf = std::mem::take(&mut self.stash);
            buf.extend_from_slice(data);
            let used = self.run(&buf, &mut on_response)?;
            buf.drain(..used);
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err("response head too large".into());
            }
            self.stash = buf;
        }
        Ok(())
    }

    /// The server closed: a body framed by the close ends here.
    pub fn eof(&mut self, mut on_response: impl FnMut(u16)) -> Result<(), String> {
        match self.state {
            Body::UntilClose => {
                on_response(self.status);
                self.state = Body::Head;
                Ok(())
            }
            Body::Head if self.stash.is_empty() => Ok(()),
            _ => Err("response cut by the close".into()),
        }
    }

    /// True between responses (nothing partial held).
    pub fn idle(&self) -> bool {
        self.state == Body::Head && self.stash.is_empty()
    }

    fn run(&mut self, data: &[u8], on_response: &mut impl FnMut(u16)) -> Result<usize, String> {
        let mut pos = 0;
        while pos < data.len() {
            match self.step(&data[pos..], on_response)? {
                Need::Used(n) => pos += n,
                Need::More => break,
            }
        }
        Ok(pos)
    }

    fn step(&mut self, d: &[u8], on_response: &mut impl FnMut(u16)) -> Result<Need, String> {
        match self.state {
            Body::Head => {
                let mut hdrs = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
                let mut r = httparse::Response::new(&mut hdrs);
                let n = match r.parse(d) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) => return Ok(Need::More),
                    Err(e) => return Err(format!("bad response head ({e})")),
                };
                let status = r.code.unwrap_or(0);
                // RFC 9110 15.2: interim responses precede the final one.
                if (100..200).contains(&status) {
                    return Ok(Need::Used(n));
                }
                let mut length = None;
                let mut chunked = false;
                for h in r.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .ok_or("bad Content-Length")?;
                        length = Some(v);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h
                            .value
                            .split(|b| *b == b',')
                            .next_back()
                            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                    }
                }
                self.status = status;
                // RFC 9112 6.3: no body for 204 and 304; chunked wins over a length.
                self.state = if status == 204 || status == 304 {
                    Body::Length(0)
                } else if chunked {
                    Body::ChunkSize
                } else {
                    match length {
                        Some(l) => Body::Length(l),
                        None => Body::UntilClose,
                    }
                };
                if self.state == Body::Length(0) {
                    self.state = Body::Head;
                    on_response(status);
                }
                Ok(Need::Used(n))
            }
            Body::Length(left) => {
                let take = left.min(d.len() as u64);
                if take == left {
                    self.state = Body::Head;
                    on_response(self.status);
                } else {
                    self.state = Body::Length(left - take);
                }
                Ok(Need::Used(take as usize))
            }
            Body::UntilClose => Ok(Need::Used(d.len())),
            Body::ChunkSize => match httparse::parse_chunk_size(d) {
                Ok(httparse::Status::Complete((n, 0))) => {
                    self.state = Body::Trailer;
                    Ok(Need::Used(n))
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    self.state = Body::ChunkData(size);
                    Ok(Need::Used(n))
                }
                Ok(httparse::Status::Partial) => Ok(Need::More),
                Err(_) => Err("bad chunk size".into()),
            },
            Body::ChunkData(left) => {
                let take = left.min(d.len() as u64);
                self.state = if take == left {
                    Body::ChunkCrlf(2)
                } else {
                    Body::ChunkData(left - take)
                };
                Ok(Need::Used(take as usize))
            }
            Body::ChunkCrlf(left) => {
                let want: &[u8] = if left == 2 { b"\r\n" } else { b"\n" };
                let take = want.len().min(d.len());
                if d[..take] != want[..take] {
                    return Err("bad chunk end".into());
                }
                self.state = if take == want.len() {
                    Body::ChunkSize
                } else {
                    Body::ChunkCrlf(left - take as u8)
                };
                Ok(Need::Used(take))
            }
            Body::Trailer => {
                // Trailer fields, then an empty line (RFC 9112 7.1.2).
                let Some(i) = d.iter().position(|b| *b == b'\n') else {
                    return Ok(Need::More);
                };
                if d[..i].trim_ascii().is_empty() {
                    self.state = Body::Head;
                    on_response(self.status);
                }
                Ok(Need::Used(i + 1))
            }
        }
    }
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Open,
    Dead,
}

struct Conn {
    sock: Option<TcpStream>,
    phase: Phase,
    t0: u64,
    out: OutQueue,
    /// Send times of the requests in flight, oldest first.
    inflight: VecDeque<u64>,
    parser: RespParser,
}

/// Run one thread's share of the connections until the run ends.
pub fn run_thread(o: &HttpOptions, tid: usize, shared: &Shared, clock: Clock) -> Stats {
    let mut stats = Stats::default();
    let epoll = match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(e) => e,
        Err(e) => {
            stats.error(format!("epoll: {e}"));
            return stats;
        }
    };
    let threads = o.threads.max(1);
    let n = o.conns / threads + usize::from(tid < o.conns % threads);
    let mut w = Worker {
        o,
        shared,
        clock,
        stats,
        epoll,
        conns: Vec::with_capacity(n),
        request: o.request(),
        scratch: vec![0; SCRATCH],
        tid,
        timeouts: VecDeque::new(),
        published: 0,
        opens: 0,
    };
    let mut pacer = Pacer::new(0, o.ramp.split(threads).interval_ns(), n as u64);
    let end = o.duration.as_nanos() as u64;
    let mut events = vec![EpollEvent::empty(); EVENTS];
    loop {
        let now = clock.now_ns();
        let reached = o
            .max_requests
            .is_some_and(|m| shared.msgs_recv.load(Relaxed) >= m);
        if now >= end || shared.stop.load(Relaxed) || reached {
            shared.request_stop(now);
            break;
        }
        for _ in 0..pacer.take(now, RAMP_BURST) {
            let slot = w.conns.len();
            w.conns.push(Conn {
                sock: None,
                phase: Phase::Dead,
                t0: now,
                out: OutQueue::default(),
                inflight: VecDeque::new(),
                parser: RespParser::default(),
            });
            w.connect(slot, now);
        }
        w.check_timeouts(now);
        let sh = w.stats.status.values().sum::<u64>();
        shared.msgs_recv.fetch_add(sh - w.published, Relaxed);
        w.published = sh;
        let wake = pacer.next_at().unwrap_or(u64::MAX).min(end);
        let ms = wake
            .saturating_sub(now)
            .div_ceil(1_000_000)
            .min(MAX_WAIT_MS);
        let k = w.epoll.wait(&mut events, ms as u16).unwrap_or(0);
        for ev in events.iter().take(k) {
            w.on_event(ev.data() as usize, ev.events());
        }
    }
    // Requests still in flight at the end are neither answered nor errors.
    for c in &mut w.conns {
        c.sock = None;
    }
    shared.done.fetch_add(1, Relaxed);
    w.stats
}

struct Worker<'a> {
    o: &'a HttpOptions,
    shared: &'a Shared,
    clock: Clock,
    stats: Stats,
    epoll: Epoll,
    conns: Vec<Conn>,
    request: Bytes,
    scratch: Vec<u8>,
    tid: usize,
    /// (deadline, slot, open number) of connects in progress, in deadline order.
    timeouts: VecDeque<(u64, usize, u64)>,
    published: u64,
    /// Connections opened by this thread (a connect's identity for its timeout).
    opens: u64,
}

impl Worker<'_> {
    fn connect(&mut self, slot: usize, now: u64) {
        let o = self.o;
        let src = (!o.src_ips.is_empty())
            .then(|| o.src_ips[(self.tid + self.opens as usize) % o.src_ips.len()]);
        self.opens += 1;
        self.stats.attempted += 1;
        self.shared.attempted.fetch_add(1, Relaxed);
        let r = start_connect(o.addr, src).and_then(|s| {
            let flags = EpollFlags::EPOLLIN
                | EpollFlags::EPOLLOUT
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLET;
            self.epoll.add(&s, EpollEvent::new(flags, slot as u64))?;
            Ok(s)
        });
        let c = &mut self.conns[slot];
        c.t0 = now;
        c.out = OutQueue::default();
        c.inflight.clear();
        c.parser = RespParser::default();
        match r {
            Ok(s) => {
                c.sock = Some(s);
                c.phase = Phase::Connecting;
                let deadline = now + o.connect_timeout.as_nanos() as u64;
                self.timeouts.push_back((deadline, slot, self.opens));
            }
            Err(e) => {
                c.phase = Phase::Dead;
                self.stats.failed += 1;
                self.shared.failed.fetch_add(1, Relaxed);
                self.stats.error(format!("connect: {}", err_name(&e)));
            }
        }
    }

    fn check_timeouts(&mut self, now: u64) {
        while let Some(&(deadline, slot, _)) = self.timeouts.front() {
            if deadline > now {
                break;
            }
            self.timeouts.pop_front();
            if matches!(self.conns[slot].phase, Phase::Connecting)
                && now.saturating_sub(self.conns[slot].t0)
                    >= self.o.connect_timeout.as_nanos() as u64
            {
                self.fail(slot, "connect timeout".into());
            }
        }
    }

    fn fail(&mut self, slot: usize, e: String) {
        let c = &mut self.conns[slot];
        if matches!(c.phase, Phase::Connecting) {
            self.stats.failed += 1;
            self.shared.failed.fetch_add(1, Relaxed);
        }
        c.sock = None;
        c.phase = Phase::Dead;
        self.stats.error(e);
    }

    fn send_requests(&mut self, slot: usize, now: u64) {
        let depth = if self.o.close {
            1
        } else {
            self.o.pipeline.clamp(1, MAX_PIPELINE)
        };
        let c = &mut self.conns[slot];
        while c.inflight.len() < depth {
            c.out.push(self.request.clone());
            c.inflight.push_back(now);
        }
    }

    fn on_event(&mut self, slot: usize, flags: EpollFlags) {
        let now = self.clock.now_ns();
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        match c.phase {
            Phase::Dead => return,
            Phase::Connecting => {
                let err = match c.sock.as_ref().map(|s| s.take_error()) {
                    Some(Ok(None)) => None,
                    Some(Ok(Some(e)) | Err(e)) => Some(format!("connect: {}", err_name(&e))),
                    None => return,
                };
                if let Some(e) = err {
                    return self.fail(slot, e);
                }
                if !flags.contains(EpollFlags::EPOLLOUT) {
                    return;
                }
                c.phase = Phase::Open;
                self.stats.connect.record((now - c.t0) / 1000);
                self.stats.established += 1;
                self.shared.established.fetch_add(1, Relaxed);
                self.send_requests(slot, now);
            }
            Phase::Open => {}
        }
        if let Err(e) = self.pump(slot, now) {
            self.fail(slot, e);
        }
    }

    /// Write what is queued, read every response available, refill the pipeline.
    fn pump(&mut self, slot: usize, now: u64) -> Result<(), String> {
        loop {
            let c = &mut self.conns[slot];
            let Some(sock) = c.sock.as_mut() else {
                return Ok(());
            };
            if !c.out.is_empty() {
                c.out
                    .flush(sock)
                    .map_err(|e| format!("write: {}", err_name(&e)))?;
            }
            let n = match sock.read(&mut self.scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {}", err_name(&e))),
            };
            self.stats.bytes_recv += n as u64;
            let stats = &mut self.stats;
            let inflight = &mut c.inflight;
            let mut answered = 0u32;
            let mut on_response = |status: u16| {
                *stats.status.entry(status).or_default() += 1;
                if let Some(t) = inflight.pop_front() {
                    stats.request.record(now.saturating_sub(t) / 1000);
                }
                answered += 1;
            };
            if n == 0 {
                c.parser.eof(&mut on_response)?;
                let closed_cleanly = c.parser.idle() && c.inflight.is_empty();
                c.sock = None;
                if self.o.close && closed_cleanly {
                    // Connection: close: the next request on a new connection.
                    self.connect(slot, now);
                    return Ok(());
                }
                return Err("server closed the connection".into());
            }
            c.parser.feed(&self.scratch[..n], &mut on_response)?;
            if answered > 0 && !self.o.close {
                self.send_requests(slot, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], split: usize) -> Result<Vec<u16>, String> {
        let mut p = RespParser::default();
        let mut got = vec![];
        let (a, b) = input.split_at(split.min(input.len()));
        p.feed(a, |s| got.push(s))?;
        p.feed(b, |s| got.push(s))?;
        Ok(got)
    }

    #[test]
    fn responses_at_every_split() {
        let stream = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        for split in 0..=stream.len() {
            assert_eq!(
                parse_all(stream, split).unwrap(),
                vec![200, 204, 404, 304, 200],
                "split at {split}"
            );
        }
    }

    #[test]
    fn body_until_close() {
        let mut p = RespParser::default();
        let mut got = vec![];
        p.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body", |s| got.push(s))
            .unwrap();
        assert!(got.is_empty());
        p.eof(|s| got.push(s)).unwrap();
        assert_eq!(got, vec![200]);
        let mut p = RespParser::default();
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", |_| {})
            .unwrap();
        assert!(p.eof(|_| {}).is_err());
    }

    #[test]
    fn bad_and_oversized() {
        let mut p = RespParser::default();
        assert!(p.feed(b"HTTX/1.1 200 OK\r\n\r\n", |_| {}).is_err());
        let mut p = RespParser::default();
        assert!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", |_| {})
                .is_err()
        );
        let mut p = RespParser::default();
        assert!(
            p.feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                |_| {}
            )
            .is_err()
        );
        let mut p = RespParser::default();
        assert!(
            p.feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX",
                |_| {}
            )
            .is_err()
        );
        // A head that never ends stops at the limit.
        let mut p = RespParser::default();
        p.feed(b"HTTP/1.1 200 OK\r\nX-Filler: ", |_| {}).unwrap();
        let piece = [b'a'; 1000];
        let mut fed = 0;
        let err = loop {
            match p.feed(&piece, |_| {}) {
                Ok(()) => fed += piece.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_RESPONSE_HEAD + piece.len(), "no limit");
        };
        assert!(err.contains("too large"), "{err}");
        assert!(fed >= MAX_RESPONSE_HEAD - 2 * piece.len(), "{fed}");
    }

    #[test]
    fn request_bytes() {
        let o = HttpOptions {
            target: crate::spec::parse_url("http://127.0.0.1:8080/x").unwrap(),
            addr: "127.0.0.1:8080".parse().unwrap(),
            conns: 1,
            threads: 1,
            ramp: crate::spec::parse_rate("1/s").unwrap(),
            duration: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            pipeline: 1,
            close: true,
            max_requests: None,
            src_ips: vec![],
        };
        assert_eq!(
            &o.request()[..],
            b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: lwsd-load\r\nConnection: close\r\n\r\n"
        );
    }
}
