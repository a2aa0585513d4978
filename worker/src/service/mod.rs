//! The worker's service loop: the only module that does I/O (DESIGN.md section 3).
//!
//! One io_uring per worker, single issuer with deferred task running (cooperative when
//! connections arrive by MSG_RING: [`LoopConfig::defer_taskrun`]). Sockets are read
//! with multishot recv from a provided buffer ring ([`bufring`]); buffers go back to the
//! ring once per pass over the completion queue. Bytes a role does not consume are copied
//! into the connection's small reassembly buffer and the ring buffer is returned at once.
//! Output is a queue of `Bytes` per connection, sent once per connection per pass (so
//! the answers to every request found in one recv leave in one send: several small
//! chunks are copied into one buffer, see [`conn::COALESCE_MAX`], larger ones go in a
//! writev), at most one send in flight. Completions carry `op | generation | slot` ([`token`]) so a
//! completion for a closed and reused slot is dropped. Timers are a heap ([`timers`])
//! with one kernel timeout for the earliest deadline, given as the wait's timeout.
//!
//! Roles (HTTP/1.1, WebSocket, ...) are sans-IO; they see a connection through [`Cx`]
//! and answer with a [`Flow`].

pub mod bufring;
pub mod conn;
pub mod handle;
mod run;
pub mod timers;
pub mod token;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

pub use crate::api::ConnAction;
use crate::api::ConnId;
use slab::Slab;

use self::bufring::BufRing;
use self::conn::{Conn, OutQueue, Phase, RxBuf, SendPool, Sock};
use self::handle::Waker;
pub use self::handle::{Posted, ServiceHandle};
pub use self::run::run_worker;
use self::timers::Timers;
use self::token::Op;

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
    /// Another connection's callback asked something of this one.
    fn on_action(&mut self, _cx: &mut Cx<'_>, _action: ConnAction) -> Flow {
        Flow::Continue
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
        }
    }
}

/// Creates the role of a newly adopted connection (from its listener index).
pub type RoleFactory = Box<dyn FnMut(&mut crate::App, u16) -> Box<dyn Role>>;

/// The service loop of one worker.
pub struct Loop {
    // Field order matters: the ring is dropped (closed) before the buffer memory it uses.
    ring: IoUring,
    bufs: BufRing,
    conns: Slab<Conn>,
    /// Send states lent to connections while they have output (see `conn`).
    send_pool: SendPool,
    timers: Timers,
    waker: Waker,
    wake_buf: Box<[u8; 8]>,
    cqes: Vec<(u64, i32, u32)>,
    /// Small multi-chunk output is copied here before sending ([`conn::COALESCE_MAX`]).
    coalesce_buf: bytes::BytesMut,
    dirty: Vec<u32>,
    rearm: Vec<u32>,
    /// Connections whose role asked for a `writeable` callback.
    wq: Vec<u32>,
    start: Instant,
    now_ms: u64,
    cfg: LoopConfig,
    factory: RoleFactory,
    pub app: crate::App,
    /// The supervisor's control socket (None in tests that drive the loop alone).
    control: Option<OwnedFd>,
    control_armed: bool,
    draining: bool,
    drain_deadline: u64,
    stop: bool,
    next_stats: u64,
    handle: ServiceHandle,
    /// This process's id, read once: `std::process::id()` is a getpid(2) syscall and the
    /// figures plugins read are refreshed every pass.
    pid: u32,
    /// Close ops pushed but not yet submitted ([`Loop::live`] counts them).
    closes_queued: usize,
    /// Size of the fixed-file table connections arrive in by `MSG_RING` (0: none).
    fixed_slots: u32,
    /// The protocols' `destroy` ran.
    destroyed: bool,
    /// A recv of this pass found the buffer ring dry (ENOBUFS).
    dry_this_pass: bool,
    /// Connections adopted in this pass and in the last one, whose first deadline is not
    /// in the timer heap yet ([`Loop::arm_fresh`]).
    fresh: Vec<(u32, u32)>,
    fresh_prev: Vec<(u32, u32)>,
    /// The last pass ran the buffer ring dry.
    dry_last_pass: bool,
    /// When the send-state pool is next trimmed to what the load needs.
    next_pool_trim: u64,
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.destroy_protocols();
    }
}

/// How often the send-state pool gives back what the load of the last period did not
/// need ([`SendPool::trim`]): a burst's states are freed within two periods of its end.
const POOL_TRIM_MS: u64 = 1000;

/// `Conn::queued` of a connection whose timer is not queued yet ([`Loop::arm_fresh`]): no
/// deadline is below it, so [`Timers::arm`] queues nothing meanwhile.
const FRESH: u64 = 0;

/// The generation of a slot's next occupant: kept across reuse in a side table so a late
/// completion for an old connection in the same slot is recognised.
fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1) & token::GEN_MASK
}

impl Loop {
    /// Sets up the ring, the buffer ring and the wake eventfd. Errors name the cause:
    /// io_uring missing (ENOSYS: kernel older than 5.1 or built without it), forbidden
    /// (EPERM: seccomp policy of the container runtime, or `kernel.io_uring_disabled`),
    /// or a feature this loop needs absent (EINVAL: kernel older than 6.1).
    pub fn new(cfg: LoopConfig, app: crate::App, factory: RoleFactory) -> io::Result<Loop> {
        let mut b = IoUring::builder();
        b.setup_single_issuer();
        if cfg.defer_taskrun {
            b.setup_defer_taskrun();
        } else {
            b.setup_coop_taskrun();
        }
        let ring = b
            .setup_cqsize(cfg.ring_entries * 4)
            .build(cfg.ring_entries)
            .map_err(explain_uring_error)?;
        let bufs = BufRing::growable(
            &ring.submitter(),
            0,
            cfg.buf_count,
            cfg.buf_max,
            cfg.buf_size,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring provided buffer ring: {e}")))?;
        let (handle, waker) = ServiceHandle::new()?;
        let mut l = Loop {
            ring,
            bufs,
            conns: Slab::with_capacity(1024),
            send_pool: SendPool::default(),
            timers: Timers::default(),
            waker,
            wake_buf: Box::new([0; 8]),
            cqes: Vec::with_capacity(1024),
            coalesce_buf: bytes::BytesMut::new(),
            dirty: Vec::new(),
            rearm: Vec::new(),
            wq: Vec::new(),
            start: Instant::now(),
            now_ms: 0,
            cfg,
            factory,
            app,
            control: None,
            control_armed: false,
            draining: false,
            drain_deadline: u64::MAX,
            stop: false,
            next_stats: 0,
            handle,
            pid: std::process::id(),
            closes_queued: 0,
            fixed_slots: 0,
            destroyed: false,
            dry_this_pass: false,
            dry_last_pass: false,
            fresh: Vec::new(),
            fresh_prev: Vec::new(),
            next_pool_trim: POOL_TRIM_MS,
        };
        l.app.plugin.handle = Some(l.handle.clone());
        l.arm_wake();
        l.for_each_protocol(|p, vh| p.init(vh));
        Ok(l)
    }

    /// A handle other threads use to post messages and wake this loop.
    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Provided buffers handed to the kernel so far ([`LoopConfig::buf_count`], grown
    /// after passes that ran them dry, at most [`LoopConfig::buf_max`]).
    pub fn recv_buffers(&self) -> u16 {
        self.bufs.count()
    }

    /// Entries in the connection timer heap (one per connection with a deadline, plus
    /// stale ones for deadlines that moved later and have not come due yet), and the
    /// earliest of them (ms on the loop clock).
    pub fn queued_timers(&self) -> (usize, Option<u64>) {
        (self.timers.len(), self.timers.next())
    }

    /// Live connections, counting those whose fd close is queued for the next submit:
    /// when this is zero, every connection's socket is closed.
    pub fn live(&self) -> usize {
        self.conns.len() + self.closes_queued
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every entry the loop builds points only at memory that outlives the op:
        // recv ops use the provided buffer ring (lives as long as the ring); a send points
        // into `Bytes` kept in the connection's OutQueue and iovecs in its send state, both
        // untouched until the send's completion (at most one send in flight; the queue is
        // not cleared nor its state returned to the pool while a send is in flight, and a
        // connection is only freed once its ops have completed); the wake read targets
        // `wake_buf`, boxed and owned by the loop; cancel/poll/shutdown/close carry no pointers.
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                // The queue is full: hand what is queued to the kernel and retry.
                if let Err(err) = self.ring.submit() {
                    if err.raw_os_error() != Some(libc::EBUSY) {
                        panic!("io_uring submit failed: {err}");
                    }
                    self.reap_for_space();
                }
            }
        }
    }

    /// EBUSY on submit: the completion queue overflowed; the kernel holds the overflow
    /// until we consume completions. Move them into our backlog.
    fn reap_for_space(&mut self) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.waker.raw_fd()),
            self.wake_buf.as_mut_ptr(),
            8,
        )
        .build()
        .user_data(token::encode(Op::Wake, 0, 0));
        self.push(e);
    }

    /// Watches the supervisor's control socket (new connections, shutdown, bus).
    pub fn set_control(&mut self, fd: OwnedFd) {
        self.control = Some(fd);
        self.arm_control();
    }

    fn arm_control(&mut self) {
        if let Some(fd) = &self.control {
            let e = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(token::encode(Op::Control, 0, 0));
            self.control_armed = true;
            self.push(e);
        }
    }

    /// Registers a sparse fixed-file table of `slots` entries for the supervisor to send
    /// connections into with `IORING_OP_MSG_RING` ([`lwsd_proto::handoff`]). The kernel
    /// caps the table at RLIMIT_NOFILE; its files are not fds of this process, so they
    /// do not use up that limit as they arrive.
    pub fn enable_fixed_handoff(&mut self, slots: u32) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_sparse(slots)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("io_uring fixed-file table of {slots} slots: {e}"),
                )
            })?;
        self.fixed_slots = slots;
        Ok(())
    }

    /// The ring's own fd: the supervisor targets it with `MSG_RING`.
    pub fn ring_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Takes over an accepted connection: registers it and arms its multishot recv.
    pub fn adopt(&mut self, fd: OwnedFd, listener: u16) {
        self.adopt_sock(Sock::fd(into_raw(fd)), listener);
    }

    /// A connection arrived in fixed-file `slot` (a handoff completion).
    fn on_handoff(&mut self, user_data: u64, res: i32) {
        let Some((listener, peer)) = lwsd_proto::handoff::decode(user_data) else {
            return;
        };
        if res < 0 || res as u32 >= self.fixed_slots {
            log(1, &format!("bad handoff completion: slot {res}"));
            return;
        }
        if crate::log_enabled(16) {
            log(
                16,
                &format!("connection from {peer:?} on listener {listener}"),
            );
        }
        let sock = Sock::fixed(res as u32);
        if self.draining {
            let e = sock
                .close_op()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(token::encode(Op::Close, 0, 0));
            self.push(e);
            return;
        }
        self.adopt_sock(sock, listener);
    }

    fn adopt_sock(&mut self, sock: Sock, listener: u16) {
        let role = (self.factory)(&mut self.app, listener);
        let entry = self.conns.vacant_entry();
        let slot = entry.key() as u32;
        let generation = self
            .app
            .generations
            .get(slot as usize)
            .copied()
            .unwrap_or(0);
        entry.insert(Conn {
            sock,
            generation,
            phase: Phase::Open,
            recv_armed: false,
            send_inflight: false,
            cancel_inflight: false,
            dirty: false,
            in_wq: false,
            rx_paused: false,
            peer_eof: false,
            out: OutQueue::default(),
            rx: RxBuf::default(),
            deadline: u64::MAX,
            // No timer entry until the end of the next pass ([`Loop::arm_fresh`]).
            queued: FRESH,
            role,
        });
        self.fresh.push((slot, generation));
        self.app.stats.wire.accepted_total += 1;
        self.arm_recv(slot);
        // Give the role a chance to set its first deadline (header timeout) and greet.
        self.with_role(slot, |role, cx| role.on_data(cx, &mut []).1);
    }

    fn arm_recv(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.recv_armed || c.phase == Phase::Closing || c.rx_paused {
            return;
        }
        c.recv_armed = true;
        let e = opcode::RecvMulti::new(types::Fd(c.sock.raw()), self.bufs.group())
            .build()
            .flags(c.sock.sqe_flags())
            .user_data(token::encode(Op::Recv, slot, c.generation));
        self.push(e);
    }

    /// Runs until a shutdown drains every connection or the control socket closes.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.stop {
            self.run_once(None)?;
        }
        // Hand the last pass's ring closes to the kernel.
        self.ring.submit()?;
        self.destroy_protocols();
        Ok(())
    }

    /// Calls every protocol's `destroy`, once (at the end of [`run`](Self::run), or when
    /// a loop driven by hand is dropped).
    fn destroy_protocols(&mut self) {
        if !std::mem::replace(&mut self.destroyed, true) {
            self.app.plugin.now_ms = self.now_ms;
            self.for_each_protocol(|p, vh| p.destroy(vh));
        }
    }

    /// One pass: flush output, wait for completions (at most until the next timer, or
    /// `max_wait`), handle them, fire due timers.
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        for slot in std::mem::take(&mut self.rearm) {
            self.arm_recv(slot);
        }
        self.flush();
        let now = self.clock();
        let next = [
            self.timers.next(),
            self.app.plugin.next_timer(),
            self.fresh_deadline(),
        ]
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
        let res = if self.cqes.is_empty() {
            match wait_ms {
                Some(ms) => {
                    let ts = types::Timespec::from(Duration::from_millis(ms));
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                None => self.ring.submit_and_wait(1),
            }
        } else {
            self.ring.submit()
        };
        if self.ring.submission().is_empty() {
            // Everything pushed, the closes included, went to the kernel.
            self.closes_queued = 0;
        }
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        let pass_start = Instant::now();
        self.now_ms = pass_start.duration_since(self.start).as_millis() as u64;
        self.app.now_unix = crate::unix_now();
        self.reap_for_space();
        let mut cqes = std::mem::take(&mut self.cqes);
        for &(ud, res, flags) in &cqes {
            self.complete(ud, res, flags);
        }
        cqes.clear();
        // completions handled above may have queued more in self.cqes (EBUSY reaping)
        cqes.append(&mut self.cqes);
        self.cqes = cqes;
        let dry = std::mem::take(&mut self.dry_this_pass);
        if std::mem::replace(&mut self.dry_last_pass, dry) && dry {
            // The ring ran dry in two passes in a row: the load, not a one-off burst
            // (whose recvs just re-arm once), needs more buffers.
            if self.bufs.grow() {
                log(
                    8,
                    &format!("recv buffer ring grown to {} buffers", self.bufs.count()),
                );
            }
        }
        self.bufs.publish();
        self.arm_fresh();
        self.fire_timers();
        self.plugin_pass();
        if self.control.is_some() && self.now_ms >= self.next_stats {
            self.send_stats();
            self.next_stats = self.now_ms + 250;
        }
        if self.now_ms >= self.next_pool_trim {
            self.send_pool.trim();
            self.next_pool_trim = self.now_ms + POOL_TRIM_MS;
        }
        if self.draining && (self.conns.is_empty() || self.now_ms >= self.drain_deadline) {
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

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let Some((op, slot, generation)) = token::decode(ud) else {
            if (ud >> 56) as u8 == lwsd_proto::handoff::TAG {
                self.on_handoff(ud, res);
            }
            return;
        };
        match op {
            Op::Wake => {
                self.on_wake();
                self.arm_wake();
                return;
            }
            Op::Close => {
                log(2, &format!("close of a connection's fd failed: {res}"));
                return;
            }
            Op::Control => {
                if !cqueue::more(flags) {
                    self.control_armed = false;
                }
                self.on_control(res);
                if !self.control_armed && !self.stop {
                    self.arm_control();
                }
                return;
            }
            _ => {}
        }
        let live = matches!(self.conns.get(slot as usize), Some(c) if c.generation == generation);
        if !live {
            // A completion for a connection that is gone: only a buffer needs returning.
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.recycle(bid);
            }
            return;
        }
        match op {
            Op::Recv => self.on_recv(slot, res, flags),
            Op::Send => self.on_send(slot, res),
            Op::Cancel => {
                self.conns[slot as usize].cancel_inflight = false;
            }
            Op::Shutdown => {
                self.conns[slot as usize].send_inflight = false;
            }
            Op::Wake | Op::Control | Op::Close => {}
        }
        self.maybe_finish_close(slot);
    }

    fn on_recv(&mut self, slot: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let c = &mut self.conns[slot as usize];
        if !more {
            c.recv_armed = false;
        }
        if res < 0 {
            match -res {
                // The ring ran dry (re-armed once buffers are back), or a cancel for rx
                // flow control landed: re-arm if reading is wanted again meanwhile.
                e @ (libc::ENOBUFS | libc::ECANCELED) => {
                    if e == libc::ENOBUFS {
                        self.app.stats.recv_enobufs += 1;
                        self.dry_this_pass = true;
                    }
                    if !more && c.phase != Phase::Closing && !c.rx_paused {
                        self.rearm.push(slot);
                    }
                }
                _ => self.abort(slot),
            }
            return;
        }
        if res == 0 {
            c.peer_eof = true;
            match c.phase {
                Phase::Open => {
                    let flow = self.with_role_flow(slot, |role, cx| role.on_peer_eof(cx));
                    self.apply(slot, flow);
                }
                Phase::Lingering | Phase::Flushing { .. } => self.begin_close(slot),
                Phase::Closing => {}
            }
            return;
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            self.abort(slot);
            return;
        };
        let len = res as usize;
        if c.phase == Phase::Open {
            self.deliver(slot, bid, len);
        }
        self.bufs.recycle(bid);
        // The role may have closed the connection, and with no recv armed any more (the
        // multishot ended with this completion: a full CQ ends it too) nothing kept it.
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if !more && !c.recv_armed && c.phase != Phase::Closing && !c.rx_paused {
            self.rearm.push(slot);
        }
    }

    /// Hands received bytes to the role: straight from the ring buffer when nothing is
    /// pending, else appended to the reassembly buffer.
    fn deliver(&mut self, slot: u32, bid: u16, len: usize) {
        let c = &mut self.conns[slot as usize];
        let data = self.bufs.data(bid, len);
        if !c.rx.is_empty() || !c.role.wants_input() {
            c.rx.extend_from_slice(data);
            if c.role.wants_input() {
                self.feed_pending(slot);
            } else {
                self.check_rx_limit(slot);
            }
            return;
        }
        let ((used, flow), deadline) = call_role(
            c,
            slot,
            &mut self.app,
            &mut self.send_pool,
            (self.now_ms, self.draining),
            |role, cx| role.on_data(cx, data),
        );
        if used < data.len() {
            c.rx.extend_from_slice(&data[used..]);
        }
        self.after_callback(slot, deadline, flow);
        self.check_rx_limit(slot);
    }

    /// Offers the reassembly buffer to the role again (after more bytes came, after it
    /// resumed, or after an upgrade).
    fn feed_pending(&mut self, slot: u32) {
        loop {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                return;
            };
            if c.rx.is_empty() || c.phase != Phase::Open || !c.role.wants_input() {
                break;
            }
            let mut rx = std::mem::take(&mut c.rx);
            let ((used, flow), deadline) = call_role(
                c,
                slot,
                &mut self.app,
                &mut self.send_pool,
                (self.now_ms, self.draining),
                |role, cx| role.on_data(cx, &mut rx),
            );
            let upgraded = matches!(flow, Flow::Upgrade(_));
            rx.consume(used);
            // A role that consumed nothing but still wants input needs more bytes.
            let progress = used > 0 || upgraded;
            if !rx.is_empty() {
                c.rx = rx;
            }
            self.after_callback(slot, deadline, flow);
            if !progress {
                break;
            }
        }
        self.check_rx_limit(slot);
    }

    /// Stops reading when too much is pending; resumes when it has been consumed.
    fn check_rx_limit(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        // Stop reading when the role does not want input (rx flow control, a response
        // streaming) or too much is pending unconsumed.
        let over = c.rx.len() >= self.cfg.rx_max || !c.role.wants_input();
        if over && !c.rx_paused {
            c.rx_paused = true;
            if c.recv_armed && !c.cancel_inflight {
                self.cancel_recv(slot);
            }
        } else if !over && c.rx_paused {
            c.rx_paused = false;
            if !c.recv_armed {
                self.rearm.push(slot);
            }
        }
    }

    fn cancel_recv(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.cancel_inflight = true;
        let target = token::encode(Op::Recv, slot, c.generation);
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(token::encode(Op::Cancel, slot, c.generation));
        self.push(e);
    }

    fn on_send(&mut self, slot: u32, res: i32) {
        let c = &mut self.conns[slot as usize];
        c.send_inflight = false;
        if res < 0 {
            // EPIPE, ECONNRESET, ...: the peer is gone.
            c.out.clear();
            self.abort(slot);
            return;
        }
        c.out.advance(res as usize);
        if !c.out.is_empty() {
            self.mark_dirty(slot);
            return;
        }
        self.send_pool.reclaim(&mut c.out);
        let phase = c.phase;
        self.note_writeable(slot);
        match phase {
            Phase::Open => {
                let flow = self.with_role_flow(slot, |role, cx| role.on_sent(cx));
                self.apply(slot, flow);
                // The role may have resumed: feed what waited.
                self.feed_pending(slot);
                self.check_rx_limit(slot);
            }
            Phase::Flushing { linger } => {
                // The role may still be streaming the last response's body.
                let flow = self.with_role_flow(slot, |role, cx| role.on_sent(cx));
                if matches!(flow, Flow::Abort) {
                    self.abort(slot);
                } else if self.conns[slot as usize].out.is_empty() {
                    self.finish_flush(slot, linger);
                }
            }
            _ => {}
        }
    }

    /// Runs a role callback with a fresh [`Cx`] and returns its flow unapplied.
    fn with_role_flow(
        &mut self,
        slot: u32,
        f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> Flow,
    ) -> Flow {
        let c = &mut self.conns[slot as usize];
        let (flow, deadline) = call_role(
            c,
            slot,
            &mut self.app,
            &mut self.send_pool,
            (self.now_ms, self.draining),
            f,
        );
        self.set_deadline(slot, deadline);
        self.settle_out(slot);
        flow
    }

    /// Runs a role callback and applies its flow.
    fn with_role(&mut self, slot: u32, f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> Flow) {
        let flow = self.with_role_flow(slot, f);
        self.apply(slot, flow);
    }

    fn after_callback(&mut self, slot: u32, deadline: u64, flow: Flow) {
        self.set_deadline(slot, deadline);
        self.settle_out(slot);
        self.apply(slot, flow);
    }

    /// After a callback: a connection with output goes on the flush list; one without
    /// gives its lent send state back (never while a send is in flight: the kernel reads
    /// its iovecs).
    fn settle_out(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if !c.out.is_empty() {
            self.mark_dirty(slot);
        } else if !c.send_inflight {
            self.send_pool.reclaim(&mut c.out);
        }
    }

    /// Queues the connection for a `writeable` callback if its role asked for one.
    fn note_writeable(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if !c.in_wq && c.phase == Phase::Open && c.role.wants_writeable() {
            c.in_wq = true;
            self.wq.push(slot);
        }
    }

    fn set_deadline(&mut self, slot: u32, deadline: u64) {
        let c = &mut self.conns[slot as usize];
        c.deadline = deadline;
        if deadline != u64::MAX {
            self.timers.arm(slot, c.generation, deadline, &mut c.queued);
        }
    }

    fn apply(&mut self, slot: u32, flow: Flow) {
        self.apply_flow(slot, flow);
        // Whatever the callback changed: a writeable request, rx flow control.
        self.note_writeable(slot);
        self.check_rx_limit(slot);
    }

    fn apply_flow(&mut self, slot: u32, flow: Flow) {
        match flow {
            Flow::Continue => {}
            Flow::Abort => self.abort(slot),
            Flow::CloseAfterFlush { linger } => {
                let c = &mut self.conns[slot as usize];
                if c.phase != Phase::Open {
                    return;
                }
                c.phase = Phase::Flushing { linger };
                if c.out.is_empty() && !c.send_inflight {
                    self.finish_flush(slot, linger);
                } else {
                    self.mark_dirty(slot);
                }
            }
            Flow::Upgrade(role) => {
                self.conns[slot as usize].role = role;
                // Let the new role greet / arm its timer, then feed leftover bytes.
                self.with_role(slot, |role, cx| role.on_data(cx, &mut []).1);
                self.feed_pending(slot);
            }
        }
    }

    fn mark_dirty(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Submits one send per connection with output and no send in flight.
    fn flush(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            c.dirty = false;
            if c.send_inflight || c.out.is_empty() || c.phase == Phase::Closing {
                continue;
            }
            let ud = token::encode(Op::Send, slot, c.generation);
            c.out.coalesce(&mut self.coalesce_buf);
            let e = if let Some(b) = c.out.single() {
                opcode::Send::new(types::Fd(c.sock.raw()), b.as_ptr(), b.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            } else {
                let Some(iov) = c.out.fill_iov() else {
                    continue;
                };
                opcode::Writev::new(types::Fd(c.sock.raw()), iov.as_ptr(), iov.len() as u32).build()
            };
            c.send_inflight = true;
            let e = e.flags(c.sock.sqe_flags()).user_data(ud);
            self.push(e);
        }
    }

    fn finish_flush(&mut self, slot: u32, linger: bool) {
        let c = &mut self.conns[slot as usize];
        if linger && !c.peer_eof {
            // SHUT_WR sends our FIN after the response; keep reading (and dropping) until
            // the peer closes or the linger time passes.
            if c.sock.is_fixed() {
                // No fd to call shutdown(2) on: the ring op, which the kernel always runs
                // on an io-wq thread and which looks the slot up only then. Until it
                // completes it counts as the connection's write-side op in flight (the
                // output is flushed, so no send is), so the slot cannot be closed and
                // reused by a new connection under it.
                let e = opcode::Shutdown::new(types::Fd(c.sock.raw()), libc::SHUT_WR)
                    .build()
                    .flags(c.sock.sqe_flags())
                    .user_data(token::encode(Op::Shutdown, slot, c.generation));
                c.send_inflight = true;
                self.push(e);
            } else {
                let _ = nix::sys::socket::shutdown(c.sock.raw(), nix::sys::socket::Shutdown::Write);
            }
            let c = &mut self.conns[slot as usize];
            c.phase = Phase::Lingering;
            c.rx = RxBuf::default();
            let at = self.now_ms + self.cfg.linger.as_millis() as u64;
            self.set_deadline(slot, at);
            if !self.conns[slot as usize].recv_armed {
                self.conns[slot as usize].rx_paused = false;
                self.rearm.push(slot);
            }
        } else {
            self.begin_close(slot);
        }
    }

    /// Closes a connection: cancels its ops, closes the fd once they have completed.
    fn abort(&mut self, slot: u32) {
        if let Some(c) = self.conns.get_mut(slot as usize)
            && !c.send_inflight
        {
            // (With a send in flight the chunks stay until its completion: the kernel
            // may still be reading them. The connection is freed after it.)
            c.out.clear();
            self.send_pool.reclaim(&mut c.out);
        }
        self.begin_close(slot);
    }

    fn begin_close(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.phase == Phase::Closing {
            return;
        }
        c.phase = Phase::Closing;
        if c.recv_armed && !c.cancel_inflight {
            self.cancel_recv(slot);
        }
        // A send in flight completes on its own (or fails once the peer is gone);
        // cancelling it would tear a response. maybe_finish_close closes the fd after.
        self.maybe_finish_close(slot);
    }

    fn maybe_finish_close(&mut self, slot: u32) {
        let Some(c) = self.conns.get(slot as usize) else {
            return;
        };
        if c.phase != Phase::Closing || c.ops_in_flight() {
            return;
        }
        let mut c = self.conns.remove(slot as usize);
        // No op refers to the fd or the send state any more: closing it cannot race the
        // kernel. The close is a ring op riding in the next submit rather than a close(2)
        // of its own (one syscall less per connection); its completion is posted only if
        // it fails. The fd number stays taken until then, so no new connection can be
        // confused with it.
        let e = c
            .sock
            .close_op()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(token::encode(Op::Close, slot, c.generation));
        self.push(e);
        self.closes_queued += 1;
        self.send_pool.reclaim_all(&mut c.out);
        c.role.on_closed(
            &mut self.app,
            ConnId {
                slot,
                generation: c.generation,
            },
        );
        let g = &mut self.app.generations;
        if g.len() <= slot as usize {
            g.resize(slot as usize + 1, 0);
        }
        g[slot as usize] = next_generation(c.generation);
        self.app.stats.wire.closed_total += 1;
    }

    /// Queues the timers of the connections adopted before the last pass began. A new
    /// connection's first deadline (the HTTP header timeout) is usually replaced within
    /// a pass of its arrival (its request is read at once, and a keep-alive or WebSocket
    /// deadline follows); queued at once it would stay in the heap as a stale entry and
    /// cost a pop and a push when it came due (~4.5 µs per WebSocket connection, 10 s
    /// after it arrived, measured with 15,000 of them). Held back one pass, only the
    /// deadline that stands is queued.
    fn arm_fresh(&mut self) {
        for (slot, generation) in std::mem::take(&mut self.fresh_prev) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if c.generation != generation || c.queued != FRESH {
                continue;
            }
            c.queued = u64::MAX;
            if c.deadline != u64::MAX {
                self.timers.arm(slot, generation, c.deadline, &mut c.queued);
            }
        }
        std::mem::swap(&mut self.fresh_prev, &mut self.fresh);
    }

    /// The earliest deadline of the connections whose timer [`Loop::arm_fresh`] has not
    /// queued yet (the loop must not sleep past it).
    fn fresh_deadline(&self) -> Option<u64> {
        self.fresh
            .iter()
            .chain(&self.fresh_prev)
            .filter_map(|&(slot, generation)| {
                let c = self.conns.get(slot as usize)?;
                (c.generation == generation && c.queued == FRESH && c.deadline != u64::MAX)
                    .then_some(c.deadline)
            })
            .min()
    }

    fn fire_timers(&mut self) {
        while let Some((_, slot, generation)) = self.timers.pop_due(self.now_ms) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if c.generation != generation {
                continue;
            }
            c.queued = u64::MAX;
            if c.deadline > self.now_ms {
                // Moved later since this entry was queued: queue the current one.
                let d = c.deadline;
                if d != u64::MAX {
                    self.timers.arm(slot, generation, d, &mut c.queued);
                }
                continue;
            }
            c.deadline = u64::MAX;
            match c.phase {
                Phase::Open => self.with_role(slot, |role, cx| role.on_timer(cx)),
                _ => self.abort(slot),
            }
        }
    }

    fn on_wake(&mut self) {
        while let Ok(msg) = self.waker.rx.try_recv() {
            self.app.plugin.posted.push(msg);
        }
        self.app.wakes += 1;
        // lws' LWS_CALLBACK_EVENT_WAIT_CANCELLED, to every protocol.
        self.for_each_protocol(|p, vh| p.event_wait_cancelled(vh));
    }

    fn for_each_protocol(
        &mut self,
        mut f: impl FnMut(&mut dyn crate::api::DynProtocol, &mut crate::api::Vhost<'_>),
    ) {
        let app = &mut self.app;
        for (i, p) in app.protocols.list.iter_mut().enumerate() {
            if let Some(p) = p.as_mut() {
                let mut vh = crate::api::Vhost {
                    shared: &mut app.plugin,
                    protocol: i as u16,
                };
                f(p.as_mut(), &mut vh);
            }
        }
    }

    /// The plugin API's end-of-pass work: actions queued by callbacks on other
    /// connections, `callback_on_writable_all_protocol`, writeable callbacks, bus
    /// publications, protocol timers. Callbacks may queue more work; bounded rounds.
    fn plugin_pass(&mut self) {
        self.app.plugin.now_ms = self.now_ms;
        self.app.plugin.now_unix = self.app.now_unix;
        self.refresh_figures();
        while let Some(std::cmp::Reverse((at, proto, id))) = self.app.plugin.timers.peek().copied()
        {
            if at > self.now_ms {
                break;
            }
            self.app.plugin.timers.pop();
            let app = &mut self.app;
            if let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) {
                let mut vh = crate::api::Vhost {
                    shared: &mut app.plugin,
                    protocol: proto,
                };
                p.timer(&mut vh, id);
            }
        }
        for bus in std::mem::take(&mut self.app.bus_in) {
            self.deliver_bus(bus);
        }
        for _round in 0..16 {
            let actions = std::mem::take(&mut self.app.plugin.actions);
            let all = std::mem::take(&mut self.app.plugin.writable_all);
            let wq = std::mem::take(&mut self.wq);
            if actions.is_empty() && all.is_empty() && wq.is_empty() {
                break;
            }
            for (id, a) in actions {
                if self.live_id(id) {
                    self.with_role(id.slot, |role, cx| role.on_action(cx, a));
                    if matches!(a, ConnAction::RxFlow(true)) {
                        self.check_rx_limit(id.slot);
                        self.feed_pending(id.slot);
                    } else {
                        self.check_rx_limit(id.slot);
                    }
                }
            }
            if !all.is_empty() {
                let slots: Vec<u32> = self
                    .conns
                    .iter_mut()
                    .filter(|(_, c)| {
                        c.phase == Phase::Open
                            && c.role.protocol().is_some_and(|p| all.contains(&p))
                    })
                    .map(|(k, c)| {
                        c.role.request_writeable();
                        k as u32
                    })
                    .collect();
                for slot in slots {
                    self.note_writeable(slot);
                }
            }
            for slot in wq {
                let Some(c) = self.conns.get_mut(slot as usize) else {
                    continue;
                };
                c.in_wq = false;
                if c.phase != Phase::Open || !c.role.wants_writeable() {
                    continue;
                }
                if c.send_inflight || c.out.len() >= WRITE_BATCH_BYTES {
                    // Writeable once the send completes (on_send notes it again).
                    continue;
                }
                // No send is in flight until the next flush, so a role that asks again
                // right after its write is called again now: a reader catching up on a
                // mirror, or an echo with several answers queued, fills one writev instead
                // of waiting a send round trip per message. Each call still allows one write.
                for _ in 0..WRITEABLE_BATCH {
                    self.with_role(slot, |role, cx| role.on_writeable(cx));
                    let Some(c) = self.conns.get(slot as usize) else {
                        break;
                    };
                    if c.phase != Phase::Open
                        || !c.role.wants_writeable()
                        || c.out.len() >= WRITE_BATCH_BYTES
                    {
                        break;
                    }
                }
                // Input held back until this answer was written can go on now.
                self.feed_pending(slot);
            }
        }
        self.publish_bus();
    }

    fn live_id(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id.slot as usize), Some(c) if c.generation == id.generation && c.phase == Phase::Open)
    }

    fn refresh_figures(&mut self) {
        let s = &self.app.stats.wire;
        self.app.plugin.snapshot = crate::api::WorkerFigures {
            index: self.app.index,
            pid: self.pid,
            conns: self.conns.len() as u32,
            ws_conns: s.ws_conns,
            accepted: s.accepted_total,
            requests: s.http_requests_total.iter().sum(),
            ws_msgs_rx: s.ws_msgs_rx,
            ws_msgs_tx: s.ws_msgs_tx,
        };
    }

    /// Sends this pass's bus publications to the supervisor, which relays them to every
    /// worker (this one included). Without a supervisor they loop back here.
    fn publish_bus(&mut self) {
        let out = std::mem::take(&mut self.app.plugin.bus_out);
        for (proto, payload) in out {
            let channel = self
                .app
                .protocols
                .names
                .get(proto as usize)
                .copied()
                .unwrap_or("")
                .to_string();
            let msg = lwsd_proto::BusMessage {
                channel,
                origin: self.app.index as u16,
                seq: self.app.bus_seq,
                payload,
            };
            self.app.bus_seq += 1;
            match &self.control {
                Some(fd) => {
                    let mut buf = Vec::with_capacity(msg.payload.len() + 96);
                    if lwsd_proto::FromWorker::Bus(msg).encode(&mut buf).is_ok()
                        && let Err(e) = lwsd_proto::send(fd.as_fd(), &buf, &[])
                    {
                        log(2, &format!("bus publish dropped: {e}"));
                    }
                }
                None => self.app.bus_in.push(msg),
            }
        }
    }

    fn deliver_bus(&mut self, msg: lwsd_proto::BusMessage) {
        let Some(i) = self.app.protocols.index(&msg.channel) else {
            return;
        };
        let app = &mut self.app;
        if let Some(Some(p)) = app.protocols.list.get_mut(i as usize) {
            let mut vh = crate::api::Vhost {
                shared: &mut app.plugin,
                protocol: i,
            };
            p.bus(&mut vh, msg.origin as usize, &msg.payload);
        }
    }

    /// Starts a graceful drain: every role finishes its current exchange and closes.
    pub fn drain(&mut self, grace: Duration) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.drain_deadline = self.now_ms + grace.as_millis() as u64;
        let slots: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for slot in slots {
            if matches!(self.conns.get(slot as usize), Some(c) if c.phase == Phase::Open) {
                self.with_role(slot, |role, cx| role.on_drain(cx));
            }
        }
        if self.conns.is_empty() {
            self.stop = true;
        }
    }

    fn on_control(&mut self, res: i32) {
        if res < 0 {
            return;
        }
        let mut buf = [0u8; lwsd_proto::MAX_MSG_SIZE];
        loop {
            let Some(fd) = self.control.as_ref() else {
                return;
            };
            let mut fds = Vec::new();
            let n = match lwsd_proto::recv(fd.as_fd(), &mut buf, &mut fds) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.supervisor_gone("closed");
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A packet too long or with too many fds: dropped (its fds closed), the
                // next one is read.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log(1, &format!("control socket: {e}"));
                    continue;
                }
                // ECONNRESET: the supervisor died with packets of ours unread (unix(7)
                // seqpacket: the survivor reads the reset once, then EOF, and its poll
                // is not woken again). Any other error leaves the socket as unusable.
                Err(e) => {
                    self.supervisor_gone(&e.to_string());
                    return;
                }
            };
            match lwsd_proto::ToWorker::decode(&buf[..n]) {
                Ok(lwsd_proto::ToWorker::NewConns(conns)) => {
                    for (nc, fd) in conns.iter().zip(fds.drain(..)) {
                        if crate::log_enabled(16) {
                            log(
                                16,
                                &format!(
                                    "connection from {:?} on listener {}",
                                    nc.peer, nc.listener
                                ),
                            );
                        }
                        if self.draining {
                            drop(fd);
                        } else {
                            self.adopt(fd, nc.listener);
                        }
                    }
                }
                Ok(lwsd_proto::ToWorker::Shutdown { grace_ms }) => {
                    self.drain(Duration::from_millis(grace_ms as u64));
                }
                Ok(lwsd_proto::ToWorker::Bus(msg)) => self.app.bus_in.push(msg),
                Ok(lwsd_proto::ToWorker::TicketKeys(keys)) => {
                    if let Some(tls) = &self.app.tls {
                        tls.update_tickets(&keys);
                    }
                }
                Err(e) => log(1, &format!("bad control message: {e}")),
            }
        }
    }

    fn send_stats(&mut self) {
        let Some(fd) = self.control.as_ref() else {
            return;
        };
        let stats = lwsd_proto::WorkerStats {
            live_conns: self.conns.len() as u32,
            cpu_ns: process_cpu_ns(),
            rss_bytes: process_rss_bytes(),
            ..self.app.stats.wire
        };
        let mut buf = Vec::with_capacity(256);
        if lwsd_proto::FromWorker::Stats(stats)
            .encode(&mut buf)
            .is_ok()
        {
            // Non-blocking: if the supervisor is slow the snapshot is simply skipped.
            match lwsd_proto::send(fd.as_fd(), &buf, &[]) {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
                    ) =>
                {
                    self.supervisor_gone(&e.to_string());
                }
                _ => {}
            }
        }
    }

    /// The supervisor is gone (its end of the control socket closed, or it died with
    /// our packets unread): nobody will hand this worker work, relay its bus messages or
    /// collect its figures, and a new supervisor starts workers of its own. Drain as on
    /// a shutdown (what is in flight is finished, WebSocket clients get a 1001 close),
    /// then exit.
    fn supervisor_gone(&mut self, why: &str) {
        log(
            2,
            &format!("control socket {why}: the supervisor is gone, draining and exiting"),
        );
        self.control = None;
        self.drain(ORPHAN_GRACE);
    }
}

/// Runs a role callback on connection `c` (in `slot`) with a fresh [`Cx`]; returns what
/// the callback returned and the deadline the role left. `clock` is (now_ms, draining).
fn call_role<R>(
    c: &mut Conn,
    slot: u32,
    app: &mut crate::App,
    pool: &mut SendPool,
    clock: (u64, bool),
    f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> R,
) -> (R, u64) {
    let mut deadline = c.deadline;
    pool.lend(&mut c.out);
    let mut cx = Cx {
        id: ConnId {
            slot,
            generation: c.generation,
        },
        out: &mut c.out,
        app,
        now_ms: clock.0,
        deadline: &mut deadline,
        draining: clock.1,
    };
    let r = f(c.role.as_mut(), &mut cx);
    (r, deadline)
}

/// User + system CPU time of this process (getrusage), in nanoseconds.
fn process_cpu_ns() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let ns = |t: nix::sys::time::TimeVal| {
                t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000
            };
            ns(u.user_time()) + ns(u.system_time())
        }
        Err(_) => 0,
    }
}

/// Resident set size of this process (/proc/self/statm), in bytes.
fn process_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // x86-64 and aarch64 Linux default page size; statm counts pages.
    pages * 4096
}

fn into_raw(fd: OwnedFd) -> i32 {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}

fn explain_uring_error(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring is not available: the kernel is older than 5.1 or built without CONFIG_IO_URING"
        }
        Some(libc::EPERM) => {
            "io_uring is forbidden: a seccomp policy (container runtime) or the sysctl kernel.io_uring_disabled blocks it"
        }
        Some(libc::EINVAL) => {
            "io_uring rejected the setup flags: lwsd needs Linux 6.1 or newer (single issuer, deferred task running)"
        }
        Some(libc::ENOMEM) => {
            "io_uring could not allocate its rings: raise RLIMIT_MEMLOCK or free memory"
        }
        _ => "io_uring setup failed",
    };
    io::Error::new(e.kind(), format!("{why} ({e})"))
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
