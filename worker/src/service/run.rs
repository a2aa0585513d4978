//! A worker process's life: pin to a core, set up the loop, greet the supervisor, serve
//! until told to drain (or until the supervisor goes away).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::{Loop, LoopConfig, log};
use crate::App;
use crate::config::WorkerConfig;

/// Largest fixed-file table the kernel takes (`IORING_MAX_FIXED_FILES`).
const MAX_FIXED_FILES: u64 = 1 << 20;

/// Descriptors a worker keeps free of connections: files being served (each open for
/// the length of its response), the file cache's revalidation, a WebSocket protocol's
/// own files. The supervisor hands a worker no more connections than its open-files
/// limit minus this and the descriptors it holds at start ([`max_conns`]); past that
/// it answers new clients 503 itself instead of the worker running out (EMFILE) while
/// receiving them, which would lose them with a reset.
pub const FD_HEADROOM: u64 = 32;

/// How many connections this worker can hold: RLIMIT_NOFILE (the fixed-file table of
/// ring handoff has the same size) less the descriptors open now and [`FD_HEADROOM`].
fn max_conns() -> u32 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(u64::MAX, |(soft, _)| soft)
        .min(MAX_FIXED_FILES);
    // (The directory listing itself holds one more descriptor for a moment.)
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    soft.saturating_sub(open + FD_HEADROOM)
        .clamp(1, u64::from(u32::MAX)) as u32
}

/// Runs worker `index` on the control socket `ctl` (the supervisor's SOCK_SEQPACKET end
/// is the other side). Returns when the worker has drained, or with the error that
/// stopped it (io_uring unavailable, a bad document root, ...).
///
/// `ring_handoff`: the supervisor sends connections straight into this worker's ring
/// (`IORING_OP_MSG_RING`): register a fixed-file table as large as RLIMIT_NOFILE allows
/// and name the ring's fd in the Hello (the supervisor takes it with pidfd_getfd).
pub fn run_worker(
    index: usize,
    ctl: OwnedFd,
    cfg: WorkerConfig,
    plugins: &[crate::api::Plugin],
    ring_handoff: bool,
) -> io::Result<()> {
    crate::set_log_level(cfg.log_level);
    pin_to_core(index);
    nix::fcntl::fcntl(
        &ctl,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    let mut app = App::new(cfg, index);
    app.install_protocols(plugins).map_err(io::Error::other)?;
    app.install_tls().map_err(io::Error::other)?;
    let factory = crate::http::role_factory(&mut app)?;
    let cfg = LoopConfig {
        defer_taskrun: !ring_handoff,
        // Connections arriving by MSG_RING need this worker's ring: the supervisor
        // chose that handoff because io_uring works here.
        event_loop: match app.config.event_loop {
            super::EventLoop::Auto if ring_handoff => super::EventLoop::Uring,
            e => e,
        },
        ..LoopConfig::default()
    };
    let mut l = Loop::new(cfg, app, factory)?;
    if ring_handoff {
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
        l.enable_fixed_handoff(soft.min(MAX_FIXED_FILES) as u32)
            .map_err(|e| io::Error::new(e.kind(), format!("{e} (try --fd-handoff scm)")))?;
    }
    let mut hello = Vec::new();
    lwsd_proto::FromWorker::Hello {
        index: index as u16,
        pid: std::process::id(),
        max_conns: max_conns(),
        ring_fd: match l.ring_fd() {
            Some(fd) if ring_handoff => fd.as_raw_fd(),
            _ => -1,
        },
    }
    .encode(&mut hello)
    .map_err(|e| io::Error::other(format!("encode hello: {e:?}")))?;
    lwsd_proto::send(ctl.as_fd(), &hello, &[])?;
    l.set_control(ctl);
    log(
        8,
        &format!("worker {index} (pid {}) serving", std::process::id()),
    );
    l.run()?;
    log(8, &format!("worker {index} drained, exiting"));
    Ok(())
}

/// Pins the calling thread to core `index % cores` (one worker per core, DESIGN.md 1).
/// A failure (restricted cpuset) is logged and ignored: the worker still serves.
fn pin_to_core(index: usize) {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => {
            let id = ids[index % ids.len()];
            if !core_affinity::set_for_current(id) {
                log(
                    2,
                    &format!("worker {index}: could not pin to core {}", id.id),
                );
            }
        }
        _ => log(
            2,
            &format!("worker {index}: core list unavailable, not pinned"),
        ),
    }
}
