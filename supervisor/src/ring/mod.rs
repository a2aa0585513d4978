//! The supervisor's event loop, on its own io_uring (DESIGN.md section 1).
//!
//! One ring watches everything: a multishot accept per listener, a multishot poll per
//! worker control socket, a multishot poll on a signalfd ([`handled_signals`]) and a
//! periodic timeout. Each pass over the completion queue collects the
//! accepted fds, chooses a worker for each (fewest live connections, [`crate::policy`]),
//! and sends each worker's share as one `SendMsg` op with up to 64 fds in SCM_RIGHTS;
//! when that completes the supervisor's copies are closed with `Close` ops that ride in
//! the next submit. So a burst of N connections costs about one submit and N/64
//! sendmsgs instead of N accept4 + N sendmsg + N close syscalls.
//!
//! Ring handoff (`--fd-handoff ring`, the default where the kernel has it): each worker
//! names its io_uring fd in its Hello and the supervisor takes a copy with
//! pidfd_getfd(2) ([`crate::pidfd`]; Linux refuses io_uring fds in SCM_RIGHTS). IPv4 and
//! unix listeners then accept straight into the supervisor ring's fixed-file table (no
//! fd is installed), and each socket moves into the chosen worker's fixed-file table
//! with one `IORING_OP_MSG_RING` op, whose completion on the worker's ring carries the
//! listener and peer address ([`lwsd_proto::handoff`]); a close of the supervisor's
//! slot is linked to it, and neither posts a completion unless the handoff fails. No
//! packet, no sendmsg, no recvmsg, no fd install on either side, no getpeername: the
//! IPv4 listeners keep [`V4_ACCEPTS`] single-shot accepts armed, each with its own
//! address buffer. IPv6 connections (whose address does not fit the token) still travel
//! as above. A worker still starting queues its connections until its Hello brings the
//! ring; a worker that exits has its ring dropped at once, which closes the connections
//! in it (the kernel frees a ring only when no fd of it is left).
//!
//! A failed send (the worker's socket is full, or the worker is gone) re-routes its fds
//! to the next least-loaded worker, at most [`MAX_HANDOFF_ATTEMPTS`] times; nothing
//! here ever blocks.
//!
//! Worker lifecycle: a worker that exits while the supervisor is not shutting down is
//! respawned at once under the same index, or at most once per [`RESTART_INTERVAL`] if
//! it keeps crashing. SIGTERM/SIGINT: accepts are cancelled, listeners closed, unix
//! socket files removed, every worker told `Shutdown { grace }`, and the stragglers
//! killed after the grace period plus [`KILL_SLACK`].
//!
//! Measured (release build, 2 shared cores, `wrk -c32 -H 'Connection: close'` against
//! two workers): ~15 µs of supervisor CPU per connection, ~6 connections per pass.
//! About 40 % of it is the scheduler (sleeping in and waking from the CQ wait, the
//! machine being oversubscribed), ~10 % waking the worker on its control socket;
//! getpeername is ~0.6 µs; coop vs deferred task running and a `min_wait` batching
//! delay made no improvement (the latter was worse). Ring handoff: ~7 % less CPU per new
//! connection than SCM_RIGHTS (bench/RESULTS.md).
//!
//! `unsafe` here is the kernel boundary only: the io_uring SQE push (whose buffers must
//! stay valid and unmoved until the completion) and taking ownership of fds the kernel
//! returns; each block says why it holds.
//!
//! Layout: this file holds the shared state and the loop itself (submit, dispatch,
//! signals, the tick); `accept` the accepts and what they yield, `handoff` the routing to
//! a worker by MSG_RING or SCM_RIGHTS, `control` the worker control sockets and the bus
//! relay, `lifecycle` starting, reaping and restarting workers, `shutdown` the drain.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use lwsd_proto::{MAX_MSG_SIZE, NewConn};
use lwsd_worker::config::ListenerKind;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::listen::Listener;
use crate::log::{ERR, NOTICE, WARN};
use crate::metrics::Metrics;

mod accept;
mod control;
mod emu;
mod handoff;
mod lifecycle;
mod shutdown;
mod tickets;

use accept::{AcceptAddr, AcceptMode};
use handoff::{MsgOp, SendOp};

/// Submission queue size. A pass submits at most one accept re-arm per listener, one
/// sendmsg per worker per 64 fds, and one close per handed fd; 1024 entries cover a
/// burst of ~1000 connections per pass, and a full queue is submitted and reused.
pub const RING_ENTRIES: u32 = 1024;

/// Period of the housekeeping timer: restart backoff, shutdown deadline, bus queue
/// retries. 100 ms keeps a crashed worker's replacement well inside the 1 s target and
/// costs ten wake-ups a second.
pub const TICK: Duration = Duration::from_millis(100);

/// A worker index is respawned at most once per this interval (crash-loop brake).
pub const RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// Extra time after the grace period before remaining workers get SIGKILL: covers the
/// worker's own exit path once its deadline passes.
pub const KILL_SLACK: Duration = Duration::from_secs(1);

/// Times one accepted fd is offered to a worker before it is closed: each failure
/// excludes that worker for the rest of the pass, so three tries cover a full socket
/// and a worker that died, without looping on a pool that is all down.
pub const MAX_HANDOFF_ATTEMPTS: u8 = 3;

/// Bus messages queued per worker while its socket is full. A worker that stops
/// reading for longer than this many messages loses the oldest ones (counted in
/// `lwsd_bus_messages_dropped_total`) instead of the supervisor buffering without end.
pub const BUS_QUEUE_MAX: usize = 1024;

/// Fixed-file slots of the supervisor's ring (ring handoff): an accepted socket sits in
/// one from its accept until its MSG_RING completes, within a pass or two. 4096 covers
/// the largest accept backlog (somaxconn) arriving at once; when they are all taken an
/// accept fails with ENFILE and is re-armed on the next tick.
pub const SUP_FIXED_SLOTS: u32 = 4096;

/// [`SUP_FIXED_SLOTS`], or fewer when RLIMIT_NOFILE is lower: the kernel refuses a
/// fixed-file table larger than the open-files limit (EMFILE).
fn sup_fixed_slots() -> u32 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(u64::from(SUP_FIXED_SLOTS), |(soft, _)| soft);
    soft.min(u64::from(SUP_FIXED_SLOTS)) as u32
}

/// The answer to a client no worker has room for (every worker is at its open-files
/// limit): better than a reset, it tells the client (and a load balancer) to retry.
pub const REFUSAL_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\
server at its connection limit; retry";

/// Single-shot accepts kept armed per IPv4 listener (ring handoff), each with its own
/// address buffer so the peer address comes with the accept: up to 32 connections per
/// listener per pass, the rest wait in the backlog for the next pass.
pub const V4_ACCEPTS: usize = 32;

// user_data: kind in the top byte, a 24-bit generation, a 32-bit index.
const K_ACCEPT: u64 = 1;
const K_SEND: u64 = 2;
const K_CLOSE: u64 = 3;
const K_CTL: u64 = 4;
const K_SIGNAL: u64 = 5;
const K_TIMER: u64 = 6;
const K_CANCEL: u64 = 7;
/// A single-shot accept of an IPv4 listener (ring handoff); the generation field holds
/// the index of its address buffer.
const K_ACCEPT1: u64 = 8;
/// A MSG_RING handoff.
const K_MSG: u64 = 9;

fn ud(kind: u64, generation: u32, idx: usize) -> u64 {
    (kind << 56) | (u64::from(generation & 0xff_ffff) << 32) | (idx as u64 & 0xffff_ffff)
}

fn ud_parts(ud: u64) -> (u64, u32, usize) {
    (
        ud >> 56,
        ((ud >> 32) & 0xff_ffff) as u32,
        (ud & 0xffff_ffff) as usize,
    )
}

/// An accepted socket: an fd of ours, or a slot of our ring's fixed-file table.
enum Hand {
    Fd(OwnedFd),
    Slot(u32),
}

/// An accepted connection on its way to a worker: `F` is a [`Hand`] while it is being
/// routed, then an fd (for sendmsg) or a fixed slot (for MSG_RING) in the worker's queue.
struct Pending<F = Hand> {
    fd: F,
    conn: NewConn,
    attempts: u8,
}

impl<F> Pending<F> {
    fn map<G>(self, f: impl FnOnce(F) -> G) -> Pending<G> {
        Pending {
            fd: f(self.fd),
            conn: self.conn,
            attempts: self.attempts,
        }
    }
}

/// What the supervisor tracks per worker index.
struct Worker {
    pid: Option<Pid>,
    ctl: Option<Rc<OwnedFd>>,
    /// Bumped per spawn; completions of an older process's ops are recognised by it.
    generation: u32,
    /// The control socket can take handoffs (false once it failed or hit EOF).
    usable: bool,
    /// The control socket was full this tick; offered nothing until the next tick.
    congested: bool,
    /// Saw Hello from the current process.
    ready: bool,
    /// Some process at this index got as far as Hello: a later exit is a crash to
    /// restart, not a start-up failure.
    ever_ready: bool,
    /// Connections assigned to the current process (for [`Load`](crate::policy::Load)).
    assigned: u64,
    /// Connections the current process can hold within its open-files limit (its
    /// Hello; unbounded until then). A worker at it is offered nothing.
    max_conns: u64,
    /// When this index was last restarted (the initial start does not count).
    last_restart: Option<Instant>,
    restart_at: Option<Instant>,
    /// Shutdown still to be sent (the socket was full).
    shutdown_pending: bool,
    bus_out: VecDeque<Rc<Vec<u8>>>,
    /// Connections for the next sendmsg.
    pending: Vec<Pending<OwnedFd>>,
    /// Connections for MSG_RING (fixed slots).
    pending_ring: Vec<Pending<u32>>,
    /// The worker's io_uring (from its Hello, ring handoff). Dropped as soon as the
    /// process exits: the ring, and with it every connection in its fixed-file table,
    /// is only freed when nothing holds it any more.
    ring: Option<Rc<OwnedFd>>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            pid: None,
            ctl: None,
            generation: 0,
            usable: false,
            congested: false,
            ready: false,
            ever_ready: false,
            assigned: 0,
            max_conns: u64::MAX,
            last_restart: None,
            restart_at: None,
            shutdown_pending: false,
            bus_out: VecDeque::new(),
            pending: Vec::new(),
            pending_ring: Vec::new(),
            ring: None,
        }
    }
}

enum State {
    Running,
    Draining { deadline: Instant, killed: bool },
}

/// What the supervisor's ops run on: its io_uring, or epoll where io_uring is missing
/// or forbidden ([`emu`]).
enum Ring {
    Uring(IoUring),
    Emu(emu::Emu),
}

/// The supervisor loop and all it owns.
pub struct Supervisor {
    ring: Ring,
    /// Set when a worker could not start: the supervisor stops and exits with it.
    failed: Option<String>,
    listeners: Vec<Option<Listener>>,
    /// Armed accepts per listener: bit 0 for a multishot accept, bit k for single-shot
    /// accept k ([`AcceptMode::SlotsWithAddr`]).
    accept_armed: Vec<u64>,
    accept_mode: Vec<AcceptMode>,
    /// Address buffers of the single-shot accepts, per listener (boxed: the kernel
    /// writes into them while the accepts are armed).
    accept_addrs: Vec<Option<Box<[AcceptAddr; V4_ACCEPTS]>>>,
    /// Single-shot accepts are armed with `IORING_ACCEPT_POLL_FIRST` (Linux 6.10);
    /// cleared when the kernel refuses the flag. See [`arm_accept1`](Self::arm_accept1).
    accept_poll_first: bool,
    /// Connections go to the workers by MSG_RING (ring handoff).
    ring_handoff: bool,
    /// Draining: stop waiting for accept cancellations.
    accepts_given_up: bool,
    /// The last MSG_RING sent for each of our fixed slots.
    msgs: Vec<Option<MsgOp>>,
    /// Worker rings named by SQEs not yet submitted: the kernel takes its own reference
    /// when it reads the SQE, so until then the fd number must stay ours.
    submit_refs: Vec<Rc<OwnedFd>>,
    workers: Vec<Worker>,
    metrics: Metrics,
    /// In-flight handoffs by slot. Boxed: the kernel reads each op's msghdr through a
    /// pointer until its completion, so the op must not move when the Vec grows.
    #[allow(clippy::vec_box)]
    sends: Vec<Option<Box<SendOp>>>,
    free_sends: Vec<usize>,
    /// Completed ops kept for reuse (their Vecs keep their capacity).
    #[allow(clippy::vec_box)]
    spare_ops: Vec<Box<SendOp>>,
    closes: Vec<RawFd>,
    signals: SignalFd,
    /// Boxed: the kernel reads it while the timeout is armed.
    tick: Box<types::Timespec>,
    state: State,
    grace: Duration,
    cqes: Vec<(u64, i32, u32)>,
    ctl_buf: Vec<u8>,
    ctl_fds: Vec<OwnedFd>,
    enc: Vec<u8>,
    /// Where refused clients' request bytes are read to (and never looked at), so the
    /// close after the 503 is a FIN, not a reset that could discard the answer. Boxed:
    /// the kernel writes into it while a refusal's recv is in flight.
    refuse_scratch: Box<[u8; 4096]>,
    /// Refusals since the last one logged (at most one line a second).
    refused_log: crate::log::Throttle,
    /// Accept failures since the last one logged.
    accept_error_log: crate::log::Throttle,
    /// Session-ticket keys, when TLS is on ([`tickets`]).
    tickets: Option<tickets::Tickets>,
}

/// The signals the loop takes through its signalfd. They must be blocked in every
/// thread, so [`block_signals`] runs before any thread is started.
///
/// Besides the ones it acts on (SIGTERM, SIGINT and SIGQUIT stop, SIGCHLD reaps), every
/// signal an operator may send out of habit and whose default action would end or stop
/// the process is taken here and only logged: SIGHUP (nginx: reload), SIGUSR1 (nginx:
/// reopen logs; lws' test server uses it too), SIGUSR2 (nginx: binary upgrade),
/// SIGALRM, SIGPROF, SIGTTIN and SIGTTOU (the last two would stop the whole server, and
/// blocked they let a background lwsd write to its terminal). SIGWINCH and SIGURG are
/// ignored by default; SIGPIPE is ignored by Rust's runtime.
pub fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in STOP_SIGNALS
        .iter()
        .chain(LOGGED_SIGNALS)
        .chain(&[Signal::SIGCHLD])
    {
        s.add(*sig);
    }
    s
}

/// Signals that stop lwsd gracefully (nginx's SIGQUIT is its graceful stop too).
const STOP_SIGNALS: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

/// Signals the supervisor only logs (see [`handled_signals`]).
const LOGGED_SIGNALS: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGPROF,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Makes a worker ignore every signal that reaches it only by accident or habit: the
/// ones the supervisor merely logs (`LOGGED_SIGNALS`), and SIGINT and SIGQUIT, which a
/// terminal's Ctrl-C and Ctrl-\ send to the whole process group: the supervisor gets
/// them too and tells each worker to drain, so a worker dying at once would only cut
/// its in-flight requests short. SIGTERM keeps its default: `kill <worker pid>` ends
/// that worker, and the supervisor starts a new one.
pub fn ignore_worker_signals() -> io::Result<()> {
    use nix::sys::signal::{SigHandler, signal};
    for sig in LOGGED_SIGNALS
        .iter()
        .chain(&[Signal::SIGINT, Signal::SIGQUIT])
    {
        // SAFETY: SIG_IGN installs no handler code, so nothing can run in signal context;
        // called once at worker start, before the loop or any thread exists.
        unsafe { signal(*sig, SigHandler::SigIgn) }?;
    }
    Ok(())
}

/// Blocks [`handled_signals`] in the calling thread (and threads it starts later).
pub fn block_signals() -> io::Result<()> {
    handled_signals().thread_block()?;
    Ok(())
}

impl Supervisor {
    /// Sets up the ring and signalfd and spawns the workers. Signals must already be
    /// blocked ([`block_signals`]).
    pub fn new(
        listeners: Vec<Listener>,
        workers: usize,
        metrics: Metrics,
        grace: Duration,
        handoff: crate::cli::FdHandoff,
        event_loop: crate::cli::EventLoop,
    ) -> io::Result<Supervisor> {
        let ring = match event_loop {
            crate::cli::EventLoop::Epoll => Ring::Emu(emu::Emu::new()?),
            mode => match IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(RING_ENTRIES)
            {
                Ok(r) => Ring::Uring(r),
                Err(e) => match lwsd_worker::service::driver::uring_unavailable(&e) {
                    Some(cause) if mode == crate::cli::EventLoop::Auto => {
                        log!(WARN, "io_uring unavailable ({cause}): using epoll");
                        Ring::Emu(emu::Emu::new()?)
                    }
                    _ => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "io_uring_setup failed ({e}); io_uring missing or forbidden? (--event-loop epoll runs without it)"
                            ),
                        ));
                    }
                },
            },
        };
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?;
        let n_listeners = listeners.len();
        let ring_handoff = match (handoff, &ring) {
            (crate::cli::FdHandoff::Scm, _) => false,
            (crate::cli::FdHandoff::Auto, Ring::Emu(_)) => false,
            (crate::cli::FdHandoff::Ring, Ring::Emu(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "--fd-handoff ring needs io_uring, which is unavailable here",
                ));
            }
            (mode, Ring::Uring(ring)) => match crate::pidfd::probe()
                .and_then(|()| ring.submitter().register_files_sparse(sup_fixed_slots()))
            {
                Ok(()) => true,
                Err(e) if mode == crate::cli::FdHandoff::Auto => {
                    log!(
                        NOTICE,
                        "ring handoff unavailable (pidfd_getfd or io_uring fixed files: {e}); using SCM_RIGHTS"
                    );
                    false
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("--fd-handoff ring: pidfd_getfd or io_uring fixed files: {e}"),
                    ));
                }
            },
        };
        let accept_mode: Vec<AcceptMode> = listeners
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let fits = ring_handoff && li < usize::from(lwsd_proto::handoff::MAX_LISTENERS);
                match &l.kind {
                    ListenerKind::Tcp(a) if fits && a.is_ipv4() => AcceptMode::SlotsWithAddr,
                    ListenerKind::Unix(_) if fits => AcceptMode::Slots,
                    _ => AcceptMode::Fds,
                }
            })
            .collect();
        let accept_addrs = accept_mode
            .iter()
            .map(|m| {
                (*m == AcceptMode::SlotsWithAddr).then(|| {
                    Box::new(std::array::from_fn(|_| AcceptAddr {
                        // SAFETY: sockaddr_in is a plain C struct of integers; all-zero
                        // is a valid value.
                        sa: unsafe { std::mem::zeroed() },
                        len: 0,
                    }))
                })
            })
            .collect();
        let mut s = Supervisor {
            ring,
            failed: None,
            listeners: listeners.into_iter().map(Some).collect(),
            accept_armed: vec![0; n_listeners],
            accept_mode,
            accept_addrs,
            accept_poll_first: true,
            ring_handoff,
            accepts_given_up: false,
            msgs: Vec::new(),
            submit_refs: Vec::new(),
            workers: (0..workers).map(|_| Worker::new()).collect(),
            metrics,
            sends: Vec::new(),
            free_sends: Vec::new(),
            spare_ops: Vec::new(),
            closes: Vec::new(),
            signals,
            tick: Box::new(types::Timespec::from(TICK)),
            state: State::Running,
            grace,
            cqes: Vec::with_capacity(RING_ENTRIES as usize * 2),
            ctl_buf: vec![0; MAX_MSG_SIZE],
            ctl_fds: Vec::new(),
            enc: Vec::with_capacity(MAX_MSG_SIZE),
            refuse_scratch: Box::new([0; 4096]),
            refused_log: crate::log::Throttle::default(),
            accept_error_log: crate::log::Throttle::default(),
            tickets: None,
        };
        for i in 0..workers {
            s.spawn(i, Instant::now(), false);
        }
        Ok(s)
    }

    /// Pushes one SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer the entry points to must stay valid and unmoved until its completion
    /// is reaped (io_uring's contract, `SubmissionQueue::push`).
    unsafe fn push(&mut self, e: &squeue::Entry) {
        loop {
            let ring = match &mut self.ring {
                Ring::Uring(r) => r,
                Ring::Emu(emu) => {
                    // SAFETY: forwarded from this function's contract.
                    unsafe { emu.push(e) };
                    return;
                }
            };
            // SAFETY: forwarded from this function's contract.
            if unsafe { ring.submission().push(e) }.is_ok() {
                return;
            }
            if let Err(err) = ring.submit() {
                log!(ERR, "io_uring submit: {err}");
                // EBUSY: the completion queue is full; make room and retry. The entries
                // are reaped into `cqes` and handled by the caller's pass.
                self.reap();
            }
        }
    }

    fn reap(&mut self) {
        match &mut self.ring {
            Ring::Uring(r) => {
                for c in r.completion() {
                    self.cqes.push((c.user_data(), c.result(), c.flags()));
                }
            }
            Ring::Emu(emu) => emu.reap(&mut self.cqes),
        }
    }

    fn arm_signals(&mut self) {
        let e = opcode::PollAdd::new(
            types::Fd(self.signals.as_fd().as_raw_fd()),
            libc::POLLIN as u32,
        )
        .multi(true)
        .build()
        .user_data(ud(K_SIGNAL, 0, 0));
        // SAFETY: no user memory; the signalfd lives as long as `self`.
        unsafe { self.push(&e) };
    }

    fn arm_timer(&mut self) {
        let e = opcode::Timeout::new(&*self.tick as *const types::Timespec)
            .build()
            .user_data(ud(K_TIMER, 0, 0));
        // SAFETY: the timespec is boxed in `self.tick`, never replaced, and lives as long
        // as the ring (both are fields of `self`, dropped together after the loop ends).
        unsafe { self.push(&e) };
    }

    fn cancel(&mut self, target: u64) {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(ud(K_CANCEL, 0, 0));
        // SAFETY: a cancel reads no user memory.
        unsafe { self.push(&e) };
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        for li in 0..self.listeners.len() {
            self.arm_accept(li);
        }
        for w in 0..self.workers.len() {
            self.arm_ctl(w);
        }
        self.arm_signals();
        self.arm_timer();
        log!(
            NOTICE,
            "supervising {} workers on {} listeners",
            self.workers.len(),
            self.listeners.len()
        );
        loop {
            // Also wait for the accepts' cancellations: an accept still in the ring holds
            // its listener, and a ring is torn down after the process exits, so the port
            // would stay bound for a moment after lwsd is gone (a restart would fail with
            // EADDRINUSE). The tick bounds the wait.
            if matches!(self.state, State::Draining { .. })
                && self.workers.iter().all(|w| w.pid.is_none())
                && (self.accept_armed.iter().all(|&a| a == 0) || self.accepts_given_up)
            {
                if let Some(why) = self.failed.take() {
                    return Err(io::Error::other(why));
                }
                log!(NOTICE, "all workers exited; bye");
                return Ok(());
            }
            let r = match &mut self.ring {
                Ring::Uring(ring) => {
                    let r = ring.submit_and_wait(1);
                    if ring.submission().is_empty() {
                        self.submit_refs.clear();
                    }
                    r.map(drop)
                }
                Ring::Emu(emu) => emu.wait(),
            };
            match r {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            self.reap();
            let now = Instant::now();
            let mut i = 0;
            // `cqes` can grow while handled (a full SQ forces a reap); index, don't iterate.
            while i < self.cqes.len() {
                let (u, res, flags) = self.cqes[i];
                self.dispatch(u, res, flags, now);
                i += 1;
            }
            self.cqes.clear();
            self.flush_pending();
            self.flush_closes();
        }
    }

    fn dispatch(&mut self, u: u64, res: i32, flags: u32, now: Instant) {
        let (kind, generation, idx) = ud_parts(u);
        match kind {
            K_ACCEPT => self.on_accept(idx, res, flags),
            K_ACCEPT1 => self.on_accept1(idx, generation as usize, res),
            K_MSG => self.on_msg(idx, res),
            K_SEND => self.on_send(idx, res),
            K_CTL => self.on_ctl(idx, generation, res, flags),
            K_SIGNAL => {
                self.on_signals(now);
                if !cqueue::more(flags) {
                    self.arm_signals();
                }
            }
            K_TIMER => {
                self.on_tick(now);
                self.arm_timer();
            }
            K_CLOSE | K_CANCEL => {}
            _ => log!(ERR, "unknown completion {u:#x}"),
        }
    }

    fn on_signals(&mut self, now: Instant) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                        self.begin_shutdown(now)
                    }
                    Ok(Signal::SIGHUP) => log!(NOTICE, "SIGHUP: reload not yet supported"),
                    Ok(Signal::SIGUSR1) => log!(
                        NOTICE,
                        "SIGUSR1: no log files to reopen (lwsd logs to stderr; no access log yet)"
                    ),
                    Ok(Signal::SIGUSR2) => {
                        log!(NOTICE, "SIGUSR2: binary upgrade not supported yet; ignored")
                    }
                    Ok(Signal::SIGCHLD) => self.reap_children(now),
                    Ok(sig) => log!(NOTICE, "{sig}: ignored"),
                    Err(_) => log!(NOTICE, "signal {}: ignored", info.ssi_signo),
                },
                Ok(None) => return,
                Err(e) => {
                    log!(ERR, "signalfd read: {e}");
                    return;
                }
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        for w in 0..self.workers.len() {
            self.workers[w].congested = false;
            if !self.workers[w].bus_out.is_empty() {
                self.flush_bus(w);
            }
        }
        match self.state {
            State::Running => {
                for w in 0..self.workers.len() {
                    if self.workers[w].restart_at.is_some_and(|t| t <= now) {
                        self.spawn(w, now, true);
                        self.arm_ctl(w);
                    }
                }
                for li in 0..self.listeners.len() {
                    self.arm_accept(li);
                }
                self.tick_tickets(now);
            }
            State::Draining { deadline, killed } => {
                if self.workers.iter().all(|w| w.pid.is_none()) {
                    // A tick after the last worker: the cancels had their time.
                    self.accepts_given_up = true;
                }
                for w in 0..self.workers.len() {
                    if self.workers[w].shutdown_pending {
                        self.send_shutdown(w);
                    }
                }
                if !killed && now >= deadline {
                    for (w, wk) in self.workers.iter().enumerate() {
                        if let Some(pid) = wk.pid {
                            log!(WARN, "worker {w} (pid {pid}) missed the deadline; killing");
                            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                        }
                    }
                    self.state = State::Draining {
                        deadline,
                        killed: true,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trip() {
        for (k, g, i) in [
            (K_ACCEPT, 0, 0),
            (K_CTL, 0xff_ffff, 255),
            (K_SEND, 7, u32::MAX as usize),
        ] {
            assert_eq!(ud_parts(ud(k, g, i)), (k, g, i));
        }
        // Generations wrap at 24 bits instead of spilling into the kind.
        assert_eq!(ud_parts(ud(K_CTL, 0x100_0001, 3)), (K_CTL, 1, 3));
    }
}
