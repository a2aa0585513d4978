//! HTTP/2 attacks on a live lwsd (issue 11 item 5): each test starts lwsd with one worker
//! (`-j 1`, so the attacker and the other clients share it) serving a temp dir with a
//! 4 MiB file and a small one, runs one attack of tests/h2_python/attacks.py against it
//! (which exits 0 only if lwsd answered as the HTTP/2 contract says: GOAWAY
//! ENHANCE_YOUR_CALM for rapid reset, CONTINUATION floods and frame floods; 431 for an
//! HPACK bomb or an oversized header list; RST_STREAM CANCEL / GOAWAY NO_ERROR for a peer
//! that never opens its window; REFUSED_STREAM for the 129th stream; PROTOCOL_ERROR /
//! STREAM_CLOSED / COMPRESSION_ERROR for state violations), and meanwhile checks that
//!
//! - another client keeps being served: a GET of the small file every 50 ms, by turns
//!   over HTTP/1.1 and over HTTP/2 (curl), each bounded by a short timeout, all answered;
//! - the worker's resident memory (VmRSS) grows by less than [`RSS_GROWTH_LIMIT`];
//! - the worker is still the same process (no crash, no restart);
//!
//! and, in a separate assertion, that the `lwsd_h2_goaway_sent_total` (or
//! `lwsd_h2_streams_reset_total`) series of the answer moved.
//!
//! The attacks run one at a time (their memory and latency figures would mix), a few of
//! them over TLS too (ALPN h2). Each prints what lwsd answered; `cargo test --test
//! h2_hostile -- --nocapture` shows it with the memory figures.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{Lwsd, TempDir, collect_lines, wait_child};

/// How much the worker's VmRSS may grow while it is attacked.
const RSS_GROWTH_LIMIT: u64 = 32 << 20;
/// The other client's timeout for one request.
const BYSTANDER_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest an attack may run (each stops writing by 6 s and waits a few more).
const ATTACK_LIMIT: Duration = Duration::from_secs(30);
/// The small file, served to the other client.
const SMALL: &[u8] = b"a small file, fetched while lwsd is under attack\n";
const BIG_LEN: usize = 4 << 20;

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/h2_python/attacks.py")
}

/// One attack at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The document root: `big.bin` (4 MiB) and `small.txt`.
fn docroot() -> TempDir {
    let d = TempDir::new("h2-hostile");
    let big: Vec<u8> = (0..BIG_LEN).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.path().join("big.bin"), big).unwrap();
    std::fs::write(d.path().join("small.txt"), SMALL).unwrap();
    d
}

/// VmRSS of `pid` in bytes, from /proc/PID/status.
fn vm_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// GET /small.txt over HTTP/1.1 on a new connection (plain: a raw socket; TLS: curl).
fn get_h1(port: u16, tls: bool) -> Result<(), String> {
    if tls {
        return curl(port, true, "--http1.1", "1.1");
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("h1 connect: {e}"))?;
    s.set_read_timeout(Some(BYSTANDER_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(BYSTANDER_TIMEOUT)).unwrap();
    s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("h1 write: {e}"))?;
    let mut r = Vec::new();
    s.read_to_end(&mut r).map_err(|e| format!("h1 read: {e}"))?;
    if r.starts_with(b"HTTP/1.1 200 ") && r.ends_with(SMALL) {
        Ok(())
    } else {
        Err(format!(
            "h1: {:?}",
            String::from_utf8_lossy(&r[..r.len().min(200)])
        ))
    }
}

/// GET /small.txt with curl (`mode`: `--http1.1`, `--http2`, `--http2-prior-knowledge`),
/// checking the HTTP version it spoke.
fn curl(port: u16, tls: bool, mode: &str, version: &str) -> Result<(), String> {
    let scheme = if tls { "https" } else { "http" };
    let out = Command::new("curl")
        .args(["-sSk", mode, "--max-time"])
        .arg(BYSTANDER_TIMEOUT.as_secs().to_string())
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("{scheme}://127.0.0.1:{port}/small.txt"))
        .output()
        .map_err(|e| format!("curl: {e} (scripts/install-deps.sh installs it)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("{}\n200 {version}", String::from_utf8_lossy(SMALL));
    if out.status.success() && text == want {
        Ok(())
    } else {
        Err(format!(
            "curl {mode}: {text:?} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What the other client saw.
struct Served {
    ok: u32,
    failures: Vec<String>,
}

/// Fetches /small.txt every 50 ms, by turns over HTTP/1.1 and HTTP/2, until `stop`.
fn bystander(port: u16, tls: bool, stop: Arc<AtomicBool>) -> JoinHandle<Served> {
    std::thread::spawn(move || {
        let mut s = Served {
            ok: 0,
            failures: Vec::new(),
        };
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let r = match (i % 2, tls) {
                (0, _) => get_h1(port, tls),
                (_, false) => curl(port, false, "--http2-prior-knowledge", "2"),
                (_, true) => curl(port, true, "--http2", "2"),
            };
            match r {
                Ok(()) => s.ok += 1,
                Err(e) => s.failures.push(format!("{e} (after {:?})", t.elapsed())),
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    })
}

/// Samples `pid`'s VmRSS every 10 ms until `stop`; the peak lands in `peak`.
fn sampler(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(r) = vm_rss(pid) {
                peak.fetch_max(r, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// A finished attack: lwsd still running (for its metrics), and the script's output.
struct Attacked {
    lwsd: Lwsd,
    output: String,
    /// The answer-counting metrics before the attack.
    before: String,
    _root: TempDir,
}

/// Starts lwsd (`-j 1 -r <docroot>`, `-s` if `tls`, then `extra`), runs `attack` with
/// the other client and the memory sampler going, and asserts what the module doc says.
fn attack(name: &str, tls: bool, extra: &[&str], script_args: &[&str]) -> Attacked {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = docroot();
    let mut args = vec![
        "-j",
        "1",
        "-i",
        "127.0.0.1",
        "-r",
        root.path().to_str().unwrap(),
    ];
    if tls {
        args.push("-s");
    }
    args.extend_from_slice(extra);
    let lwsd = Lwsd::start(&args);
    let workers = lwsd.worker_pids();
    assert_eq!(workers.len(), 1, "one worker: {workers:?}");
    let worker = workers[0];
    // Served before the attack, on both versions (this also settles the worker's memory).
    get_h1(lwsd.port, tls).expect("served over HTTP/1.1 before the attack");
    let h2 = if tls {
        curl(lwsd.port, true, "--http2", "2")
    } else {
        curl(lwsd.port, false, "--http2-prior-knowledge", "2")
    };
    h2.expect("served over HTTP/2 before the attack");
    let before = lwsd.metrics();
    let base = vm_rss(worker).expect("the worker's VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let sampling = sampler(worker, stop.clone(), peak.clone());
    let served = bystander(lwsd.port, tls, stop.clone());

    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .arg(name)
        .args(["--port", &lwsd.port.to_string()])
        .args(script_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if tls {
        cmd.arg("--tls");
    }
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .expect("python3 (scripts/install-deps.sh installs hyperframe and hpack)");
    let (out, out_t) = collect_lines(child.stdout.take().unwrap());
    let (err, err_t) = collect_lines(child.stderr.take().unwrap());
    let status = wait_child(&mut child, ATTACK_LIMIT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let took = t.elapsed();
    let _ = (out_t.join(), err_t.join());
    // The other client goes on a little after the attack, then stops.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let served = served.join().unwrap();
    sampling.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    let output = format!(
        "{}\n{}",
        out.lock().unwrap().join("\n"),
        err.lock().unwrap().join("\n")
    );
    let figures = format!(
        "{name}{}: attack took {took:.2?}; worker VmRSS {:.1} MiB before, peak {:.1} MiB \
         (+{:.1} MiB); the other client: {} answered, {} failed",
        if tls { " over TLS" } else { "" },
        mib(base),
        mib(peak),
        mib(peak.saturating_sub(base)),
        served.ok,
        served.failures.len()
    );
    eprintln!("{output}\n{figures}");
    let status =
        status.unwrap_or_else(|| panic!("{figures}: the attack ran over {ATTACK_LIMIT:?}"));
    assert!(
        status.success(),
        "{figures}: lwsd did not answer as the contract says ({status}):\n{output}"
    );
    assert!(
        served.failures.is_empty(),
        "{figures}: the other client was not served: {:?}",
        served.failures
    );
    assert!(served.ok >= 2, "{figures}: the other client was served");
    assert!(
        peak.saturating_sub(base) < RSS_GROWTH_LIMIT,
        "{figures}: the worker's memory grew by more than {} MiB",
        RSS_GROWTH_LIMIT >> 20
    );
    assert_eq!(
        lwsd.worker_pids(),
        workers,
        "{figures}: the worker is the same process"
    );
    Attacked {
        lwsd,
        output,
        before,
        _root: root,
    }
}

/// The sum of the series of counter `name` whose labels include every `labels` pair
/// (other labels, such as `worker`, summed over).
fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some(x) => x,
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            && let Ok(v) = value.trim().parse::<f64>()
        {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

impl Attacked {
    /// The metric check, kept apart from the attack's: the sum of counter `name` over
    /// the label sets `any` moved (the workers push snapshots every 250 ms, so it is
    /// polled for 3 s).
    fn assert_counted_any<const N: usize>(&self, name: &str, any: &[[(&str, &str); N]]) {
        let sum = |text: &str| {
            any.iter()
                .filter_map(|labels| counter(text, name, labels))
                .reduce(|a, b| a + b)
        };
        let was = sum(&self.before).unwrap_or(0.0);
        let t = Instant::now();
        let now = loop {
            let now = sum(&self.lwsd.metrics());
            if now.is_some_and(|n| n > was) || t.elapsed() > Duration::from_secs(3) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            now.is_some_and(|n| n > was),
            "{name}{any:?}: {was} before the attack, {now:?} after (None: no such series)\n{}",
            self.output
        );
    }

    fn assert_counted<const N: usize>(&self, name: &str, labels: [(&str, &str); N]) {
        self.assert_counted_any(name, &[labels]);
    }

    fn assert_goaway_counted(&self, code: &str) {
        self.assert_goaway_counted_any(&[code]);
    }

    fn assert_goaway_counted_any(&self, codes: &[&str]) {
        let sets: Vec<[(&str, &str); 1]> = codes.iter().map(|c| [("code", *c)]).collect();
        self.assert_counted_any("lwsd_h2_goaway_sent_total", &sets);
    }
}

// ---- rapid reset, CONTINUATION floods, oversized header lists ----

#[test]
fn rapid_reset_gets_enhance_your_calm() {
    attack("rapid-reset", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn rapid_reset_over_tls_gets_enhance_your_calm() {
    attack("rapid-reset", true, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn continuation_flood_gets_enhance_your_calm() {
    attack("continuation-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn continuation_flood_over_tls_gets_enhance_your_calm() {
    attack("continuation-flood", true, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn empty_continuation_flood_gets_enhance_your_calm() {
    attack("continuation-empty", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn field_block_over_64k_gets_enhance_your_calm() {
    attack("continuation-big", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn hpack_bomb_gets_431_and_the_connection_goes_on() {
    attack("hpack-bomb", false, &[], &[]);
}

#[test]
fn hpack_bomb_over_tls_gets_431_and_the_connection_goes_on() {
    attack("hpack-bomb", true, &[], &[]);
}

#[test]
fn oversized_header_list_gets_431_and_the_connection_goes_on() {
    attack("big-headers", false, &[], &[]);
}

// ---- floods of frames that do no work ----

#[test]
fn ping_flood_gets_enhance_your_calm() {
    attack("ping-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn ping_flood_over_tls_gets_enhance_your_calm() {
    attack("ping-flood", true, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn settings_flood_gets_enhance_your_calm() {
    attack("settings-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn empty_data_flood_gets_enhance_your_calm() {
    attack("empty-data-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn window_update_flood_gets_enhance_your_calm() {
    attack("window-update-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

#[test]
fn priority_flood_gets_enhance_your_calm() {
    attack("priority-flood", false, &[], &[]).assert_goaway_counted("ENHANCE_YOUR_CALM");
}

// ---- a peer that never opens its window ----

fn stream_window_stall() -> Attacked {
    attack(
        "window-stall-stream",
        false,
        &["--send-timeout", "2"],
        &["--send-timeout", "2"],
    )
}

#[test]
fn stream_window_never_opened_gets_cancel_after_the_send_timeout() {
    stream_window_stall();
}

/// The same attack's RST_STREAM CANCEL in `lwsd_h2_streams_reset_total` (the reset
/// leaves the connection idle: releasing its bookkeeping must not drop the count).
#[test]
fn stream_window_never_opened_is_counted() {
    stream_window_stall().assert_counted(
        "lwsd_h2_streams_reset_total",
        [("by", "server"), ("code", "CANCEL")],
    );
}

#[test]
fn connection_window_never_opened_gets_goaway_after_the_send_timeout() {
    attack(
        "window-stall-conn",
        false,
        &["--send-timeout", "2"],
        &["--send-timeout", "2"],
    )
    .assert_goaway_counted("NO_ERROR");
}

#[test]
fn connection_window_never_opened_over_tls_gets_goaway() {
    attack(
        "window-stall-conn",
        true,
        &["--send-timeout", "2"],
        &["--send-timeout", "2"],
    )
    .assert_goaway_counted("NO_ERROR");
}

// ---- stream limits and states ----

#[test]
fn stream_129_is_refused() {
    attack("too-many-streams", false, &[], &[]).assert_counted(
        "lwsd_h2_streams_reset_total",
        [("by", "server"), ("code", "REFUSED_STREAM")],
    );
}

/// HEADERS again on stream 1 once it closed with END_STREAM both ways: a connection
/// error (the contract: GOAWAY PROTOCOL_ERROR, or STREAM_CLOSED per RFC 9113 5.1;
/// h2spec http2/5.1/12 "closed: Sends a HEADERS frame" wants GOAWAY STREAM_CLOSED).
#[test]
fn stream_id_reuse_gets_a_connection_error() {
    attack("stream-id-reuse", false, &[], &[])
        .assert_goaway_counted_any(&["PROTOCOL_ERROR", "STREAM_CLOSED"]);
}

/// HEADERS on stream 3 after stream 5 (RFC 9113 5.1.1): GOAWAY PROTOCOL_ERROR.
#[test]
fn lower_stream_id_gets_protocol_error() {
    attack("stream-id-lower", false, &[], &[]).assert_goaway_counted("PROTOCOL_ERROR");
}

#[test]
fn state_violations_get_their_errors() {
    let a = attack("state-violations", false, &[], &[]);
    a.assert_goaway_counted("PROTOCOL_ERROR");
    a.assert_goaway_counted("COMPRESSION_ERROR");
}

/// The metric reader itself, on a sample exposition (runs without the carrier).
#[test]
fn counter_sums_the_matching_series() {
    let text = "# TYPE lwsd_h2_goaway_sent_total counter\n\
        lwsd_h2_goaway_sent_total{code=\"ENHANCE_YOUR_CALM\",worker=\"0\"} 2\n\
        lwsd_h2_goaway_sent_total{code=\"ENHANCE_YOUR_CALM\",worker=\"1\"} 3\n\
        lwsd_h2_goaway_sent_total{code=\"NO_ERROR\",worker=\"0\"} 7\n\
        lwsd_h2_goaway_sent_total_x{code=\"NO_ERROR\"} 9\n";
    let c = |code| counter(text, "lwsd_h2_goaway_sent_total", &[("code", code)]);
    assert_eq!(c("ENHANCE_YOUR_CALM"), Some(5.0));
    assert_eq!(c("NO_ERROR"), Some(7.0));
    assert_eq!(c("PROTOCOL_ERROR"), None);
    assert_eq!(counter(text, "lwsd_h2_goaway_sent_total", &[]), Some(12.0));
}
