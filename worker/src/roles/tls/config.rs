//! Building the `rustls::ServerConfig` a worker serves TLS with: the certificate chain
//! and key from PEM files (or a generated self-signed pair), optional client
//! certificate verification, TLS 1.2 and 1.3, ALPN, and stateless session tickets.
//!
//! Every problem with a file is a [`ConfigError`] naming the file and what is wrong with
//! it, so `lwsd -s -C x.pem -K y.pem` stops at start with a line a person can act on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ProducesTickets, WebPkiClientVerifier};

/// A certificate, key or CA file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (`None` for a problem of no one file, such as the random source).
    pub path: Option<PathBuf>,
    pub problem: String,
}

impl ConfigError {
    fn file(path: &Path, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: Some(path.to_owned()),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

thread_local! {
    /// The server name of the last ClientHello the certificate resolver saw on this
    /// thread: `Some(None)` for a hello without SNI.
    static LAST_SNI: std::cell::RefCell<Option<Option<Box<str>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Takes what [`SniCapture`] saw since the last call. rustls' unbuffered server
/// connection has no `server_name()` accessor (0.23), but the certificate resolver is
/// handed the ClientHello, synchronously inside `process_tls_records`; a worker is one
/// thread, so the session that called rustls takes it right after the call and no other
/// session's hello can come between.
pub(crate) fn take_sni() -> Option<Option<Box<str>>> {
    LAST_SNI.with(|c| c.borrow_mut().take())
}

/// Wraps the certificate resolver to note each ClientHello's server name (and is where
/// SNI will choose a vhost's certificate).
#[derive(Debug)]
struct SniCapture {
    inner: Arc<dyn rustls::server::ResolvesServerCert>,
}

impl rustls::server::ResolvesServerCert for SniCapture {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name().map(Box::from);
        LAST_SNI.with(|c| *c.borrow_mut() = Some(name));
        self.inner.resolve(hello)
    }
}

/// The crypto provider (bench/RESULTS.md, "TLS provider": `ring`).
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    // Deprecated in rustls 0.23.48 for having no post-quantum key exchange: see the
    // README's provider paragraph for why lwsd still uses it.
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    // That release also lists P-384 first. rustls' server takes a group the client sent
    // a key share for (browsers send X25519), so this only matters for a client that
    // sends several shares, and then X25519 is the one to take: a P-384 exchange costs
    // the server ~7x X25519's CPU (bench/RESULTS.md "TLS provider").
    p.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(p)
}

/// Largest certificate, key or CA file read: real chains are a few KiB and CA bundles a
/// few hundred; 4 MiB keeps a mistaken path (a disk image, /dev/zero) from eating memory.
const MAX_PEM_FILE: u64 = 4 << 20;

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| ConfigError::file(path, io_problem(&e)))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ConfigError::file(path, io_problem(&e)))?;
    if buf.len() as u64 > MAX_PEM_FILE {
        return Err(ConfigError::file(
            path,
            format!("larger than {} MiB: not a PEM file", MAX_PEM_FILE >> 20),
        ));
    }
    Ok(buf)
}

fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "unreadable: permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a PEM file".into(),
        _ => format!("unreadable: {e}"),
    }
}

fn pem_problem(e: &pem::Error) -> String {
    format!("bad PEM: {e:?}")
}

/// The certificate chain in a PEM file, leaf first (full chains: every
/// `CERTIFICATE` block, in file order).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    certs_from_pem(path, &read(path)?)
}

fn certs_from_pem(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::file(path, pem_problem(&e)))?;
    if certs.is_empty() {
        let what = if PrivateKeyDer::from_pem_slice(bytes).is_ok() {
            "no certificate found (this is a private key: swapped -C and -K?)"
        } else {
            "no certificate found (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)"
        };
        return Err(ConfigError::file(path, what));
    }
    for (i, c) in certs.iter().enumerate() {
        if let Err(e) = rustls::server::ParsedCertificate::try_from(c) {
            return Err(ConfigError::file(
                path,
                format!("certificate {} is not valid X.509: {e}", i + 1),
            ));
        }
    }
    Ok(certs)
}

/// The private key in a PEM file: PKCS#8 (RSA, ECDSA, Ed25519), PKCS#1 RSA or SEC1 EC.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    key_from_pem(path, &read(path)?)
}

fn key_from_pem(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => {
            let text = String::from_utf8_lossy(bytes);
            let what = if text.contains("ENCRYPTED PRIVATE KEY") {
                "the private key is encrypted; lwsd needs it unencrypted \
                 (openssl pkey -in KEY -out KEY.plain)"
            } else if text.contains("BEGIN CERTIFICATE") {
                "no private key found (this is a certificate: swapped -C and -K?)"
            } else {
                "no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" \
                 or \"EC PRIVATE KEY\")"
            };
            Err(ConfigError::file(path, what))
        }
        Err(e) => Err(ConfigError::file(path, pem_problem(&e))),
    }
}

/// The chain and key, checked against each other.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads and checks `-C CERT -K KEY`.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, ConfigError> {
        Identity::from_pem(cert, &read(cert)?, key, &read(key)?)
    }

    /// From PEM bytes; the paths only name them in errors.
    pub fn from_pem(
        cert_path: &Path,
        cert_pem: &[u8],
        key_path: &Path,
        key_pem: &[u8],
    ) -> Result<Identity, ConfigError> {
        let chain = certs_from_pem(cert_path, cert_pem)?;
        let key = key_from_pem(key_path, key_pem)?;
        let id = Identity { chain, key };
        id.check(cert_path, key_path)?;
        Ok(id)
    }

    fn check(&self, cert_path: &Path, key_path: &Path) -> Result<(), ConfigError> {
        let p = provider();
        let signing = p
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|_| {
                ConfigError::file(
                    key_path,
                    "unsupported private key (lwsd takes RSA 2048-8192 bits, ECDSA P-256 or \
                     P-384, and Ed25519)",
                )
            })?;
        let ck = rustls::sign::CertifiedKey::new(self.chain.clone(), signing);
        match ck.keys_match() {
            Ok(()) => Ok(()),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(ConfigError::file(
                    key_path,
                    format!(
                        "key does not match the certificate in {}",
                        cert_path.display()
                    ),
                ))
            }
            // The provider cannot derive this key's public half: nothing to compare.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(ConfigError::file(
                cert_path,
                format!("certificate unusable with {}: {e}", key_path.display()),
            )),
        }
    }
}

/// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and `names` (the listen
/// addresses), with a fresh ECDSA P-256 key; as PEM (certificate, key).
pub fn self_signed(names: &[String]) -> Result<(String, String), ConfigError> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let ck = rcgen::generate_simple_self_signed(sans).map_err(|e| ConfigError {
        path: None,
        problem: format!("cannot generate a self-signed certificate: {e}"),
    })?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// The CA certificates client certificates are verified against (`-A`).
pub fn load_client_roots(path: &Path) -> Result<rustls::RootCertStore, ConfigError> {
    let certs = load_certs(path)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ConfigError::file(
            path,
            format!("none of its {ignored} certificates is a usable CA certificate"),
        ));
    }
    Ok(roots)
}

/// How client certificates are handled.
pub enum ClientAuth {
    /// None asked for.
    None,
    /// Asked for and verified against these roots; `required`: a client without one
    /// is refused (`-v`).
    Verify {
        roots: rustls::RootCertStore,
        required: bool,
    },
}

/// The server configuration: TLS 1.3 and 1.2 (rustls' safe suites only: AEAD, forward-
/// secret key exchange), `alpn` in preference order, stateless tickets from `ticketer`
/// and no session cache (so a resumption works on any worker).
pub fn server_config(
    identity: Identity,
    client_auth: ClientAuth,
    alpn: &[Vec<u8>],
    ticketer: Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let p = provider();
    let local = |problem: String| ConfigError {
        path: None,
        problem,
    };
    let builder = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| local(format!("TLS versions: {e}")))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Verify { roots, required } => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), p);
            let v = if required {
                v
            } else {
                v.allow_unauthenticated()
            };
            let v = v
                .build()
                .map_err(|e| local(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| local(format!("certificate and key: {e}")))?;
    cfg.cert_resolver = Arc::new(SniCapture {
        inner: cfg.cert_resolver.clone(),
    });
    cfg.alpn_protocols = alpn.to_vec();
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.ticketer = ticketer;
    // One ticket per full handshake: a client resuming several connections at once
    // reuses one in TLS 1.2 and, in TLS 1.3, gets a new one with each resumption.
    // Each ticket costs an AES-GCM seal and ~200 bytes on the wire.
    cfg.send_tls13_tickets = 1;
    Ok(Arc::new(cfg))
}
