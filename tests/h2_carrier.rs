//! The HTTP/2 carrier's own behaviour through the real binary, driven frame by frame
//! by scripted Python peers (`tests/h2_python`, `hyperframe` + `hpack`): the graceful
//! two-step GOAWAY when lwsd drains (RFC 9113 6.8), one stream's rx flow control
//! withholding that stream's window while the connection keeps serving, and the
//! keep-alive timeout of an idle connection.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

/// A document root with a 4 MiB file and a 1-byte one.
fn docroot() -> TempDir {
    let d = TempDir::new("h2www");
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.path().join("big.bin"), big).unwrap();
    std::fs::write(d.path().join("one.txt"), "x").unwrap();
    d
}

/// Runs `tests/h2_python/<script>` with `args`; it must exit 0 within 60 s.
fn python(script: &str, args: &[String]) -> String {
    let path = format!("{}/../tests/h2_python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/install-deps.sh installs hyperframe and hpack)");
    let status = wait_child(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{script} failed ({status:?}):\n{out}\n{err}"
    );
    out
}

/// SIGTERM while a response is in flight on an h2 connection: GOAWAY NO_ERROR with
/// 2^31-1 and a PING, then (after the PING's answer) GOAWAY NO_ERROR naming the last
/// stream; the in-flight response still completes, then lwsd closes and exits.
#[test]
fn graceful_drain_sends_two_goaways_and_finishes_the_stream_in_flight() {
    let d = docroot();
    let mut s = Lwsd::start(&["-j", "1", "-r", d.path().to_str().unwrap()]);
    let out = python("drain.py", &[s.port.to_string(), s.pid().to_string()]);
    assert!(out.contains("body 4194304 ended True"), "{out}");
    assert!(
        s.wait_exit(Duration::from_secs(15)).is_some(),
        "lwsd did not exit"
    );
}

/// A WebSocket on stream 1 whose echoes the client never lets through: the server stops
/// consuming and crediting that stream (the client's sending is bounded), PING and a
/// GET on stream 3 are still answered, and once the window opens every echo arrives.
#[test]
fn a_paused_websocket_stream_withholds_its_window_while_the_connection_serves() {
    let d = docroot();
    let s = Lwsd::start(&["-j", "1", "-r", d.path().to_str().unwrap()]);
    let out = python("flow.py", &[s.port.to_string()]);
    assert!(out.contains("after opening the window"), "{out}");
}

/// An idle h2 connection (its one stream answered) gets GOAWAY NO_ERROR naming that
/// stream and is closed after `--keepalive-timeout`, not before (the per-stream
/// bookkeeping given back after a second idle must not end it early).
#[test]
fn an_idle_connection_gets_goaway_after_the_keepalive_timeout() {
    let d = docroot();
    let s = Lwsd::start(&[
        "-j",
        "1",
        "-r",
        d.path().to_str().unwrap(),
        "--keepalive-timeout",
        "3",
    ]);
    let out = python("idle.py", &[s.port.to_string(), "3".to_string()]);
    assert!(out.contains("goaway (1, 0,"), "{out}");
}
