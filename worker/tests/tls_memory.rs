//! What an idle TLS connection costs the server (issue 10: "an idle TLS connection need
//! not keep record buffers"; goal: an idle wss:// connection ≤ 2 KiB in all): N sessions
//! are taken through a TLS 1.3 handshake with a rustls client (the client then dropped),
//! exchange one request each, and the heap they keep is counted with a counting global
//! allocator. Run with `--nocapture` to see the figure.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use lwsd_worker::roles::tls::TlsSession;
use lwsd_worker::roles::tls::config::{self, ClientAuth, Identity};
use lwsd_worker::roles::tls::tickets::{KeyRotation, Ticketer};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

mod common;
use common::{Counting, live};

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 200;

#[test]
fn idle_tls_session_heap() {
    let aes = idle_heap(None);
    // ring's AEAD key type is as large as its largest variant (AES-GCM's key schedule
    // and GHASH table), so ChaCha20-Poly1305 costs the same: measured to show it.
    let chacha = idle_heap(Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256));
    let inline = std::mem::size_of::<TlsSession>();
    for (suite, heap) in [("AES-128-GCM", aes), ("ChaCha20-Poly1305", chacha)] {
        println!(
            "idle TLS 1.3 session, {suite}: {inline} B inline + {heap:.0} B heap = {:.0} B",
            inline as f64 + heap
        );
    }
    // Pinned so a regression shows (rustls 0.23.48, ring): 1,136 B inline and 2,202 B of
    // heap with either suite.
    assert!(
        aes < 2600.0 && chacha < 2600.0,
        "{aes} / {chacha} B of heap per idle session"
    );
}

/// Heap held per idle session after a handshake (with `suite` only, if given).
fn idle_heap(suite: Option<rustls::CipherSuite>) -> f64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/roles/tls/testdata");
    let id = Identity::from_files(
        &dir.join("ecdsa-p256.cert.pem"),
        &dir.join("ecdsa-p256.sec1.pem"),
    )
    .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(id.chain[0].clone()).unwrap();
    let ticketer = Arc::new(Ticketer::new());
    ticketer.update(KeyRotation::new().unwrap().keys());
    let server =
        config::server_config(id, ClientAuth::None, &[b"http/1.1".to_vec()], ticketer).unwrap();
    let mut client = ClientConfig::builder_with_provider(config::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    if let Some(suite) = suite {
        let mut p = (*config::provider()).clone();
        p.cipher_suites.retain(|s| s.suite() == suite);
        let mut c = ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = client.alpn_protocols.clone();
        c.resumption = rustls::client::Resumption::disabled();
        client = c;
    }
    let client = Arc::new(client);

    let mut sessions: Vec<TlsSession> = Vec::with_capacity(N);
    let before = live();
    for _ in 0..N {
        let mut c =
            ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = TlsSession::new(server.clone()).unwrap();
        let mut plain = Vec::new();
        for _ in 0..4 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            let mut out = Vec::new();
            s.receive(&mut wire, |p| plain.extend_from_slice(p), &mut out)
                .unwrap();
            let mut rd = &out[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
        }
        assert!(!s.is_handshaking());
        // One request and its answer, as a WebSocket upgrade would have.
        c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        let mut out = Vec::new();
        s.receive(&mut wire, |p| plain.extend_from_slice(p), &mut out)
            .unwrap();
        s.seal(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &mut out)
            .unwrap();
        assert_eq!(s.pending_len(), 0);
        drop((c, plain, out, wire));
        sessions.push(s);
    }
    let heap = (live() - before) as f64 / N as f64;
    if let Some(suite) = suite {
        assert!(sessions.iter().all(|s| s.cipher_suite() == Some(suite)));
    }
    drop(sessions);
    heap
}
