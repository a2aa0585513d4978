//! The worker's service loop: the only module that does I/O (DESIGN.md section 3).
//!
//! Three layers, each knowing only the one below through a small interface:
//!
//! - the [`driver`]: everything io_uring (submission, completions, the provided-buffer
//!   ring, tokens, fixed-file sockets, `MSG_RING` arrivals), behind the [`driver::Driver`]
//!   trait of ops and normalised events (data arrived, sent n bytes, peer EOF, error,
//!   wake, control, handoff), so the epoll backend stands in for it where io_uring is
//!   forbidden ([`driver::AnyDriver`], `--event-loop`);
//! - the connection [`core`]: the slab of connections, their phases, output queues and
//!   flush policy, timers, the writeable queue and per-protocol member lists; it drives
//!   each connection's [`Role`] (the carrier: HTTP/1.1, WebSocket) through [`Cx`] and
//!   applies the [`Flow`] it answers;
//! - the dispatcher (`dispatch`): plugin callbacks that are not about one connection's bytes:
//!   protocol timers, the bus, actions on other connections,
//!   `callback_on_writable_all_protocol`, `writeable` callbacks, `event_wait_cancelled`.
//!
//! [`Loop`] owns one of each plus the worker's [`App`](crate::App) and the supervisor's
//! control socket (`control`), and runs the passes: flush, wait, handle completions, fire timers,
//! run the plugin pass.
//!
//! Roles (HTTP/1.1, WebSocket, ...) are sans-IO; they see a connection through [`Cx`]
//! and answer with a [`Flow`].

pub mod conn;
mod control;
pub mod core;
mod dispatch;
pub mod driver;
pub mod output;
mod run;
pub mod timers;
pub mod transport;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub use crate::api::ConnAction;
use crate::api::ConnId;
use crate::handle::Waker;
pub use crate::handle::{Posted, ServiceHandle};

use self::conn::OutQueue;
use self::core::Core;
pub use self::driver::EventLoop;
pub use self::driver::bufring;
use self::driver::{AnyDriver, Driver, Event, Sock};
pub use self::run::run_worker;

/// What a role asks of the loop after an event.
pub enum Flow {
    /// Keep going.
    Continue,
    /// Send what is queued, then close (lingering first when `linger`: a response that
    /// ends the connection while the peer may still be sending, e.g. after a 4xx).
    CloseAfterFlush { linger: bool },
    /// Close now, dropping queued output (the peer broke the protocol or vanished).
    Abort,
    /// Replace the role (an upgrade: h1 -> ws); the new role is fed any bytes left over.
    Upgrade(Box<dyn Role>),
}

/// A connection's protocol state machine, as the loop drives it.
pub trait Role {
    /// Bytes arrived (a recv's bytes, or the reassembly buffer). Returns how many were
    /// consumed; the loop keeps the rest and offers them again, with more, later.
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow);
    /// The output queue drained (the last send completed): a role streaming a body
    /// queues its next chunk here; a paused role resumes.
    fn on_sent(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Continue
    }
    /// The connection's deadline passed.
    fn on_timer(&mut self, cx: &mut Cx<'_>) -> Flow;
    /// The worker is shutting down: finish what is in flight, close when idle.
    fn on_drain(&mut self, cx: &mut Cx<'_>) -> Flow;
    /// The peer sent EOF (it may still read): answer what is pending or close.
    fn on_peer_eof(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::CloseAfterFlush { linger: false }
    }
    /// False while the role does not want more input (it is streaming a response, its
    /// output is backed up, or a protocol turned rx flow control off): the loop stops
    /// reading the socket, so TCP backpressure reaches the peer.
    fn wants_input(&self) -> bool {
        true
    }
    /// The role asked for a `writeable` callback.
    fn wants_writeable(&self) -> bool {
        false
    }
    /// Ask for a `writeable` callback (callback_on_writable_all_protocol).
    fn request_writeable(&mut self) {}
    /// The protocol this connection speaks (WebSocket roles).
    fn protocol(&self) -> Option<u16> {
        None
    }
    /// The connection can write: no send is in flight.
    fn on_writeable(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Continue
    }
    /// A callback asked something of this connection, or of its stream `stream` (a
    /// WebSocket on an HTTP/2 stream; 0 for the connection itself).
    fn on_action(&mut self, _cx: &mut Cx<'_>, _stream: u32, _action: ConnAction) -> Flow {
        Flow::Continue
    }
    /// The TLS handshake completed with ALPN protocol `alpn` (RFC 7301): a role may
    /// switch carriers (`h2`). By default the role just greets / arms its timer.
    fn on_handshake(&mut self, cx: &mut Cx<'_>, _alpn: Option<&[u8]>) -> Flow {
        self.on_data(cx, &mut []).1
    }
    /// Ask the sessions of protocol `proto` for a `writeable` callback
    /// (callback_on_writable_all_protocol); false when none speaks it.
    fn request_writeable_protocol(&mut self, proto: u16) -> bool {
        if self.protocol() == Some(proto) {
            self.request_writeable();
            true
        } else {
            false
        }
    }
    /// The connection carries several sessions of possibly different protocols (an
    /// HTTP/2 connection): the core asks it by [`Role::request_writeable_protocol`]
    /// for every protocol.
    fn is_mux(&self) -> bool {
        false
    }
    /// The connection is gone (its fd is closed).
    fn on_closed(&mut self, _app: &mut crate::App, _id: ConnId) {}
}

/// Worker-wide counters, sent to the supervisor as a snapshot.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    /// What the supervisor gets (live connections, CPU and RSS are filled in when sent).
    /// `loop_stall_ns` counts time spent handling completions in passes that took over
    /// [`STALL_THRESHOLD`].
    pub wire: lwsd_proto::WorkerStats,
    /// Multishot recvs ended because the provided-buffer ring ran dry (each is re-armed,
    /// and the ring grows; a steady climb once it is at `LoopConfig::buf_max` says that
    /// is too small for the load).
    pub recv_enobufs: u64,
}

impl Stats {
    /// Counts a TLS failure under `reason` (`TlsError::reason`).
    pub fn count_tls_failure(&mut self, reason: &'static str) {
        self.wire.count_tls_failure(reason);
    }
}

/// Most `writeable` callbacks one connection gets in one loop pass (each allows one
/// write; all of them leave in one writev).
pub const WRITEABLE_BATCH: usize = 32;

/// Output queued on a connection above which it gets no more `writeable` callbacks in
/// this pass (the rest waits for the send to complete).
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// How long a worker whose supervisor died keeps finishing what it has in flight: the
/// supervisor's default `--grace` (the worker is not told the configured one).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// A pass over the completion queue longer than this counts as a stall (lws' latency
/// tracking warns about the same kind of hold-ups).
pub const STALL_THRESHOLD: Duration = Duration::from_millis(20);

/// What a role sees of its connection and of the worker during a callback.
pub struct Cx<'a> {
    /// The connection's identity.
    pub id: ConnId,
    /// The connection's pending output.
    pub out: &'a mut OutQueue,
    /// Per-worker state shared by all connections (mounts, config, stats, ...).
    pub app: &'a mut crate::App,
    /// Loop clock, milliseconds (monotonic).
    pub now_ms: u64,
    /// The connection's timer: set to a loop-clock ms value, `u64::MAX` for none.
    pub deadline: &'a mut u64,
    /// The worker is draining (shutdown): finish the current exchange and close.
    pub draining: bool,
    /// The connection is TLS (the request scheme is https; no h2c upgrade).
    pub secure: bool,
}

/// Tunables of the loop. The defaults fit a 2-core machine serving many connections.
pub struct LoopConfig {
    /// `IORING_SETUP_DEFER_TASKRUN`: completions are run only when the loop waits. Off
    /// (cooperative task running instead) when connections arrive by MSG_RING: into a
    /// deferred ring the kernel must deliver a file through task work on this process
    /// and then complete the sender's op through task work on the supervisor, waking
    /// the supervisor a second time per accept pass (measured: 1.55 instead of 0.78
    /// sleeps per connection, 6 % more CPU per new connection in all); into a
    /// cooperative ring the supervisor delivers it directly and its op completes inline.
    /// Keep-alive CPU is the same either way (`wrk -c100`, within noise).
    pub defer_taskrun: bool,
    /// Submission queue entries. Completions get 4x (connections with multishot recv
    /// complete far more often than we submit).
    pub ring_entries: u32,
    /// Provided buffers at start (power of two) and their size: 64 x 8 KiB. 8 KiB holds
    /// any ordinary request head and a useful slice of an upload; a larger read costs
    /// one more recv, never correctness. The count trades resident memory against
    /// re-arms: buffers are handed out in ring order, so even small recvs end up
    /// touching a page of every published buffer (256 buffers cost ~1 MiB of RSS, ~100 B
    /// per connection at 10,000 idle ones), while a burst of more ready connections than
    /// buffers in one pass only ends some multishot recvs with ENOBUFS, which the loop
    /// re-arms once the pass has returned its buffers (tested with 600 connections
    /// sending at once in tests/service_loop.rs). Two passes in a row that saw ENOBUFS
    /// double the published buffers, up to [`buf_max`](LoopConfig::buf_max), so a busy
    /// worker settles at what its load needs, and an idle one, or one that saw a single
    /// burst (a stall that queued many connections), stays small.
    pub buf_count: u16,
    /// Most provided buffers (power of two, >= `buf_count`): 1,024 x 8 KiB = 8 MiB of
    /// address space reserved per worker, resident only as far as bursts used it.
    pub buf_max: u16,
    pub buf_size: u32,
    /// Most bytes a connection may hold unconsumed in its reassembly buffer before the
    /// loop stops reading from it (the role is paused or a frame is still incomplete;
    /// every role's own limit on a head or frame is below this).
    pub rx_max: usize,
    /// How long a lingering close waits for the peer's EOF.
    pub linger: Duration,
    /// The kernel interface the loop runs on (`--event-loop`).
    pub event_loop: EventLoop,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            defer_taskrun: true,
            ring_entries: 4096,
            buf_count: 64,
            buf_max: 1024,
            buf_size: 8192,
            rx_max: 256 * 1024,
            linger: Duration::from_secs(2),
            event_loop: EventLoop::Auto,
        }
    }
}

/// Creates the role of a newly adopted connection (from its listener index).
pub type RoleFactory = Box<dyn FnMut(&mut crate::App, u16) -> Box<dyn Role>>;

/// The service loop of one worker.
pub struct Loop {
    driver: AnyDriver,
    core: Core,
    pub app: crate::App,
    waker: Waker,
    handle: ServiceHandle,
    /// The supervisor's control socket (None in tests that drive the loop alone).
    control: Option<OwnedFd>,
    control_armed: bool,
    draining: bool,
    drain_deadline: u64,
    stop: bool,
    next_stats: u64,
    start: Instant,
    /// This process's id, read once: `std::process::id()` is a getpid(2) syscall and the
    /// figures plugins read are refreshed every pass.
    pid: u32,
    /// The protocols' `destroy` ran.
    destroyed: bool,
    /// When the send-state pool is next trimmed to what the load needs.
    next_pool_trim: u64,
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.destroy_protocols();
    }
}

/// How often the send-state pool gives back what the load of the last period did not
/// need ([`output::SendPool::trim`]): a burst's states are freed within two periods of its end.
const POOL_TRIM_MS: u64 = 1000;

impl Loop {
    /// Sets up the driver (the ring, the buffer ring), the wake eventfd, and each
    /// protocol's `init`. Errors name the cause (io_uring missing, forbidden, too old).
    pub fn new(cfg: LoopConfig, app: crate::App, factory: RoleFactory) -> io::Result<Loop> {
        let (handle, waker) = ServiceHandle::new()?;
        let driver = AnyDriver::new(&cfg, waker.raw_fd())?;
        let mut l = Loop {
            driver,
            core: Core::new(&cfg, factory),
            app,
            waker,
            handle,
            control: None,
            control_armed: false,
            draining: false,
            drain_deadline: u64::MAX,
            stop: false,
            next_stats: 0,
            start: Instant::now(),
            pid: std::process::id(),
            destroyed: false,
            next_pool_trim: POOL_TRIM_MS,
        };
        l.app.plugin.handle = Some(l.handle.clone());
        dispatch::for_each_protocol(&mut l.app, |p, vh| p.init(vh));
        Ok(l)
    }

    /// A handle other threads use to post messages and wake this loop.
    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Provided buffers handed to the kernel so far ([`LoopConfig::buf_count`], grown
    /// after passes that ran them dry, at most [`LoopConfig::buf_max`]).
    /// 0 on epoll, which reads into one scratch buffer.
    pub fn recv_buffers(&self) -> u16 {
        self.driver.uring().map_or(0, |u| u.recv_buffers())
    }

    /// The loop runs on io_uring (not epoll).
    pub fn is_uring(&self) -> bool {
        self.driver.is_uring()
    }

    /// Entries in the connection timer heap (one per connection with a deadline, plus
    /// stale ones for deadlines that moved later and have not come due yet), and the
    /// earliest of them (ms on the loop clock).
    pub fn queued_timers(&self) -> (usize, Option<u64>) {
        self.core.queued_timers()
    }

    /// Live connections, counting those whose socket close is queued for the next
    /// submit: when this is zero, every connection's socket is closed.
    pub fn live(&self) -> usize {
        self.core.len() + self.driver.closes_queued()
    }

    /// Watches the supervisor's control socket (new connections, shutdown, bus).
    pub fn set_control(&mut self, fd: OwnedFd) {
        self.control = Some(fd);
        self.arm_control();
    }

    fn arm_control(&mut self) {
        if let Some(fd) = &self.control {
            self.control_armed = true;
            self.driver.watch_control(fd.as_raw_fd());
        }
    }

    /// Registers a fixed-file table of `slots` entries for connections arriving by
    /// `IORING_OP_MSG_RING` ([`driver::Uring::enable_fixed_handoff`]); an error on epoll.
    pub fn enable_fixed_handoff(&mut self, slots: u32) -> io::Result<()> {
        match self.driver.uring_mut() {
            Some(u) => u.enable_fixed_handoff(slots),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "ring handoff needs the io_uring event loop",
            )),
        }
    }

    /// The ring's own fd (the supervisor targets it with `MSG_RING`); None on epoll.
    pub fn ring_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.driver.uring().map(|u| u.ring_fd())
    }

    /// Takes over an accepted connection: registers it and arms its read.
    pub fn adopt(&mut self, fd: OwnedFd, listener: u16) {
        let sock = Sock::fd(std::os::fd::IntoRawFd::into_raw_fd(fd));
        self.core
            .adopt(&mut self.driver, &mut self.app, sock, listener);
    }

    /// Runs until a shutdown drains every connection or the control socket closes.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.stop {
            self.run_once(None)?;
        }
        // Hand the last pass's closes to the kernel.
        self.driver.submit()?;
        self.destroy_protocols();
        Ok(())
    }

    /// Calls every protocol's `destroy`, once (at the end of [`run`](Self::run), or when
    /// a loop driven by hand is dropped).
    fn destroy_protocols(&mut self) {
        if !std::mem::replace(&mut self.destroyed, true) {
            self.app.plugin.now_ms = self.core.now_ms;
            dispatch::for_each_protocol(&mut self.app, |p, vh| p.destroy(vh));
        }
    }

    /// One pass: flush output, wait for completions (at most until the next timer, or
    /// `max_wait`), handle them, fire due timers, run the plugin pass.
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let d = &mut self.driver;
        self.core.rearm(d);
        self.core.flush(d);
        self.core.finish_idle_flushes(d, &mut self.app);
        let now = self.clock();
        let next = [self.core.next_deadline(), self.app.plugin.next_timer()]
            .into_iter()
            .flatten()
            .min();
        let mut wait_ms = next.map(|t| t.saturating_sub(now));
        if self.control.is_some() {
            let s = self.next_stats.saturating_sub(now);
            wait_ms = Some(wait_ms.map_or(s, |w| w.min(s)));
        }
        if let Some(m) = max_wait {
            let m = m.as_millis() as u64;
            wait_ms = Some(wait_ms.map_or(m, |w| w.min(m)));
        }
        self.driver.wait(wait_ms.map(Duration::from_millis))?;
        let pass_start = Instant::now();
        let now_ms = pass_start.duration_since(self.start).as_millis() as u64;
        self.core.now_ms = now_ms;
        self.app.now_unix = crate::unix_now();
        while let Some(ev) = self.driver.next_event() {
            self.on_event(ev);
        }
        self.app.stats.recv_enobufs = self.driver.recv_enobufs();
        self.driver.end_pass();
        self.core.arm_fresh();
        self.core.fire_timers(&mut self.driver, &mut self.app);
        self.refresh_figures();
        dispatch::plugin_pass(
            &mut self.core,
            &mut self.driver,
            &mut self.app,
            self.control.as_ref().map(|fd| fd.as_fd()),
        );
        if self.control.is_some() && now_ms >= self.next_stats {
            self.send_stats();
            self.next_stats = now_ms + 250;
        }
        if now_ms >= self.next_pool_trim {
            self.core.send_pool.trim();
            self.next_pool_trim = now_ms + POOL_TRIM_MS;
        }
        if self.draining && (self.core.is_empty() || now_ms >= self.drain_deadline) {
            self.stop = true;
        }
        let took = pass_start.elapsed();
        if took > STALL_THRESHOLD {
            self.app.stats.wire.loop_stall_ns += took.as_nanos() as u64;
        }
        Ok(())
    }

    fn clock(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Wake => dispatch::on_wake(&mut self.app, &self.waker),
            Event::Control { res, more } => {
                if !more {
                    self.control_armed = false;
                }
                self.on_control(res);
                if !self.control_armed && !self.stop {
                    self.arm_control();
                }
            }
            Event::CloseFailed { res } => {
                log(2, &format!("close of a connection's socket failed: {res}"));
            }
            ev => self.core.on_event(&mut self.driver, &mut self.app, ev),
        }
    }

    fn refresh_figures(&mut self) {
        let s = &self.app.stats.wire;
        self.app.plugin.snapshot = crate::api::WorkerFigures {
            index: self.app.index,
            pid: self.pid,
            conns: self.core.len() as u32,
            ws_conns: s.ws_conns,
            accepted: s.accepted_total,
            requests: s.http_requests_total.iter().sum(),
            ws_msgs_rx: s.ws_msgs_rx,
            ws_msgs_tx: s.ws_msgs_tx,
        };
    }

    /// Starts a graceful drain: every role finishes its current exchange and closes.
    pub fn drain(&mut self, grace: Duration) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.drain_deadline = self.core.now_ms + grace.as_millis() as u64;
        self.core.drain(&mut self.driver, &mut self.app);
        if self.core.is_empty() {
            self.stop = true;
        }
    }
}

/// Logs a line to stderr if `level` is enabled in the lws-style bitfield.
pub fn log(level: u32, msg: &str) {
    if crate::log_enabled(level) {
        let tag = match level {
            1 => "E",
            2 => "W",
            4 => "N",
            8 => "I",
            _ => "D",
        };
        crate::stderr_line(format_args!("[lwsd {tag}] {msg}"));
    }
}
