//! Which rustls crypto provider lwsd uses (issue 10): server CPU per full handshake
//! (ECDSA P-256 and RSA-2048 certificates), per resumed handshake (TLS 1.3 ticket), and
//! per 16 KiB record sealed and opened, with lwsd's own `TlsSession` as the server and
//! a rustls client, all in memory. Only the server's calls are timed.
//!
//! ```sh
//! cargo run --release -p lwsd-bench --bin lwsd-tls-provider                    # ring
//! cargo run --release -p lwsd-bench --features aws-lc --bin lwsd-tls-provider  # both
//! ```
//!
//! Results: bench/RESULTS.md, "TLS provider".

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwsd_worker::roles::tls::TlsSession;
use lwsd_worker::roles::tls::config::Identity;
use lwsd_worker::roles::tls::tickets::{KeyRotation, Ticketer};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

/// Rounds per figure; each figure is the median of [`REPEATS`] rounds.
const HANDSHAKES: usize = 200;
const RECORDS: usize = 2000;
const REPEATS: usize = 5;

fn testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../worker/src/roles/tls/testdata")
        .join(name)
}

struct Setup {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn setup(p: &Arc<CryptoProvider>, cert: &str, key: &str) -> Setup {
    let id = Identity::from_files(&testdata(cert), &testdata(key)).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(id.chain[0].clone()).unwrap();
    let ticketer = Arc::new(Ticketer::new());
    ticketer.update(KeyRotation::new().unwrap().keys());
    let mut s = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)
        .unwrap();
    s.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    s.ticketer = ticketer;
    s.send_tls13_tickets = 1;
    let c = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Setup {
        server: Arc::new(s),
        client: Arc::new(c),
    }
}

/// One handshake; returns the server's time.
fn handshake(s: &Setup, client: &Arc<ClientConfig>) -> (Duration, ClientConnection, TlsSession) {
    let mut c =
        ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut server_time = Duration::ZERO;
    let t = Instant::now();
    let mut srv = TlsSession::new(s.server.clone()).unwrap();
    server_time += t.elapsed();
    for _ in 0..6 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut out = Vec::new();
        let t = Instant::now();
        srv.receive(&mut wire, |_| {}, &mut out).unwrap();
        server_time += t.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
        if !c.is_handshaking() && !srv.is_handshaking() {
            return (server_time, c, srv);
        }
    }
    panic!("no handshake");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn measure(name: &str, p: Arc<CryptoProvider>) {
    for (label, cert, key) in [
        ("ECDSA P-256", "ecdsa-p256.cert.pem", "ecdsa-p256.sec1.pem"),
        ("RSA-2048", "rsa2048.cert.pem", "rsa2048.pkcs1.pem"),
    ] {
        let s = setup(&p, cert, key);
        // Full: a client config without resumption.
        let mut fresh = (*s.client).clone();
        fresh.resumption = rustls::client::Resumption::disabled();
        let fresh = Arc::new(fresh);
        let full = median(
            (0..REPEATS)
                .map(|_| {
                    let t: Duration = (0..HANDSHAKES).map(|_| handshake(&s, &fresh).0).sum();
                    t.as_secs_f64() * 1e6 / HANDSHAKES as f64
                })
                .collect(),
        );
        println!("{name:9} full handshake, {label:11}: {full:8.1} µs in the server");
        if label.starts_with("ECDSA") {
            let resumed = median(
                (0..REPEATS)
                    .map(|_| {
                        let mut t = Duration::ZERO;
                        for _ in 0..HANDSHAKES {
                            // A client with a ticket from a full handshake.
                            let client = s.client.clone();
                            let _ = handshake(&s, &client);
                            let (d, _, srv) = handshake(&s, &client);
                            assert!(srv.resumed());
                            t += d;
                        }
                        t.as_secs_f64() * 1e6 / HANDSHAKES as f64
                    })
                    .collect(),
            );
            println!("{name:9} resumed handshake (ticket) : {resumed:8.1} µs in the server");
            let (_, mut c, mut srv) = handshake(&s, &fresh);
            let rec = vec![0x61u8; 16 * 1024];
            let mut out = Vec::with_capacity(17 * 1024);
            let seal = median(
                (0..REPEATS)
                    .map(|_| {
                        let t = Instant::now();
                        for _ in 0..RECORDS {
                            out.clear();
                            srv.seal(&rec, &mut out).unwrap();
                        }
                        t.elapsed().as_secs_f64() * 1e6 / RECORDS as f64
                    })
                    .collect(),
            );
            println!(
                "{name:9} seal 16 KiB record ({:?}): {seal:8.2} µs, {:6.0} MB/s",
                srv.protocol_version().unwrap(),
                16384.0 / seal
            );
            // Open: the client seals, the server decrypts.
            use std::io::Write;
            let mut wires = Vec::new();
            for _ in 0..RECORDS {
                c.writer().write_all(&rec).unwrap();
                let mut w = Vec::new();
                while c.wants_write() {
                    c.write_tls(&mut w).unwrap();
                }
                wires.push(w);
            }
            let t = Instant::now();
            let mut n = 0;
            for w in &mut wires {
                srv.receive(w, |p| n += p.len(), &mut out).unwrap();
            }
            let open = t.elapsed().as_secs_f64() * 1e6 / RECORDS as f64;
            assert_eq!(n, RECORDS * rec.len());
            println!(
                "{name:9} open 16 KiB record         : {open:8.2} µs, {:6.0} MB/s",
                16384.0 / open
            );
        }
    }
}

fn main() {
    // lwsd's provider: ring with X25519 first.
    measure("ring", lwsd_worker::roles::tls::config::provider());
    // ring as rustls 0.23.48 ships it: P-384 first.
    #[allow(deprecated)]
    measure(
        "ring-p384",
        Arc::new(rustls::crypto::ring::default_provider()),
    );
    #[cfg(feature = "aws-lc")]
    {
        // Its default key exchange: X25519MLKEM768 (post-quantum hybrid) first.
        measure(
            "aws-lc",
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        );
        // Like for like with ring: X25519 only.
        let mut x = rustls::crypto::aws_lc_rs::default_provider();
        x.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        measure("aws-x255", Arc::new(x));
    }
    #[cfg(not(feature = "aws-lc"))]
    println!("(aws-lc-rs not built: --features aws-lc)");
}
