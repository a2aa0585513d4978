//! The lwsd supervisor (DESIGN.md sections 1, 6 and 7): command line, listeners, accept
//! and fd handoff on its own io_uring, worker lifecycle, signals, the Prometheus
//! endpoint and the bus relay.
//!
//! The same binary is also every worker: [`run`] checks `LWSD_WORKER_INDEX` and, when
//! set, parses the same command line and becomes worker N on the control socket named
//! by `LWSD_CTL_FD`.
//!
//! - [`cli`]: flags and the [`lwsd_worker::config::WorkerConfig`] built from them.
//! - [`listen`]: binding the listen sockets.
//! - [`policy`]: which worker gets a connection.
//! - [`spawn`]: starting a worker process.
//! - [`ring`]: the event loop.
//! - [`metrics`]: the series and the `/metrics` endpoint.

pub mod cli;
pub mod listen;
#[macro_use]
pub mod log;
pub mod metrics;
pub mod pidfd;
pub mod policy;
pub mod ring;
pub mod spawn;
pub mod tls;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use clap::Parser;
use lwsd_worker::api::Plugin;

use crate::cli::Cli;
use crate::log::{ERR, INFO, NOTICE, WARN};

/// The `lwsd` program with the built-in protocols (lws-echo, dumb-increment-protocol,
/// lws-mirror-protocol, lws-server-status, protocol-post-demo).
pub fn run() -> ExitCode {
    run_with(lwsd_worker::plugins::builtin())
}

/// The `lwsd` program serving `plugins`: an application embeds lwsd by calling this
/// from its own `main` with its protocols. Supervisor, or worker when started by one
/// (workers re-execute the same binary, so the same plugins exist in every worker).
/// Exit status: 0 after a clean stop, 1 when the server cannot start or fails, 2 for a
/// bad command line.
pub fn run_with(plugins: Vec<Plugin>) -> ExitCode {
    let cli = Cli::parse(); // exits 2 with a one-line error on bad flags
    log::set_level(cli.debug_level);
    if let Some(d) = &cli.ws_default
        && !plugins.iter().any(|p| p.name == d.as_str())
    {
        let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
        lwsd_worker::stderr_line(format_args!(
            "lwsd: --ws-default {d}: no such protocol (have: {})",
            names.join(", ")
        ));
        return ExitCode::from(2);
    }
    if let Some(index) = std::env::var_os(spawn::ENV_WORKER_INDEX) {
        return match worker_mode(&cli, index.to_str(), &plugins) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log!(ERR, "worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Workers build the same protocols from the same argv: checked once, here.
    if let Err(e) = check_pvos(&cli, &plugins) {
        lwsd_worker::stderr_line(format_args!("lwsd: --pvo: {e}"));
        return ExitCode::from(2);
    }
    match supervise(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!(ERR, "{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--pvo` names a protocol that exists and options it takes, with valid values: found
/// here, before any worker starts (a worker refusing its options would exit and be
/// restarted forever). The protocols are created once to let each judge its options.
fn check_pvos(cli: &Cli, plugins: &[Plugin]) -> Result<(), String> {
    let cfg = cli.worker_config();
    if cfg.protocol_options.is_empty() {
        return Ok(());
    }
    if let Some(p) = cfg
        .protocol_options
        .keys()
        .find(|p| !plugins.iter().any(|pl| pl.name == p.as_str()))
    {
        let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
        return Err(format!(
            "{p}: no such protocol (have: {})",
            names.join(", ")
        ));
    }
    lwsd_worker::api::Protocols::new(plugins, &cfg.protocol_options, None, 0, cfg.workers).map(drop)
}

fn supervise(cli: &Cli) -> io::Result<()> {
    // Before any thread exists, so every thread inherits the mask and the signals are
    // only ever consumed through the ring's signalfd.
    ring::block_signals()?;
    raise_nofile_limit();
    // Before anything is bound: an unusable certificate or key stops the start here.
    let tls_dir = tls::prepare(&cli.worker_config()).map_err(io::Error::other)?;
    if let Some(d) = &tls_dir {
        let _ = spawn::WORKER_ENV.set(vec![(tls::ENV_TLS_SELF_SIGNED, d.path().into())]);
    }
    let listeners =
        listen::bind_all(&cli.listeners(), cli.defer_accept).map_err(|e| io::Error::other(e.0))?;
    let workers = cli.worker_count();
    let metrics = metrics::Metrics::new(workers);
    let (metrics_addr, explicit) = cli.metrics();
    if let Some(addr) = metrics_addr {
        match metrics::serve(addr, metrics.handle()) {
            Ok(a) => log!(NOTICE, "metrics on http://{a}/metrics"),
            // The default address taken (a second lwsd on this host, another exporter):
            // serving matters more than the metrics nobody asked for by name.
            Err(e) if !explicit => log!(
                WARN,
                "cannot serve metrics on {addr} ({e}); serving without metrics (choose another address with --metrics-addr)"
            ),
            Err(e) => {
                listen::remove_unix_sockets(&listeners);
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot serve metrics on {addr}: {e}"),
                ));
            }
        }
    }
    for l in &listeners {
        log!(NOTICE, "listening on {:?}", l.kind);
    }
    let handoff = match cli.handoff() {
        Ok(h) => h,
        Err(e) => {
            listen::remove_unix_sockets(&listeners);
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        }
    };
    let mut sup = match ring::Supervisor::new(
        listeners,
        workers,
        metrics,
        cli.grace(),
        handoff,
        cli.event_loop,
    ) {
        Ok(s) => s,
        Err(e) => {
            listen::remove_unix_sockets_of(&cli.listeners());
            return Err(e);
        }
    };
    if cli.ssl {
        sup.enable_session_tickets()?;
    }
    // `tls_dir` lives until here: the self-signed pair is removed after the workers.
    let r = sup.run();
    drop(tls_dir);
    r
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as nginx's `worker_rlimit_nofile`
/// would by hand: every connection is a descriptor (or a fixed-file slot, whose table the
/// kernel caps at the same limit), and the usual soft default of 1024 would cap a worker
/// at about a thousand connections. Workers inherit it. A failure only logs.
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => log!(INFO, "open files limit raised from {soft} to {hard}"),
            Err(e) => log!(WARN, "cannot raise the open files limit from {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => log!(WARN, "getrlimit(RLIMIT_NOFILE): {e}"),
    }
}

/// Worker mode: the environment names our index and control socket.
fn worker_mode(cli: &Cli, index: Option<&str>, plugins: &[Plugin]) -> io::Result<()> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let index: usize = index
        .and_then(|s| s.parse().ok())
        .filter(|&i| i < usize::from(cli::MAX_WORKERS))
        .ok_or_else(|| bad(format!("bad {}", spawn::ENV_WORKER_INDEX)))?;
    let fd: RawFd = std::env::var(spawn::ENV_CTL_FD)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&fd| fd > 2)
        .ok_or_else(|| bad(format!("bad {}", spawn::ENV_CTL_FD)))?;
    // A supervisor blocks its signals; a worker starts with the default dispositions
    // (std's spawn resets the mask, this makes sure for any other launcher), then
    // ignores the ones that must not end it.
    ring::handled_signals().thread_unblock()?;
    ring::ignore_worker_signals()?;
    let ctl = take_ctl_fd(fd)?;
    let ring_handoff = match std::env::var(spawn::ENV_FD_HANDOFF).as_deref() {
        Ok("ring") => true,
        Ok("scm") | Err(_) => false,
        Ok(other) => return Err(bad(format!("bad {}: {other}", spawn::ENV_FD_HANDOFF))),
    };
    let mut cfg = cli.worker_config();
    tls::resolve_for_worker(&mut cfg)?;
    lwsd_worker::service::run_worker(index, ctl, cfg, plugins, ring_handoff)
}

/// Takes ownership of the inherited control socket after checking it is one.
fn take_ctl_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table; an invalid number gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above) and was inherited for this purpose alone: the
    // supervisor created it as our end of the control socketpair, named it in
    // LWSD_CTL_FD, and nothing else in this fresh process has taken it.
    let ctl = unsafe { OwnedFd::from_raw_fd(fd) };
    let ty = nix::sys::socket::getsockopt(&ctl, nix::sys::socket::sockopt::SockType)?;
    if ty != nix::sys::socket::SockType::SeqPacket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "LWSD_CTL_FD is not a SOCK_SEQPACKET socket",
        ));
    }
    // Not passed on to anything this worker might exec.
    nix::fcntl::fcntl(
        &ctl,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(ctl)
}
