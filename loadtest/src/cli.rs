//! The command line (`lwsd-load ws|fanout|http ...`), the run with its progress bar,
//! signal handling and ready file, and the output (human summary, `--json FILE`).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::json;

use crate::http::{self, HttpOptions, MAX_PIPELINE};
use crate::live::Shared;
use crate::spec::{Rate, Scheme, Target, parse_duration, parse_rate, parse_url};
use crate::stats::{Report, Stats};
use crate::sys::{Clock, max_conns, raise_nofile};
use crate::ws::{self, Traffic, WsOptions};

/// Ephemeral ports kept free per source address when deciding to spread connections
/// over several loopback sources: other programs on the machine need some too.
const PORT_MARGIN: u64 = 1000;
/// Linux's default `ip_local_port_range` (32768-60999), used when /proc is unreadable.
const DEFAULT_EPHEMERAL_PORTS: u64 = 28_232;
/// How often the progress display, the ready file and the signal check run.
const MONITOR_TICK: Duration = Duration::from_millis(100);

#[derive(Parser, Debug)]
#[command(name = "lwsd-load", version, about = "WebSocket / HTTP load generator")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Open C WebSocket connections; optionally send at a rate per connection.
    Ws(WsArgs),
    /// Mirror fan-out: a few connections send, all C receive.
    Fanout(FanoutArgs),
    /// HTTP/1.1 GET load: keep-alive, pipelined or connection-per-request.
    Http(HttpArgs),
}

#[derive(Args, Debug)]
struct Common {
    /// Target, ws://host:port/path or http://host:port/path.
    #[arg(long)]
    url: String,
    /// Connections in total.
    #[arg(short = 'c', long = "connections", default_value_t = 10)]
    conns: usize,
    /// Threads (each with its own epoll loop and share of the connections).
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// How long the traffic runs (fanout: from the moment all connections are up).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Connection opening rate, e.g. 2000/s.
    #[arg(long, default_value = "1000/s", value_parser = parse_rate)]
    ramp_rate: Rate,
    /// Bound on TCP connect plus the opening handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write this file (with the counts) once every connection is up or failed.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Loopback source addresses to spread connections over (default: as many as the
    /// ephemeral port range needs for C connections to a 127.x target).
    #[arg(long)]
    src_ips: Option<u8>,
    /// First source address used is 127.0.0.(1 + offset): give each of several
    /// lwsd-load processes its own (an offset alone means one address at least).
    #[arg(long, default_value_t = 0)]
    src_offset: u8,
}

#[derive(Args, Debug)]
struct WsArgs {
    #[command(flatten)]
    common: Common,
    /// Subprotocols to offer (comma-separated, in preference order).
    #[arg(long, value_delimiter = ',')]
    protocol: Vec<String>,
    /// Origin header.
    #[arg(long)]
    origin: Option<String>,
    /// Messages per second per connection (e.g. 10/s); none: receive only.
    #[arg(long, value_parser = parse_rate)]
    send_rate: Option<Rate>,
    /// Message size in bytes (at least the 34-byte timestamp header).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Keep the connections idle until the duration ends (idle-memory measurement).
    #[arg(long, conflicts_with = "send_rate")]
    hold: bool,
    /// Stop after this many messages received in total.
    #[arg(long, conflicts_with = "hold")]
    messages: Option<u64>,
    /// Send binary frames instead of text.
    #[arg(long)]
    binary: bool,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_delimiter = ',', default_value = "lws-mirror-protocol")]
    protocol: Vec<String>,
    #[arg(long)]
    origin: Option<String>,
    /// Connections that send (the first ones opened); all connections receive.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages per second per sender.
    #[arg(long, default_value = "100/s", value_parser = parse_rate)]
    rate: Rate,
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Stop after this many messages received in total.
    #[arg(long)]
    messages: Option<u64>,
    #[arg(long)]
    binary: bool,
}

#[derive(Args, Debug)]
struct HttpArgs {
    #[command(flatten)]
    common: Common,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Connection: close, a new connection per request.
    #[arg(long, conflicts_with = "pipeline")]
    close: bool,
    /// Stop after this many responses in total.
    #[arg(long)]
    requests: Option<u64>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lwsd-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// Raise the fd limit and check the connections fit; say what the limit allows.
fn check_fds(conns: usize) -> Result<(), String> {
    let (soft, hard) = raise_nofile().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let max = max_conns(soft);
    if conns as u64 > max {
        return Err(format!(
            "{conns} connections need {} file descriptors, but RLIMIT_NOFILE allows {soft} \
             (hard limit {hard}), that is {max} connections per process: run several \
             lwsd-load processes (with different --src-offset), or raise the hard limit",
            conns as u64 + crate::sys::FD_RESERVE
        ));
    }
    eprintln!("lwsd-load: RLIMIT_NOFILE {soft} allows up to {max} connections per process");
    Ok(())
}

fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
            let lo = it.next()??;
            let hi = it.next()??;
            (hi >= lo).then(|| hi - lo + 1)
        })
        .unwrap_or(DEFAULT_EPHEMERAL_PORTS)
}

/// The source addresses for `conns` connections to `addr`: none unless asked, or the
/// target is IPv4 loopback and one source would run out of ephemeral ports.
fn source_ips(c: &Common, addr: SocketAddr) -> Result<Vec<Ipv4Addr>, String> {
    let loopback = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
    let per_ip = ephemeral_ports().saturating_sub(PORT_MARGIN).max(1);
    let n = match c.src_ips {
        Some(n) => u64::from(n),
        None if loopback && c.conns as u64 > per_ip => (c.conns as u64).div_ceil(per_ip),
        // An offset asks for this process's own addresses: one at least (without it
        // several processes to one port share 127.0.0.1's ephemeral ports, and run out).
        None if c.src_offset > 0 => 1,
        None => return Ok(vec![]),
    };
    if n == 0 {
        return Ok(vec![]);
    }
    if !loopback {
        return Err("--src-ips needs an IPv4 loopback target (127.0.0.0/8)".into());
    }
    if u64::from(c.src_offset) + n > 254 {
        return Err("--src-offset + --src-ips must stay within 127.0.0.1-254".into());
    }
    Ok((0..n)
        .map(|i| Ipv4Addr::new(127, 0, 0, 1 + c.src_offset + i as u8))
        .collect())
}

fn target(c: &Common, want: Scheme) -> Result<(Target, SocketAddr), String> {
    let t = parse_url(&c.url)?;
    if t.scheme != want {
        return Err(format!(
            "{}: this subcommand wants a {} URL",
            c.url,
            if want == Scheme::Ws {
                "ws://"
            } else {
                "http://"
            }
        ));
    }
    if c.conns == 0 || c.threads == 0 {
        return Err("-c and -t must be at least 1".into());
    }
    let addr = t.resolve()?;
    Ok((t, addr))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Ws(a) => {
            let traffic = match (a.send_rate, a.hold) {
                (Some(rate), _) => Traffic::Each { rate, size: a.size },
                (None, true) => Traffic::Hold,
                (None, false) => Traffic::Listen,
            };
            run_ws(
                &a.common, a.protocol, a.origin, traffic, a.messages, a.binary,
            )
        }
        Cmd::Fanout(a) => {
            if a.senders == 0 || a.senders > a.common.conns {
                return Err("--senders must be between 1 and -c".into());
            }
            let traffic = Traffic::Fanout {
                senders: a.senders,
                rate: a.rate,
                size: a.size,
            };
            run_ws(
                &a.common, a.protocol, a.origin, traffic, a.messages, a.binary,
            )
        }
        Cmd::Http(a) => run_http(a),
    }
}

fn run_ws(
    c: &Common,
    protocols: Vec<String>,
    origin: Option<String>,
    traffic: Traffic,
    max_messages: Option<u64>,
    binary: bool,
) -> Result<ExitCode, String> {
    let (target, addr) = target(c, Scheme::Ws)?;
    check_fds(c.conns)?;
    let o = WsOptions {
        target,
        addr,
        protocols,
        origin,
        conns: c.conns,
        threads: c.threads.min(c.conns),
        ramp: c.ramp_rate,
        duration: c.duration,
        max_messages,
        connect_timeout: c.connect_timeout,
        src_ips: source_ips(c, addr)?,
        traffic,
        binary,
    };
    let (mode, rate, size, senders) = match traffic {
        Traffic::Listen => ("ws", None, None, None),
        Traffic::Hold => ("ws-hold", None, None, None),
        Traffic::Each { rate, size } => ("ws", Some(rate.per_sec), Some(size), None),
        Traffic::Fanout {
            senders,
            rate,
            size,
        } => ("fanout", Some(rate.per_sec), Some(size), Some(senders)),
    };
    let config = json!({
        "url": c.url, "connections": c.conns, "threads": o.threads,
        "ramp_per_s": c.ramp_rate.per_sec, "duration_s": c.duration.as_secs_f64(),
        "protocols": o.protocols, "rate_per_s": rate, "size": size, "senders": senders,
        "max_messages": max_messages, "source_ips": o.src_ips.len(),
    });
    let clock = Clock::new();
    let shared = Shared::default();
    let stats = run_threads(o.threads, c, &shared, clock, |tid| {
        ws::run_thread(&o, tid, &shared, clock)
    })?;
    let elapsed_s = clock.now_ns() as f64 / 1e9;
    let stopped = shared.stopped_at_ns.load(Relaxed);
    let dur_ns = c.duration.as_nanos() as u64;
    // Rates are over the traffic phase: from the start (fanout: from the first send)
    // to when it ended (duration, message count or signal), at most the duration.
    let (start, expected) = match traffic {
        Traffic::Fanout { .. } => (
            shared.send_start_ns.load(Relaxed),
            Some(stats.msgs_sent * stats.established),
        ),
        _ => (0, None),
    };
    let window_ns = if matches!(traffic, Traffic::Fanout { .. }) && start == 0 {
        0
    } else {
        stopped.saturating_sub(start).min(dur_ns)
    };
    let report = Report {
        mode,
        target: c.url.clone(),
        stats,
        elapsed_s,
        rate_window_s: window_ns as f64 / 1e9,
        expected_deliveries: expected,
        config,
    };
    finish(c, &report, report.stats.established > 0)
}

fn run_http(a: HttpArgs) -> Result<ExitCode, String> {
    let c = &a.common;
    let (target, addr) = target(c, Scheme::Http)?;
    if a.pipeline == 0 || a.pipeline > MAX_PIPELINE {
        return Err(format!("--pipeline must be 1..={MAX_PIPELINE}"));
    }
    check_fds(c.conns)?;
    let o = HttpOptions {
        target,
        addr,
        conns: c.conns,
        threads: c.threads.min(c.conns),
        ramp: c.ramp_rate,
        duration: c.duration,
        connect_timeout: c.connect_timeout,
        pipeline: a.pipeline,
        close: a.close,
        max_requests: a.requests,
        src_ips: source_ips(c, addr)?,
    };
    let config = json!({
        "url": c.url, "connections": c.conns, "threads": o.threads,
        "pipeline": a.pipeline, "close": a.close, "duration_s": c.duration.as_secs_f64(),
        "max_requests": a.requests,
    });
    let clock = Clock::new();
    let shared = Shared::default();
    let stats = run_threads(o.threads, c, &shared, clock, |tid| {
        http::run_thread(&o, tid, &shared, clock)
    })?;
    let elapsed_s = clock.now_ns() as f64 / 1e9;
    let ok = stats.status.values().sum::<u64>() > 0;
    let window_ns = shared
        .stopped_at_ns
        .load(Relaxed)
        .min(c.duration.as_nanos() as u64);
    let report = Report {
        mode: "http",
        target: c.url.clone(),
        stats,
        elapsed_s,
        rate_window_s: window_ns as f64 / 1e9,
        expected_deliveries: None,
        config,
    };
    finish(c, &report, ok)
}

fn finish(c: &Common, report: &Report, ok: bool) -> Result<ExitCode, String> {
    print!("{}", report.human());
    if let Some(path) = &c.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Run `body(tid)` on `threads` threads while this one shows progress, writes the
/// ready file and turns SIGINT/SIGTERM into a stop request; returns the merged stats.
fn run_threads<F>(
    threads: usize,
    c: &Common,
    shared: &Shared,
    clock: Clock,
    body: F,
) -> Result<Stats, String>
where
    F: Fn(usize) -> Stats + Sync,
{
    // Block the stop signals in every thread (the mask is inherited) and read them
    // from a signalfd here.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    let total = c.conns as u64;
    let bar = (!c.no_progress && std::io::stdout().is_terminal()).then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} conns  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut ready_written = false;
    let mut merged = Stats::default();
    std::thread::scope(|s| {
        let body = &body;
        let handles: Vec<_> = (0..threads).map(|tid| s.spawn(move || body(tid))).collect();
        let mut last_recv = 0u64;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(MONITOR_TICK);
            if let Ok(Some(_)) = sigfd.read_signal() {
                shared.request_stop(clock.now_ns());
            }
            let est = shared.established.load(Relaxed);
            let failed = shared.failed.load(Relaxed);
            if !ready_written && est + failed >= total {
                ready_written = true;
                let line = format!(
                    "{est} established, {failed} failed, {:.3} s",
                    clock.now_ns() as f64 / 1e9
                );
                if let Some(p) = &c.ready_file {
                    let _ = std::fs::write(p, format!("{line}\n"));
                }
                if bar.is_none() {
                    eprintln!("lwsd-load: all connections resolved: {line}");
                }
            }
            if let Some(b) = &bar {
                let recv = shared.msgs_recv.load(Relaxed);
                let per_s = (recv - last_recv) as f64 / MONITOR_TICK.as_secs_f64();
                last_recv = recv;
                b.set_position(est);
                b.set_message(format!(
                    "failed {failed}  sent {}  received {recv} ({per_s:.0}/s)",
                    shared.msgs_sent.load(Relaxed)
                ));
            }
        }
        for h in handles {
            match h.join() {
                Ok(st) => merged.merge(&st),
                Err(_) => merged.error("a load thread panicked"),
            }
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(args: &[&str]) -> Common {
        let mut v = vec!["lwsd-load", "ws"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().cmd {
            Cmd::Ws(a) => a.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn source_address_spread() {
        let addr: SocketAddr = "127.0.0.1:7681".parse().unwrap();
        let c = common(&["--url", "ws://127.0.0.1:7681/", "-c", "100"]);
        assert!(source_ips(&c, addr).unwrap().is_empty());
        let per_ip = ephemeral_ports() - PORT_MARGIN;
        let n = (per_ip * 2 + 1).to_string();
        let c = common(&[
            "--url",
            "ws://127.0.0.1:7681/",
            "-c",
            &n,
            "--src-offset",
            "4",
        ]);
        let ips = source_ips(&c, addr).unwrap();
        assert_eq!(ips.len(), 3);
        assert_eq!(ips[0], Ipv4Addr::new(127, 0, 0, 5));
        let c = common(&["--url", "ws://x/", "--src-ips", "2"]);
        assert_eq!(source_ips(&c, addr).unwrap().len(), 2);
        // An offset alone still gives this process an address of its own.
        let c = common(&["--url", "ws://x/", "--src-offset", "20"]);
        assert_eq!(
            source_ips(&c, addr).unwrap(),
            [Ipv4Addr::new(127, 0, 0, 21)]
        );
        let v6: SocketAddr = "[::1]:7681".parse().unwrap();
        assert!(source_ips(&c, v6).is_err());
        let c = common(&[
            "--url",
            "ws://x/",
            "--src-ips",
            "200",
            "--src-offset",
            "100",
        ]);
        assert!(source_ips(&c, addr).is_err());
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "lwsd-load",
            "ws",
            "--url",
            "ws://127.0.0.1:7681/",
            "--protocol",
            "lws-mirror-protocol,x",
            "-c",
            "10000",
            "--ramp-rate",
            "2000/s",
            "--duration",
            "30s",
            "--send-rate",
            "10/s",
            "--size",
            "64",
        ])
        .unwrap();
        let Cmd::Ws(a) = cli.cmd else { panic!() };
        assert_eq!(a.protocol, vec!["lws-mirror-protocol", "x"]);
        assert_eq!(a.common.conns, 10_000);
        assert_eq!(a.send_rate.unwrap().per_sec, 10.0);
        // --hold and --send-rate exclude each other.
        assert!(
            Cli::try_parse_from([
                "lwsd-load",
                "ws",
                "--url",
                "ws://h/",
                "--hold",
                "--send-rate",
                "1/s"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["lwsd-load", "http", "--url", "http://h/", "--close"]).is_ok()
        );
    }
}
