//! HTTP/2 through the real binary (issue 11), driven by clients nobody here wrote, over
//! the three ways in: h2c with prior knowledge and h2c by `Upgrade: h2c` on the plain
//! listener, ALPN `h2` on the TLS listener.
//!
//! - curl (nghttp2 inside): the demo page equal to its HTTP/1.1 bytes, several requests
//!   multiplexed on one connection, files under `-r` incl. 4 MiB (the server's
//!   flow-control windows), HEAD, 404, a range (206), a validator (304), form POSTs to
//!   `/formtest` of 200 kB and a 3 MiB multipart file (the client's windows: the server
//!   must send WINDOW_UPDATE for the body to arrive), and a POST that itself upgrades.
//! - `nghttp -nv`: the server's SETTINGS (ENABLE_CONNECT_PROTOCOL = 1 and the rest of
//!   the contract) and its connection WINDOW_UPDATE, then a 200.
//! - `h2load -n 2000 -c 10 -m 10`: no error, every answer 2xx, every body byte.
//! - Python `httpx` (the `h2` library): 50 concurrent requests on one connection, twice,
//!   every body intact (tests/h2_python/httpx_many.py).
//! - RFC 8441 WebSockets with the `h2` library and hand-written framing
//!   (tests/h2_python/ws_over_h2.py): dumb-increment, mirror between two streams,
//!   lws-echo with permessage-deflate, a GET beside them, clean closes by END_STREAM.
//!
//! Each test also reads lwsd's h2 counters (`lwsd_h2_*` on `/metrics`) where they say
//! how many connections, streams or WebSockets the clients made.
//!
//! The `reference_h2o_*` tests run the same client checks against h2o (Debian package
//! `h2o`) in front of lwsd's HTTP/1.1 (`proxy.reverse.url`), to tell a wrong test from a
//! wrong server: `cargo test -p lwsd --test h2_serving -- --ignored reference_h2o`.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Lwsd, TempDir};

/// How a client starts HTTP/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// h2c: the connection preface first (RFC 9113 section 3.3).
    PriorKnowledge,
    /// h2c: an HTTP/1.1 request with `Upgrade: h2c` (RFC 7540 section 3.2), answered
    /// 101 and then on stream 1.
    Upgrade,
    /// TLS with ALPN `h2` (RFC 9113 section 3.2).
    Tls,
}

impl Way {
    fn tls(self) -> bool {
        self == Way::Tls
    }

    fn scheme(self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }

    /// curl's flags for this way.
    fn curl_args(self) -> &'static [&'static str] {
        match self {
            Way::PriorKnowledge => &["--http2-prior-knowledge"],
            Way::Upgrade => &["--http2"],
            Way::Tls => &["--http2", "-k"],
        }
    }
}

/// What serves HTTP/2 to the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// lwsd itself.
    Lwsd,
    /// h2o in front of lwsd's HTTP/1.1: the reference the clients are checked against.
    H2oFront,
}

/// A server the clients reach on 127.0.0.1:`port`, over TLS or not.
struct Server {
    port: u16,
    lwsd: Lwsd,
    _front: Option<H2o>,
}

impl Server {
    /// lwsd with `args` (one worker unless `args` say otherwise), reached by `way`
    /// (`-s` with the test certificate for TLS), or h2o in front of it.
    fn start(flavor: Flavor, way: Way, args: &[&str]) -> Server {
        let (cert, key) = (
            testdata("ecdsa-p256.cert.pem"),
            testdata("ecdsa-p256.sec1.pem"),
        );
        let mut all = vec!["-i", "127.0.0.1"];
        if !args.contains(&"-j") {
            all.extend(["-j", "1"]);
        }
        if way.tls() && flavor == Flavor::Lwsd {
            all.extend(["-s", "-C", &cert, "-K", &key]);
        }
        all.extend_from_slice(args);
        let lwsd = Lwsd::start(&all);
        match flavor {
            Flavor::Lwsd => Server {
                port: lwsd.port,
                lwsd,
                _front: None,
            },
            Flavor::H2oFront => {
                let front = H2o::start(lwsd.port, way.tls());
                Server {
                    port: front.port,
                    lwsd,
                    _front: Some(front),
                }
            }
        }
    }

    fn url(&self, way: Way, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", way.scheme(), self.port)
    }

    /// The sum over workers of counter `name` on lwsd's `/metrics` (0 when absent).
    fn metric_sum(&self, name: &str) -> f64 {
        metric_sum(&self.lwsd.metrics(), name)
    }

    /// Waits (5 s at most: workers push every 250 ms) until each `(name, want)` sums to
    /// `want` over workers; panics showing the h2 series otherwise.
    fn expect_metrics(&self, want: &[(&str, f64)]) {
        let t = Instant::now();
        loop {
            let text = self.lwsd.metrics();
            if want.iter().all(|&(n, v)| metric_sum(&text, n) == v) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "want {want:?}; /metrics has:\n{}",
                text.lines()
                    .filter(|l| l.starts_with("lwsd_h2"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sum of every series of `name` (any labels) in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let n = key.split('{').next()?;
            (n == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// An h2o (`h2o -c conf`) listening on a free port, proxying to lwsd's HTTP/1.1 on
/// `backend`; killed when dropped.
struct H2o {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl H2o {
    fn start(backend: u16, tls: bool) -> H2o {
        let dir = TempDir::new("h2o");
        let port = support::free_port();
        let ssl = if tls {
            format!(
                "\n  ssl:\n    certificate-file: {}\n    key-file: {}\n    ocsp-update-interval: 0",
                testdata("ecdsa-p256.cert.pem"),
                testdata("ecdsa-p256.sec1.pem")
            )
        } else {
            String::new()
        };
        // As root h2o would switch to `nobody`, which cannot read the test files.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user: root\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}listen:\n  port: {port}\n  host: 127.0.0.1{ssl}\n\
             hosts:\n  default:\n    paths:\n      /:\n        proxy.reverse.url: http://127.0.0.1:{backend}/\n\
             error-log: {}\n",
            dir.path().join("error.log").display()
        );
        let conf_path = dir.path().join("h2o.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("h2o")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("h2o (Debian package h2o) for the reference runs");
        let mut h = H2o {
            child,
            port,
            _dir: dir,
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                h.child.try_wait().unwrap().is_none(),
                "h2o exited: {}",
                std::fs::read_to_string(h._dir.path().join("error.log")).unwrap_or_default()
            );
            assert!(t.elapsed() < support::START_TIMEOUT, "h2o did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }
}

impl Drop for H2o {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn testdata(name: &str) -> String {
    format!(
        "{}/../worker/src/roles/tls/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `n` bytes that do not compress (xorshift64), different for each `seed`.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(b: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// One answer curl got.
#[derive(Debug)]
struct Answer {
    /// `%{http_version}`: "2" over HTTP/2.
    version: String,
    status: u16,
    /// New connections curl made for this transfer.
    connects: u32,
    /// The head it was answered with (the HTTP/2 one after an upgrade's 101).
    head: String,
    /// Whether a `101 Switching Protocols` came first.
    upgraded: bool,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        support::header(&self.head, name)
    }
}

/// One curl run: each `(path, extra args)` a transfer (`--next` between them, so all
/// share one connection), each with `way`'s flags; the answers in order.
fn curl(s: &Server, way: Way, reqs: &[(&str, &[&str])]) -> Vec<Answer> {
    let dir = TempDir::new("curl-h2");
    let mut cmd = Command::new("curl");
    for (i, (path, extra)) in reqs.iter().enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-sS", "--max-time", "60"])
            .args(way.curl_args())
            .arg("-D")
            .arg(dir.path().join(format!("h{i}")))
            .arg("-o")
            .arg(dir.path().join(format!("b{i}")))
            .args(["-w", "%{http_version} %{http_code} %{num_connects}\\n"])
            .args(*extra)
            .arg(s.url(way, path));
    }
    let out = cmd
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "curl {reqs:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), reqs.len(), "curl {reqs:?}: {text}");
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(' ').collect();
            let raw = std::fs::read_to_string(dir.path().join(format!("h{i}"))).unwrap_or_default();
            let upgraded = raw.starts_with("HTTP/1.1 101");
            let head = raw
                .split("\r\n\r\n")
                .filter(|h| !h.is_empty())
                .last()
                .unwrap_or_default()
                .to_owned();
            Answer {
                version: f[0].to_owned(),
                status: f[1].parse().unwrap(),
                connects: f[2].parse().unwrap(),
                head,
                upgraded,
                body: std::fs::read(dir.path().join(format!("b{i}"))).unwrap_or_default(),
            }
        })
        .collect()
}

/// [`curl`], checking that every answer came over HTTP/2 on one connection; with
/// [`Way::Upgrade`] a `GET /` goes first and must be answered `101`, then `200` over
/// HTTP/2 (stream 1), and the other requests follow on that connection.
///
/// With prior knowledge each request gets a connection of its own: curl 7.88 (Debian
/// 12) fails every request after the first on a reused prior-knowledge connection with
/// "Error in the HTTP2 framing layer" before sending it (curl issue 10634, fixed in 8.0),
/// whatever the server. Multiplexing is checked over TLS and after the upgrade here, and
/// by nghttp, h2load and httpx for h2c.
fn curl_h2(s: &Server, way: Way, reqs: &[(&str, &[&str])]) -> Vec<Answer> {
    let mut all: Vec<(&str, &[&str])> = Vec::new();
    if way == Way::Upgrade {
        all.push(("/", &[]));
    }
    all.extend_from_slice(reqs);
    let mut got = if way == Way::PriorKnowledge {
        let got: Vec<Answer> = all
            .iter()
            .flat_map(|r| curl(s, way, std::slice::from_ref(r)))
            .collect();
        assert!(got.iter().all(|a| a.connects == 1), "{got:?}");
        got
    } else {
        let got = curl(s, way, &all);
        assert_eq!(
            got.iter().map(|a| a.connects).sum::<u32>(),
            1,
            "one connection for {all:?}: {got:?}"
        );
        got
    };
    for (a, r) in got.iter().zip(&all) {
        assert_eq!(a.version, "2", "{r:?} not answered over HTTP/2: {}", a.head);
        assert!(a.head.starts_with("HTTP/2 "), "{r:?}: {}", a.head);
    }
    if way == Way::Upgrade {
        let first = got.remove(0);
        assert!(first.upgraded, "no 101 before the first answer");
        assert_eq!(
            first.status, 200,
            "the upgrading request's answer: {}",
            first.head
        );
    }
    assert!(
        got.iter().all(|a| !a.upgraded),
        "only the first request upgrades"
    );
    got
}

/// Bodies curl gets over HTTP/1.1 (`--http1.1`, one connection each).
fn curl_http1(s: &Server, way: Way, path: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sSfk", "--http1.1", "--max-time", "30"])
        .arg(s.url(way, path))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl --http1.1 {path}: {out:?}");
    out.stdout
}

/// The demo (no `-r`): `/` and `/test.js` over HTTP/2 are byte for byte what HTTP/1.1
/// gets, a 404 in between, all four requests multiplexed on one connection.
fn demo_checks(flavor: Flavor, way: Way) {
    let s = Server::start(flavor, way, &[]);
    let index = curl_http1(&s, way, "/");
    let script = curl_http1(&s, way, "/test.js");
    assert!(
        index.windows(16).any(|w| w == b"lwsd test server"),
        "the demo page"
    );
    let got = curl_h2(
        &s,
        way,
        &[("/", &[]), ("/test.js", &[]), ("/nope", &[]), ("/", &[])],
    );
    let codes: Vec<u16> = got.iter().map(|a| a.status).collect();
    assert_eq!(codes, [200, 200, 404, 200]);
    assert!(got[0].body == index, "/ over h2 differs from HTTP/1.1");
    assert!(
        got[1].body == script,
        "/test.js over h2 differs from HTTP/1.1"
    );
    assert!(got[3].body == index);
    if flavor == Flavor::Lwsd {
        // The answer HTTP/2 forbids (RFC 9113 8.2.2) is not there.
        for a in &got {
            for h in ["connection", "keep-alive", "transfer-encoding"] {
                assert!(a.header(h).is_none(), "{h} in an h2 answer: {}", a.head);
            }
        }
    }
}

/// A document root for the file checks: `index.html`, `small.txt`, 4 MiB of noise.
fn docroot() -> (TempDir, PathBuf) {
    let d = TempDir::new("h2-www");
    let root = d.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>lwsd over h2</h1>\n").unwrap();
    std::fs::write(root.join("small.txt"), "hello over h2\n").unwrap();
    std::fs::write(root.join("big.bin"), noise(4 << 20, 0x5eed)).unwrap();
    std::fs::write(root.join("seven.txt"), "7".repeat(7 * 1024)).unwrap();
    (d, root)
}

/// Posts allowed up to 4 MiB on `/formtest` (the server's own limit is 16 MiB).
const FORM_MAX_BODY: &str = "protocol-post-demo:max-body=4194304";

/// Files under `-r`: small and 4 MiB bodies intact, HEAD, 404, a range, a validator;
/// then the form POSTs.
fn file_checks(flavor: Flavor, way: Way) {
    let (d, root) = docroot();
    let s = Server::start(
        flavor,
        way,
        &["-r", root.to_str().unwrap(), "--pvo", FORM_MAX_BODY],
    );
    let big = std::fs::read(root.join("big.bin")).unwrap();
    let got = curl_h2(&s, way, &[("/small.txt", &[]), ("/big.bin", &[])]);
    assert_eq!((got[0].status, got[1].status), (200, 200));
    assert_eq!(got[0].body, b"hello over h2\n");
    assert!(
        got[1].body == big,
        "4 MiB over h2: {} bytes, sha256 {}, want {} bytes, sha256 {}",
        got[1].body.len(),
        sha256(&got[1].body),
        big.len(),
        sha256(&big)
    );
    assert_eq!(got[1].header("content-length"), Some("4194304"));
    let etag = got[1].header("etag").expect("an ETag").to_owned();
    assert!(got[1].header("last-modified").is_some(), "{}", got[1].head);

    let range = "Range: bytes=1000000-2999999";
    let inm = format!("If-None-Match: {etag}");
    let got = curl_h2(
        &s,
        way,
        &[
            ("/big.bin", &["-I"]),
            ("/missing.txt", &[]),
            ("/big.bin", &["-H", range]),
            ("/big.bin", &["-H", &inm]),
        ],
    );
    // HEAD: the head of the GET, no DATA (curl -I writes the head as the body).
    let head = &got[0];
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(head.header("content-length"), Some("4194304"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(
        head.body.len() <= head.head.len() + 4 && head.body.starts_with(b"HTTP/2 200"),
        "HEAD got {} bytes",
        head.body.len()
    );
    assert_eq!(got[1].status, 404, "{}", got[1].head);
    let part = &got[2];
    assert_eq!(part.status, 206, "{}", part.head);
    assert_eq!(
        part.header("content-range"),
        Some("bytes 1000000-2999999/4194304")
    );
    assert!(part.body == big[1_000_000..3_000_000], "the range's bytes");
    assert_eq!(got[3].status, 304, "{}", got[3].head);
    assert!(got[3].body.is_empty());

    post_checks(&s, way, d.path());
}

/// `/formtest` (protocol-post-demo) over h2 with bodies far over the 65,535-byte
/// windows a client starts with: a 200 kB urlencoded value (the whole value counted in
/// the answer) and a 3 MiB multipart file (its size and SHA-1 in the answer), which
/// also outgrows lwsd's 256 KiB stream and 1 MiB connection windows many times over,
/// so it arrives only if lwsd credits both back as it consumes the body.
fn post_checks(s: &Server, way: Way, scratch: &Path) {
    const VALUE: usize = 200_000;
    let value: String = (0..VALUE)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let form = scratch.join("form.txt");
    std::fs::write(&form, format!("text={value}")).unwrap();
    let upload = scratch.join("upload.bin");
    let file = noise(3 << 20, 0xf11e);
    std::fs::write(&upload, &file).unwrap();
    let sha1 = hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &file).as_ref());

    let data = format!("@{}", form.display());
    let part = format!("file=@{};filename=up.bin", upload.display());
    let got = curl_h2(
        s,
        way,
        &[
            (
                "/formtest",
                &[
                    "--data-binary",
                    &data,
                    "-H",
                    "Content-Type: application/x-www-form-urlencoded",
                ],
            ),
            ("/formtest", &["-F", "text=hello", "-F", &part]),
        ],
    );
    let page = String::from_utf8_lossy(&got[0].body);
    assert_eq!(got[0].status, 200, "{}: {page:.500}", got[0].head);
    assert!(
        page.contains(&value[..4096]) && page.contains(&format!("({VALUE} bytes)")),
        "the whole 200 kB value arrived: {page:.300}"
    );
    let page = String::from_utf8_lossy(&got[1].body);
    assert_eq!(got[1].status, 200, "{}: {page:.500}", got[1].head);
    assert!(
        page.contains(&format!("<span class=\"size\">{}</span>", 3 << 20)) && page.contains(&sha1),
        "the 3 MiB file arrived whole (sha1 {sha1}): {page:.1000}"
    );
}

/// A POST that itself carries `Upgrade: h2c` (RFC 7540 3.2: the body is sent whole in
/// HTTP/1.1 before the 101): answered correctly, over h2 on stream 1 or, when the
/// server declines to upgrade a request with a body, over HTTP/1.1.
fn upgrading_post_check(flavor: Flavor) -> String {
    let s = Server::start(flavor, Way::Upgrade, &["--pvo", FORM_MAX_BODY]);
    let got = curl(
        &s,
        Way::Upgrade,
        &[("/formtest", &["--data-binary", "text=upgrading+post"])],
    );
    let a = &got[0];
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(
        String::from_utf8_lossy(&a.body).contains("upgrading post"),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.upgraded, a.version == "2", "101 iff answered over h2");
    format!("answered over HTTP/{}", a.version)
}

fn curl_suite(flavor: Flavor, way: Way) {
    demo_checks(flavor, way);
    file_checks(flavor, way);
}

#[test]
fn curl_h2c_prior_knowledge_demo_files_ranges_validators_and_posts() {
    curl_suite(Flavor::Lwsd, Way::PriorKnowledge);
}

#[test]
fn curl_h2c_upgrade_demo_files_ranges_validators_and_posts() {
    curl_suite(Flavor::Lwsd, Way::Upgrade);
    eprintln!(
        "a POST with Upgrade: h2c {}",
        upgrading_post_check(Flavor::Lwsd)
    );
}

#[test]
fn curl_tls_alpn_h2_demo_files_ranges_validators_and_posts() {
    curl_suite(Flavor::Lwsd, Way::Tls);
}

/// `nghttp -nv URL` (with `-u` for the upgrade): its verbose frame log.
fn nghttp(s: &Server, way: Way, path: &str) -> String {
    let mut cmd = Command::new("nghttp");
    cmd.args(["-nv", "-t", "20"]);
    if way == Way::Upgrade {
        cmd.arg("-u");
    }
    let out = cmd
        .arg(s.url(way, path))
        .output()
        .expect("nghttp (nghttp2-client; scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "nghttp {way:?}: {out:?}\n{text}");
    text
}

/// The parameters of the first SETTINGS frame nghttp received (not an ACK), by id.
fn server_settings(log: &str) -> HashMap<u16, u32> {
    let mut lines = log.lines();
    lines
        .by_ref()
        .find(|l| l.contains("recv SETTINGS frame") && l.contains("flags=0x00"))
        .unwrap_or_else(|| panic!("no SETTINGS from the server:\n{log}"));
    let mut out = HashMap::new();
    for l in lines {
        let l = l.trim();
        if l.strip_prefix('[')
            .is_some_and(|r| r.starts_with(|c: char| c == ' ' || c.is_ascii_digit()))
        {
            break; // "[  0.001] ...": the next frame
        }
        // "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128]"
        let Some(rest) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
            continue;
        };
        let Some((name, value)) = rest.rsplit_once(':') else {
            continue;
        };
        let id = name
            .rsplit_once("(0x")
            .and_then(|(_, id)| u16::from_str_radix(id.trim_end_matches(')'), 16).ok());
        if let (Some(id), Ok(v)) = (id, value.parse()) {
            out.insert(id, v);
        }
    }
    out
}

/// The contract's SETTINGS (MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 256 KiB,
/// MAX_HEADER_LIST_SIZE 65536, ENABLE_CONNECT_PROTOCOL 1 (RFC 8441 section 3), no push),
/// the WINDOW_UPDATE on stream 0 that raises the connection window to 1 MiB, and a 200.
#[test]
fn nghttp_sees_the_server_settings_with_enable_connect_protocol_and_a_200() {
    for way in [Way::PriorKnowledge, Way::Upgrade, Way::Tls] {
        let s = Server::start(Flavor::Lwsd, way, &[]);
        let log = nghttp(&s, way, "/");
        let settings = server_settings(&log);
        for (id, want) in [(0x8, 1), (0x3, 128), (0x4, 256 << 10), (0x6, 65536)] {
            assert_eq!(
                settings.get(&id),
                Some(&want),
                "{way:?}: SETTINGS 0x{id:02x} in {settings:?}\n{log}"
            );
        }
        assert!(
            !settings.contains_key(&0x2) || settings[&0x2] == 0,
            "push is never enabled: {settings:?}"
        );
        let increment = (1u32 << 20) - 65535;
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines
                .windows(2)
                .any(|w| w[0].contains("recv WINDOW_UPDATE frame")
                    && w[0].contains("stream_id=0>")
                    && w[1].trim() == format!("(window_size_increment={increment})")),
            "{way:?}: the connection window raised to 1 MiB:\n{log}"
        );
        assert!(log.contains(":status: 200"), "{way:?}: {log}");
        if way == Way::Upgrade {
            assert!(log.contains("HTTP Upgrade success"), "{log}");
        }
        if way == Way::Tls {
            assert!(log.contains("The negotiated protocol: h2"), "{log}");
        }
    }
}

/// `h2load -n 2000 -c 10 -m 10` on the demo page: every request done and 2xx, no error,
/// every body byte delivered; returns the number of bytes of the page.
fn h2load(s: &Server, way: Way) -> usize {
    let page = curl_http1(s, way, "/");
    let mut child = Command::new("h2load")
        .args(["-n", "2000", "-c", "10", "-m", "10"])
        .arg(s.url(way, "/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h2load (nghttp2-client)");
    let st = support::wait_child(&mut child, Duration::from_secs(120)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("h2load did not finish in 120 s")
    });
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(st.success(), "h2load: {st}\n{text}");
    let proto = if way.tls() { "h2" } else { "h2c" };
    for want in [
        format!("Application protocol: {proto}\n"),
        "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout".into(),
        "status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx".into(),
        format!("({}) data", 2000 * page.len()),
    ] {
        assert!(text.contains(&want), "h2load: want {want:?} in\n{text}");
    }
    page.len()
}

#[test]
fn h2load_h2c_2000_requests_on_10_connections_all_2xx() {
    let s = Server::start(Flavor::Lwsd, Way::PriorKnowledge, &["-j", "2"]);
    h2load(&s, Way::PriorKnowledge);
    s.expect_metrics(&[
        ("lwsd_h2_connections_total", 10.0),
        ("lwsd_h2_streams_total", 2000.0),
        // h2load ends each connection with GOAWAY and its FIN: all closed.
        ("lwsd_h2_connections", 0.0),
    ]);
    assert_eq!(close_wait(s.port), 0, "server sockets left in CLOSE-WAIT");
}

#[test]
fn h2load_tls_2000_requests_on_10_connections_all_2xx() {
    let s = Server::start(Flavor::Lwsd, Way::Tls, &["-j", "2"]);
    h2load(&s, Way::Tls);
    // That the connections are then closed: tls_h2_connections_close_when_the_client_
    // leaves_after_goaway (a known defect).
    s.expect_metrics(&[
        ("lwsd_h2_connections_total", 10.0),
        ("lwsd_h2_streams_total", 2000.0),
    ]);
}

/// Server sockets on `port` in CLOSE-WAIT (the client has closed, lwsd has not),
/// after waiting up to 5 s for there to be none.
fn close_wait(port: u16) -> usize {
    const TCP_CLOSE_WAIT: u8 = 0x08;
    let count = || {
        support::tcp_sockets()
            .iter()
            .filter(|r| r.local_port == port && r.state == TCP_CLOSE_WAIT)
            .count()
    };
    let t = Instant::now();
    while count() > 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    count()
}

/// Clients that end a TLS h2 connection with GOAWAY and close the socket at once,
/// without a TLS close_notify (h2load on every connection; nghttp often), get their
/// connections closed by lwsd at once, as over h2c: the `lwsd_h2_connections` gauge
/// falls back to 0 and no server socket is left in CLOSE-WAIT.
///
/// Seen failing before the core finished flushes that had nothing left to send: most
/// such connections stayed open (CLOSE-WAIT) until the keep-alive timeout (~60 s).
#[test]
fn tls_h2_connections_close_when_the_client_leaves_after_goaway() {
    let s = Server::start(Flavor::Lwsd, Way::Tls, &["-j", "2"]);
    h2load(&s, Way::Tls);
    for _ in 0..3 {
        nghttp(&s, Way::Tls, "/");
    }
    s.expect_metrics(&[
        ("lwsd_h2_connections_total", 13.0),
        ("lwsd_h2_connections", 0.0),
    ]);
    assert_eq!(close_wait(s.port), 0, "server sockets left in CLOSE-WAIT");
}

/// Runs `tests/h2_python/<script>` with `args`; it must exit 0 within 180 s.
fn python(script: &str, args: &[&str]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/h2_python/");
    let mut child = Command::new("python3")
        .arg(format!("{path}{script}"))
        .args(args)
        .spawn()
        .expect("python3 with h2 and httpx (scripts/install-deps.sh installs them)");
    let status = support::wait_child(&mut child, Duration::from_secs(180)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("{script} did not finish in 180 s")
    });
    assert!(status.success(), "{script} {args:?}: {status}");
}

/// httpx: 2 × 50 concurrent GETs of the docroot's files on one connection.
fn httpx(flavor: Flavor, way: Way) -> Server {
    let (_d, root) = docroot();
    let s = Server::start(flavor, way, &["-r", root.to_str().unwrap()]);
    python("httpx_many.py", &[&s.url(way, ""), root.to_str().unwrap()]);
    s
}

#[test]
fn httpx_100_requests_50_at_a_time_on_one_h2c_connection() {
    let s = httpx(Flavor::Lwsd, Way::PriorKnowledge);
    s.expect_metrics(&[
        ("lwsd_h2_connections_total", 1.0),
        ("lwsd_h2_streams_total", 100.0),
    ]);
}

#[test]
fn httpx_100_requests_50_at_a_time_on_one_tls_connection() {
    let s = httpx(Flavor::Lwsd, Way::Tls);
    s.expect_metrics(&[
        ("lwsd_h2_connections_total", 1.0),
        ("lwsd_h2_streams_total", 100.0),
    ]);
}

/// RFC 8441 WebSockets (tests/h2_python/ws_over_h2.py) on two workers: four WebSocket
/// streams and two GETs on one connection, counted as such.
fn websockets_over_h2(way: Way) {
    let s = Server::start(Flavor::Lwsd, way, &["-j", "2"]);
    let before = s.metric_sum("lwsd_h2_websockets_total");
    assert_eq!(before, 0.0);
    let mode = if way.tls() { "tls" } else { "h2c" };
    python("ws_over_h2.py", &[&s.port.to_string(), mode]);
    let mut want = vec![
        ("lwsd_h2_connections_total", 1.0),
        ("lwsd_h2_websockets_total", 4.0),
    ];
    // The script ends with GOAWAY and closes at once. Over TLS the connection's end is
    // checked by tls_h2_connections_close_when_the_client_leaves_after_goaway (a known
    // defect); over h2c, here.
    if !way.tls() {
        want.push(("lwsd_h2_connections", 0.0));
    }
    s.expect_metrics(&want);
    assert_eq!(s.lwsd.worker_pids().len(), 2, "no worker restarted");
}

#[test]
fn websockets_over_h2c_rfc8441_counter_mirror_deflate_echo_and_clean_close() {
    websockets_over_h2(Way::PriorKnowledge);
}

#[test]
fn websockets_over_tls_h2_rfc8441_counter_mirror_deflate_echo_and_clean_close() {
    websockets_over_h2(Way::Tls);
}

// ---- the same client checks against h2o in front of lwsd's HTTP/1.1 ----

#[test]
#[ignore = "reference run against h2o (Debian package h2o), not lwsd"]
fn reference_h2o_curl_suite() {
    for way in [Way::PriorKnowledge, Way::Upgrade, Way::Tls] {
        curl_suite(Flavor::H2oFront, way);
    }
    eprintln!(
        "h2o: a POST with Upgrade: h2c {}",
        upgrading_post_check(Flavor::H2oFront)
    );
}

#[test]
#[ignore = "reference run against h2o (Debian package h2o), not lwsd"]
fn reference_h2o_nghttp_h2load_and_httpx() {
    for way in [Way::PriorKnowledge, Way::Upgrade, Way::Tls] {
        let s = Server::start(Flavor::H2oFront, way, &[]);
        let log = nghttp(&s, way, "/");
        assert!(!server_settings(&log).is_empty(), "{log}");
        assert!(log.contains(":status: 200"), "{log}");
    }
    for way in [Way::PriorKnowledge, Way::Tls] {
        let s = Server::start(Flavor::H2oFront, way, &[]);
        h2load(&s, way);
        httpx(Flavor::H2oFront, way);
    }
    let _ = std::io::stderr().flush();
}
