//! The WebSocket load: many client connections on one epoll loop per thread, each
//! driven by lwsd's own sans-IO client state machine (`lwsd_worker::roles::ws`:
//! [`client_request`], [`client_validate`], [`WsConn`]).
//!
//! A connection goes Connecting (non-blocking connect) → Handshaking (RFC 6455 section
//! 4.1: the GET is sent, the 101 is read with httparse and validated) → Ws (frames) →
//! Dead. Connections are opened at a bounded rate ([`Pacer`]); messages are sent from
//! a timer heap (one entry per sending connection); received bytes are read into one
//! scratch buffer per thread and handed to [`WsConn::feed`], which unmasks nothing
//! (server frames are unmasked, section 5.1) and delivers payload slices in place, so
//! the per-connection state is the `WsConn`, a small output queue and the first
//! [`payload::HEADER_LEN`] bytes of the message being received.
//!
//! Every phase is bounded in time: connect and handshake by `connect_timeout`, the run
//! by its duration (fan-out: by the ramp bound plus the send phase plus a drain), the
//! closing handshake (section 7.1.2) by [`CLOSE_WAIT_NS`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use lwsd_worker::roles::ws::{
    DataKind, Event, WsConfig, WsConn, WsState, client_key, client_request, client_validate,
};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::live::Shared;
use crate::pacer::Pacer;
use crate::payload::{self, HEADER_LEN, Stamp};
use crate::spec::{Rate, Target};
use crate::stats::Stats;
use crate::sys::{Clock, OutQueue, err_name, start_connect};

/// Largest 101 response head accepted: real ones are ~200 bytes; 8 KiB is the usual
/// server limit for a head (nginx's large_client_header_buffers), so a server sending
/// more is broken and the connection is failed instead of buffering on.
pub const MAX_HANDSHAKE_HEAD: usize = 8 * 1024;
/// Header lines parsed in a 101 response: a handful are needed; 32 leaves room for a
/// proxy's additions.
const MAX_RESPONSE_HEADERS: usize = 32;
/// Unsent bytes per connection above which a due message is skipped (counted as
/// `sends_skipped`) rather than queued: a server that stops reading must not grow
/// the load generator's memory; 64 KiB is a few socket buffers' worth.
pub const MAX_UNSENT: usize = 64 * 1024;
/// The per-thread receive buffer: one read takes up to this much; 64 KiB drains a
/// loopback socket buffer in a read or two.
const SCRATCH: usize = 64 * 1024;
/// Connections opened per loop pass at most, so a late loop that owes many opens still
/// services its sockets in between.
const RAMP_BURST: u64 = 256;
/// Longest epoll wait: stop requests, the fan-out start and the end of the run are
/// noticed within this time.
const MAX_WAIT_MS: u64 = 50;
/// epoll events fetched per wait.
const EVENTS: usize = 1024;
/// Time for the closing handshake at the end of the run (section 7.1.2: the client
/// waits for the server's Close before dropping the TCP connection).
pub const CLOSE_WAIT_NS: u64 = 2_000_000_000;
/// After the send phase (fan-out, and `ws --send-rate`), keep receiving until nothing
/// arrived for this long (loopback answers take well under a millisecond)...
const DRAIN_QUIET_NS: u64 = 300_000_000;
/// ...but no longer than this: messages still in flight then count as lost.
const DRAIN_MAX_NS: u64 = 3_000_000_000;
/// Fan-out senders whose sequence numbers every receiver tracks (4 bytes each per
/// connection); with more senders, ordering is not checked.
const MAX_TRACKED_SENDERS: usize = 64;
/// A sender this far behind its schedule drops the backlog instead of bursting it.
const MAX_SEND_LAG_NS: u64 = 1_000_000_000;

/// What the connections do once open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// Receive only (e.g. dumb-increment's counter); stop at the duration or after
    /// `max_messages`.
    Listen,
    /// Send nothing and ignore `max_messages`: hold idle connections until the
    /// duration ends (idle-memory measurement).
    Hold,
    /// Every connection sends `size`-byte messages at `rate`.
    Each { rate: Rate, size: usize },
    /// Mirror fan-out: once every connection is up, connections `0..senders` each send
    /// at `rate` for the duration; all of them receive.
    Fanout {
        senders: usize,
        rate: Rate,
        size: usize,
    },
}

/// The options of a WebSocket run.
#[derive(Debug, Clone)]
pub struct WsOptions {
    pub target: Target,
    pub addr: SocketAddr,
    /// Subprotocols offered, in preference order (section 4.1 item 10).
    pub protocols: Vec<String>,
    pub origin: Option<String>,
    /// Connections in total, over all threads.
    pub conns: usize,
    pub threads: usize,
    /// Connection opening rate, in total.
    pub ramp: Rate,
    pub duration: Duration,
    pub max_messages: Option<u64>,
    /// Bound on TCP connect plus the opening handshake.
    pub connect_timeout: Duration,
    /// Source addresses to spread connections over (empty: the kernel's choice).
    pub src_ips: Vec<Ipv4Addr>,
    pub traffic: Traffic,
    /// Send binary frames (default text: the payload is ASCII).
    pub binary: bool,
}

impl WsOptions {
    /// The latest time the traffic phase may end, relative to the start: every phase
    /// before it is bounded (ramp, connect timeout, duration, fan-out drain); the
    /// drain and the closing handshake after it add at most DRAIN_MAX + CLOSE_WAIT.
    pub fn hard_end_ns(&self) -> u64 {
        let ramp = self.conns as f64 / self.ramp.per_sec;
        let secs = ramp
            + self.connect_timeout.as_secs_f64()
            + self.duration.as_secs_f64()
            + (DRAIN_MAX_NS + CLOSE_WAIT_NS) as f64 / 1e9
            + 1.0;
        (secs * 1e9) as u64
    }
}

enum Phase {
    Connecting,
    Handshaking {
        key: String,
        head: Vec<u8>,
    },
    /// Boxed: the client state is ~300 bytes, the other phases a few words.
    Ws(Box<WsConn>),
    Dead,
}

struct Conn {
    gidx: u32,
    sock: Option<TcpStream>,
    phase: Phase,
    /// When connect() was called (ns).
    t0: u64,
    out: OutQueue,
    seq: u32,
    /// We sent our Close (end of run).
    closing: bool,
    /// The connection's output is full and input is held back in `stash`.
    blocked: bool,
    stash: Vec<u8>,
    /// The first bytes of the message being received (its stamp).
    head: [u8; HEADER_LEN],
    head_len: u8,
    /// Fan-out: the last sequence number seen from each sender (`u32::MAX`: none).
    last_seq: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Send,
    Timeout,
}

/// Per-thread state other than the connections (so a connection and this can be
/// borrowed together).
struct Ctx<'a> {
    o: &'a WsOptions,
    shared: &'a Shared,
    clock: Clock,
    stats: Stats,
    timers: BinaryHeap<Reverse<(u64, u32, TimerKind)>>,
    seed: u64,
    offered: Vec<&'a str>,
    last_rx_ns: u64,
}

/// splitmix64 (Steele, Lea, Flood 2014): per-connection keys and mask seeds.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Spread of first sends over one interval, so connections opened together do not
/// send together: the golden-ratio sequence of the connection number.
fn phase_offset(gidx: u32, interval_ns: u64) -> u64 {
    let frac =
        (u64::from(gidx).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
    (frac * interval_ns as f64) as u64
}

/// Run one thread's share of the connections (global numbers `tid`, `tid + threads`,
/// ...) until the run ends; returns what it counted.
pub fn run_thread(o: &WsOptions, tid: usize, shared: &Shared, clock: Clock) -> Stats {
    let mut w = match Worker::new(o, tid, shared, clock) {
        Ok(w) => w,
        Err(e) => {
            let mut s = Stats::default();
            s.error(format!("epoll: {}", err_name(&e)));
            return s;
        }
    };
    w.run();
    shared.done.fetch_add(1, Relaxed);
    w.ctx.stats
}

struct Worker<'a> {
    ctx: Ctx<'a>,
    conns: Vec<Conn>,
    epoll: Epoll,
    pacer: Pacer,
    tid: usize,
    scratch: Vec<u8>,
    live: usize,
    fanout_scheduled: bool,
    published_recv: u64,
    published_sent: u64,
}

impl<'a> Worker<'a> {
    fn new(o: &'a WsOptions, tid: usize, shared: &'a Shared, clock: Clock) -> io::Result<Self> {
        let threads = o.threads.max(1);
        let n = o.conns / threads + usize::from(tid < o.conns % threads);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let seed = RandomState::new().build_hasher().finish();
        Ok(Worker {
            ctx: Ctx {
                o,
                shared,
                clock,
                stats: Stats::default(),
                timers: BinaryHeap::new(),
                seed,
                offered: o.protocols.iter().map(String::as_str).collect(),
                last_rx_ns: 0,
            },
            conns: Vec::with_capacity(n),
            epoll,
            pacer: Pacer::new(0, o.ramp.split(threads).interval_ns(), n as u64),
            tid,
            scratch: vec![0; SCRATCH],
            live: 0,
            fanout_scheduled: false,
            published_recv: 0,
            published_sent: 0,
        })
    }

    fn publish(&mut self) {
        let s = &self.ctx.stats;
        let sh = self.ctx.shared;
        sh.msgs_recv
            .fetch_add(s.msgs_recv - self.published_recv, Relaxed);
        sh.msgs_sent
            .fetch_add(s.msgs_sent - self.published_sent, Relaxed);
        self.published_recv = s.msgs_recv;
        self.published_sent = s.msgs_sent;
    }

    /// Whether the traffic phase is over at `now`.
    fn finished(&self, now: u64) -> bool {
        let o = self.ctx.o;
        let sh = self.ctx.shared;
        if sh.stop.load(Relaxed) || now >= o.hard_end_ns() {
            return true;
        }
        if let (Some(n), Traffic::Listen | Traffic::Each { .. } | Traffic::Fanout { .. }) =
            (o.max_messages, o.traffic)
            && sh.msgs_recv.load(Relaxed) >= n
        {
            return true;
        }
        match o.traffic {
            Traffic::Fanout { .. } => {
                let start = sh.send_start_ns.load(Relaxed);
                if start == 0 {
                    return false;
                }
                let send_end = start + o.duration.as_nanos() as u64;
                now >= send_end
                    && (now >= send_end + DRAIN_MAX_NS
                        || now.saturating_sub(self.ctx.last_rx_ns.max(send_end)) >= DRAIN_QUIET_NS)
            }
            _ => now >= o.duration.as_nanos() as u64,
        }
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        loop {
            let now = self.ctx.clock.now_ns();
            if self.finished(now) {
                // The first thread to finish ends the traffic phase for all (a
                // message count reached, the duration over), and marks when.
                self.ctx.shared.request_stop(now);
                break;
            }
            self.open_due(now);
            self.fanout_start(now);
            self.fire_timers(now);
            self.publish();
            let wake = [
                self.ctx.timers.peek().map(|Reverse((t, ..))| *t),
                self.pacer.next_at(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
            self.wait(&mut events, wake);
        }
        if matches!(self.ctx.o.traffic, Traffic::Each { .. }) {
            self.drain(&mut events);
        }
        self.close_all();
        self.publish();
    }

    /// After the last send, keep receiving until the answers stop coming (bounded):
    /// a data frame arriving after our Close would be dropped (section 5.5.1 lets the
    /// closing endpoint discard it), and counted as lost.
    fn drain(&mut self, events: &mut [EpollEvent]) {
        let start = self.ctx.clock.now_ns();
        self.ctx.last_rx_ns = start;
        loop {
            let now = self.ctx.clock.now_ns();
            if now >= start + DRAIN_MAX_NS || now - self.ctx.last_rx_ns >= DRAIN_QUIET_NS {
                return;
            }
            self.wait(events, self.ctx.last_rx_ns + DRAIN_QUIET_NS);
        }
    }

    fn wait(&mut self, events: &mut [EpollEvent], wake_ns: u64) {
        let now = self.ctx.clock.now_ns();
        let ms = wake_ns
            .saturating_sub(now)
            .div_ceil(1_000_000)
            .min(MAX_WAIT_MS);
        // EINTR: nothing this time; the loop comes round again.
        let n = self.epoll.wait(events, ms as u16).unwrap_or_default();
        for ev in events.iter().take(n) {
            let slot = ev.data() as usize;
            self.on_event(slot, ev.events());
        }
    }

    fn open_due(&mut self, now: u64) {
        let k = self.pacer.take(now, RAMP_BURST);
        for _ in 0..k {
            self.open_one(now);
        }
    }

    fn open_one(&mut self, now: u64) {
        let slot = self.conns.len();
        let threads = self.ctx.o.threads.max(1);
        let gidx = (self.tid + slot * threads) as u32;
        let o = self.ctx.o;
        let src = (!o.src_ips.is_empty()).then(|| o.src_ips[gidx as usize % o.src_ips.len()]);
        self.ctx.stats.attempted += 1;
        self.ctx.shared.attempted.fetch_add(1, Relaxed);
        let mut c = Conn {
            gidx,
            sock: None,
            phase: Phase::Dead,
            t0: now,
            out: OutQueue::default(),
            seq: 0,
            closing: false,
            blocked: false,
            stash: Vec::new(),
            head: [0; HEADER_LEN],
            head_len: 0,
            last_seq: match o.traffic {
                Traffic::Fanout { senders, .. } if senders <= MAX_TRACKED_SENDERS => {
                    vec![u32::MAX; senders]
                }
                _ => Vec::new(),
            },
        };
        let r = start_connect(o.addr, src).and_then(|s| {
            let flags = EpollFlags::EPOLLIN
                | EpollFlags::EPOLLOUT
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLET;
            self.epoll.add(&s, EpollEvent::new(flags, slot as u64))?;
            Ok(s)
        });
        match r {
            Ok(s) => {
                c.sock = Some(s);
                c.phase = Phase::Connecting;
                self.live += 1;
                let due = now + o.connect_timeout.as_nanos() as u64;
                self.ctx
                    .timers
                    .push(Reverse((due, slot as u32, TimerKind::Timeout)));
            }
            Err(e) => {
                self.ctx.stats.error(format!("connect: {}", err_name(&e)));
                self.ctx.stats.failed += 1;
                self.ctx.shared.failed.fetch_add(1, Relaxed);
            }
        }
        self.conns.push(c);
    }

    /// Fan-out: start sending once every connection of the run is up or failed.
    fn fanout_start(&mut self, now: u64) {
        let Traffic::Fanout { senders, rate, .. } = self.ctx.o.traffic else {
            return;
        };
        if self.fanout_scheduled {
            return;
        }
        let sh = self.ctx.shared;
        if sh.send_start_ns.load(Relaxed) == 0 && sh.resolved() >= self.ctx.o.conns as u64 {
            let _ = sh
                .send_start_ns
                .compare_exchange(0, now.max(1), Relaxed, Relaxed);
        }
        let start = sh.send_start_ns.load(Relaxed);
        if start == 0 {
            return;
        }
        self.fanout_scheduled = true;
        let interval = rate.interval_ns();
        for (slot, c) in self.conns.iter().enumerate() {
            if (c.gidx as usize) < senders && matches!(c.phase, Phase::Ws(_)) {
                let due = start + phase_offset(c.gidx, interval);
                self.ctx
                    .timers
                    .push(Reverse((due, slot as u32, TimerKind::Send)));
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        while let Some(Reverse((due, slot, kind))) = self.ctx.timers.peek().copied() {
            if due > now {
                break;
            }
            self.ctx.timers.pop();
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            match kind {
                TimerKind::Timeout => {
                    let what = match c.phase {
                        Phase::Connecting => "connect timeout",
                        Phase::Handshaking { .. } => "handshake timeout",
                        _ => continue,
                    };
                    self.kill(slot as usize, Some(what.into()));
                }
                TimerKind::Send => {
                    if !matches!(c.phase, Phase::Ws(_)) {
                        continue;
                    }
                    let r = send_one(c, &mut self.ctx, now);
                    if let Some(next) = self.next_send(due, now) {
                        self.ctx.timers.push(Reverse((next, slot, TimerKind::Send)));
                    }
                    if let Err(e) = r {
                        self.kill(slot as usize, Some(e));
                    }
                }
            }
        }
    }

    /// When a sender whose message was due at `due` sends next, if it does.
    fn next_send(&self, due: u64, now: u64) -> Option<u64> {
        let (rate, end) = match self.ctx.o.traffic {
            Traffic::Each { rate, .. } => (rate, self.ctx.o.duration.as_nanos() as u64),
            Traffic::Fanout { rate, .. } => (
                rate,
                self.ctx.shared.send_start_ns.load(Relaxed) + self.ctx.o.duration.as_nanos() as u64,
            ),
            _ => return None,
        };
        let mut next = due + rate.interval_ns();
        if next + MAX_SEND_LAG_NS < now {
            next = now;
        }
        (next < end).then_some(next)
    }

    fn on_event(&mut self, slot: usize, flags: EpollFlags) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let now = self.ctx.clock.now_ns();
        let r = match c.phase {
            Phase::Dead => return,
            Phase::Connecting => on_connecting(c, &mut self.ctx, flags, now)
                .and_then(|()| drive(c, &mut self.ctx, &mut self.scratch, now, slot)),
            _ => drive(c, &mut self.ctx, &mut self.scratch, now, slot),
        };
        let done = matches!(&c.phase, Phase::Ws(ws) if ws.is_done()) && c.out.is_empty();
        match r {
            Err(e) => self.kill(slot, Some(e)),
            Ok(()) if done => self.kill(slot, None),
            Ok(()) => {}
        }
    }

    /// End a connection; `err` names why when it is an error.
    fn kill(&mut self, slot: usize, err: Option<String>) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let established = match c.phase {
            Phase::Dead => return,
            Phase::Ws(_) => true,
            _ => false,
        };
        if let Some(e) = err {
            self.ctx.stats.error(e);
        }
        if !established {
            self.ctx.stats.failed += 1;
            self.ctx.shared.failed.fetch_add(1, Relaxed);
        }
        // Closing the fd removes it from the epoll set (it has no duplicates).
        c.sock = None;
        c.phase = Phase::Dead;
        c.out = OutQueue::default();
        c.stash = Vec::new();
        self.live -= 1;
    }

    /// Section 7.1.2: start the closing handshake on every open connection and wait
    /// (bounded) for the server's Close; connections still opening are abandoned.
    fn close_all(&mut self) {
        let now = self.ctx.clock.now_ns();
        let now_ms = now / 1_000_000;
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            let r = match &mut c.phase {
                Phase::Dead => continue,
                Phase::Connecting | Phase::Handshaking { .. } => {
                    Err("not connected by the end of the run".to_string())
                }
                Phase::Ws(ws) => {
                    if ws.state() == WsState::Open {
                        let _ = ws.close(1000, "", now_ms);
                        c.closing = true;
                        while let Some(b) = ws.poll_transmit() {
                            c.out.push(b);
                        }
                    }
                    match c.sock.as_mut() {
                        Some(s) => c
                            .out
                            .flush(s)
                            .map(|_| ())
                            .map_err(|e| format!("close: write {}", err_name(&e))),
                        None => Ok(()),
                    }
                }
            };
            if let Err(e) = r {
                self.kill(slot, Some(e));
            }
        }
        let deadline = now + CLOSE_WAIT_NS;
        let mut events = vec![EpollEvent::empty(); EVENTS];
        while self.live > 0 && self.ctx.clock.now_ns() < deadline {
            self.wait(&mut events, deadline);
        }
        for slot in 0..self.conns.len() {
            if !matches!(self.conns[slot].phase, Phase::Dead) {
                self.kill(slot, Some("close: no Close reply in time".into()));
            }
        }
    }
}

/// The connect finished (or failed): check it, then send the opening handshake.
fn on_connecting(
    c: &mut Conn,
    ctx: &mut Ctx<'_>,
    flags: EpollFlags,
    now: u64,
) -> Result<(), String> {
    let Some(sock) = c.sock.as_mut() else {
        return Err("no socket".into());
    };
    match sock.take_error() {
        Ok(Some(e)) | Err(e) => return Err(format!("connect: {}", err_name(&e))),
        Ok(None) => {}
    }
    if !flags.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
        return Ok(()); // Still connecting.
    }
    if flags.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
        return Err("connect: hang-up".into());
    }
    ctx.stats.connect.record((now - c.t0) / 1000);
    // Section 4.1 item 7: a random 16-byte nonce, base64-encoded.
    let a = splitmix(ctx.seed ^ u64::from(c.gidx));
    let b = splitmix(a);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&a.to_le_bytes());
    nonce[8..].copy_from_slice(&b.to_le_bytes());
    let key = client_key(nonce);
    let o = ctx.o;
    let req = client_request(
        &o.target.host_header,
        &o.target.path,
        o.origin.as_deref(),
        &ctx.offered,
        None,
        &key,
    )
    .map_err(|e| format!("handshake request: {e}"))?;
    c.out.push(Bytes::from(req));
    c.phase = Phase::Handshaking {
        key,
        head: Vec::new(),
    };
    Ok(())
}

/// Flush, then read until the socket is empty, handling what arrives in the current
/// phase (edge-triggered epoll: every readiness edge is drained).
fn drive(
    c: &mut Conn,
    ctx: &mut Ctx<'_>,
    scratch: &mut [u8],
    now: u64,
    slot: usize,
) -> Result<(), String> {
    flush(c)?;
    if c.blocked {
        if !c.out.is_empty() {
            return Ok(());
        }
        // The output drained: take up the input held back.
        c.blocked = false;
        let mut stash = std::mem::take(&mut c.stash);
        ws_input(c, ctx, &mut stash, now)?;
        flush(c)?;
        if c.blocked {
            return Ok(());
        }
    }
    loop {
        let Some(sock) = c.sock.as_mut() else {
            return Ok(());
        };
        let n = match sock.read(scratch) {
            Ok(0) => {
                return Err(match c.phase {
                    Phase::Handshaking { .. } => "handshake: connection closed".into(),
                    _ if c.closing => "close: TCP closed before the Close reply".into(),
                    _ => "server closed the TCP connection".into(),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {}", err_name(&e))),
        };
        let data = &mut scratch[..n];
        match c.phase {
            Phase::Handshaking { .. } => handshake_input(c, ctx, data, now, slot)?,
            Phase::Ws(_) => ws_input(c, ctx, data, now)?,
            _ => return Ok(()),
        }
        flush(c)?;
        if c.blocked {
            break;
        }
        if let Phase::Ws(ws) = &c.phase
            && ws.state() == WsState::Closed
        {
            break;
        }
    }
    Ok(())
}

fn flush(c: &mut Conn) -> Result<(), String> {
    if let Phase::Ws(ws) = &mut c.phase {
        while let Some(b) = ws.poll_transmit() {
            c.out.push(b);
        }
    }
    match c.sock.as_mut() {
        Some(s) if !c.out.is_empty() => c
            .out
            .flush(s)
            .map(|_| ())
            .map_err(|e| format!("write: {}", err_name(&e))),
        _ => Ok(()),
    }
}

/// Collect the 101 response; once complete, validate it (section 4.1) and switch to
/// frames, feeding any bytes that followed the head.
fn handshake_input(
    c: &mut Conn,
    ctx: &mut Ctx<'_>,
    data: &[u8],
    now: u64,
    slot: usize,
) -> Result<(), String> {
    let Phase::Handshaking { key, head } = &mut c.phase else {
        return Ok(());
    };
    head.extend_from_slice(data);
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut hdrs);
    let n = match resp.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if head.len() > MAX_HANDSHAKE_HEAD {
                return Err("handshake: response head too large".into());
            }
            return Ok(());
        }
        Err(e) => return Err(format!("handshake: bad response ({e})")),
    };
    let status = resp.code.unwrap_or(0);
    let headers = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    match client_validate(status, headers, key, &ctx.offered) {
        Ok(acc) if acc.extensions.is_empty() => {}
        // Section 4.1 item 5: an extension we did not offer fails the connection.
        Ok(_) => return Err("handshake: server named an extension not offered".into()),
        Err(_) if status != 101 => return Err(format!("handshake: status {status}")),
        Err(e) => return Err(format!("handshake: {}", e.why)),
    }
    let rest = head.get(n..).unwrap_or_default().to_vec();
    ctx.stats.handshake.record((now - c.t0) / 1000);
    ctx.stats.established += 1;
    ctx.shared.established.fetch_add(1, Relaxed);
    let cfg = WsConfig {
        // The load generator adds no keepalive traffic of its own; the server's pings
        // are still answered.
        ping_interval_ms: None,
        ..WsConfig::default()
    };
    c.phase = Phase::Ws(Box::new(WsConn::client(
        cfg,
        splitmix(ctx.seed ^ !u64::from(c.gidx)),
        now / 1_000_000,
    )));
    if let Traffic::Each { rate, .. } = ctx.o.traffic {
        let interval = rate.interval_ns();
        let due = now + phase_offset(c.gidx, interval);
        ctx.timers
            .push(Reverse((due, slot as u32, TimerKind::Send)));
    }
    if !rest.is_empty() {
        let mut rest = rest;
        ws_input(c, ctx, &mut rest, now)?;
    }
    Ok(())
}

/// Feed frames to the connection's `WsConn`; count messages and record the latency of
/// our stamped ones when their last byte arrives.
fn ws_input(c: &mut Conn, ctx: &mut Ctx<'_>, data: &mut [u8], now: u64) -> Result<(), String> {
    let Conn {
        phase: Phase::Ws(ws),
        head,
        head_len,
        gidx,
        last_seq,
        out,
        stash,
        blocked,
        closing,
        ..
    } = c
    else {
        return Ok(());
    };
    let stats = &mut ctx.stats;
    if !data.is_empty() {
        ctx.last_rx_ns = now;
    }
    let mut peer_close: Option<Option<u16>> = None;
    let fed = ws.feed(data, now / 1_000_000, |ev| match ev {
        Event::Data(ch) => {
            if ch.first {
                *head_len = 0;
            }
            let have = usize::from(*head_len);
            let take = (HEADER_LEN - have).min(ch.payload.len());
            head[have..have + take].copy_from_slice(&ch.payload[..take]);
            *head_len = (have + take) as u8;
            stats.bytes_recv += ch.payload.len() as u64;
            if ch.last {
                stats.msgs_recv += 1;
                match payload::decode(&head[..usize::from(*head_len)]) {
                    Some(s) if s.sent_ns <= now => {
                        let us = (now - s.sent_ns) / 1000;
                        stats.delivery.record(us);
                        if s.sender == *gidx {
                            stats.rtt.record(us);
                        }
                        // Fan-out senders are the first few connections: track each
                        // one's sequence to see duplicates and reordering.
                        if let Some(last) = last_seq.get_mut(s.sender as usize) {
                            if *last != u32::MAX && s.seq <= *last {
                                stats.out_of_order += 1;
                            }
                            *last = s.seq;
                        }
                    }
                    _ => stats.unstamped += 1,
                }
            }
        }
        Event::Close(info) => peer_close = Some(info.code),
        Event::Pong(_) | Event::Blocked => {}
    });
    while let Some(b) = ws.poll_transmit() {
        out.push(b);
    }
    let fed = fed.map_err(|e| format!("ws protocol error {} ({})", e.code, e.reason))?;
    if fed.blocked {
        // Too many pongs queued (MAX_QUEUED_OUTPUT): hold the rest of the input until
        // the output drains, so a ping flood meets TCP backpressure.
        stash.extend_from_slice(data.get(fed.consumed..).unwrap_or_default());
        *blocked = true;
    }
    if let Some(code) = peer_close {
        if *closing {
            stats.clean_closes += 1;
        } else {
            let code = code.map_or("none".to_string(), |c| c.to_string());
            stats.error(format!("server sent Close {code}"));
        }
    }
    Ok(())
}

/// Send one stamped message on an open connection, unless its output is backed up.
fn send_one(c: &mut Conn, ctx: &mut Ctx<'_>, now: u64) -> Result<(), String> {
    let size = match ctx.o.traffic {
        Traffic::Each { size, .. } | Traffic::Fanout { size, .. } => size,
        _ => return Ok(()),
    };
    let Phase::Ws(ws) = &mut c.phase else {
        return Ok(());
    };
    if c.closing || ws.state() != WsState::Open {
        return Ok(());
    }
    if c.out.bytes() > MAX_UNSENT || c.blocked {
        ctx.stats.sends_skipped += 1;
        return Ok(());
    }
    let p = payload::encode(
        Stamp {
            sent_ns: now,
            sender: c.gidx,
            seq: c.seq,
        },
        size,
    );
    let len = p.len() as u64;
    let kind = if ctx.o.binary {
        DataKind::Binary
    } else {
        DataKind::Text
    };
    ws.send(kind, p).map_err(|e| format!("send: {e}"))?;
    c.seq = c.seq.wrapping_add(1);
    ctx.stats.msgs_sent += 1;
    ctx.stats.bytes_sent += len;
    flush(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_offsets_spread_within_the_interval() {
        let interval = 1_000_000;
        let mut seen: Vec<u64> = (0..1000).map(|g| phase_offset(g, interval)).collect();
        assert!(seen.iter().all(|&o| o < interval));
        seen.sort_unstable();
        // Golden-ratio points: no two in the same 1/2000th of the interval... nearly;
        // check the largest gap is small instead.
        let max_gap = seen.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(max_gap < interval / 300, "{max_gap}");
    }

    #[test]
    fn splitmix_differs_per_connection() {
        let a = splitmix(1);
        let b = splitmix(2);
        assert_ne!(a, b);
        assert_eq!(splitmix(1), a);
    }
}
