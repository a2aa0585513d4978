//! The supervisor's event loop, on its own io_uring (DESIGN.md section 1).
//!
//! One ring watches everything: a multishot accept per listener, a multishot poll per
//! worker control socket, a multishot poll on a signalfd (SIGTERM, SIGINT, SIGHUP,
//! SIGCHLD) and a periodic timeout. Each pass over the completion queue collects the
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

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use lwsd_proto::{FromWorker, MAX_FDS_PER_MSG, MAX_MSG_SIZE, NewConn, PeerAddr, ToWorker};
use lwsd_worker::config::ListenerKind;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{SockaddrStorage, getpeername};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::listen::{self, Listener};
use crate::log::{DEBUG, ERR, INFO, NOTICE, WARN};
use crate::metrics::Metrics;
use crate::policy::{Load, pick_least_loaded};
use crate::spawn::spawn_worker;

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

/// `IORING_ACCEPT_POLL_FIRST` (Linux 6.10): an accept waits for the listener to be
/// readable before trying, instead of trying at once.
const ACCEPT_POLL_FIRST: u16 = 1 << 2;

/// `e` with its SQE's `ioprio` field set (io-uring 0.7's `Accept` builder has no
/// setter for it; the accept flags of Linux 6.10 live there).
fn with_ioprio(e: squeue::Entry, ioprio: u16) -> squeue::Entry {
    // struct io_uring_sqe { __u8 opcode; __u8 flags; __u16 ioprio; ... }
    const IOPRIO_AT: usize = 2;
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (transmute checks the size) and every bit pattern is a valid SQE
    // for the round trip; only the 2 bytes of `ioprio` change, at their ABI offset.
    let mut raw: [u8; 64] = unsafe { std::mem::transmute(e) };
    raw[IOPRIO_AT..IOPRIO_AT + 2].copy_from_slice(&ioprio.to_ne_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}

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

/// `CMSG_LEN(n)` / `CMSG_SPACE(n)`.
fn cmsg_len(n: usize) -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic on its argument (no pointer is read); n is at
    // most 64 * 4.
    unsafe { libc::CMSG_LEN(n as u32) as usize }
}
fn cmsg_space(n: usize) -> usize {
    // SAFETY: as above, arithmetic only.
    unsafe { libc::CMSG_SPACE(n as u32) as usize }
}

/// Control buffer of a handoff sendmsg, aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; lwsd_proto::fdpass::CMSG_BUF_LEN]);

/// One handoff sendmsg in flight: everything the kernel reads lives here, boxed, so its
/// address is stable from submission to completion.
struct SendOp {
    hdr: libc::msghdr,
    iov: libc::iovec,
    cmsg: CmsgBuf,
    data: Vec<u8>,
    fds: Vec<OwnedFd>,
    conns: Vec<NewConn>,
    attempts: Vec<u8>,
    worker: usize,
    /// Keeps the control socket open until the op completes even if the worker dies.
    ctl: Option<Rc<OwnedFd>>,
}

impl SendOp {
    fn new() -> Box<SendOp> {
        Box::new(SendOp {
            // SAFETY: msghdr and iovec are plain C structs of integers and pointers, for
            // which all-zero is a valid (empty) value.
            hdr: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            iov: unsafe { std::mem::zeroed() },
            cmsg: CmsgBuf([0; lwsd_proto::fdpass::CMSG_BUF_LEN]),
            data: Vec::with_capacity(4 + 2 + MAX_FDS_PER_MSG * 21),
            fds: Vec::with_capacity(MAX_FDS_PER_MSG),
            conns: Vec::with_capacity(MAX_FDS_PER_MSG),
            attempts: Vec::with_capacity(MAX_FDS_PER_MSG),
            worker: 0,
            ctl: None,
        })
    }

    /// Encodes the message and points the msghdr at this op's own buffers. Must be
    /// called after the op is in its final (boxed) place and not moved before completion.
    fn prepare(&mut self) {
        // conns.len() <= MAX_FDS_PER_MSG by construction, so encoding cannot fail.
        let _ = ToWorker::encode_new_conns(&self.conns, &mut self.data);
        let n = self.fds.len();
        let payload = n * std::mem::size_of::<RawFd>();
        let c = &mut self.cmsg.0;
        c.fill(0);
        let hdr = std::mem::size_of::<usize>();
        c[..hdr].copy_from_slice(&cmsg_len(payload).to_ne_bytes());
        c[hdr..hdr + 4].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c[hdr + 4..hdr + 8].copy_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        let data_off = cmsg_len(0);
        for (i, fd) in self.fds.iter().enumerate() {
            let o = data_off + i * 4;
            c[o..o + 4].copy_from_slice(&fd.as_raw_fd().to_ne_bytes());
        }
        self.iov.iov_base = self.data.as_ptr() as *mut libc::c_void;
        self.iov.iov_len = self.data.len();
        self.hdr.msg_name = std::ptr::null_mut();
        self.hdr.msg_namelen = 0;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_control = c.as_mut_ptr() as *mut libc::c_void;
        self.hdr.msg_controllen = if n == 0 { 0 } else { cmsg_space(payload) };
        self.hdr.msg_flags = 0;
    }

    fn clear(&mut self) {
        self.fds.clear();
        self.conns.clear();
        self.attempts.clear();
        self.ctl = None;
    }
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

/// How a listener's connections are accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AcceptMode {
    /// Multishot accept into fds, handed over in SCM_RIGHTS packets.
    Fds,
    /// Multishot accept into fixed slots, handed over by MSG_RING (unix listeners).
    Slots,
    /// [`V4_ACCEPTS`] single-shot accepts into fixed slots with the peer address, handed
    /// over by MSG_RING (IPv4 listeners).
    SlotsWithAddr,
}

/// Where a single-shot accept writes the peer address.
#[repr(C)]
struct AcceptAddr {
    sa: libc::sockaddr_in,
    len: libc::socklen_t,
}

/// A MSG_RING handoff, kept (by our slot) in case it fails: a successful one posts no
/// completion at all.
struct MsgOp {
    conn: NewConn,
    attempts: u8,
    worker: usize,
    /// The worker's generation when the op was sent.
    generation: u32,
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
    /// Connections assigned to the current process (for [`Load`]).
    assigned: u64,
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

/// The supervisor loop and all it owns.
pub struct Supervisor {
    ring: IoUring,
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
}

/// The signals the loop takes through its signalfd. They must be blocked in every
/// thread, so [`block_signals`] runs before any thread is started.
pub fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        s.add(sig);
    }
    s
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
    ) -> io::Result<Supervisor> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(RING_ENTRIES)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("io_uring_setup failed ({e}); io_uring missing or forbidden?"),
                )
            })?;
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?;
        let n_listeners = listeners.len();
        let ring_handoff = match handoff {
            crate::cli::FdHandoff::Scm => false,
            mode => match crate::pidfd::probe()
                .and_then(|()| ring.submitter().register_files_sparse(SUP_FIXED_SLOTS))
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
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return;
            }
            if let Err(err) = self.ring.submit() {
                log!(ERR, "io_uring submit: {err}");
                // EBUSY: the completion queue is full; make room and retry. The entries
                // are reaped into `cqes` and handled by the caller's pass.
                self.reap();
            }
        }
    }

    fn reap(&mut self) {
        for c in self.ring.completion() {
            self.cqes.push((c.user_data(), c.result(), c.flags()));
        }
    }

    /// Arms whatever accepts of listener `li` are not armed.
    fn arm_accept(&mut self, li: usize) {
        let Some(l) = &self.listeners[li] else { return };
        let fd = l.fd.as_raw_fd();
        match self.accept_mode[li] {
            AcceptMode::SlotsWithAddr => {
                for k in 0..V4_ACCEPTS {
                    if self.accept_armed[li] & (1 << k) == 0 {
                        self.arm_accept1(li, fd, k);
                    }
                }
            }
            mode if self.accept_armed[li] == 0 => {
                // (A fixed slot is no fd: close-on-exec does not apply, and the kernel
                // rejects the flag with one.)
                let slots = mode == AcceptMode::Slots;
                let e = opcode::AcceptMulti::new(types::Fd(fd))
                    .flags(if slots { 0 } else { libc::SOCK_CLOEXEC })
                    .allocate_file_index(slots)
                    .build()
                    .user_data(ud(K_ACCEPT, 0, li));
                // SAFETY: a multishot accept reads no user memory; the listener fd stays
                // open until this accept's final completion (closed only after it).
                unsafe { self.push(&e) };
                self.accept_armed[li] = 1;
            }
            _ => {}
        }
    }

    fn arm_accept1(&mut self, li: usize, fd: RawFd, k: usize) {
        let Some(addrs) = self.accept_addrs[li].as_mut() else {
            return;
        };
        let a = &mut addrs[k];
        a.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let e = opcode::Accept::new(
            types::Fd(fd),
            &mut a.sa as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut a.len,
        )
        .file_index(Some(types::DestinationSlot::auto_target()))
        .build()
        .user_data(ud(K_ACCEPT1, k as u32, li));
        // Without POLL_FIRST the kernel tries the accept at once and, with no connection
        // waiting (the usual case for an accept re-armed right after one completed),
        // allocates a socket, inode, dentry and file only to free them again on EAGAIN
        // (freeing them alone was ~15 % of the supervisor's samples at 2,000 conn/s).
        let e = if self.accept_poll_first {
            with_ioprio(e, ACCEPT_POLL_FIRST)
        } else {
            e
        };
        // SAFETY: the address buffer is element k of a boxed array owned by `self` for
        // as long as the ring (never moved, never freed before the ring), and only this
        // accept uses element k until its completion clears bit k below; the listener
        // fd stays open until its accepts' final completions.
        unsafe { self.push(&e) };
        self.accept_armed[li] |= 1 << k;
    }

    /// Closes one of our fixed-file slots (its socket, unless a worker holds it too).
    fn close_slot(&mut self, slot: u32) {
        let e = opcode::Close::new(types::Fixed(slot))
            .build()
            .user_data(ud(K_CLOSE, 0, 0));
        // SAFETY: a close reads no user memory.
        unsafe { self.push(&e) };
    }

    fn arm_ctl(&mut self, w: usize) {
        let wk = &self.workers[w];
        let Some(ctl) = &wk.ctl else { return };
        let e = opcode::PollAdd::new(types::Fd(ctl.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(ud(K_CTL, wk.generation, w));
        // SAFETY: a poll reads no user memory; the kernel holds its own reference to the
        // socket, so closing our fd later only needs the cancel we submit then.
        unsafe { self.push(&e) };
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
            let r = self.ring.submit_and_wait(1);
            if self.ring.submission().is_empty() {
                self.submit_refs.clear();
            }
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

    fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if res >= 0 && self.accept_mode[li] == AcceptMode::Slots {
            if matches!(self.state, State::Running) {
                self.route(Pending {
                    fd: Hand::Slot(res as u32),
                    conn: NewConn {
                        listener: li as u16,
                        peer: PeerAddr::Unix,
                    },
                    attempts: 0,
                });
            } else {
                self.close_slot(res as u32);
            }
        } else if res >= 0 {
            // SAFETY: a successful accept completion's result is a new descriptor the
            // kernel installed for us; nothing else refers to it.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if matches!(self.state, State::Running) {
                self.assign(li, fd);
            }
            // Draining: accepted before the cancel took effect; dropping closes it.
        } else if res != -libc::ECANCELED {
            let e = io::Error::from_raw_os_error(-res);
            log!(WARN, "accept on listener {li}: {e}");
        }
        if !cqueue::more(flags) {
            self.accept_armed[li] = 0;
            match self.state {
                // After an error (EMFILE...) re-arm on the next tick, not in a hot loop.
                State::Running if res >= 0 => self.arm_accept(li),
                State::Running => {}
                State::Draining { .. } => self.listeners[li] = None,
            }
        }
    }

    /// One single-shot accept (IPv4, ring handoff) completed: the socket is in fixed
    /// slot `res`, its peer address in buffer `k`.
    fn on_accept1(&mut self, li: usize, k: usize, res: i32) {
        self.accept_armed[li] &= !(1 << k);
        let running = matches!(self.state, State::Running);
        if res >= 0 {
            let slot = res as u32;
            if running {
                let peer = self.accept_addrs[li]
                    .as_ref()
                    .map_or(PeerAddr::Unknown, |a| {
                        let sa = &a[k].sa;
                        PeerAddr::V4(sa.sin_addr.s_addr.to_ne_bytes(), u16::from_be(sa.sin_port))
                    });
                self.route(Pending {
                    fd: Hand::Slot(slot),
                    conn: NewConn {
                        listener: li as u16,
                        peer,
                    },
                    attempts: 0,
                });
                if let Some(l) = &self.listeners[li] {
                    let fd = l.fd.as_raw_fd();
                    self.arm_accept1(li, fd, k);
                }
            } else {
                self.close_slot(slot);
            }
        } else if res == -libc::EINVAL && self.accept_poll_first {
            // A kernel before 6.10: no IORING_ACCEPT_POLL_FIRST. Plain accepts from now on.
            log!(
                INFO,
                "accept: IORING_ACCEPT_POLL_FIRST refused (kernel < 6.10); not using it"
            );
            self.accept_poll_first = false;
            if running && let Some(l) = &self.listeners[li] {
                let fd = l.fd.as_raw_fd();
                self.arm_accept1(li, fd, k);
            }
        } else if res != -libc::ECANCELED {
            // Re-armed on the next tick, not in a hot loop (ENFILE: our slots are full).
            let e = io::Error::from_raw_os_error(-res);
            log!(WARN, "accept on listener {li}: {e}");
        }
        if !running && self.accept_armed[li] == 0 {
            self.listeners[li] = None;
        }
    }

    fn load(&self, w: usize, needs_ring: bool) -> Option<Load> {
        let wk = &self.workers[w];
        // A worker still starting takes connections as it would fds: they wait in its
        // `pending_ring` for the ring its Hello brings.
        let no_ring = needs_ring && wk.ready && wk.ring.is_none();
        if wk.pid.is_none() || !wk.usable || wk.congested || no_ring {
            return None;
        }
        let s = self.metrics.workers[w].current();
        Some(Load {
            live: u64::from(s.live_conns),
            assigned: wk.assigned,
            accepted: s.accepted_total,
        })
    }

    fn assign(&mut self, li: usize, fd: OwnedFd) {
        // The peer address travels with the fd (DESIGN.md section 1): multishot accept
        // returns no address, so it is one getpeername (~0.6 µs, ~4 % of the
        // supervisor's cost per connection).
        let peer = match self.listeners[li].as_ref().map(|l| &l.kind) {
            Some(ListenerKind::Tcp(_)) => peer_addr(&fd),
            _ => PeerAddr::Unix,
        };
        let conn = NewConn {
            listener: li as u16,
            peer,
        };
        self.route(Pending {
            fd: Hand::Fd(fd),
            conn,
            attempts: 0,
        });
    }

    /// Queues a connection for the least-loaded worker, or closes it if none can take it.
    fn route(&mut self, p: Pending) {
        let is_slot = matches!(p.fd, Hand::Slot(_));
        let n = self.workers.len();
        let pick = if p.attempts >= MAX_HANDOFF_ATTEMPTS {
            None
        } else {
            pick_least_loaded((0..n).map(|w| self.load(w, is_slot)))
        };
        let Some(w) = pick else {
            log!(DEBUG, "no worker can take a connection; closing it");
            self.metrics.handoff_failures.increment(1);
            if let Hand::Slot(s) = p.fd {
                self.close_slot(s);
            }
            return; // (an fd closes as `p` drops)
        };
        let wk = &mut self.workers[w];
        wk.assigned += 1;
        let (conn, attempts) = (p.conn, p.attempts);
        match p.fd {
            Hand::Fd(fd) => wk.pending.push(Pending { fd, conn, attempts }),
            Hand::Slot(fd) => wk.pending_ring.push(Pending { fd, conn, attempts }),
        }
    }

    /// Turns each worker's pending connections into MSG_RING ops (fixed slots) and
    /// sendmsg ops of up to 64 fds.
    fn flush_pending(&mut self) {
        for w in 0..self.workers.len() {
            if self.workers[w].pending_ring.is_empty() {
                continue;
            }
            let Some(ring) = self.workers[w].ring.clone() else {
                if self.workers[w].pid.is_some() && !self.workers[w].ready {
                    continue; // starting: sent once its Hello brings the ring
                }
                let pending = std::mem::take(&mut self.workers[w].pending_ring);
                self.workers[w].assigned = 0;
                for p in pending {
                    self.route(p.map(Hand::Slot));
                }
                continue;
            };
            let pending = std::mem::take(&mut self.workers[w].pending_ring);
            for p in pending {
                let slot = p.fd;
                let Some(token) = lwsd_proto::handoff::encode(p.conn.listener, &p.conn.peer) else {
                    // Only IPv4 and unix listeners below MAX_LISTENERS accept into slots.
                    log!(
                        ERR,
                        "connection of listener {} has no handoff token",
                        p.conn.listener
                    );
                    self.close_slot(slot);
                    continue;
                };
                let i = slot as usize;
                if self.msgs.len() <= i {
                    self.msgs.resize_with(i + 1, || None);
                }
                self.msgs[i] = Some(MsgOp {
                    conn: p.conn,
                    attempts: p.attempts + 1,
                    worker: w,
                    generation: self.workers[w].generation,
                });
                if p.attempts == 0 {
                    self.metrics.handoffs.increment(1);
                }
                // The socket moves to the worker's table, then our slot is closed by the
                // linked op right after, in the same submit (so the worker holds the last
                // reference and its close sends the FIN at once). Neither posts a
                // completion on success; a failed MSG_RING posts its error and cancels
                // the close, and the connection is routed again from `msgs`.
                let e = opcode::MsgRingSendFd::new(
                    types::Fd(ring.as_raw_fd()),
                    types::Fixed(slot),
                    types::DestinationSlot::auto_target(),
                    token,
                )
                .build()
                .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                .user_data(ud(K_MSG, 0, i));
                // SAFETY: MSG_RING reads no user memory; the target ring's fd stays open
                // until this SQE is submitted (`submit_refs`), after which the op holds
                // its own reference.
                unsafe { self.push(&e) };
                let e = opcode::Close::new(types::Fixed(slot))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(ud(K_CLOSE, 0, 0));
                // SAFETY: a close reads no user memory.
                unsafe { self.push(&e) };
            }
            self.submit_refs.push(ring);
        }
        for w in 0..self.workers.len() {
            while !self.workers[w].pending.is_empty() {
                let Some(ctl) = self.workers[w].ctl.clone() else {
                    let stranded = std::mem::take(&mut self.workers[w].pending);
                    self.workers[w].assigned = 0;
                    for p in stranded {
                        self.route(p.map(Hand::Fd));
                    }
                    continue;
                };
                let mut op = self.spare_ops.pop().unwrap_or_else(SendOp::new);
                let pending = &mut self.workers[w].pending;
                let take = pending.len().min(MAX_FDS_PER_MSG);
                for p in pending.drain(..take) {
                    op.fds.push(p.fd);
                    op.conns.push(p.conn);
                    op.attempts.push(p.attempts + 1);
                }
                op.worker = w;
                let raw = ctl.as_raw_fd();
                op.ctl = Some(ctl);
                op.prepare();
                let slot = match self.free_sends.pop() {
                    Some(s) => s,
                    None => {
                        self.sends.push(None);
                        self.sends.len() - 1
                    }
                };
                let hdr: *const libc::msghdr = &op.hdr;
                self.sends[slot] = Some(op);
                // MSG_DONTWAIT: a full socket fails at once with EAGAIN (and the fds go
                // elsewhere) instead of the op parking until the worker reads.
                let e = opcode::SendMsg::new(types::Fd(raw), hdr)
                    .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
                    .build()
                    .user_data(ud(K_SEND, 0, slot));
                // SAFETY: `hdr` points into the boxed SendOp now stored in
                // `self.sends[slot]`; the msghdr, its iovec, the encoded message, the cmsg
                // buffer and the fds it names all live in that box, which is neither moved
                // (only the Box pointer moves) nor freed nor modified until `on_send`
                // takes it back on this op's completion. The socket is kept open by the
                // op's `ctl` Rc.
                unsafe { self.push(&e) };
            }
        }
    }

    fn on_send(&mut self, slot: usize, res: i32) {
        let Some(mut op) = self.sends.get_mut(slot).and_then(Option::take) else {
            log!(ERR, "send completion for empty slot {slot}");
            return;
        };
        self.free_sends.push(slot);
        let w = op.worker;
        let n = op.fds.len();
        if res >= 0 && res as usize == op.data.len() {
            self.metrics.handoffs.increment(n as u64);
            // Our copies are no longer needed: the worker holds its own.
            for fd in op.fds.drain(..) {
                self.closes.push(fd.into_raw_fd());
            }
        } else {
            let err = -res;
            log!(
                DEBUG,
                "handoff of {n} fds to worker {w} failed: {}",
                io::Error::from_raw_os_error(err)
            );
            let same_process = op
                .ctl
                .as_ref()
                .zip(self.workers[w].ctl.as_ref())
                .is_some_and(|(a, b)| Rc::ptr_eq(a, b));
            if same_process {
                let wk = &mut self.workers[w];
                wk.assigned = wk.assigned.saturating_sub(n as u64);
                if err == libc::EAGAIN || err == libc::ENOBUFS {
                    wk.congested = true;
                } else {
                    wk.usable = false;
                }
            }
            let fds = std::mem::take(&mut op.fds);
            for ((fd, conn), attempts) in
                fds.into_iter().zip(op.conns.iter()).zip(op.attempts.iter())
            {
                self.route(Pending {
                    fd: Hand::Fd(fd),
                    conn: *conn,
                    attempts: *attempts,
                });
            }
        }
        op.clear();
        self.spare_ops.push(op);
    }

    /// A MSG_RING handoff failed (a success posts nothing): our slot still holds the
    /// socket (its linked close was cancelled), so it is routed again.
    fn on_msg(&mut self, slot: usize, res: i32) {
        if res >= 0 {
            return;
        }
        let Some(op) = self.msgs.get_mut(slot).and_then(Option::take) else {
            log!(ERR, "MSG_RING failure for unknown slot {slot}");
            return;
        };
        let slot = slot as u32;
        let err = -res;
        let w = op.worker;
        log!(
            DEBUG,
            "MSG_RING handoff to worker {w} failed: {}",
            io::Error::from_raw_os_error(err)
        );
        if err == libc::EOVERFLOW {
            // The worker got the socket but its completion queue could not say so: the
            // connection is lost either way. Count it; do not hand it over twice.
            self.metrics.handoff_failures.increment(1);
            self.close_slot(slot);
            return;
        }
        let same_process =
            self.workers[w].generation == op.generation && self.workers[w].ring.is_some();
        if same_process {
            let wk = &mut self.workers[w];
            wk.assigned = wk.assigned.saturating_sub(1);
            if err == libc::ENFILE || err == libc::EAGAIN {
                wk.congested = true; // its fixed-file table is full
            } else {
                wk.usable = false; // EOWNERDEAD: the worker is exiting
            }
        }
        self.route(Pending {
            fd: Hand::Slot(slot),
            conn: op.conn,
            attempts: op.attempts,
        });
    }

    fn flush_closes(&mut self) {
        let closes = std::mem::take(&mut self.closes);
        for &fd in &closes {
            let e = opcode::Close::new(types::Fd(fd))
                .build()
                .user_data(ud(K_CLOSE, 0, 0));
            // SAFETY: `fd` was released from its OwnedFd (into_raw_fd) for this close
            // alone; no other code refers to the number until the kernel reuses it.
            unsafe { self.push(&e) };
        }
        self.closes = closes;
        self.closes.clear();
    }

    fn on_ctl(&mut self, w: usize, generation: u32, res: i32, flags: u32) {
        let Some(wk) = self.workers.get(w) else {
            return;
        };
        if wk.generation != generation || wk.ctl.is_none() {
            return; // an op of a previous process at this index
        }
        let mut closed = res < 0 || (res as i16 & (libc::POLLHUP | libc::POLLERR)) != 0;
        // Drain every queued packet; POLLHUP still leaves earlier packets readable.
        if res >= 0 {
            closed |= self.read_ctl(w);
        }
        if closed {
            // EOF: the process is exiting; SIGCHLD does the rest. Stop the (level-
            // triggered) poll so a hung-up socket does not spin the loop.
            let wk = &mut self.workers[w];
            wk.usable = false;
            if cqueue::more(flags) {
                self.cancel(ud(K_CTL, generation, w));
            }
        } else if !cqueue::more(flags) {
            self.arm_ctl(w);
        }
    }

    /// Reads and handles every queued control packet of worker `w`; true at EOF/error.
    fn read_ctl(&mut self, w: usize) -> bool {
        let Some(ctl) = self.workers[w].ctl.clone() else {
            return true;
        };
        loop {
            self.ctl_fds.clear();
            match lwsd_proto::recv(ctl.as_fd(), &mut self.ctl_buf, &mut self.ctl_fds) {
                Ok(Some(n)) => {
                    match FromWorker::decode(&self.ctl_buf[..n]) {
                        Ok(m) => self.on_worker_msg(w, m),
                        Err(e) => log!(WARN, "worker {w}: bad control message: {e}"),
                    }
                    if !self.ctl_fds.is_empty() {
                        log!(WARN, "worker {w} sent fds; closed them");
                        self.ctl_fds.clear();
                    }
                }
                Ok(None) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log!(WARN, "worker {w}: {e}");
                }
                Err(e) => {
                    log!(WARN, "worker {w} control socket: {e}");
                    return true;
                }
            }
        }
    }

    fn on_worker_msg(&mut self, w: usize, m: FromWorker) {
        match m {
            FromWorker::Hello {
                index,
                pid,
                ring_fd,
            } => {
                log!(INFO, "worker {w} ready (index {index}, pid {pid})");
                if usize::from(index) != w {
                    log!(WARN, "worker {w} says it is index {index}");
                }
                if self.ring_handoff {
                    // Only from the process we started and have not reaped: its pid
                    // cannot have been reused.
                    let ours = self.workers[w]
                        .pid
                        .filter(|p| p.as_raw() as u32 == pid && ring_fd >= 0);
                    match ours.map(|p| crate::pidfd::take_fd(p, ring_fd)) {
                        Some(Ok(fd)) => self.workers[w].ring = Some(Rc::new(fd)),
                        Some(Err(e)) => log!(
                            ERR,
                            "worker {w}: cannot take its io_uring fd ({e}); it gets no IPv4 or unix connections (use --fd-handoff scm)"
                        ),
                        _ => log!(
                            ERR,
                            "worker {w}: hello without a usable ring (fd {ring_fd}, pid {pid})"
                        ),
                    }
                }
                self.workers[w].ready = true;
                self.workers[w].ever_ready = true;
            }
            FromWorker::Stats(s) => self.metrics.workers[w].update(&s),
            FromWorker::Bus(mut b) => {
                // The supervisor knows who published; a worker cannot speak for another.
                b.origin = w as u16;
                if let Err(e) = ToWorker::Bus(b).encode(&mut self.enc) {
                    log!(WARN, "worker {w}: unrelayable bus message: {e}");
                    self.metrics.bus_dropped.increment(1);
                    return;
                }
                let pkt = Rc::new(self.enc.clone());
                for t in 0..self.workers.len() {
                    if self.workers[t].ctl.is_none() {
                        continue;
                    }
                    let q = &mut self.workers[t].bus_out;
                    if q.len() >= BUS_QUEUE_MAX {
                        q.pop_front();
                        self.metrics.bus_dropped.increment(1);
                    }
                    q.push_back(pkt.clone());
                    self.flush_bus(t);
                }
            }
        }
    }

    /// Sends worker `w`'s queued bus packets in order until its socket is full.
    fn flush_bus(&mut self, w: usize) {
        let wk = &mut self.workers[w];
        let Some(ctl) = &wk.ctl else {
            wk.bus_out.clear();
            return;
        };
        while let Some(pkt) = wk.bus_out.front() {
            match lwsd_proto::send(ctl.as_fd(), pkt, &[]) {
                Ok(()) => {
                    wk.bus_out.pop_front();
                    self.metrics.bus_relayed.increment(1);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.metrics.bus_dropped.increment(wk.bus_out.len() as u64);
                    wk.bus_out.clear();
                }
            }
        }
    }

    fn on_signals(&mut self, now: Instant) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => self.begin_shutdown(now),
                    Ok(Signal::SIGHUP) => log!(NOTICE, "SIGHUP: reload not yet supported"),
                    Ok(Signal::SIGCHLD) => self.reap_children(now),
                    _ => {}
                },
                Ok(None) => return,
                Err(e) => {
                    log!(ERR, "signalfd read: {e}");
                    return;
                }
            }
        }
    }

    fn reap_children(&mut self, now: Instant) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.on_exit(pid, format!("exited with status {code}"), now);
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.on_exit(pid, format!("killed by {sig}"), now);
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => {}
                Err(e) => {
                    log!(ERR, "waitpid: {e}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, how: String, now: Instant) {
        let Some(w) = self.workers.iter().position(|wk| wk.pid == Some(pid)) else {
            return;
        };
        let draining = matches!(self.state, State::Draining { .. });
        if !draining && !self.workers[w].ever_ready && how.starts_with("exited") {
            // It never got to serve: a start-up error (io_uring unavailable, a bad
            // document root, ...) that a restart would only repeat. Its own error line
            // is above; stop everything and exit with failure.
            log!(
                ERR,
                "worker {w} (pid {pid}) failed to start ({how}); stopping"
            );
            self.failed = Some(format!("worker {w} failed to start; see its error above"));
            self.workers[w].pid = None;
            self.begin_shutdown(now);
            return;
        }
        if draining {
            log!(INFO, "worker {w} (pid {pid}) {how}");
        } else {
            log!(WARN, "worker {w} (pid {pid}) {how}; restarting");
        }
        let generation = self.workers[w].generation;
        if self.workers[w].ctl.is_some() {
            // Ends the multishot poll, which holds the socket open in the kernel.
            self.cancel(ud(K_CTL, generation, w));
        }
        let wk = &mut self.workers[w];
        wk.pid = None;
        // In-flight sendmsgs keep their own Rc; the socket closes when the last ends.
        wk.ctl = None;
        // The ring too (SQEs not yet submitted keep it in `submit_refs`): once no fd of it
        // is left, the kernel frees it and closes the connections that died with the
        // worker.
        wk.ring = None;
        wk.usable = false;
        wk.ready = false;
        wk.assigned = 0;
        wk.bus_out.clear();
        let stranded = std::mem::take(&mut wk.pending);
        let stranded_ring = std::mem::take(&mut wk.pending_ring);
        self.metrics.workers[w].process_exited();
        self.update_live_gauge();
        for p in stranded {
            self.route(p.map(Hand::Fd));
        }
        for p in stranded_ring {
            self.route(p.map(Hand::Slot));
        }
        if !draining {
            let earliest = self.workers[w]
                .last_restart
                .map_or(now, |t| t + RESTART_INTERVAL);
            if earliest <= now {
                self.spawn(w, now, true);
                self.arm_ctl(w);
            } else {
                log!(
                    WARN,
                    "worker {w} is crash-looping; next start in {:?}",
                    earliest - now
                );
                self.workers[w].restart_at = Some(earliest);
            }
        }
    }

    fn spawn(&mut self, w: usize, now: Instant, restart: bool) {
        let wk = &mut self.workers[w];
        if restart {
            wk.last_restart = Some(now);
        }
        wk.restart_at = None;
        match spawn_worker(w, self.ring_handoff) {
            Ok(s) => {
                log!(INFO, "worker {w} started, pid {}", s.pid);
                wk.pid = Some(s.pid);
                wk.ctl = Some(Rc::new(s.ctl));
                wk.generation = wk.generation.wrapping_add(1) & 0xff_ffff;
                wk.usable = true;
                wk.congested = false;
                wk.ready = false;
                wk.assigned = 0;
                if restart {
                    self.metrics.workers[w].restarts.increment(1);
                }
            }
            Err(e) => {
                log!(ERR, "cannot start worker {w}: {e}; retrying");
                wk.restart_at = Some(now + RESTART_INTERVAL);
            }
        }
        self.update_live_gauge();
    }

    fn update_live_gauge(&self) {
        let n = self.workers.iter().filter(|w| w.pid.is_some()).count();
        self.metrics.live_workers.set(n as f64);
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

    fn begin_shutdown(&mut self, now: Instant) {
        if let State::Draining { killed, .. } = self.state {
            log!(NOTICE, "second stop signal: killing workers now");
            // The next tick does the kill, the same way as at the deadline.
            self.state = State::Draining {
                deadline: now,
                killed,
            };
            return;
        }
        log!(
            NOTICE,
            "stopping: draining workers (grace {:?})",
            self.grace
        );
        self.state = State::Draining {
            deadline: now + self.grace + KILL_SLACK,
            killed: false,
        };
        for li in 0..self.listeners.len() {
            if let Some(l) = &self.listeners[li]
                && let Some(p) = listen::unix_path(&l.kind)
            {
                let _ = std::fs::remove_file(p);
            }
            match &self.listeners[li] {
                Some(l) if self.accept_armed[li] != 0 => {
                    let fd = l.fd.as_raw_fd();
                    let e =
                        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                            .build()
                            .user_data(ud(K_CANCEL, 0, 0));
                    // SAFETY: a cancel reads no user memory.
                    unsafe { self.push(&e) };
                }
                _ => self.listeners[li] = None,
            }
        }
        for w in 0..self.workers.len() {
            self.workers[w].restart_at = None;
            if self.workers[w].pid.is_some() {
                self.send_shutdown(w);
            }
        }
    }

    fn send_shutdown(&mut self, w: usize) {
        let grace_ms = u32::try_from(self.grace.as_millis()).unwrap_or(u32::MAX);
        let _ = ToWorker::Shutdown { grace_ms }.encode(&mut self.enc);
        let wk = &mut self.workers[w];
        let Some(ctl) = &wk.ctl else { return };
        match lwsd_proto::send(ctl.as_fd(), &self.enc, &[]) {
            Ok(()) => wk.shutdown_pending = false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wk.shutdown_pending = true,
            Err(e) => {
                log!(INFO, "worker {w}: cannot send shutdown: {e}");
                wk.shutdown_pending = false;
            }
        }
    }
}

/// The peer of an accepted TCP connection. A connection reset between accept and this
/// call has no peer any more; it is handed over anyway (as `Unknown`) and the worker sees
/// the reset on its first read.
fn peer_addr(fd: &OwnedFd) -> PeerAddr {
    match getpeername::<SockaddrStorage>(fd.as_raw_fd()) {
        Ok(sa) => {
            if let Some(v4) = sa.as_sockaddr_in() {
                PeerAddr::V4(v4.ip().octets(), v4.port())
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                PeerAddr::V6(v6.ip().octets(), v6.port())
            } else {
                PeerAddr::Unknown
            }
        }
        Err(_) => PeerAddr::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `with_ioprio` writes the SQE's ioprio field and nothing else: the kernel refuses
    /// an accept flag it does not know (so the bytes land where it reads them), takes
    /// POLL_FIRST, and the accept still does its job.
    #[test]
    fn accept_flags_reach_the_kernel() {
        let l = listen::bind_all(&[ListenerKind::Tcp("127.0.0.1:0".parse().unwrap())], 0).unwrap();
        let fd = l[0].fd.as_raw_fd();
        let addr = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrIn>(fd).unwrap();
        let mut ring = IoUring::new(8).unwrap();
        let accept = |ioprio, data| {
            let e = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(data);
            let e = with_ioprio(e, ioprio);
            assert_eq!(
                (e.get_opcode(), e.get_user_data()),
                (u32::from(opcode::Accept::CODE), data)
            );
            e
        };
        for (ioprio, data) in [(1 << 7, 1), (ACCEPT_POLL_FIRST, 2)] {
            // SAFETY: no user memory; the listener outlives the ring's use of it.
            unsafe { ring.submission().push(&accept(ioprio, data)).unwrap() };
        }
        ring.submit().unwrap();
        let _client = std::net::TcpStream::connect(std::net::SocketAddrV4::from(addr)).unwrap();
        ring.submit_and_wait(2).unwrap();
        let mut got: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        got.sort();
        assert_eq!(got[0], (1, -libc::EINVAL), "an unknown accept flag");
        assert_eq!(got[1].0, 2);
        assert!(got[1].1 >= 0, "POLL_FIRST accept: {}", got[1].1);
        nix::unistd::close(got[1].1).unwrap();
    }

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

    /// The handoff as the loop submits it: a boxed SendOp through a real io_uring
    /// SendMsg, received by the worker-side `recv`, fds usable on the other side.
    #[test]
    fn handoff_through_a_real_ring() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        use std::io::{Read, Write};
        let (sup, worker) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let mut ring = IoUring::new(8).unwrap();
        let mut op = SendOp::new();
        let mut writers = Vec::new();
        for i in 0..MAX_FDS_PER_MSG {
            let (r, w) = nix::unistd::pipe().unwrap();
            op.fds.push(r);
            writers.push(w);
            op.conns.push(NewConn {
                listener: (i % 3) as u16,
                peer: PeerAddr::V4([10, 0, 0, i as u8], 1000 + i as u16),
            });
        }
        op.prepare();
        let e = opcode::SendMsg::new(types::Fd(sup.as_raw_fd()), &op.hdr)
            .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
            .build()
            .user_data(42);
        // SAFETY: `op` (a Box: msghdr, iovec, data, cmsg, fds) outlives the completion,
        // which is waited for below before `op` is touched or dropped.
        unsafe { ring.submission().push(&e).unwrap() };
        ring.submit_and_wait(1).unwrap();
        let c = ring.completion().next().unwrap();
        assert_eq!(c.user_data(), 42);
        assert_eq!(c.result(), op.data.len() as i32);
        let mut buf = vec![0u8; MAX_MSG_SIZE];
        let mut fds = Vec::new();
        let n = lwsd_proto::recv(worker.as_fd(), &mut buf, &mut fds)
            .unwrap()
            .unwrap();
        assert_eq!(
            ToWorker::decode(&buf[..n]).unwrap(),
            ToWorker::NewConns(op.conns.clone())
        );
        assert_eq!(fds.len(), MAX_FDS_PER_MSG);
        // fd k on the worker side is the read end of pipe k.
        for (k, (fd, w)) in fds.into_iter().zip(writers).enumerate() {
            std::fs::File::from(w).write_all(&[k as u8]).unwrap();
            let mut b = [0u8; 1];
            std::fs::File::from(fd).read_exact(&mut b).unwrap();
            assert_eq!(b[0], k as u8);
        }
    }

    /// A full control socket fails the op at once (MSG_DONTWAIT) instead of parking it.
    #[test]
    fn full_socket_fails_fast() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (sup, _worker) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .unwrap();
        let filler = [0u8; 4096];
        let mut n = 0;
        while lwsd_proto::send(sup.as_fd(), &filler, &[]).is_ok() {
            n += 1;
            assert!(n < 1_000_000);
        }
        let mut ring = IoUring::new(8).unwrap();
        let mut op = SendOp::new();
        op.fds.push(nix::unistd::pipe().unwrap().0);
        op.conns.push(NewConn {
            listener: 0,
            peer: PeerAddr::Unix,
        });
        op.prepare();
        let e = opcode::SendMsg::new(types::Fd(sup.as_raw_fd()), &op.hdr)
            .flags((libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as u32)
            .build();
        // SAFETY: `op` lives until after the completion is reaped below.
        unsafe { ring.submission().push(&e).unwrap() };
        let t = Instant::now();
        ring.submit_and_wait(1).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(ring.completion().next().unwrap().result(), -libc::EAGAIN);
    }

    #[test]
    fn handoff_message_layout() {
        let mut op = SendOp::new();
        let (r, _w) = nix::unistd::pipe().unwrap();
        op.fds.push(r);
        op.conns.push(NewConn {
            listener: 1,
            peer: PeerAddr::Unix,
        });
        op.prepare();
        assert_eq!(op.hdr.msg_iovlen, 1);
        assert_eq!(op.iov.iov_len, op.data.len());
        assert_eq!(op.hdr.msg_controllen, cmsg_space(4));
        assert_eq!(
            ToWorker::decode(&op.data).unwrap(),
            ToWorker::NewConns(op.conns.clone())
        );
    }
}
