//! The command line (DESIGN.md section 6): `libwebsockets-test-server`'s flags where
//! they make sense, plus lwsd's own. Parsed identically by the supervisor and by every
//! worker (workers are the same binary re-executed with the same argv), so both derive
//! the same [`WorkerConfig`] and the same listener order.
//!
//! Every bad value is rejected by clap with a one-line error naming the flag, exit 2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lwsd_worker::config::{ListenerKind, TlsIdentity, TlsSettings, WorkerConfig};

/// Most worker processes: one per core; 256 covers the largest common servers, and the
/// per-worker control-socket buffers (1 MiB each) stay bounded.
pub const MAX_WORKERS: u16 = 256;

/// Largest `--max-request-line` and `--max-header-bytes`: the two together stay below
/// the service loop's per-connection reassembly bound (`LoopConfig::rx_max`, 256 KiB),
/// so a head at the limit is still read whole and judged (a larger one would stall the
/// connection until its header timeout instead of getting 414/431).
pub const MAX_HEAD_PART: u64 = 64 * 1024;

/// Longest accepted timeout/grace value, one day: anything longer is a typo, and it keeps
/// the millisecond conversion for the wire (`u32`) far from overflow.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// lwsd: libwebsockets' server, rebuilt in Rust (supervisor + per-core io_uring workers).
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "lwsd", version, about)]
pub struct Cli {
    /// TCP port to listen on.
    #[arg(short = 'p', long, default_value_t = 7681, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Listen only on this address (default: `0.0.0.0` and `[::]`, IPv6 socket v6-only).
    #[arg(short = 'i', long = "interface", value_name = "ADDR")]
    pub interface: Option<IpAddr>,

    /// Also listen on this unix socket path (removed at exit).
    #[arg(short = 'U', long = "unix-socket", value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,

    /// Worker processes (default: available cores).
    #[arg(short = 'j', long = "workers", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_WORKERS as i64))]
    pub workers: Option<u16>,

    /// Document root (default: the embedded test-server demo).
    #[arg(short = 'r', long = "resource-path", value_name = "DIR", value_parser = parse_dir)]
    pub resource_path: Option<PathBuf>,

    /// Prometheus endpoint address, or `off` [default: 127.0.0.1:9464, skipped with a
    /// warning when taken].
    #[arg(long = "metrics-addr", value_name = "ADDR|off", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<MetricsAddr>,

    /// WebSocket protocol for clients that name none.
    #[arg(long = "ws-default", value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub ws_default: Option<String>,

    /// Log level bitfield as lws' -d (1 err, 2 warn, 4 notice, 8 info, 16 debug).
    #[arg(
        short = 'd',
        long = "debug-level",
        value_name = "N",
        default_value_t = 7
    )]
    pub debug_level: u32,

    /// Seconds workers get to finish in-flight requests on SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub grace: u64,

    /// Seconds an idle keep-alive connection is kept.
    #[arg(long = "keepalive-timeout", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub keepalive_timeout: Option<u64>,

    /// Seconds a response may make no progress (the client does not read it, or an
    /// HTTP/2 client never opens its window) before it is abandoned [default: 60].
    #[arg(long = "send-timeout", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub send_timeout: Option<u64>,

    /// Seconds a client has to send a complete request head.
    #[arg(long = "header-timeout", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub header_timeout: Option<u64>,

    /// Seconds a request body may go without a byte arriving [default: 60].
    #[arg(long = "body-timeout", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub body_timeout: Option<u64>,

    /// Longest HTTP request line in bytes (longer: 414) [default: 8192].
    #[arg(long = "max-request-line", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(64..=MAX_HEAD_PART))]
    pub max_request_line: Option<u64>,

    /// Most HTTP request header fields (more: 431) [default: 64].
    #[arg(long = "max-headers", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=lwsd_worker::roles::h1::HEADER_SLOTS as u64))]
    pub max_headers: Option<u64>,

    /// Most bytes of HTTP request header fields (more: 431) [default: 16384].
    #[arg(long = "max-header-bytes", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(64..=MAX_HEAD_PART))]
    pub max_header_bytes: Option<u64>,

    /// Largest HTTP request body in bytes (bigger: 413) [default: 16 MiB].
    #[arg(long = "max-body", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 40)))]
    pub max_body: Option<u64>,

    /// A protocol's per-vhost option (lws pvo), `PROTOCOL:NAME=VALUE`; repeatable.
    #[arg(long = "pvo", value_name = "PROTOCOL:NAME=VALUE", value_parser = parse_pvo)]
    pub pvo: Vec<Pvo>,

    /// Largest WebSocket message accepted, in bytes (bigger: close 1009) [default: 16 MiB].
    #[arg(long = "ws-max-message", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=(1u64 << 40)))]
    pub ws_max_message: Option<u64>,

    /// Seconds of WebSocket silence before a PING is sent; 0 turns it off [default: 300].
    #[arg(long = "ws-ping-interval", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub ws_ping_interval: Option<u64>,

    /// Seconds to wait for any frame after that PING before hanging up [default: 10].
    #[arg(long = "ws-pong-timeout", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub ws_pong_timeout: Option<u64>,

    /// Do not negotiate permessage-deflate (saves ~400 KiB per compressing connection).
    #[arg(long = "no-ws-deflate")]
    pub no_ws_deflate: bool,

    /// How accepted connections reach the workers: `ring` sends each socket straight
    /// into the worker's io_uring (MSG_RING, no fd, no packet; IPv6 peers still go as
    /// `scm`), `scm` in SCM_RIGHTS packets on the control socket, `auto` ring when the
    /// kernel can.
    #[arg(long = "fd-handoff", value_name = "MODE", value_enum, default_value_t = FdHandoff::Auto)]
    pub fd_handoff: FdHandoff,

    /// The kernel interface the workers' loops run on: `uring` (io_uring), `epoll`, or
    /// `auto`: io_uring, or epoll when io_uring is missing (ENOSYS) or forbidden
    /// (EPERM: a seccomp policy, `kernel.io_uring_disabled`), with a log line naming the
    /// cause. With `epoll`, connections reach the workers in SCM_RIGHTS packets
    /// (`--fd-handoff scm`).
    #[arg(long = "event-loop", value_name = "LOOP", value_enum, default_value_t = EventLoop::Auto)]
    pub event_loop: EventLoop,

    /// TCP_DEFER_ACCEPT: a connection is accepted once its first bytes arrive (nginx's
    /// `deferred`); one silent this many seconds is accepted anyway. 0 turns it off.
    #[arg(long = "defer-accept", value_name = "SECS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub defer_accept: u32,

    // TLS (issue 10), named as libwebsockets-test-server's flags.
    /// Serve TLS on every listener; without -C/-K with a self-signed certificate made at
    /// start for localhost and the listen addresses.
    #[arg(short = 's', long = "ssl")]
    pub ssl: bool,

    /// Certificate chain (PEM, leaf first) [requires -s and -K].
    #[arg(short = 'C', long = "ssl-cert", value_name = "CERT", requires_all = ["ssl", "ssl_key"])]
    pub ssl_cert: Option<PathBuf>,

    /// Private key of -C (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA or Ed25519).
    #[arg(short = 'K', long = "ssl-key", value_name = "KEY", requires_all = ["ssl", "ssl_cert"])]
    pub ssl_key: Option<PathBuf>,

    /// CA certificates (PEM) to verify client certificates against; asked for, optional
    /// unless -v.
    #[arg(short = 'A', long = "ssl-ca", value_name = "CA", requires = "ssl")]
    pub ssl_ca: Option<PathBuf>,

    /// Require a client certificate signed by -A's CA.
    #[arg(short = 'v', long = "ssl-verify-client", requires = "ssl_ca")]
    pub ssl_verify_client: bool,

    /// Seconds a client has to complete the TLS handshake.
    #[arg(long = "tls-handshake-timeout", value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub tls_handshake_timeout: u64,
}

/// One `--pvo PROTOCOL:NAME=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pvo {
    pub protocol: String,
    pub name: String,
    pub value: String,
}

fn parse_pvo(s: &str) -> Result<Pvo, String> {
    let shape = || format!("`{s}` is not PROTOCOL:NAME=VALUE");
    let (protocol, rest) = s.split_once(':').ok_or_else(shape)?;
    let (name, value) = rest.split_once('=').ok_or_else(shape)?;
    let protocol = parse_protocol(protocol)?;
    // Option names are lwsws JSON keys: printable, no spaces.
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{name}` in `{s}` is not an option name"));
    }
    Ok(Pvo {
        protocol,
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// `--fd-handoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FdHandoff {
    Auto,
    Ring,
    Scm,
}

/// `--event-loop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventLoop {
    Auto,
    Uring,
    Epoll,
}

impl EventLoop {
    pub fn for_worker(self) -> lwsd_worker::service::EventLoop {
        match self {
            EventLoop::Auto => lwsd_worker::service::EventLoop::Auto,
            EventLoop::Uring => lwsd_worker::service::EventLoop::Uring,
            EventLoop::Epoll => lwsd_worker::service::EventLoop::Epoll,
        }
    }
}

/// `--metrics-addr`: where the Prometheus endpoint listens, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

/// The Prometheus endpoint when `--metrics-addr` is not given (Prometheus' default
/// exporter port range starts at 9100; 9464 is the OpenTelemetry exporter's).
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Cli {
    /// Where the Prometheus endpoint listens (`None`: off), and whether the address was
    /// given: a taken default address only costs the metrics, a taken given one stops
    /// lwsd.
    pub fn metrics(&self) -> (Option<SocketAddr>, bool) {
        match self.metrics_addr {
            Some(MetricsAddr(a)) => (a, true),
            None => (Some(DEFAULT_METRICS_ADDR), false),
        }
    }
}

fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr(None));
    }
    s.parse::<SocketAddr>()
        .map(|a| MetricsAddr(Some(a)))
        .map_err(|_| format!("`{s}` is not `off` or an address like 127.0.0.1:9464"))
}

fn parse_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(format!("`{s}` is not a directory")),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

/// RFC 6455 section 4.1: a subprotocol name is a token (RFC 2616 section 2.2).
fn parse_protocol(s: &str) -> Result<String, String> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !s.is_empty() && s.bytes().all(is_tchar) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a protocol name (an HTTP token)"))
    }
}

impl Cli {
    /// Worker count: `-j`, or the cores this process may run on, at most [`MAX_WORKERS`].
    pub fn worker_count(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, usize::from(MAX_WORKERS)),
        }
    }

    /// The listeners in bind order; `NewConn::listener` indexes this list.
    pub fn listeners(&self) -> Vec<ListenerKind> {
        let mut v = Vec::with_capacity(3);
        match self.interface {
            Some(ip) => v.push(ListenerKind::Tcp(SocketAddr::new(ip, self.port))),
            None => {
                v.push(ListenerKind::Tcp(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    self.port,
                )));
                v.push(ListenerKind::Tcp(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    self.port,
                )));
            }
        }
        if let Some(p) = &self.unix_socket {
            v.push(ListenerKind::Unix(p.clone()));
        }
        v
    }

    /// Shutdown grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace)
    }

    /// What every worker serves with.
    pub fn worker_config(&self) -> WorkerConfig {
        let mut c = WorkerConfig {
            listeners: self.listeners(),
            resource_dir: self.resource_path.clone(),
            ws_default: self.ws_default.clone(),
            log_level: self.debug_level,
            workers: self.worker_count(),
            ..WorkerConfig::default()
        };
        if let Some(s) = self.keepalive_timeout {
            c.keepalive_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.header_timeout {
            c.header_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.send_timeout {
            c.send_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.body_timeout {
            c.body_timeout = Duration::from_secs(s);
        }
        // The ranges clap enforced keep every value within usize on 64-bit targets.
        if let Some(n) = self.max_request_line {
            c.h1_limits.max_request_line = n as usize;
        }
        if let Some(n) = self.max_headers {
            c.h1_limits.max_headers = n as usize;
        }
        if let Some(n) = self.max_header_bytes {
            c.h1_limits.max_header_bytes = n as usize;
        }
        if let Some(n) = self.max_body {
            c.h1_limits.max_body = n;
        }
        // A later --pvo for the same protocol and option wins.
        for p in &self.pvo {
            c.protocol_options
                .entry(p.protocol.clone())
                .or_default()
                .insert(p.name.clone(), p.value.clone());
        }
        if let Some(n) = self.ws_max_message {
            c.ws_max_message = n;
        }
        if let Some(s) = self.ws_ping_interval {
            c.ws_ping_interval = (s > 0).then(|| Duration::from_secs(s));
        }
        if let Some(s) = self.ws_pong_timeout {
            c.ws_pong_timeout = Duration::from_secs(s);
        }
        c.ws_deflate = !self.no_ws_deflate;
        c.tls = self.tls_settings();
        c.event_loop = self.event_loop.for_worker();
        c
    }

    /// How connections reach the workers: `--fd-handoff`, except that workers on epoll
    /// have no ring to send them into (SCM_RIGHTS then); an error for `--fd-handoff
    /// ring --event-loop epoll`.
    pub fn handoff(&self) -> Result<FdHandoff, String> {
        match (self.event_loop, self.fd_handoff) {
            (EventLoop::Epoll, FdHandoff::Ring) => {
                Err("--fd-handoff ring needs io_uring, not --event-loop epoll".into())
            }
            (EventLoop::Epoll, _) => Ok(FdHandoff::Scm),
            (_, h) => Ok(h),
        }
    }

    /// `-s`, `-C`, `-K`, `-A`, `-v`, `--tls-handshake-timeout`.
    pub fn tls_settings(&self) -> Option<TlsSettings> {
        if !self.ssl {
            return None;
        }
        let identity = match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => TlsIdentity::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsIdentity::SelfSigned,
        };
        let mut t = TlsSettings::new(identity);
        t.client_ca = self.ssl_ca.clone();
        t.require_client_cert = self.ssl_verify_client;
        t.handshake_timeout = Duration::from_secs(self.tls_handshake_timeout);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lwsd").chain(args.iter().copied()))
    }

    fn rejects(args: &[&str], flag: &str) {
        let e = parse(args).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains(flag), "{args:?}: `{msg}` does not name {flag}");
        assert!(msg.lines().next().unwrap().starts_with("error: "));
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 7681);
        assert_eq!(
            c.metrics(),
            (Some("127.0.0.1:9464".parse().unwrap()), false)
        );
        let c = parse(&["--metrics-addr", "127.0.0.1:9464"]).unwrap();
        assert_eq!(c.metrics(), (Some("127.0.0.1:9464".parse().unwrap()), true));
        assert_eq!(c.grace(), Duration::from_secs(10));
        assert!(c.worker_count() >= 1);
        assert_eq!(
            c.listeners(),
            vec![
                ListenerKind::Tcp("0.0.0.0:7681".parse().unwrap()),
                ListenerKind::Tcp("[::]:7681".parse().unwrap()),
            ]
        );
        let w = c.worker_config();
        let d = WorkerConfig::default();
        assert_eq!(w.keepalive_timeout, d.keepalive_timeout);
        assert_eq!(w.header_timeout, d.header_timeout);
        assert_eq!(w.body_timeout, Duration::from_secs(60));
        assert_eq!(w.h1_limits.max_body, d.h1_limits.max_body);
        assert!(w.protocol_options.is_empty());
        assert_eq!(w.resource_dir, None);
        assert_eq!(w.log_level, 7);
    }

    #[test]
    fn test_server_flags() {
        let dir = std::env::temp_dir();
        let dir_s = dir.to_str().unwrap();
        let c = parse(&[
            "-p",
            "8080",
            "-i",
            "::1",
            "-U",
            "/tmp/x.sock",
            "-j",
            "3",
            "-r",
            dir_s,
            "-d",
            "1023",
            "--metrics-addr",
            "off",
            "--ws-default",
            "lws-mirror-protocol",
            "--grace",
            "0",
            "--keepalive-timeout",
            "5",
            "--header-timeout",
            "2",
            "--body-timeout",
            "3",
            "--max-request-line",
            "100",
            "--max-headers",
            "5",
            "--max-header-bytes",
            "300",
            "--max-body",
            "0",
            "--pvo",
            "protocol-post-demo:max-body=10",
            "--pvo",
            "lws-mirror-protocol:ring-bytes=a=b:c",
            "--pvo",
            "protocol-post-demo:max-body=20",
        ])
        .unwrap();
        assert_eq!(c.worker_count(), 3);
        assert_eq!(c.metrics(), (None, true));
        assert_eq!(
            c.listeners(),
            vec![
                ListenerKind::Tcp("[::1]:8080".parse().unwrap()),
                ListenerKind::Unix("/tmp/x.sock".into()),
            ]
        );
        let w = c.worker_config();
        assert_eq!(w.listeners, c.listeners());
        assert_eq!(w.resource_dir.as_deref(), Some(dir.as_path()));
        assert_eq!(w.ws_default.as_deref(), Some("lws-mirror-protocol"));
        assert_eq!(w.log_level, 1023);
        assert_eq!(w.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(w.header_timeout, Duration::from_secs(2));
        assert_eq!(w.body_timeout, Duration::from_secs(3));
        assert_eq!(w.h1_limits.max_request_line, 100);
        assert_eq!(w.h1_limits.max_headers, 5);
        assert_eq!(w.h1_limits.max_header_bytes, 300);
        assert_eq!(w.h1_limits.max_body, 0);
        let opt = |p: &str, k: &str| w.protocol_options[p][k].as_str();
        assert_eq!(
            opt("protocol-post-demo", "max-body"),
            "20",
            "the last one wins"
        );
        assert_eq!(opt("lws-mirror-protocol", "ring-bytes"), "a=b:c");
        assert_eq!(c.grace(), Duration::ZERO);
        let long = parse(&[
            "--port",
            "1",
            "--workers",
            "256",
            "--interface",
            "127.0.0.1",
        ])
        .unwrap();
        assert_eq!(long.port, 1);
        assert_eq!(long.worker_count(), 256);
    }

    #[test]
    fn bad_values_name_the_flag() {
        rejects(&["-p", "0"], "--port");
        rejects(&["-p", "65536"], "--port");
        rejects(&["-p", "http"], "--port");
        rejects(&["-j", "0"], "--workers");
        rejects(&["-j", "257"], "--workers");
        rejects(&["-i", "localhost"], "--interface");
        rejects(&["-r", "/nonexistent/lwsd-test"], "--resource-path");
        rejects(&["-r", "/etc/hostname"], "--resource-path");
        rejects(&["--metrics-addr", "9464"], "--metrics-addr");
        rejects(&["--ws-default", "a b"], "--ws-default");
        rejects(&["--ws-default", ""], "--ws-default");
        rejects(&["-d", "lots"], "--debug-level");
        rejects(&["--debug-level=-1"], "--debug-level");
        rejects(&["--grace", "86401"], "--grace");
        rejects(&["--keepalive-timeout", "0"], "--keepalive-timeout");
        rejects(&["--header-timeout", "0"], "--header-timeout");
        rejects(&["--body-timeout", "0"], "--body-timeout");
        rejects(&["--body-timeout", "86401"], "--body-timeout");
        rejects(&["--max-request-line", "63"], "--max-request-line");
        rejects(&["--max-request-line", "65537"], "--max-request-line");
        rejects(&["--max-headers", "0"], "--max-headers");
        rejects(&["--max-headers", "257"], "--max-headers");
        rejects(&["--max-header-bytes", "65537"], "--max-header-bytes");
        rejects(&["--max-body=-1"], "--max-body");
        rejects(&["--max-body", "1099511627777"], "--max-body");
        rejects(&["--pvo", "no-colon"], "--pvo");
        rejects(&["--pvo", "p:no-equals"], "--pvo");
        rejects(&["--pvo", "a b:k=v"], "--pvo");
        rejects(&["--pvo", "p:=v"], "--pvo");
        rejects(&["--pvo", "p:k k=v"], "--pvo");
    }

    #[test]
    fn tls_flags() {
        assert_eq!(parse(&[]).unwrap().worker_config().tls, None);
        let c = parse(&["-s"]).unwrap().worker_config();
        let t = c.tls.unwrap();
        assert_eq!(t.identity, TlsIdentity::SelfSigned);
        assert_eq!(t.handshake_timeout, Duration::from_secs(10));
        assert_eq!((t.client_ca, t.require_client_cert), (None, false));
        assert_eq!(t.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let t = parse(&[
            "-s",
            "-C",
            "/c.pem",
            "-K",
            "/k.pem",
            "-A",
            "/ca.pem",
            "-v",
            "--tls-handshake-timeout",
            "3",
        ])
        .unwrap()
        .tls_settings()
        .unwrap();
        assert_eq!(
            t.identity,
            TlsIdentity::Files {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            }
        );
        assert_eq!(
            t.client_ca.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert!(t.require_client_cert);
        assert_eq!(t.handshake_timeout, Duration::from_secs(3));
        let long = parse(&[
            "--ssl",
            "--ssl-cert=/c",
            "--ssl-key=/k",
            "--ssl-ca=/a",
            "--ssl-verify-client",
        ])
        .unwrap();
        assert!(long.tls_settings().unwrap().require_client_cert);
        // -A without -v: client certificates asked for, optional.
        let t = parse(&["-s", "-A", "/a"]).unwrap().tls_settings().unwrap();
        assert!(!t.require_client_cert);
    }

    #[test]
    fn tls_flags_need_each_other() {
        for (args, missing) in [
            (&["-C", "/c", "-K", "/k"][..], "--ssl"),
            (&["-s", "-C", "/c"], "--ssl-key"),
            (&["-s", "-K", "/k"], "--ssl-cert"),
            (&["-A", "/a"], "--ssl"),
            (&["-s", "-v"], "--ssl-ca"),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument, "{args:?}");
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(missing), "{args:?}: {e}");
        }
        rejects(
            &["-s", "--tls-handshake-timeout", "0"],
            "--tls-handshake-timeout",
        );
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let e = parse(&["--nope"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert_eq!(e.exit_code(), 2);
    }
}
