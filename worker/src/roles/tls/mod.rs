//! TLS (issue 10; DESIGN.md sections 3 and 4): rustls' unbuffered server connection as
//! the transport under the carriers, sans-IO.
//!
//! - [`transport`]: [`TlsSession`], one connection: records in, plaintext and handshake
//!   bytes out, sealing at flush, `close_notify`; the plain-HTTP detector and its 400.
//! - [`error`]: [`TlsError`]: blame, metric reason, the alert sent.
//! - [`config`]: the `rustls::ServerConfig` from PEM files or a self-signed pair, with
//!   errors naming the file.
//! - [`tickets`]: session-ticket keys made by the supervisor, shared by every worker.
//!
//! [`WorkerTls`] is what a worker keeps ([`crate::App::tls`]): the shared configuration,
//! the ticketer whose keys the control loop replaces, and the handshake timeout.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
mod hello;
pub mod tickets;
pub mod transport;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Blame, TlsError};
pub use transport::{PLAIN_HTTP_RESPONSE, Progress, TlsSession, looks_like_plain_http};

use crate::config::{TlsIdentity, TlsSettings};
use config::{ClientAuth, ConfigError, Identity};

/// Names of the self-signed pair's files in the directory the supervisor makes.
pub const SELF_SIGNED_CERT: &str = "cert.pem";
pub const SELF_SIGNED_KEY: &str = "key.pem";

/// A worker's TLS state: built once at start, shared by every TLS connection.
pub struct WorkerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub ticketer: Arc<tickets::Ticketer>,
    pub handshake_timeout: Duration,
}

impl WorkerTls {
    /// Loads `settings`. `self_signed_dir`: where the supervisor wrote the self-signed
    /// pair ([`SELF_SIGNED_CERT`], [`SELF_SIGNED_KEY`]), for [`TlsIdentity::SelfSigned`].
    pub fn new(
        settings: &TlsSettings,
        self_signed_dir: Option<&Path>,
    ) -> Result<WorkerTls, ConfigError> {
        let identity = match &settings.identity {
            TlsIdentity::Files { cert, key } => Identity::from_files(cert, key)?,
            TlsIdentity::SelfSigned => {
                let dir = self_signed_dir.ok_or_else(|| ConfigError {
                    path: None,
                    problem: "no self-signed certificate from the supervisor".into(),
                })?;
                Identity::from_files(&dir.join(SELF_SIGNED_CERT), &dir.join(SELF_SIGNED_KEY))?
            }
        };
        let client_auth = match &settings.client_ca {
            Some(ca) => ClientAuth::Verify {
                roots: config::load_client_roots(ca)?,
                required: settings.require_client_cert,
            },
            None => ClientAuth::None,
        };
        let ticketer = Arc::new(tickets::Ticketer::new());
        let config =
            config::server_config(identity, client_auth, &settings.alpn, ticketer.clone())?;
        Ok(WorkerTls {
            config,
            ticketer,
            handshake_timeout: settings.handshake_timeout,
        })
    }

    /// A session for a new connection.
    pub fn session(&self) -> Result<TlsSession, TlsError> {
        TlsSession::new(self.config.clone())
    }

    /// The supervisor's `TicketKeys` message arrived: seal new tickets with the first
    /// key, open tickets of any.
    pub fn update_tickets(&self, keys: &[lwsd_proto::TicketKey]) {
        self.ticketer.update(keys);
    }
}
