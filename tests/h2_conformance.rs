//! HTTP/2 conformance through the real binary (issue 11): tests/h2spec/h2spec.py, a
//! frame-level re-implementation of h2spec's test list (generic, http2 and hpack groups,
//! strict mode: 147 tests, each naming its RFC 9113 / RFC 7541 section), run against
//! lwsd over h2c (prior knowledge on the plain listener) and over TLS (ALPN h2). Its
//! output is diffed against the golden summary tests/h2spec/expected.txt, in which every
//! test passes; a regression shows as the diff, with h2spec.py's reason under each
//! failing line (what lwsd sent instead).

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::Lwsd;

/// The whole run takes a few seconds when every test passes; a failing test costs one
/// `--timeout` wait or two. Past this the run is stopped and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn h2spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/h2spec")
}

fn testdata(name: &str) -> String {
    format!(
        "{}/../worker/src/roles/tls/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs h2spec.py against 127.0.0.1:`port`; its stdout (the per-test lines and the
/// summary, no timings) and its exit status.
fn run_h2spec(port: u16, tls: bool) -> (String, Option<i32>) {
    let mut cmd = Command::new("python3");
    cmd.arg(h2spec_dir().join("h2spec.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // A loaded CI machine can take more than h2spec's 2 s to answer one frame;
        // the wait only costs time when a test fails.
        .args(["--timeout", "5"]);
    if tls {
        cmd.arg("--tls");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (scripts/install-deps.sh installs it and hyperframe/hpack)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let status = support::wait_child(&mut child, RUN_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = reader.join().unwrap().expect("h2spec.py's output is UTF-8");
    assert!(
        status.is_some(),
        "h2spec.py ran past {RUN_TIMEOUT:?}; its output so far:\n{out}"
    );
    (out, status.unwrap().code())
}

/// A line diff of `want` against `got` (longest common subsequence): `-` lines only in
/// the golden file, `+` lines only in the output; common lines are left out.
fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("-{}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+{}\n", b[j]);
            j += 1;
        }
    }
    out
}

fn conformance(lwsd: &Lwsd, tls: bool) {
    let want = std::fs::read_to_string(h2spec_dir().join("expected.txt")).unwrap();
    let (got, code) = run_h2spec(lwsd.port, tls);
    let over = if tls { "TLS" } else { "h2c" };
    assert!(
        got == want,
        "h2spec.py over {over} differs from tests/h2spec/expected.txt \
         (-expected +got; the indented lines are h2spec.py's reasons):\n{}",
        diff(&want, &got)
    );
    assert_eq!(code, Some(0), "h2spec.py over {over} exits 0 when all pass");
}

#[test]
fn h2spec_over_h2c_matches_the_golden_summary() {
    let s = Lwsd::start(&["-j", "1", "-i", "127.0.0.1"]);
    conformance(&s, false);
}

#[test]
fn h2spec_over_tls_matches_the_golden_summary() {
    let cert = testdata("ecdsa-p256.cert.pem");
    let key = testdata("ecdsa-p256.sec1.pem");
    let s = Lwsd::start(&["-j", "1", "-i", "127.0.0.1", "-s", "-C", &cert, "-K", &key]);
    conformance(&s, true);
}

#[test]
fn the_diff_shows_only_the_lines_that_changed() {
    let want = "PASS a/1  x\nPASS a/2  y\n2 tests: 2 passed, 0 failed, 0 skipped\n";
    let got = "PASS a/1  x\nFAIL a/2  y\n     expected z; got w\n\
               2 tests: 1 passed, 1 failed, 0 skipped\n";
    assert_eq!(
        diff(want, got),
        "-PASS a/2  y\n-2 tests: 2 passed, 0 failed, 0 skipped\n\
         +FAIL a/2  y\n+     expected z; got w\n+2 tests: 1 passed, 1 failed, 0 skipped\n"
    );
    assert_eq!(diff(want, want), "");
}
