//! Serving over TLS through the real binary (issue 10): the connection core's TLS
//! transport under the HTTP/1.1 and WebSocket carriers, driven by clients nobody here
//! wrote (curl, openssl, Python).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::Lwsd;

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
