//! Starting a worker process: re-execute this binary (`/proc/self/exe`, so protocols
//! compiled into it exist in every worker) with the same argv, telling it its index and
//! its control socket through the environment (DESIGN.md section 1).
//!
//! The control channel is a `SOCK_SEQPACKET` socketpair (message boundaries kept, one
//! control message per packet). The child's end is the only descriptor it inherits
//! besides stdio: every other fd of the supervisor is close-on-exec, the child's end has
//! the flag cleared just for the spawn and is closed in the parent right after.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nix::unistd::Pid;

/// Environment variable carrying a worker's index; its presence makes the process a worker.
pub const ENV_WORKER_INDEX: &str = "LWSD_WORKER_INDEX";
/// Environment variable carrying the control socket's fd number in a worker.
pub const ENV_CTL_FD: &str = "LWSD_CTL_FD";

/// Environment variable saying how the supervisor hands connections over: `ring` (the
/// worker registers a fixed-file table and sends its ring fd with its Hello) or `scm`.
pub const ENV_FD_HANDOFF: &str = "LWSD_FD_HANDOFF";

/// Extra environment every worker gets (set once at start, before the first spawn):
/// today the self-signed TLS certificate's directory ([`crate::tls`]).
pub static WORKER_ENV: std::sync::OnceLock<Vec<(&'static str, std::ffi::OsString)>> =
    std::sync::OnceLock::new();

/// Send buffer of both ends of a control socket. A burst of accepts becomes packets of
/// up to 64 fds (~1.4 KiB each plus the kernel's per-skb overhead); 1 MiB lets a worker
/// that is busy for a few milliseconds fall behind by thousands of connections before
/// the supervisor sees EAGAIN and hands them elsewhere. The kernel caps it at
/// `net.core.wmem_max` (twice that, in fact) unless we may force it.
pub const CTL_SNDBUF: usize = 1 << 20;

/// A running worker process and the supervisor's end of its control socket
/// (non-blocking, close-on-exec).
pub struct Spawned {
    pub pid: Pid,
    pub ctl: OwnedFd,
}

/// Spawns worker `index`; `ring_handoff` as in [`ENV_FD_HANDOFF`].
pub fn spawn_worker(index: usize, ring_handoff: bool) -> io::Result<Spawned> {
    let (parent, child) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    fcntl(&parent, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    for end in [&parent, &child] {
        // Forcing needs CAP_NET_ADMIN; without it the capped value is still the most we
        // can have.
        if setsockopt(end, sockopt::SndBufForce, &CTL_SNDBUF).is_err() {
            setsockopt(end, sockopt::SndBuf, &CTL_SNDBUF)?;
        }
    }
    // Inherited across exec: the only fd we let through. No other thread spawns, so no
    // other child can inherit it in the meantime; it is closed below once the child runs.
    fcntl(&child, FcntlArg::F_SETFD(FdFlag::empty()))?;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "lwsd".into());
    let child_proc = Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env(ENV_WORKER_INDEX, index.to_string())
        .env(ENV_CTL_FD, child.as_raw_fd().to_string())
        .env(ENV_FD_HANDOFF, if ring_handoff { "ring" } else { "scm" })
        .envs(WORKER_ENV.get().into_iter().flatten().map(|(k, v)| (k, v)))
        .spawn()?;
    drop(child);
    // The supervisor reaps with waitpid(-1) on SIGCHLD; dropping `Child` neither waits
    // nor kills.
    let pid = Pid::from_raw(child_proc.id() as i32);
    Ok(Spawned { pid, ctl: parent })
}
