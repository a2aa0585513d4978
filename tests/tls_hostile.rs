//! Hostile and broken TLS handshakes against a live `lwsd -s` (issue 10): each gets its
//! expected outcome (a fatal alert with the right description, a readable 400, or a
//! close), and the server goes on serving others with the same workers.
//!
//! - The corpus in tests/corpus/tls/ (`NAME.bin`: what the client sends; `NAME.expect`:
//!   the answer; made by make_corpus.py there): garbage before the ClientHello, plain
//!   HTTP, truncated records, SSL 2/3 and TLS 1.0/1.1 hellos, records out of order.
//! - No shared cipher suite and client-certificate failures with `-v`, through
//!   `openssl s_client` and curl.
//! - A real ClientHello split byte by byte (Python's ssl through a MemoryBIO, completing
//!   the handshake and a GET).
//! - The handshake timeout: silence, or half a hello.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Lwsd, TempDir};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus/tls"))
}

/// Every corpus case: (name, bytes, expectation).
fn corpus() -> Vec<(String, Vec<u8>, String)> {
    let mut cases: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".expect")?.to_owned();
            let expect = std::fs::read_to_string(&p).unwrap().trim().to_owned();
            let bytes =
                std::fs::read(p.with_extension("bin")).expect("NAME.bin beside NAME.expect");
            Some((name, bytes, expect))
        })
        .collect();
    cases.sort();
    cases
}

/// What came back on a connection, until the server closed it (or `limit` passed).
struct Answer {
    bytes: Vec<u8>,
    closed: bool,
    took: Duration,
}

/// Sends `chunks` (with `pause` between them) on a fresh connection, half-closes if
/// `half_close`, then reads until the server closes or `limit` passes.
fn exchange(
    port: u16,
    chunks: &[&[u8]],
    pause: Duration,
    half_close: bool,
    limit: Duration,
) -> Answer {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let t = Instant::now();
    for (i, ch) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        // The server may close before taking everything (after its alert).
        if c.write_all(ch).is_err() {
            break;
        }
    }
    if half_close {
        let _ = c.shutdown(Shutdown::Write);
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        let left = limit.saturating_sub(t.elapsed());
        if left.is_zero() {
            break false;
        }
        c.set_read_timeout(Some(left)).unwrap();
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A reset after the alert is a close too (the server closed with our bytes
            // unread).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    Answer {
        bytes,
        closed,
        took: t.elapsed(),
    }
}

/// The records of `bytes`: (content type, payload).
fn records(mut bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        let Some(payload) = bytes.get(5..5 + len) else {
            break;
        };
        out.push((bytes[0], payload));
        bytes = &bytes[5 + len..];
    }
    out
}

/// Checks `a` against an expectation line of the corpus (see make_corpus.py).
fn check(name: &str, expect: &str, a: &Answer) {
    let what = format!(
        "{name}: expected `{expect}`, got {:02x?} (closed {})",
        &a.bytes[..a.bytes.len().min(64)],
        a.closed
    );
    match expect.split_once(' ').unwrap_or((expect, "")) {
        ("alert", n) => {
            let n: u8 = n.parse().unwrap();
            // One plain-text fatal alert record, and nothing else, then the close.
            assert_eq!(records(&a.bytes), [(21, &[2, n][..])], "{what}");
            assert_eq!(a.bytes.len(), 7, "{what}");
            assert!(a.closed, "{what}");
        }
        ("http", "400") => {
            let text = String::from_utf8_lossy(&a.bytes);
            assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{what}");
            assert!(
                text.contains("The plain HTTP request was sent to HTTPS port"),
                "{what}"
            );
            assert!(a.closed, "{what}");
        }
        ("close", "") => {
            assert!(a.bytes.is_empty(), "{what}");
            assert!(a.closed, "{what}");
        }
        ("server_hello", "") => {
            let r = records(&a.bytes);
            assert!(
                r.first()
                    .is_some_and(|(t, p)| *t == 22 && p.first() == Some(&2)),
                "{what}"
            );
            assert!(!a.closed, "the handshake goes on: {what}");
        }
        ("flight", "then close") => {
            let r = records(&a.bytes);
            assert!(
                r.first()
                    .is_some_and(|(t, p)| *t == 22 && p.first() == Some(&2)),
                "{what}"
            );
            assert!(a.closed, "{what}");
        }
        _ => panic!("{name}: unknown expectation `{expect}`"),
    }
}

/// curl -k to `/`: the status.
fn curl_ok(port: u16) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
}

#[test]
fn hostile_handshake_corpus_gets_its_answers_and_the_server_serves_on() {
    let s = Lwsd::start(&[
        "-j",
        "2",
        "-s",
        "-i",
        "127.0.0.1",
        "--tls-handshake-timeout",
        "3",
    ]);
    let workers = s.worker_pids();
    let cases = corpus();
    assert!(cases.len() >= 14, "the corpus is there: {}", cases.len());
    for (name, bytes, expect) in &cases {
        // The client keeps its side open (it reads until the server closes), except
        // where it is the one closing: a record cut short.
        let half_close = expect == "close";
        let limit = if expect == "server_hello" {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(10)
        };
        let a = exchange(s.port, &[bytes], Duration::ZERO, half_close, limit);
        check(name, expect, &a);
        if expect != "server_hello" {
            assert!(
                a.took < Duration::from_secs(2),
                "{name}: answered at once, not by a timeout: {:?}",
                a.took
            );
        }
    }
    curl_ok(s.port);
    assert_eq!(s.worker_pids(), workers, "no worker restarted");
}

/// The same corpus with the client half-closing right after its bytes (as `printf ... |
/// nc -N` does): the server's answer must not be lost because the FIN arrived with the
/// data. It is lost today, on plain HTTP too (see the report): the connection core's
/// `peer_eof` closes a connection in `Phase::Flushing` at once, dropping output that was
/// queued in the same pass and not yet sent.
#[test]
fn a_half_closed_client_still_gets_its_alert_or_400() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    for (name, bytes, expect) in corpus() {
        if expect.starts_with("server_hello") {
            continue;
        }
        // The FIN must land in the pass that reads the data, so try a few times.
        for _ in 0..5 {
            let a = exchange(
                s.port,
                &[&bytes],
                Duration::ZERO,
                true,
                Duration::from_secs(10),
            );
            check(&name, &expect, &a);
        }
    }
    curl_ok(s.port);
}

/// A real ClientHello one byte per write (2 ms apart), then the handshake completes and
/// a GET is answered (tests/ws_python/tls_split_hello.py); and the raw corpus hello split
/// the same way gets its ServerHello.
#[test]
fn client_hello_split_byte_by_byte() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let hello = std::fs::read(corpus_dir().join("client_hello.bin")).unwrap();
    let bytes: Vec<&[u8]> = hello.chunks(1).collect();
    let a = exchange(
        s.port,
        &bytes,
        Duration::from_millis(1),
        false,
        Duration::from_secs(3),
    );
    check("client_hello split", "server_hello", &a);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ws_python/tls_split_hello.py"
    );
    let out = Command::new("python3")
        .args([script, &s.port.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.worker_pids().len(), 1);
}

/// `openssl s_client` (stdin closed at once) with `args`: its output.
fn s_client(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_shared_cipher_suite_gets_handshake_failure() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let workers = s.worker_pids();
    for args in [
        // TLS 1.2 with only suites rustls never implements.
        &["-tls1_2", "-cipher", "CAMELLIA:ARIA:@SECLEVEL=0"][..],
        &["-tls1_2", "-cipher", "AES128-SHA"],
        // TLS 1.3 with only the CCM suite.
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"],
        // No key exchange group in common.
        &["-tls1_3", "-groups", "ffdhe2048"],
    ] {
        let out = s_client(s.port, args);
        assert!(
            out.contains("alert handshake failure") && out.contains("SSL alert number 40"),
            "{args:?}: {out}"
        );
    }
    curl_ok(s.port);
    assert_eq!(s.worker_pids(), workers);
}

/// A CA, a client certificate it signed, and a client certificate signed by another CA
/// (and a self-signed one), made with `openssl` in `dir`.
fn make_pki(dir: &Path) {
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "other"] {
        sh(&format!(
            "openssl req -x509 {ec} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN={ca} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ));
        sh(&format!(
            "openssl req {ec} -keyout client-{ca}.key -out client-{ca}.csr -subj /CN=client-{ca}"
        ));
        sh("printf 'basicConstraints=critical,CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > ext");
        sh(&format!(
            "openssl x509 -req -in client-{ca}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial \
             -out client-{ca}.pem -days 2 -extfile ext"
        ));
    }
    sh(&format!(
        "openssl req -x509 {ec} -keyout self.key -out self.pem -days 2 -subj /CN=self"
    ));
}

/// curl over https with optional client certificate and TLS version cap: (exit code,
/// stderr, stdout).
fn curl_cert(port: u16, dir: &Path, cert: Option<&str>, tls_max: &str) -> (i32, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sSk", "--max-time", "10", "--tls-max", tls_max])
        .arg(format!("https://127.0.0.1:{port}/"))
        .current_dir(dir);
    if let Some(c) = cert {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    let out = cmd.output().expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// With `-A CA -v`: a client certificate signed by the CA is served, none gets
/// `certificate_required` (116, RFC 8446 section 4.4.2.4; rustls sends it in TLS 1.2
/// too, where OpenSSL understands it), one from another CA `unknown_ca` (48), a
/// self-signed one `certificate_unknown` (46). The server serves on.
#[test]
fn client_certificates_with_verify_through_curl() {
    let dir = TempDir::new("tls-pki");
    make_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let s = Lwsd::start(&[
        "-j",
        "1",
        "-s",
        "-i",
        "127.0.0.1",
        "-A",
        ca.to_str().unwrap(),
        "-v",
    ]);
    let workers = s.worker_pids();
    for tls in ["1.3", "1.2"] {
        let (code, err, body) = curl_cert(s.port, dir.path(), Some("client-ca"), tls);
        assert_eq!(code, 0, "TLS {tls}: {err}");
        assert!(body.contains("lwsd test server"), "TLS {tls}");
        let (code, err, _) = curl_cert(s.port, dir.path(), None, tls);
        assert_ne!(code, 0);
        assert!(
            err.contains("alert certificate required"),
            "TLS {tls} without a certificate: {err}"
        );
        let (code, err, _) = curl_cert(s.port, dir.path(), Some("client-other"), tls);
        assert_ne!(code, 0);
        assert!(
            err.contains("alert unknown ca"),
            "TLS {tls}, another CA: {err}"
        );
        let (code, err, _) = curl_cert(s.port, dir.path(), Some("self"), tls);
        assert_ne!(code, 0);
        assert!(
            err.contains("alert certificate unknown"),
            "TLS {tls}, self-signed: {err}"
        );
    }
    let (code, err, _) = curl_cert(s.port, dir.path(), Some("client-ca"), "1.3");
    assert_eq!(code, 0, "still serving: {err}");
    assert_eq!(s.worker_pids(), workers);

    // -A without -v: a certificate is asked for, not required.
    let s = Lwsd::start(&[
        "-j",
        "1",
        "-s",
        "-i",
        "127.0.0.1",
        "-A",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(curl_cert(s.port, dir.path(), None, "1.3").0, 0);
    assert_eq!(curl_cert(s.port, dir.path(), Some("client-ca"), "1.3").0, 0);
    let (code, err, _) = curl_cert(s.port, dir.path(), Some("client-other"), "1.3");
    assert!(
        code != 0 && err.contains("alert unknown ca"),
        "a bad certificate is still refused: {err}"
    );
}

/// `--tls-handshake-timeout 1`: a client silent after connecting, or stopping after half
/// a ClientHello, is closed after about a second (TCP_DEFER_ACCEPT off, so the silent one
/// reaches a worker at once).
#[test]
fn handshake_timeout_closes_silent_and_stalled_clients() {
    let s = Lwsd::start(&[
        "-j",
        "1",
        "-s",
        "-i",
        "127.0.0.1",
        "--tls-handshake-timeout",
        "1",
        "--defer-accept",
        "0",
    ]);
    let hello = std::fs::read(corpus_dir().join("client_hello.bin")).unwrap();
    for (what, bytes) in [
        ("silent", &[][..]),
        ("half a hello", &hello[..hello.len() / 2]),
        ("a header", &hello[..3]),
    ] {
        let a = exchange(
            s.port,
            &[bytes],
            Duration::ZERO,
            false,
            Duration::from_secs(6),
        );
        assert!(a.closed, "{what}: not closed in 6 s");
        assert!(a.bytes.is_empty(), "{what}: {:?}", a.bytes);
        assert!(
            a.took >= Duration::from_millis(800) && a.took < Duration::from_millis(3000),
            "{what}: closed after {:?}",
            a.took
        );
    }
    // A full handshake still fits.
    curl_ok(s.port);
    assert_eq!(s.worker_pids().len(), 1);
}
