//! The server side of the TLS transport (`roles::tls::TlsSession`) fed hostile bytes:
//! a ClientHello or anything else, in the pieces the input chooses (RFC 8446 section 5:
//! records may be split and coalesced arbitrarily by TCP).
//!
//! Input: the first byte picks the piece size (1 to 256), the rest is what the peer
//! sends. It must not panic; a session never holds more than `MAX_PENDING_IN` bytes of
//! incomplete input; once `receive` has failed every later call fails too (the session
//! is finished); `seal` before the handshake is over appends nothing.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::tls::config::{ClientAuth, Identity, server_config};
use lwsd_worker::roles::tls::tickets::Ticketer;
use lwsd_worker::roles::tls::transport::MAX_PENDING_IN;
use lwsd_worker::roles::tls::TlsSession;

fn config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let id = Identity::from_pem(
                Path::new("ecdsa-p256.cert.pem"),
                include_bytes!("../../src/roles/tls/testdata/ecdsa-p256.cert.pem"),
                Path::new("ecdsa-p256.sec1.pem"),
                include_bytes!("../../src/roles/tls/testdata/ecdsa-p256.sec1.pem"),
            )
            .expect("test identity");
            server_config(
                id,
                ClientAuth::None,
                &[b"http/1.1".to_vec()],
                Arc::new(Ticketer::new()),
            )
            .expect("server config")
        })
        .clone()
}

fuzz_target!(|input: &[u8]| {
    let Some((&piece, rest)) = input.split_first() else {
        return;
    };
    let piece = usize::from(piece) + 1;
    let mut s = TlsSession::new(config()).expect("session");
    let mut failed = false;
    for chunk in rest.chunks(piece) {
        let mut buf = chunk.to_vec();
        let mut out = Vec::new();
        match s.receive(&mut buf, |_| {}, &mut out) {
            Ok(p) => {
                assert!(!failed, "a finished session took input again");
                assert!(p.pending <= MAX_PENDING_IN, "holds {} bytes", p.pending);
            }
            Err(_) => failed = true,
        }
        if s.is_handshaking() {
            let mut sealed = Vec::new();
            assert!(s.seal(b"early", &mut sealed).is_err());
            assert!(sealed.is_empty(), "sealed before the handshake ended");
        }
    }
    let _ = s.eof();
});
