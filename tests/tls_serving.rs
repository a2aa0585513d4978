//! Serving over TLS through the real binary (issue 10): the connection core's TLS
//! transport under the HTTP/1.1 and WebSocket carriers, driven by clients nobody here
//! wrote: curl (files, ranges, validators, HEAD), `openssl s_client` (ALPN, SNI, TLS 1.2
//! and 1.3, session resumption on another worker), Python's `ssl` and `websockets`
//! (every built-in protocol over wss://, permessage-deflate included); the per-worker
//! handshake metrics; a worker killed with SIGKILL under TLS load. The hostile
//! handshakes are in tests/tls_hostile.rs.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Lwsd, client_port_of, pid_holding_tcp, process_env, signal};

/// `curl -k` over https: each URL's status and body, all on one kept-alive connection.
fn curl_https(port: u16, paths: &[&str]) -> Vec<(u16, Vec<u8>)> {
    let dir = tempdir();
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "--http1.1", "--max-time", "10"]);
    for (i, p) in paths.iter().enumerate() {
        cmd.arg(format!("https://127.0.0.1:{port}{p}"))
            .arg("-o")
            .arg(dir.join(i.to_string()))
            .arg("-w")
            .arg("%{http_code} %{num_connects}\\n");
    }
    let out = cmd
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "curl: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), paths.len(), "{text}");
    let connects: u32 = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(
        connects, 1,
        "one TLS connection kept alive for every request: {text}"
    );
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let code = l.split(' ').next().unwrap().parse().unwrap();
            (
                code,
                std::fs::read(dir.join(i.to_string())).unwrap_or_default(),
            )
        })
        .collect()
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "lwsd-tls-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn https_serves_the_demo_on_one_kept_alive_connection() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let got = curl_https(s.port, &["/", "/test.js", "/nope", "/"]);
    let codes: Vec<u16> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [200, 200, 404, 200]);
    let index = &got[0].1;
    assert!(
        index.windows(16).any(|w| w == b"lwsd test server"),
        "the demo page came over TLS"
    );
    assert_eq!(&got[3].1, index);
    assert!(got[1].1.len() > 1000, "test.js");
}

#[test]
fn a_plain_http_request_on_the_tls_port_gets_a_readable_400() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(
        text.contains("plain HTTP request was sent to HTTPS port"),
        "{text}"
    );
    // The server still serves TLS clients afterwards.
    assert_eq!(curl_https(s.port, &["/"])[0].0, 200);
}

fn testdata(name: &str) -> String {
    format!(
        "{}/../worker/src/roles/tls/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// lwsd with the test certificate for `localhost` (ECDSA P-256, self-signed, CA:FALSE),
/// which clients can verify with it as their CA.
fn start_with_cert(jobs: &str) -> Lwsd {
    let cert = testdata("ecdsa-p256.cert.pem");
    let key = testdata("ecdsa-p256.sec1.pem");
    Lwsd::start(&["-j", jobs, "-i", "127.0.0.1", "-s", "-C", &cert, "-K", &key])
}

/// Runs `curl -sk` with `args`; stdout (the test passes `-D -`/`-w` as it needs).
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sSk", "--http1.1", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_https_ranges_validators_and_head() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let url = format!("https://127.0.0.1:{}/test.js", s.port);
    let full = curl(&[&url]);
    assert!(full.len() > 1000, "test.js over https");
    let head = curl(&["-D", "-", "-o", "/dev/null", &url]);
    let (status, head, _) = support::split_response(head.as_bytes());
    assert_eq!(status, 200, "{head}");
    let etag = support::header(&head, "etag").expect("an ETag").to_owned();
    assert!(support::header(&head, "last-modified").is_some(), "{head}");

    // A range: 206, Content-Range, exactly those bytes.
    let out = curl(&["-D", "-", "-H", "Range: bytes=10-109", &url]);
    let (status, h, body) = support::split_response(out.as_bytes());
    assert_eq!(status, 206, "{h}");
    assert_eq!(
        support::header(&h, "content-range"),
        Some(format!("bytes 10-109/{}", full.len()).as_str())
    );
    assert_eq!(body, full.as_bytes()[10..110]);
    // Past the end: 416.
    let out = curl(&[
        "-D",
        "-",
        "-H",
        &format!("Range: bytes={}-", full.len()),
        &url,
    ]);
    assert_eq!(support::split_response(out.as_bytes()).0, 416, "{out}");
    // The validator: 304, no body.
    let out = curl(&["-D", "-", "-H", &format!("If-None-Match: {etag}"), &url]);
    let (status, h, body) = support::split_response(out.as_bytes());
    assert_eq!(status, 304, "{h}");
    assert!(body.is_empty());
    // If-Range with the current ETag gets the range, with a stale one the whole file.
    let out = curl(&[
        "-D",
        "-",
        "-H",
        "Range: bytes=0-9",
        "-H",
        &format!("If-Range: {etag}"),
        &url,
    ]);
    assert_eq!(support::split_response(out.as_bytes()).0, 206, "{out}");
    let out = curl(&[
        "-D",
        "-",
        "-H",
        "Range: bytes=0-9",
        "-H",
        "If-Range: \"stale\"",
        &url,
    ]);
    let (status, _, body) = support::split_response(out.as_bytes());
    assert_eq!((status, body.len()), (200, full.len()));
    // HEAD: the same head, no body.
    let out = curl(&["-I", &url]);
    let (status, h, body) = support::split_response(out.as_bytes());
    assert_eq!(status, 200, "{h}");
    assert!(body.is_empty());
    assert_eq!(
        support::header(&h, "content-length"),
        Some(full.len().to_string().as_str())
    );
}

/// `openssl s_client` run to its end: its stdout and stderr together.
fn s_client(port: u16, args: &[&str], input: &[u8]) -> String {
    SClient::spawn(port, args).finish(input)
}

/// An `openssl s_client` kept open until [`SClient::finish`] (so the test can see which
/// worker holds its connection); output goes to a file, so it never blocks on a pipe.
struct SClient {
    child: Child,
    out: PathBuf,
    _dir: support::TempDir,
}

impl SClient {
    fn spawn(port: u16, args: &[&str]) -> SClient {
        let dir = support::TempDir::new("s_client");
        let out = dir.path().join("out");
        let f = std::fs::File::create(&out).unwrap();
        let child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-ign_eof",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("openssl (scripts/install-deps.sh installs it)");
        SClient {
            child,
            out,
            _dir: dir,
        }
    }

    /// The client port of its connection to `server_port`, once it is connected.
    fn client_port(&self, server_port: u16) -> u16 {
        let t = Instant::now();
        loop {
            if let Some(p) = client_port_of(self.child.id(), server_port) {
                return p;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "s_client did not connect"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Writes `input`, closes stdin, waits (10 s at most) for the exit; the output.
    fn finish(mut self, input: &[u8]) -> String {
        let mut stdin = self.child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
        drop(stdin);
        if support::wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "s_client did not finish: {}",
                std::fs::read_to_string(&self.out).unwrap_or_default()
            );
        }
        String::from_utf8_lossy(&std::fs::read(&self.out).unwrap()).into_owned()
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[test]
fn openssl_s_client_alpn_sni_verification_and_versions() {
    let s = start_with_cert("1");
    let cert = testdata("ecdsa-p256.cert.pem");
    let verify = [
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        &cert,
        "-verify_return_error",
    ];
    for (version, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        for (alpn, chosen) in [("http/1.1", "http/1.1"), ("h2,http/1.1", "h2")] {
            let out = s_client(
                s.port,
                &[&verify[..], &[version, "-alpn", alpn]].concat(),
                GET_CLOSE,
            );
            assert!(
                out.contains(&format!("New, {name}, Cipher is ")),
                "{version} {alpn}: {out}"
            );
            // RFC 9113 3.2: h2 preferred when offered.
            assert!(
                out.contains(&format!("ALPN protocol: {chosen}")),
                "{version} {alpn}: {out}"
            );
            assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
            if chosen == "http/1.1" {
                assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
                assert!(out.contains("lwsd test server"), "{out}");
            }
        }
        // No ALPN offered: none agreed, HTTP/1.1 served.
        let out = s_client(s.port, &[&verify[..], &[version]].concat(), GET_CLOSE);
        assert!(out.contains("No ALPN negotiated"), "{out}");
        assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    }
    // SNI with another name: the one certificate is still served (no vhosts yet), and a
    // client checking the name it asked for refuses it.
    let out = s_client(
        s.port,
        &[
            "-servername",
            "example.com",
            "-verify_hostname",
            "example.com",
            "-CAfile",
            &cert,
            "-verify_return_error",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("hostname mismatch"), "{out}");
}

/// lwsd serves `h2` and `http/1.1`: a client offering only other protocols gets the
/// fatal `no_application_protocol` alert (120) of RFC 7301 section 3.2, in TLS 1.2 and
/// 1.3; one offering `h2` alone gets it.
#[test]
fn alpn_without_a_served_protocol_is_refused_with_no_application_protocol() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(s.port, &[version, "-alpn", "spdy/3.1"], GET_CLOSE);
        assert!(
            out.contains("alert no application protocol") && out.contains("SSL alert number 120"),
            "{version}: {out}"
        );
        assert!(!out.contains("HTTP/1.1"), "{out}");
        // h2 alone is served (the connection then speaks HTTP/2).
        let out = s_client(s.port, &[version, "-alpn", "h2"], GET_CLOSE);
        assert!(out.contains("ALPN protocol: h2"), "{version}: {out}");
    }
    assert_eq!(curl_https(s.port, &["/"])[0].0, 200);
}

/// A session saved by one worker's ticket is resumed by the other worker (the
/// supervisor gives every worker the same ticket keys): `openssl s_client -sess_out`,
/// then `-sess_in` until a connection lands on the other worker; it says `Reused`.
fn resumed_on_another_worker(version: &str) {
    let s = Lwsd::start(&["-j", "2", "-s", "-i", "127.0.0.1"]);
    let workers = s.worker_pids();
    assert_eq!(workers.len(), 2);
    let dir = support::TempDir::new("sess");
    let sess = dir.path().join("session.pem");
    let sess = sess.to_str().unwrap();

    let first = SClient::spawn(s.port, &[version, "-sess_out", sess]);
    let port = first.client_port(s.port);
    let issuer = pid_holding_tcp(s.port, port, &workers).expect("the first connection's worker");
    let out = first.finish(GET_CLOSE);
    assert!(out.contains("New, "), "{out}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    assert!(std::fs::metadata(sess).is_ok_and(|m| m.len() > 0), "{out}");

    // Held connections keep the issuer loaded, so the least-loaded choice soon picks
    // the other worker.
    let mut held = Vec::new();
    for attempt in 0..20 {
        let c = SClient::spawn(s.port, &[version, "-sess_in", sess]);
        let port = c.client_port(s.port);
        let w = pid_holding_tcp(s.port, port, &workers).expect("the connection's worker");
        if w == issuer {
            held.push(c);
            continue;
        }
        let out = c.finish(GET_CLOSE);
        assert!(
            out.contains(&format!(
                "Reused, {}",
                if version == "-tls1_3" {
                    "TLSv1.3"
                } else {
                    "TLSv1.2"
                }
            )),
            "attempt {attempt}: not resumed on the other worker: {out}"
        );
        assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
        for c in held {
            let out = c.finish(GET_CLOSE);
            assert!(out.contains("Reused, "), "{out}");
        }
        return;
    }
    panic!("no connection landed on the other worker in 20 attempts");
}

#[test]
fn tls13_session_resumes_on_another_worker() {
    resumed_on_another_worker("-tls1_3");
}

#[test]
fn tls12_session_resumes_on_another_worker() {
    resumed_on_another_worker("-tls1_2");
}

/// Runs `tests/ws_python/<script>` with `args`; it must exit 0 within 180 s.
fn python(script: &str, args: &[&str]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ws_python/");
    let mut child = Command::new("python3")
        .arg(format!("{path}{script}"))
        .args(args)
        .spawn()
        .expect("run python3 (scripts/install-deps.sh installs it)");
    let status = support::wait_child(&mut child, Duration::from_secs(180)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("{script} did not finish in 180 s")
    });
    assert!(status.success(), "{script}: {status}");
}

/// Python's `ssl` verifying the certificate (SNI, host name), HTTPS files, and the
/// `websockets` library over wss:// for every built-in protocol (tests/ws_python/wss.py).
#[test]
fn python_ssl_and_websockets_over_tls() {
    let s = start_with_cert("2");
    let workers = s.worker_pids();
    python(
        "wss.py",
        &[&s.port.to_string(), &testdata("ecdsa-p256.cert.pem")],
    );
    assert_eq!(s.worker_pids(), workers, "no worker restarted");
}

/// The plain-ws Python suites (echo: every length class, fragments, pings, close codes,
/// subprotocols, concurrency; permessage-deflate: negotiation, context takeover, windows,
/// raw frames, the 1002/1007/1009 failures) run unchanged over wss://.
#[test]
fn python_websockets_echo_and_deflate_over_wss() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    let port = s.port.to_string();
    python("echo.py", &[&port, "wss"]);
    python("deflate.py", &[&port, "wss"]);
    assert_eq!(s.worker_pids().len(), 1);
}

/// Sum of `name` over workers, per value of label `by` (other labels ignored).
fn sum_by(text: &str, name: &str, by: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let (n, rest) = key.split_once('{').unwrap_or((key, "}"));
        if n != name {
            continue;
        }
        let label = rest
            .trim_end_matches('}')
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{by}=\"")))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        *out.entry(label).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// `lwsd_tls_handshakes_total{worker}` counts each worker's completed handshakes (the
/// test knows which worker held each connection) and
/// `lwsd_tls_handshake_failures_total{worker,reason}` the failures by reason.
#[test]
fn tls_metrics_count_handshakes_and_failures_by_reason_per_worker() {
    let s = Lwsd::start(&[
        "-j",
        "2",
        "-s",
        "-i",
        "127.0.0.1",
        "--tls-handshake-timeout",
        "1",
    ]);
    let workers = s.worker_pids();
    let index: HashMap<u32, String> = workers
        .iter()
        .map(|&p| (p, process_env(p, "LWSD_WORKER_INDEX").unwrap()))
        .collect();
    // The start-up probe (a plain GET) already failed once; count from here.
    std::thread::sleep(Duration::from_millis(600));
    let before = s.metrics();
    let failures_before = sum_by(&before, "lwsd_tls_handshake_failures_total", "reason");
    let handshakes_before = sum_by(&before, "lwsd_tls_handshakes_total", "worker");

    // Handshakes, each on a known worker; held open so both workers get some.
    let mut want_handshakes: HashMap<String, f64> = HashMap::new();
    let mut held = Vec::new();
    for _ in 0..5 {
        let c = SClient::spawn(s.port, &[]);
        let p = c.client_port(s.port);
        let w = pid_holding_tcp(s.port, p, &workers).expect("its worker");
        *want_handshakes.entry(index[&w].clone()).or_default() += 1.0;
        held.push(c);
    }
    for c in held {
        assert!(c.finish(GET_CLOSE).contains("HTTP/1.1 200 OK"));
    }
    assert_eq!(
        want_handshakes.len(),
        2,
        "both workers served: {want_handshakes:?}"
    );

    // Failures, one of each reason.
    let send = |bytes: &[u8]| {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(bytes);
        let mut v = Vec::new();
        let _ = c.read_to_end(&mut v);
        v
    };
    send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    send(b"\x00\x01\x02 not a record");
    // A TLS 1.0 ClientHello with no extensions.
    let mut hello = vec![3, 1];
    hello.extend_from_slice(&[7; 32]);
    hello.extend_from_slice(&[0, 0, 2, 0, 0x2f, 1, 0]);
    let mut hs = vec![1, 0, 0, hello.len() as u8];
    hs.extend_from_slice(&hello);
    let mut rec = vec![22, 3, 1, 0, hs.len() as u8];
    rec.extend_from_slice(&hs);
    assert_eq!(send(&rec), [21, 3, 1, 0, 2, 2, 70]);
    let out = s_client(s.port, &["-tls1_2", "-cipher", "CAMELLIA:ARIA"], b"");
    assert!(out.contains("alert number 40"), "{out}");
    // Half a record header, then silence past the handshake timeout.
    assert!(send(&rec[..3]).is_empty());

    let want_failures = [
        ("plain_http", 1.0),
        ("bad_record", 1.0),
        ("protocol_version", 1.0),
        ("no_shared_cipher", 1.0),
        ("timeout", 1.0),
    ];
    let t = Instant::now();
    loop {
        let m = s.metrics();
        let handshakes = sum_by(&m, "lwsd_tls_handshakes_total", "worker");
        let failures = sum_by(&m, "lwsd_tls_handshake_failures_total", "reason");
        let delta = |map: &HashMap<String, f64>, old: &HashMap<String, f64>, k: &str| {
            map.get(k).copied().unwrap_or(0.0) - old.get(k).copied().unwrap_or(0.0)
        };
        let handshakes_ok = want_handshakes
            .iter()
            .all(|(w, n)| delta(&handshakes, &handshakes_before, w) == *n);
        let failures_ok = want_failures
            .iter()
            .all(|(r, n)| delta(&failures, &failures_before, r) == *n);
        if handshakes_ok && failures_ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "want handshakes {want_handshakes:?} and failures {want_failures:?} more than \
             before ({handshakes_before:?}, {failures_before:?}):\n{}",
            m.lines()
                .filter(|l| l.contains("lwsd_tls"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILL to one of two workers while TLS keep-alive connections on both carry
/// requests: exactly the killed worker's connections fail, the other worker's go on,
/// the worker comes back and serves TLS with the same certificate.
#[test]
fn killed_worker_under_tls_load_loses_only_its_connections() {
    const CONNS: usize = 6;
    let s = Lwsd::start(&["-j", "2", "-s", "-i", "127.0.0.1"]);
    let workers = s.worker_pids();
    assert_eq!(workers.len(), 2);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ws_python/tls_load.py"
    );
    let mut load = Command::new("python3")
        .args([path, &s.port.to_string(), &CONNS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = load.stdin.take().unwrap();
    let mut lines = BufReader::new(load.stdout.take().unwrap()).lines();
    let read_until_end = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>| {
        let mut got = Vec::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            if l == "end" || l == "ready" {
                return got;
            }
            got.push(l);
        }
        panic!("tls_load.py ended early: {got:?}");
    };
    let ports: Vec<u16> = read_until_end(&mut lines)
        .iter()
        .map(|l| l.strip_prefix("port ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(ports.len(), CONNS);
    let owners: HashMap<u16, u32> = ports
        .iter()
        .map(|&p| {
            (
                p,
                pid_holding_tcp(s.port, p, &workers).expect("owner found"),
            )
        })
        .collect();
    let victim = workers[0];
    let victim_conns: HashSet<u16> = owners
        .iter()
        .filter(|&(_, &o)| o == victim)
        .map(|(&p, _)| p)
        .collect();
    assert!(
        !victim_conns.is_empty() && victim_conns.len() < CONNS,
        "connections on both workers: {owners:?}"
    );
    let index = process_env(victim, "LWSD_WORKER_INDEX").unwrap();

    signal(victim, libc::SIGKILL);
    let fresh = s
        .wait_workers(2, &[victim], Duration::from_secs(2))
        .expect("the worker comes back");
    std::thread::sleep(Duration::from_millis(300));
    writeln!(stdin, "mark").unwrap();
    let mark: HashMap<u16, u64> = read_until_end(&mut lines)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    writeln!(stdin, "stop").unwrap();
    let result = read_until_end(&mut lines);
    let _ = support::wait_child(&mut load, Duration::from_secs(20));
    let mut failed = HashSet::new();
    for l in &result {
        let f: Vec<&str> = l.split(' ').collect();
        let (port, count): (u16, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        match f[0] {
            "failed" => {
                failed.insert(port);
            }
            _ => assert!(
                count > mark[&port],
                "connection {port} of the surviving worker carried on after the kill: {result:?}"
            ),
        }
    }
    assert_eq!(
        failed, victim_conns,
        "exactly the killed worker's connections failed"
    );

    // The new worker serves TLS: new connections until one lands on it.
    let newcomer = *fresh.iter().find(|p| !workers.contains(p)).unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        let c = SClient::spawn(s.port, &[]);
        let p = c.client_port(s.port);
        let on_new = pid_holding_tcp(s.port, p, &fresh) == Some(newcomer);
        if on_new {
            let out = c.finish(GET_CLOSE);
            assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
            let m = s.metrics();
            let restarts = format!("lwsd_worker_restarts_total{{worker=\"{index}\"}}");
            assert_eq!(support::metric(&m, &restarts), Some(1.0));
            drop(held);
            return;
        }
        held.push(c);
    }
    panic!("no connection reached the restarted worker");
}

#[test]
fn handshakes_and_failures_are_counted_per_worker_by_reason() {
    let s = Lwsd::start(&["-j", "1", "-s", "-i", "127.0.0.1"]);
    // Lwsd::start's readiness probe was a plain request: one plain_http failure.
    curl_https(s.port, &["/"]);
    curl_https(s.port, &["/", "/"]);
    let t = std::time::Instant::now();
    let page = loop {
        let page = s.metrics();
        if support::metric(&page, "lwsd_tls_handshakes_total{worker=\"0\"}") == Some(2.0) {
            break page;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{page}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let failed = |r: &str| {
        support::metric(
            &page,
            &format!("lwsd_tls_handshake_failures_total{{worker=\"0\",reason=\"{r}\"}}"),
        )
    };
    assert!(failed("plain_http").unwrap() >= 1.0, "{page}");
    assert_eq!(failed("bad_certificate"), Some(0.0), "{page}");
}
