//! The TLS transport against a real rustls client, in memory: no sockets. Test PKI is
//! made with rcgen; RSA (PKCS#1) and SEC1 keys come from `testdata/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, ClientConnection, ProtocolVersion, RootCertStore};

use super::config::{self, ClientAuth, Identity};
use super::tickets::{KEYS_KEPT, KeyRotation, Ticketer};
use super::*;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn make_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    ca: &Ca,
    names: &[&str],
    client: bool,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = p.signed_by(&key, ca).unwrap();
    (
        vec![cert.der().clone(), ca.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

fn roots(ca: &Ca) -> RootCertStore {
    let mut r = RootCertStore::empty();
    r.add(ca.der().clone()).unwrap();
    r
}

/// A server: the configuration, as a worker builds it, and its ticketer.
struct Server {
    config: Arc<rustls::ServerConfig>,
    ticketer: Arc<Ticketer>,
}

fn server_with(ca: &Ca, auth: ClientAuth) -> Server {
    let (chain, key) = leaf(ca, &["localhost"], false);
    let ticketer = Arc::new(Ticketer::new());
    let config = config::server_config(
        Identity { chain, key },
        auth,
        &[b"http/1.1".to_vec()],
        ticketer.clone(),
    )
    .unwrap();
    Server { config, ticketer }
}

fn client_config(
    ca: &Ca,
    version: &'static rustls::SupportedProtocolVersion,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(config::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots(ca));
    let mut c = match cert {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A client and a server session connected by two in-memory byte streams.
struct Pair {
    client: ClientConnection,
    server: TlsSession,
    /// Plaintext the server received.
    server_plain: Vec<u8>,
    /// Bytes the server produced, not yet given to the client.
    to_client: Vec<u8>,
    /// Plaintext the client received.
    client_plain: Vec<u8>,
    handshakes_done: usize,
}

impl Pair {
    fn new(server: &Server, client: Arc<ClientConfig>, name: &str) -> Pair {
        Pair {
            client: ClientConnection::new(client, ServerName::try_from(name.to_owned()).unwrap())
                .unwrap(),
            server: TlsSession::new(server.config.clone()).unwrap(),
            server_plain: Vec::new(),
            to_client: Vec::new(),
            client_plain: Vec::new(),
            handshakes_done: 0,
        }
    }

    fn client_wire(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut wire).unwrap();
        }
        wire
    }

    fn feed(&mut self, wire: &mut [u8]) -> Result<Progress, TlsError> {
        let plain = &mut self.server_plain;
        let r = self
            .server
            .receive(wire, |p| plain.extend_from_slice(p), &mut self.to_client);
        if let Ok(p) = &r {
            self.handshakes_done += usize::from(p.handshake_done);
        }
        r
    }

    fn c2s(&mut self) -> Result<Progress, TlsError> {
        let mut wire = self.client_wire();
        self.feed(&mut wire)
    }

    fn s2c(&mut self) -> Result<(), rustls::Error> {
        use std::io::Read;
        let data = std::mem::take(&mut self.to_client);
        let mut rd = &data[..];
        while !rd.is_empty() {
            self.client.read_tls(&mut rd).unwrap();
            self.client.process_new_packets()?;
            let mut buf = [0u8; 4096];
            loop {
                match self.client.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.client_plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client read: {e}"),
                }
            }
        }
        Ok(())
    }

    fn handshake(&mut self) {
        for _ in 0..6 {
            self.c2s().unwrap();
            self.s2c().unwrap();
            if !self.client.is_handshaking() && !self.server.is_handshaking() {
                return;
            }
        }
        panic!("handshake did not finish");
    }

    /// The client's error after the server's answer (the alert it received).
    fn client_alert(&mut self) -> Option<AlertDescription> {
        match self.s2c() {
            Err(rustls::Error::AlertReceived(a)) => Some(a),
            Err(e) => panic!("client: {e}"),
            Ok(()) => None,
        }
    }

    fn client_read(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.client_plain)
    }
}

const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

#[test]
fn handshake_alpn_sni_and_data_both_ways() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    for v in VERSIONS {
        let mut p = Pair::new(&server, client_config(&ca, v, None), "localhost");
        assert!(p.server.is_handshaking());
        p.handshake();
        assert_eq!(p.handshakes_done, 1, "{v:?}: reported once");
        assert_eq!(p.server.protocol_version(), Some(v.version));
        assert_eq!(
            p.server.alpn(),
            Some(&b"http/1.1"[..]),
            "the server's choice"
        );
        assert_eq!(p.server.sni(), Some("localhost"));
        assert!(!p.server.has_peer_certificate());
        assert!(!p.server.resumed());
        // Idle after the handshake: nothing held.
        assert_eq!(p.server.pending_len(), 0);

        use std::io::Write;
        p.client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let prog = p.c2s().unwrap();
        assert!(!prog.handshake_done && !prog.peer_closed);
        assert_eq!(p.server_plain, b"GET / HTTP/1.1\r\n\r\n");
        let big = vec![b'x'; 40_000]; // three records
        let mut out = Vec::new();
        p.server.seal(b"HTTP/1.1 200 OK\r\n\r\n", &mut out).unwrap();
        p.server.seal(&big, &mut out).unwrap();
        p.server.seal(b"", &mut out).unwrap();
        p.to_client = out;
        p.s2c().unwrap();
        let got = p.client_read();
        assert_eq!(&got[..19], b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(got.len(), 19 + big.len());
    }
}

#[test]
fn browser_like_client_gets_x25519_without_hello_retry() {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    // A browser-like client: an X25519 key share, P-256 and P-384 also supported. (The
    // server takes a group the client sent a share for, whatever its own order.)
    let mut p = (*config::provider()).clone();
    p.kx_groups = vec![X25519, SECP384R1, SECP256R1];
    let c = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(&ca))
        .with_no_client_auth();
    let mut pair = Pair::new(&server, Arc::new(c), "localhost");
    pair.handshake();
    assert_eq!(
        pair.client.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    assert_eq!(
        pair.client
            .negotiated_key_exchange_group()
            .map(|g| g.name()),
        Some(rustls::NamedGroup::X25519)
    );
}

#[test]
fn no_sni_and_no_alpn() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    let mut c = (*client_config(&ca, &rustls::version::TLS13, None)).clone();
    c.alpn_protocols.clear();
    c.enable_sni = false;
    let mut p = Pair::new(&server, Arc::new(c), "localhost");
    p.handshake();
    assert_eq!(p.server.sni(), None);
    assert_eq!(p.server.alpn(), None);
}

#[test]
fn client_hello_one_byte_at_a_time() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    for v in VERSIONS {
        let mut p = Pair::new(&server, client_config(&ca, v, None), "localhost");
        let hello = p.client_wire();
        for (i, b) in hello.iter().enumerate() {
            let prog = p.feed(&mut [*b]).unwrap();
            if i + 1 < hello.len() {
                assert!(p.to_client.is_empty(), "answered after {i} bytes");
                assert_eq!(prog.pending, i + 1, "holds the partial record");
            } else {
                assert_eq!(prog.pending, 0);
            }
        }
        assert!(!p.to_client.is_empty(), "the hello was understood");
        p.s2c().unwrap();
        // The rest of the handshake, also byte by byte.
        let rest = p.client_wire();
        for b in rest {
            p.feed(&mut [b]).unwrap();
        }
        p.s2c().unwrap();
        assert!(!p.server.is_handshaking() && !p.client.is_handshaking());
        assert_eq!(p.server.pending_len(), 0);
        assert_eq!(p.server.sni(), Some("localhost"));
    }
}

#[test]
fn application_record_split_across_reads() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    let mut p = Pair::new(
        &server,
        client_config(&ca, &rustls::version::TLS13, None),
        "localhost",
    );
    p.handshake();
    use std::io::Write;
    p.client.writer().write_all(&[7u8; 5000]).unwrap();
    let mut wire = p.client_wire();
    let (a, b) = wire.split_at_mut(1234);
    p.feed(a).unwrap();
    assert!(p.server_plain.is_empty());
    assert_eq!(p.server.pending_len(), 1234);
    p.feed(b).unwrap();
    assert_eq!(p.server_plain, [7u8; 5000]);
    assert_eq!(p.server.pending_len(), 0, "freed once complete");
}

#[test]
fn close_notify_both_ways() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    for v in VERSIONS {
        // Client first.
        let mut p = Pair::new(&server, client_config(&ca, v, None), "localhost");
        p.handshake();
        p.client.send_close_notify();
        let prog = p.c2s().unwrap();
        assert!(prog.peer_closed);
        assert!(p.server.peer_closed());
        // The server may still answer, then closes too.
        let mut out = Vec::new();
        p.server.seal(b"bye", &mut out).unwrap();
        p.server.close_notify(&mut out).unwrap();
        p.server.close_notify(&mut out).unwrap(); // once only
        p.to_client = out;
        p.s2c().unwrap();
        assert_eq!(p.client_read(), b"bye");
        let st = p.client.process_new_packets().unwrap();
        assert!(st.peer_has_closed(), "{v:?}: client saw close_notify");
        assert!(p.server.seal(b"late", &mut Vec::new()).is_err());

        // Server first.
        let mut p = Pair::new(&server, client_config(&ca, v, None), "localhost");
        p.handshake();
        let mut out = Vec::new();
        p.server.close_notify(&mut out).unwrap();
        p.to_client = out;
        p.s2c().unwrap();
        assert!(p.client.process_new_packets().unwrap().peer_has_closed());
        p.client.send_close_notify();
        assert!(p.c2s().unwrap().peer_closed);
    }
}

#[test]
fn seal_before_the_handshake_is_refused() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    let mut p = Pair::new(
        &server,
        client_config(&ca, &rustls::version::TLS13, None),
        "localhost",
    );
    let mut out = Vec::new();
    let e = p.server.seal(b"early", &mut out).unwrap_err();
    assert_eq!((e.blame, e.reason()), (Blame::Misuse, "misuse"));
    assert!(out.is_empty());
    // Nothing to send during the handshake; closing just closes.
    p.server.close_notify(&mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn resumption_on_another_worker_until_the_key_rotates_out() {
    let ca = make_ca("test CA");
    // One certificate, two "workers": each builds its own config and ticketer.
    let (chain, key) = leaf(&ca, &["localhost"], false);
    let worker = || {
        let ticketer = Arc::new(Ticketer::new());
        let config = config::server_config(
            Identity {
                chain: chain.clone(),
                key: key.clone_key(),
            },
            ClientAuth::None,
            &[b"http/1.1".to_vec()],
            ticketer.clone(),
        )
        .unwrap();
        Server { config, ticketer }
    };
    let (w0, w1) = (worker(), worker());
    let mut keys = KeyRotation::new().unwrap();
    w0.ticketer.update(keys.keys());
    w1.ticketer.update(keys.keys());
    for v in VERSIONS {
        let client = client_config(&ca, v, None);
        let mut first = Pair::new(&w0, client.clone(), "localhost");
        first.handshake();
        assert!(!first.server.resumed());
        let mut second = Pair::new(&w1, client.clone(), "localhost");
        second.handshake();
        assert!(second.server.resumed(), "{v:?}: w0's ticket opened on w1");
    }
    // Rotated out of w1 (w0 still has the old key, so the client gets its ticket there).
    for _ in 0..KEYS_KEPT {
        keys.rotate().unwrap();
    }
    w1.ticketer.update(keys.keys());
    for v in VERSIONS {
        let client = client_config(&ca, v, None);
        let mut first = Pair::new(&w0, client.clone(), "localhost");
        first.handshake();
        let mut second = Pair::new(&w1, client.clone(), "localhost");
        second.handshake();
        assert!(!second.server.resumed(), "{v:?}: key gone, full handshake");
    }
}

#[test]
fn client_certificates() {
    let ca = make_ca("server CA");
    let client_ca = make_ca("client CA");
    let other_ca = make_ca("someone else's CA");
    let required = server_with(
        &ca,
        ClientAuth::Verify {
            roots: roots(&client_ca),
            required: true,
        },
    );
    for v in VERSIONS {
        // A good certificate.
        let good = leaf(&client_ca, &["client"], true);
        let mut p = Pair::new(&required, client_config(&ca, v, Some(good)), "localhost");
        p.handshake();
        assert!(p.server.has_peer_certificate());

        // None.
        let mut p = Pair::new(&required, client_config(&ca, v, None), "localhost");
        p.c2s().unwrap();
        p.s2c().unwrap();
        let e = p.c2s().unwrap_err();
        assert_eq!(
            (e.blame, e.reason()),
            (Blame::Peer, "no_certificate"),
            "{v:?}"
        );
        let got = p.client_alert();
        if v.version == ProtocolVersion::TLSv1_3 {
            assert_eq!(got, Some(AlertDescription::CertificateRequired));
        }
        // TLS 1.2's alert leaves in plain text? No: it is after ChangeCipherSpec only for
        // Finished; the Certificate message fails before, so it is readable here too.
        assert_eq!(e.alert, got.or(e.alert));

        // Signed by another CA.
        let wrong = leaf(&other_ca, &["client"], true);
        let mut p = Pair::new(&required, client_config(&ca, v, Some(wrong)), "localhost");
        p.c2s().unwrap();
        p.s2c().unwrap();
        let e = p.c2s().unwrap_err();
        assert_eq!(e.reason(), "bad_certificate", "{v:?}: {e}");
        let got = p.client_alert();
        assert_eq!(got, Some(AlertDescription::UnknownCA));
        assert_eq!(e.alert, Some(AlertDescription::UnknownCA), "the alert sent");
    }
    // `-A` without `-v`: asked for, optional.
    let optional = server_with(
        &ca,
        ClientAuth::Verify {
            roots: roots(&client_ca),
            required: false,
        },
    );
    let mut p = Pair::new(
        &optional,
        client_config(&ca, &rustls::version::TLS13, None),
        "localhost",
    );
    p.handshake();
    assert!(!p.server.has_peer_certificate());
}

/// A ClientHello record as an old client sends it: `record_version` and
/// `client_version`, one cipher suite, no extensions.
fn old_hello(record_version: u16, client_version: u16, suite: u16) -> Vec<u8> {
    hello(record_version, client_version, suite, &[])
}

/// The extensions a TLS 1.2 client needs for rustls to get as far as the cipher suites:
/// signature_algorithms (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256), supported_groups
/// (x25519), ec_point_formats (uncompressed).
const TLS12_EXTS: &[u8] = &[
    0, 13, 0, 6, 0, 4, 4, 3, 8, 4, //
    0, 10, 0, 4, 0, 2, 0, 29, //
    0, 11, 0, 2, 1, 0,
];

fn hello(record_version: u16, client_version: u16, suite: u16, exts: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&client_version.to_be_bytes());
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&suite.to_be_bytes());
    body.extend_from_slice(&[1, 0]); // null compression
    if !exts.is_empty() {
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
    }
    let mut hs = vec![1, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![22];
    rec.extend_from_slice(&record_version.to_be_bytes());
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn fresh(server: &Server) -> (TlsSession, Vec<u8>) {
    (TlsSession::new(server.config.clone()).unwrap(), Vec::new())
}

#[test]
fn old_protocol_versions_get_protocol_version_alert() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    // SSLv3, TLS 1.0 and TLS 1.1 hellos (TLS_RSA_WITH_AES_128_CBC_SHA), with no
    // extensions and with TLS 1.2's (old clients send some, never supported_versions).
    let cases = [0x0300, 0x0301, 0x0302]
        .into_iter()
        .flat_map(|v| [old_hello(v, v, 0x002f), hello(v, v, 0x002f, TLS12_EXTS)]);
    for mut h in cases {
        let ver = u16::from_be_bytes([h[9], h[10]]);
        let (mut s, mut out) = fresh(&server);
        // Byte by byte: nothing is decided before the record is whole.
        let last = h.len() - 1;
        for i in 0..last {
            s.receive(&mut h[i..i + 1], |_| {}, &mut out).unwrap();
        }
        assert!(out.is_empty());
        let e = s.receive(&mut h[last..], |_| {}, &mut out).unwrap_err();
        assert_eq!(
            (e.blame, e.reason()),
            (Blame::Peer, "protocol_version"),
            "{ver:#x}: {e}"
        );
        assert_eq!(e.alert, Some(AlertDescription::ProtocolVersion));
        // A plain-text fatal alert record: type 21, level 2, protocol_version (70).
        assert_eq!(out[0], 21);
        assert_eq!(out[5..7], [2, 70]);
        // The session is finished: later calls fail without output.
        let mut more = Vec::new();
        assert!(s.receive(&mut [22], |_| {}, &mut more).is_err());
        assert!(more.is_empty());
    }
}

#[test]
fn sslv2_hello_gets_protocol_version_alert() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    // An SSLv2-format hello (RFC 5246 appendix E.2).
    let (mut s, mut out) = fresh(&server);
    let e = s
        .receive(&mut [0x80, 0x2e, 1, 3, 1, 0, 0x15], |_| {}, &mut out)
        .unwrap_err();
    assert_eq!(
        (e.reason(), e.alert),
        ("protocol_version", Some(AlertDescription::ProtocolVersion))
    );
    assert_eq!(out, [21, 3, 1, 0, 2, 2, 70]);
}

#[test]
fn modern_hellos_pass_the_version_check() {
    // Record version 0x0301 with client_version 0x0303 is what TLS 1.2 and 1.3 clients
    // send: not refused by the version check.
    assert_eq!(
        super::hello::check_first_record(&hello(0x0301, 0x0303, 0x1301, TLS12_EXTS)),
        super::hello::HelloCheck::Pass
    );
    // A legacy_version of TLS 1.0 with supported_versions: rustls decides.
    let sv = [TLS12_EXTS, &[0, 43, 0, 3, 2, 3, 4]].concat();
    assert_eq!(
        super::hello::check_first_record(&hello(0x0301, 0x0301, 0x1301, &sv)),
        super::hello::HelloCheck::Pass
    );
}

#[test]
fn no_shared_cipher_suite() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    // A TLS 1.2 hello offering only TLS_RSA_WITH_AES_128_CBC_SHA, which rustls never
    // implements (no forward secrecy, CBC).
    let (mut s, mut out) = fresh(&server);
    let e = s
        .receive(
            &mut hello(0x0301, 0x0303, 0x002f, TLS12_EXTS),
            |_| {},
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.reason(), "no_shared_cipher", "{e}");
    assert_eq!(e.alert, Some(AlertDescription::HandshakeFailure));
    assert_eq!(out[5..7], [2, 40]);
}

/// A client offering only ALPN protocols lwsd does not serve gets the fatal
/// `no_application_protocol` alert (RFC 7301 section 3.2), in both versions. In TLS 1.3
/// rustls decides this after queueing the ServerHello, so the alert (encrypted with the
/// handshake keys) is the third message of the flight: all of it must go out.
#[test]
fn no_shared_alpn_protocol_gets_its_alert() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    for version in VERSIONS {
        let mut c = (*client_config(&ca, version, None)).clone();
        c.alpn_protocols = vec![b"h2".to_vec()];
        let mut p = Pair::new(&server, Arc::new(c), "localhost");
        let e = p.c2s().unwrap_err();
        assert_eq!(e.reason(), "no_application_protocol", "{e}");
        assert_eq!(e.alert, Some(AlertDescription::NoApplicationProtocol));
        assert_eq!(
            p.client_alert(),
            Some(AlertDescription::NoApplicationProtocol),
            "{version:?}"
        );
    }
}

#[test]
fn garbage_and_truncation() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    // Bytes that are not a TLS record (nor HTTP).
    for junk in [
        &b"\x00\x01\x02\x03\x04\x05\x06\x07"[..],
        b"\x16\x09\x09\x00\x05hello",
        b"\xff\xff\xff\xff",
    ] {
        let (mut s, mut out) = fresh(&server);
        let e = s.receive(&mut junk.to_vec(), |_| {}, &mut out).unwrap_err();
        assert_eq!(
            (e.blame, e.reason()),
            (Blame::Peer, "bad_record"),
            "{junk:?}: {e}"
        );
        assert!(e.alert.is_some() && !out.is_empty(), "an alert is sent");
    }
    // A record longer than TLS allows (2^14 + 256 ciphertext bytes).
    let (mut s, mut out) = fresh(&server);
    let e = s
        .receive(&mut [22, 3, 1, 0x48, 0x01], |_| {}, &mut out)
        .unwrap_err();
    assert_eq!(e.reason(), "bad_record", "{e}");
    // rustls answers an oversized record with decode_error (read back from the wire).
    assert_eq!(e.alert, Some(AlertDescription::DecodeError));

    // The connection ends mid-handshake, then mid-record after it.
    let (mut s, mut out) = fresh(&server);
    s.receive(
        &mut old_hello(0x0301, 0x0303, 0x1301)[..20].to_vec(),
        |_| {},
        &mut out,
    )
    .unwrap();
    assert_eq!(s.eof().unwrap_err().reason(), "eof");
    let mut p = Pair::new(
        &server,
        client_config(&ca, &rustls::version::TLS13, None),
        "localhost",
    );
    p.handshake();
    use std::io::Write;
    p.client.writer().write_all(b"hello").unwrap();
    let mut wire = p.client_wire();
    p.feed(&mut wire[..10]).unwrap();
    let e = p.server.eof().unwrap_err();
    assert_eq!((e.blame, e.reason()), (Blame::Io, "truncated"));
    // A clean end after the handshake, close_notify or not, is fine.
    let mut p = Pair::new(
        &server,
        client_config(&ca, &rustls::version::TLS13, None),
        "localhost",
    );
    p.handshake();
    assert!(p.server.eof().is_ok());
}

#[test]
fn too_much_incomplete_input_is_cut_off() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    let (mut s, mut out) = fresh(&server);
    // A ClientHello announcing the largest handshake message (2^16 - 1 bytes), sent in
    // full records: rustls reassembles it in the held input, which stays bounded, and
    // then refuses the (all-zero) hello.
    let mut first = vec![22, 3, 1, 0x40, 0x00, 1, 0x00, 0xff, 0xff, 3, 3];
    first.resize(5 + 0x4000, 0);
    let mut err = s.receive(&mut first, |_| {}, &mut out).err();
    for _ in 0..8 {
        if err.is_some() {
            break;
        }
        assert!(s.pending_len() <= transport::MAX_PENDING_IN);
        let mut rec = vec![22, 3, 3, 0x40, 0x00];
        rec.resize(5 + 0x4000, 0);
        err = s.receive(&mut rec, |_| {}, &mut out).err();
    }
    let e = err.expect("refused");
    assert!(["too_large", "bad_record"].contains(&e.reason()), "{e}");
    assert!(e.alert.is_some());
}

#[test]
fn plain_http_on_the_tls_port() {
    let ca = make_ca("test CA");
    let server = server_with(&ca, ClientAuth::None);
    let (mut s, mut out) = fresh(&server);
    let e = s
        .receive(
            &mut b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            |_| {},
            &mut out,
        )
        .unwrap_err();
    assert_eq!(
        (e.blame, e.reason(), e.alert),
        (Blame::Peer, "plain_http", None)
    );
    assert!(
        out.is_empty(),
        "the core answers PLAIN_HTTP_RESPONSE in plain text"
    );

    for yes in [
        &b"GET / HTTP/1.1"[..],
        b"POST /x",
        b"OPTIONS * HTTP/1.1",
        b"G",
        b"HEA",
        b"PRI * HTTP/2.0",
    ] {
        assert!(looks_like_plain_http(yes), "{yes:?}");
    }
    for no in [
        &b"\x16\x03\x01\x02\x00"[..],
        b"",
        b"get / HTTP/1.1",
        b"ABCDEFGHIJ",
        b"GET/",
        b"\x80\x2e",
    ] {
        assert!(!looks_like_plain_http(no), "{no:?}");
    }

    let r = std::str::from_utf8(PLAIN_HTTP_RESPONSE).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(head.contains("\r\nConnection: close"));
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{}",
        body.len()
    );
    assert!(body.contains("The plain HTTP request was sent to HTTPS port"));
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/roles/tls/testdata")
        .join(name)
}

/// A client trusting `cert` (a self-signed certificate) as its root.
fn trusting(
    cert: &CertificateDer<'static>,
    v: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut r = RootCertStore::empty();
    r.add(cert.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(config::provider())
            .with_protocol_versions(&[v])
            .unwrap()
            .with_root_certificates(r)
            .with_no_client_auth(),
    )
}

fn serve(identity: Identity) -> Server {
    let ticketer = Arc::new(Ticketer::new());
    let config = config::server_config(
        identity,
        ClientAuth::None,
        &[b"http/1.1".to_vec()],
        ticketer.clone(),
    )
    .unwrap();
    Server { config, ticketer }
}

#[test]
fn rsa_pkcs1_and_ecdsa_sec1_and_ed25519_keys_serve() {
    for (cert, key) in [
        ("rsa2048.cert.pem", "rsa2048.pkcs1.pem"),
        ("ecdsa-p256.cert.pem", "ecdsa-p256.sec1.pem"),
    ] {
        let id = Identity::from_files(&testdata(cert), &testdata(key)).unwrap();
        let root = id.chain[0].clone();
        let server = serve(id);
        for v in VERSIONS {
            let mut p = Pair::new(&server, trusting(&root, v), "localhost");
            p.handshake();
        }
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let id = Identity::from_pem(
        Path::new("ed.crt"),
        cert.pem().as_bytes(),
        Path::new("ed.key"),
        key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let server = serve(id);
    let mut p = Pair::new(
        &server,
        trusting(cert.der(), &rustls::version::TLS13),
        "localhost",
    );
    p.handshake();
}

#[test]
fn self_signed_covers_localhost_loopback_and_listen_addresses() {
    let (cert_pem, key_pem) =
        config::self_signed(&["192.0.2.7".into(), "example.test".into()]).unwrap();
    let id = Identity::from_pem(
        Path::new("c"),
        cert_pem.as_bytes(),
        Path::new("k"),
        key_pem.as_bytes(),
    )
    .unwrap();
    let root = id.chain[0].clone();
    let server = serve(id);
    for name in ["localhost", "127.0.0.1", "::1", "192.0.2.7", "example.test"] {
        let mut p = Pair::new(&server, trusting(&root, &rustls::version::TLS13), name);
        p.handshake();
    }
    let mut p = Pair::new(
        &server,
        trusting(&root, &rustls::version::TLS13),
        "other.test",
    );
    p.c2s().unwrap();
    assert!(p.s2c().is_err(), "not valid for other names");
}

#[test]
fn unusable_files_are_named_with_the_problem() {
    let dir = std::env::temp_dir().join(format!("lwsd-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let cert = testdata("ecdsa-p256.cert.pem");
    let key = testdata("ecdsa-p256.sec1.pem");
    let msg = |r: Result<Identity, config::ConfigError>| r.err().expect("an error").to_string();

    let missing = dir.join("missing.pem");
    assert_eq!(
        msg(Identity::from_files(&missing, &key)),
        format!("{}: not found", missing.display())
    );
    assert_eq!(
        msg(Identity::from_files(&dir, &key)),
        format!("{}: is a directory, not a PEM file", dir.display())
    );
    let empty = write("empty.pem", b"hello\n");
    assert_eq!(
        msg(Identity::from_files(&empty, &key)),
        format!(
            "{}: no certificate found (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
            empty.display()
        )
    );
    assert_eq!(
        msg(Identity::from_files(&key, &cert)),
        format!(
            "{}: no certificate found (this is a private key: swapped -C and -K?)",
            key.display()
        )
    );
    assert!(
        msg(Identity::from_files(&cert, &empty)).starts_with(&format!(
            "{}: no private key found (expected PEM",
            empty.display()
        ))
    );
    let enc = testdata("encrypted.pkcs8.pem");
    assert!(
        msg(Identity::from_files(&cert, &enc))
            .starts_with(&format!("{}: the private key is encrypted", enc.display()))
    );
    let rsa_key = testdata("rsa2048.pkcs1.pem");
    assert_eq!(
        msg(Identity::from_files(&cert, &rsa_key)),
        format!(
            "{}: key does not match the certificate in {}",
            rsa_key.display(),
            cert.display()
        )
    );
    let cut = std::fs::read_to_string(&cert).unwrap();
    let cut = write("cut.pem", &cut.as_bytes()[..cut.len() - 30]);
    assert!(
        msg(Identity::from_files(&cut, &key)).starts_with(&format!("{}: bad PEM", cut.display()))
    );
    let not_x509 = write(
        "notx509.pem",
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    assert!(
        msg(Identity::from_files(&not_x509, &key)).starts_with(&format!(
            "{}: certificate 1 is not valid X.509",
            not_x509.display()
        ))
    );
    let junk_key = write(
        "junk.key",
        b"-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
    );
    assert!(
        msg(Identity::from_files(&cert, &junk_key))
            .starts_with(&format!("{}: unsupported private key", junk_key.display()))
    );
    use std::os::unix::fs::PermissionsExt;
    let locked = write("locked.pem", b"x");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // root reads it anyway: checked only where permissions apply.
    if std::fs::read(&locked).is_err() {
        assert_eq!(
            msg(Identity::from_files(&locked, &key)),
            format!("{}: unreadable: permission denied", locked.display())
        );
    }
    // The CA file for `-A`.
    let e = config::load_client_roots(&empty).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: no certificate found", empty.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn worker_tls_from_settings() {
    use crate::config::{TlsIdentity, TlsSettings};
    let mut s = TlsSettings::new(TlsIdentity::Files {
        cert: testdata("ecdsa-p256.cert.pem"),
        key: testdata("ecdsa-p256.sec1.pem"),
    });
    s.client_ca = Some(testdata("rsa2048.cert.pem"));
    s.require_client_cert = true;
    let w = WorkerTls::new(&s, None).unwrap();
    assert_eq!(
        w.handshake_timeout,
        crate::config::DEFAULT_TLS_HANDSHAKE_TIMEOUT
    );
    assert_eq!(
        w.config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(w.session().unwrap().is_handshaking());
    let keys = KeyRotation::new().unwrap();
    w.update_tickets(keys.keys());
    assert_eq!(w.ticketer.key_count(), 1);
    let e = WorkerTls::new(&TlsSettings::new(TlsIdentity::SelfSigned), None)
        .err()
        .expect("no self-signed directory");
    assert!(e.to_string().contains("self-signed"));
}

#[test]
fn session_size() {
    // The per-connection cost without rustls' heap (measured by tests/tls_memory.rs).
    let n = std::mem::size_of::<TlsSession>();
    assert!(n <= 1200, "TlsSession is {n} bytes");
}
