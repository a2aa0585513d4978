//! What a worker needs to know to serve: built by the supervisor from its command line
//! (and later from lwsws JSON files), identical in every worker.

use std::path::PathBuf;
use std::time::Duration;

/// One listener as the worker sees it: accepted fds arrive tagged with its index in
/// [`WorkerConfig::listeners`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// Everything a worker serves with. The supervisor builds one and every worker gets the
/// same (each worker process rebuilds it from the same command line).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Listeners in the order the supervisor bound them; `NewConn::listener` indexes this.
    pub listeners: Vec<ListenerKind>,
    /// Document root of the default mount (`-r DIR`); `None` serves the embedded demo.
    pub resource_dir: Option<PathBuf>,
    /// The `Server:` header value (lwsws `server-string`).
    pub server_string: String,
    /// How long a client may take to send a complete request head before it gets 408.
    pub header_timeout: Duration,
    /// Longest silence between two reads of a request body before it gets 408 (nginx's
    /// `client_body_timeout`). Not a bound on the whole body: a slow upload that keeps
    /// moving is never cut off.
    pub body_timeout: Duration,
    /// What an HTTP/1.1 request may hold: request line (414), header count and bytes
    /// (431), body (413) (`--max-request-line`, `--max-headers`, `--max-header-bytes`,
    /// `--max-body`).
    pub h1_limits: crate::roles::h1::H1Limits,
    /// How long an idle keep-alive connection is kept (lwsws `keepalive-timeout`).
    pub keepalive_timeout: Duration,
    /// How long a response may make no progress (the client does not read, or on
    /// HTTP/2 never opens its flow-control window) before it is abandoned
    /// (`--send-timeout`, nginx's `send_timeout`).
    pub send_timeout: Duration,
    /// The protocol a WebSocket client that names none gets (`--ws-default`, lws pvo `default`).
    pub ws_default: Option<String>,
    /// Log verbosity bitfield, as lws' `-d` (1 err, 2 warn, 4 notice, 8 info, ...).
    pub log_level: u32,
    /// Largest WebSocket message accepted (bytes); bigger closes with 1009.
    pub ws_max_message: u64,
    /// Silence before a keepalive PING (lws' validity tracking); `None`: no pings.
    pub ws_ping_interval: Option<Duration>,
    /// Wait for any frame after that PING before hanging up.
    pub ws_pong_timeout: Duration,
    /// Negotiate permessage-deflate with clients that offer it (`--no-ws-deflate` turns
    /// it off: each compressing connection costs ~400 KiB while it holds a compressor).
    pub ws_deflate: bool,
    /// How many workers the supervisor runs (status protocols report it).
    pub workers: usize,
    /// Per-protocol options (lws pvos): protocol name -> option -> value.
    pub protocol_options:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// TLS on every listener (`-s`), or plain text (`None`).
    pub tls: Option<TlsSettings>,
    /// The kernel interface the worker's loop runs on (`--event-loop`).
    pub event_loop: crate::service::EventLoop,
}

/// TLS settings (`-s`, `-C`, `-K`, `-A`, `-v`, `--tls-handshake-timeout`); the
/// `rustls::ServerConfig` is built from them by [`crate::roles::tls::config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub identity: TlsIdentity,
    /// `-A`: CA certificates (PEM) that client certificates are verified against. With
    /// it, a client certificate is asked for, and verified when one is sent.
    pub client_ca: Option<PathBuf>,
    /// `-v`: a verified client certificate is required.
    pub require_client_cert: bool,
    /// Time a client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// ALPN protocols offered, in preference order (RFC 7301).
    pub alpn: Vec<Vec<u8>>,
}

/// Where the server's certificate chain and key come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsIdentity {
    /// PEM files: the chain (leaf first) and its private key (`-C`, `-K`).
    Files { cert: PathBuf, key: PathBuf },
    /// `-s` alone: a self-signed certificate that the supervisor generates at start
    /// and hands to every worker (as files in a private directory).
    SelfSigned,
}

/// Default TLS handshake timeout: lws' `timeout_secs` for a handshake is 5-20 s, nginx's
/// `ssl_handshake_timeout` 60 s; 10 s lets a slow mobile link finish a full handshake
/// (two round trips) while bounding idle half-open handshakes.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsSettings {
    /// `-s` with the defaults: self-signed, no client certificates, ALPN `http/1.1`.
    pub fn new(identity: TlsIdentity) -> TlsSettings {
        TlsSettings {
            identity,
            client_ca: None,
            require_client_cert: false,
            handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            // RFC 9113 3.2: h2 preferred when the client offers both.
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            listeners: Vec::new(),
            resource_dir: None,
            server_string: concat!("lwsd/", env!("CARGO_PKG_VERSION")).to_string(),
            event_loop: crate::service::EventLoop::Auto,
            // nginx's client_header_timeout default is 60 s; lws uses 5 s for the whole
            // handshake. 10 s keeps slow mobile clients working while bounding slowloris.
            header_timeout: Duration::from_secs(10),
            // nginx's client_body_timeout default: 60 s between two reads.
            body_timeout: Duration::from_secs(60),
            h1_limits: crate::roles::h1::H1Limits::default(),
            // nginx keepalive_timeout default: 75 s; lws' keepalive-timeout: 5 s. lwsd
            // follows lwsws's spirit for a server expected to hold many connections.
            keepalive_timeout: Duration::from_secs(60),
            // nginx's send_timeout default.
            send_timeout: Duration::from_secs(60),
            ws_default: None,
            log_level: 7,
            ws_max_message: crate::roles::ws::conn::DEFAULT_MAX_MESSAGE_SIZE,
            ws_ping_interval: Some(Duration::from_millis(
                crate::roles::ws::conn::DEFAULT_PING_INTERVAL_MS,
            )),
            ws_pong_timeout: Duration::from_millis(crate::roles::ws::conn::DEFAULT_PONG_TIMEOUT_MS),
            ws_deflate: true,
            workers: 1,
            protocol_options: Default::default(),
            tls: None,
        }
    }
}

impl WorkerConfig {
    /// The WebSocket limits and timers every connection gets.
    pub fn ws_config(&self) -> crate::roles::ws::conn::WsConfig {
        let d = crate::roles::ws::conn::WsConfig::default();
        crate::roles::ws::conn::WsConfig {
            max_message_size: std::num::NonZeroU64::new(self.ws_max_message)
                .unwrap_or(d.max_message_size),
            ping_interval_ms: self.ws_ping_interval.map(|i| i.as_millis() as u64),
            pong_timeout_ms: self.ws_pong_timeout.as_millis() as u64,
            ..d
        }
    }
}
