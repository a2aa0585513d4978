//! The lwsd worker: one process per core, one io_uring service thread, every
//! connection of that worker in a slab. See DESIGN.md sections 1 to 4.
//!
//! - [`roles`]: sans-IO protocol state machines (bytes in, bytes and events out).
//! - [`mount`]: what a URL maps to (files today; redirect, callback, cgi, proxy later).
//! - [`service`]: the only module that does I/O: the io_uring loop.

// `unsafe` only at the kernel boundary: the io_uring submission and the provided buffer
// ring in `service`. Protocol roles, mounts and the plugin API have none.
#![deny(unsafe_code)]

pub mod api;
pub mod assets;
pub mod config;
pub mod handle;
pub mod http;
pub mod mount;
pub mod plugins;
pub mod roles;
#[allow(unsafe_code)]
pub mod service;
pub mod session;
pub mod sink;
pub mod upgraded;
pub mod vhost;

use std::sync::atomic::{AtomicU32, Ordering};

pub use handle::{Posted, ServiceHandle};

static LOG_LEVEL: AtomicU32 = AtomicU32::new(7);

/// Sets the lws-style log bitfield (1 err, 2 warn, 4 notice, 8 info, 16 debug).
pub fn set_log_level(level: u32) {
    LOG_LEVEL.store(level, Ordering::Relaxed);
}

/// Whether messages of `level` are logged.
pub fn log_enabled(level: u32) -> bool {
    LOG_LEVEL.load(Ordering::Relaxed) & level != 0
}

/// Writes one log line and its newline to stderr in a single write(2), ignoring errors.
/// One write: the supervisor and its workers share the stream, and a pipe write of up to
/// PIPE_BUF bytes is never split by another writer (`eprintln!` writes each formatted
/// piece separately). Errors ignored: a closed or broken stderr (a log pipe whose reader
/// went away) must not take the server down, and `eprintln!` panics on them.
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut s = line.to_string();
    s.push('\n');
    let _ = std::io::stderr().write_all(s.as_bytes());
}

/// Per-worker state every connection's role can reach through [`service::Cx`].
pub struct App {
    pub config: config::WorkerConfig,
    /// This worker's index (0-based).
    pub index: usize,
    pub stats: service::Stats,
    /// How often the loop was woken through its eventfd.
    pub wakes: u64,
    /// Bus publications relayed by the supervisor, not yet delivered.
    pub bus_in: Vec<lwsd_proto::BusMessage>,
    /// Wall-clock seconds since the epoch, read once per loop pass (Date headers,
    /// cache revalidation).
    pub now_unix: u64,
    /// HTTP state (vhost, mounts, Date cache), set up by [`http::role_factory`].
    pub http: Option<http::HttpShared>,
    /// The vhosts (lwsws `vhosts[]`; the command line makes one). A request goes to the
    /// one [`App::vhost_for`] picks.
    pub vhosts: Vec<vhost::Vhost>,
    /// The vhost's protocols (plugin instances).
    pub protocols: api::Protocols,
    /// What the plugin API reaches: queued actions, bus, timers, posted messages.
    pub plugin: api::PluginShared,
    /// Sequence number of this worker's next bus publication.
    pub bus_seq: u64,
    /// TLS configuration and session-ticket keys, when `config.tls` is set
    /// ([`App::install_tls`]).
    pub tls: Option<roles::tls::WorkerTls>,
}

impl App {
    /// Instantiates `plugins` as the vhost's protocols (with `--ws-default`).
    pub fn install_protocols(&mut self, plugins: &[api::Plugin]) -> Result<(), String> {
        let workers = self.config.workers.max(1);
        self.protocols = api::Protocols::new(
            plugins,
            &self.config.protocol_options,
            self.config.ws_default.as_deref(),
            self.index,
            workers,
        )?;
        self.plugin = api::PluginShared::new(self.index, workers);
        Ok(())
    }

    /// Loads the certificate, key and CA of `config.tls` (a self-signed identity must
    /// already be resolved to the supervisor's files). An unusable file is an error
    /// naming it.
    pub fn install_tls(&mut self) -> Result<(), String> {
        self.tls = match &self.config.tls {
            Some(t) => Some(roles::tls::WorkerTls::new(t, None).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(())
    }

    /// The vhost for a request on listener `listener` with the authority `authority`
    /// (`Host` on HTTP/1.1, `:authority` on HTTP/2): among those serving the listener,
    /// the one of that name, else the first (lws' default vhost of a port). `None` when
    /// no vhost serves the listener.
    pub fn vhost_for(&self, listener: u16, authority: Option<&[u8]>) -> Option<usize> {
        if let [v] = self.vhosts.as_slice() {
            // One vhost (the command line's): no name to compare.
            return v.serves(listener).then_some(0);
        }
        let mut serving = self
            .vhosts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.serves(listener));
        let first = serving.clone().next().map(|(i, _)| i);
        authority
            .and_then(|a| serving.find(|(_, v)| v.named(a)).map(|(i, _)| i))
            .or(first)
    }

    pub fn new(config: config::WorkerConfig, index: usize) -> App {
        App {
            config,
            index,
            stats: service::Stats::default(),
            wakes: 0,
            bus_in: Vec::new(),
            now_unix: unix_now(),
            http: None,
            vhosts: Vec::new(),
            protocols: api::Protocols::empty(),
            plugin: api::PluginShared::new(index, 1),
            bus_seq: 0,
            tls: None,
        }
    }
}

/// Wall-clock seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
