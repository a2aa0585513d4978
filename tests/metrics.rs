//! The Prometheus figures against what really happened (DESIGN.md section 7): WebSocket
//! bytes in both directions, the workers' resident memory, the HTTP/2 series, and what
//! becomes of lwsd when its metrics address is taken (by default: serve without
//! metrics; given by name: refuse to start).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{IO_TIMEOUT, Lwsd, metric};

/// Waits (bounded) until `series` reads `want` on the next snapshots; its last value.
fn wait_metric(l: &Lwsd, series: &str, want: f64) -> Option<f64> {
    let t = Instant::now();
    loop {
        let v = metric(&l.metrics(), series);
        if v == Some(want) || t.elapsed() > Duration::from_secs(5) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until `series` reads at least `min`; its last value.
fn wait_metric_at_least(l: &Lwsd, series: &str, min: f64) -> Option<f64> {
    let t = Instant::now();
    loop {
        let v = metric(&l.metrics(), series);
        if v.is_some_and(|v| v >= min) || t.elapsed() > Duration::from_secs(5) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every HTTP/2 series is on the page from the start, at 0, so dashboards and alerts
/// see them before the first h2 connection: the per-worker ones for each worker, the
/// reset counters for both sides and every RFC 9113 section 7 code name, the GOAWAY
/// counter for every code.
#[test]
fn h2_series_exist_at_zero() {
    let l = Lwsd::start(&["-j", "2"]);
    let m = l.metrics();
    for w in 0..2 {
        for name in [
            "lwsd_h2_connections",
            "lwsd_h2_connections_total",
            "lwsd_h2_streams_total",
            "lwsd_h2_websockets_total",
        ] {
            let series = format!("{name}{{worker=\"{w}\"}}");
            assert_eq!(metric(&m, &series), Some(0.0), "{series} in\n{m}");
        }
    }
    for code in lwsd_proto::H2_ERROR_CODES {
        for by in ["peer", "server"] {
            let series = format!("lwsd_h2_streams_reset_total{{by=\"{by}\",code=\"{code}\"}}");
            assert_eq!(metric(&m, &series), Some(0.0), "{series} in\n{m}");
        }
        let series = format!("lwsd_h2_goaway_sent_total{{code=\"{code}\"}}");
        assert_eq!(metric(&m, &series), Some(0.0), "{series} in\n{m}");
    }
    for t in [
        "# TYPE lwsd_h2_connections gauge",
        "# TYPE lwsd_h2_connections_total counter",
        "# TYPE lwsd_h2_streams_reset_total counter",
        "# TYPE lwsd_h2_goaway_sent_total counter",
    ] {
        assert!(m.lines().any(|l| l == t), "missing `{t}` in\n{m}");
    }
}

/// An h2c request with prior knowledge (RFC 9113 section 3.3) counts one HTTP/2
/// connection and one stream.
#[test]
fn h2_prior_knowledge_get_is_counted() {
    let l = Lwsd::start(&["-j", "1"]);
    let out = std::process::Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "--max-time", "10"])
        .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .arg(format!("http://127.0.0.1:{}/", l.port))
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
    for series in [
        "lwsd_h2_connections_total{worker=\"0\"}",
        "lwsd_h2_streams_total{worker=\"0\"}",
    ] {
        let v = wait_metric_at_least(&l, series, 1.0);
        assert!(v.is_some_and(|v| v >= 1.0), "{series}: {v:?}");
    }
}

/// Echoed WebSocket messages count their payload bytes once received (rx) and once
/// sent back (tx); until this was fixed, tx never moved from 0.
#[test]
fn ws_bytes_count_both_directions() {
    use tungstenite::Message;
    let l = Lwsd::start(&["-j", "1", "--ws-default", "lws-echo"]);
    let rx = "lwsd_ws_bytes_total{worker=\"0\",direction=\"rx\"}";
    let tx = "lwsd_ws_bytes_total{worker=\"0\",direction=\"tx\"}";
    let m = l.metrics();
    let (rx0, tx0) = (metric(&m, rx), metric(&m, tx));
    assert_eq!((rx0, tx0), (Some(0.0), Some(0.0)), "{m}");
    let stream = TcpStream::connect(("127.0.0.1", l.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (mut ws, _) =
        tungstenite::client(format!("ws://127.0.0.1:{}/", l.port), stream).expect("handshake");
    let sizes = [1usize, 125, 126, 4000, 70_000];
    for &n in &sizes {
        let msg = Message::binary(vec![b'x'; n]);
        ws.send(msg.clone()).unwrap();
        assert_eq!(ws.read().unwrap(), msg, "echo of {n} bytes");
    }
    let total = sizes.iter().sum::<usize>() as f64;
    assert_eq!(wait_metric(&l, rx, total), Some(total), "rx");
    assert_eq!(wait_metric(&l, tx, total), Some(total), "tx");
    let msgs = "lwsd_ws_messages_total{worker=\"0\",direction=\"tx\"}";
    assert_eq!(metric(&l.metrics(), msgs), Some(sizes.len() as f64));
}

/// The resident-memory figure is the kernel's (VmRSS), in bytes, whatever the page size.
#[test]
fn resident_memory_matches_the_kernel() {
    let l = Lwsd::start(&["-j", "1"]);
    let w = l
        .wait_workers(1, &[], Duration::from_secs(10))
        .expect("one worker")[0];
    // Let a snapshot taken after start-up arrive.
    std::thread::sleep(Duration::from_millis(600));
    let reported = metric(
        &l.metrics(),
        "lwsd_worker_resident_memory_bytes{worker=\"0\"}",
    )
    .expect("rss series");
    let status = std::fs::read_to_string(format!("/proc/{w}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let kernel = kib * 1024.0;
    // An idle worker's RSS moves little between its snapshot and our read.
    assert!(
        (reported - kernel).abs() < kernel * 0.25,
        "reported {reported} B, kernel {kernel} B"
    );
}

/// A second lwsd on a host (the default metrics address already taken) still serves,
/// with a warning; an address given with --metrics-addr that cannot be bound stops lwsd
/// with exit 1 and names it.
#[test]
fn a_taken_metrics_address_stops_lwsd_only_when_given() {
    let default = SocketAddr::from(([127, 0, 0, 1], 9464));
    let _held = match TcpListener::bind(default) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("{default} already taken ({e}): the test's condition holds as it is");
            None
        }
    };
    let port = support::free_port();
    let mut cmd = std::process::Command::new(support::lwsd_bin());
    cmd.args(["-p", &port.to_string(), "-i", "127.0.0.1", "-j", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let warning = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("serving without metrics"))
    });
    // (Lwsd::adopt panics if lwsd exits because the default metrics address was taken.)
    let l = Lwsd::adopt(child, port, None);
    assert_eq!(l.terminate().code(), Some(0));
    let line = warning
        .join()
        .unwrap()
        .expect("a warning about the metrics");
    assert!(line.contains("127.0.0.1:9464"), "{line}");

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap();
    let port = support::free_port();
    let out = std::process::Command::new(support::lwsd_bin())
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-j", "1"])
        .args(["--metrics-addr", &taken.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {taken}")),
        "{err}"
    );
}
