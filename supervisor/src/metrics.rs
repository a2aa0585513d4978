//! The Prometheus endpoint (DESIGN.md section 7).
//!
//! The ring thread owns the numbers: it sets gauges and counters from each worker's
//! latest [`WorkerStats`] and from its own handoff counts. A small blocking HTTP server
//! on its own thread renders them on `GET /metrics`; it reads only this recorder (atomic
//! values), so a scrape never waits on the ring or on a worker.
//!
//! Per-worker series carry a `worker` label. Totals are left to PromQL
//! (`sum without (worker) (lwsd_connections_active)`) instead of exporting an unlabeled
//! series of the same name, which would make every `sum()` count twice.
//!
//! Counters stay monotonic across worker restarts: the supervisor adds the last snapshot
//! of each dead incarnation into a per-index base, and exports base + current. The HTTP/2
//! reset and GOAWAY counters are summed over all workers instead (their labels are
//! already many): each snapshot adds what it grew by since the previous one of the same
//! process, so they stay monotonic across restarts too.
//! CPU and loop-stall time are floats in seconds and exported as gauges
//! (`lwsd_worker_cpu_seconds`), because the `metrics` crate's counters are integers.
//!
//! The HTTP server is hand-written (one request per connection, bounded read with a
//! timeout) because metrics-exporter-prometheus' own listener needs tokio + hyper, a
//! runtime the supervisor has no other use for.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use lwsd_proto::{H2_CODES, H2_ERROR_CODES, WorkerStats};
use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Largest request head the endpoint reads: a scraper's GET is a few hundred bytes;
/// anything longer is not a scraper and is answered 400 without reading further.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long a scrape connection may take to send its request: bounds a stalled client
/// so the single endpoint thread cannot be held by it for long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Every series the supervisor exports, with its HELP text.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "lwsd_connections_accepted_total",
        "Connections a worker took over from the supervisor.",
    ),
    (
        "lwsd_connections_active",
        "Connections currently open in a worker.",
    ),
    (
        "lwsd_connections_closed_total",
        "Connections a worker closed.",
    ),
    (
        "lwsd_http_requests_total",
        "HTTP responses by status class (code_class 1xx..5xx).",
    ),
    (
        "lwsd_ws_connections_active",
        "WebSocket connections currently open in a worker.",
    ),
    (
        "lwsd_ws_messages_total",
        "WebSocket messages by direction (rx received, tx sent).",
    ),
    (
        "lwsd_ws_bytes_total",
        "WebSocket payload bytes by direction (rx received, tx sent).",
    ),
    (
        "lwsd_tls_handshakes_total",
        "TLS handshakes a worker completed.",
    ),
    (
        "lwsd_tls_handshake_failures_total",
        "TLS connections that failed, by reason (bad_record, no_shared_cipher, protocol_version, no_certificate, bad_certificate, plain_http, timeout, eof, ...).",
    ),
    (
        "lwsd_h2_connections",
        "HTTP/2 connections currently open in a worker.",
    ),
    (
        "lwsd_h2_connections_total",
        "HTTP/2 connections a worker started (prior knowledge, Upgrade: h2c, ALPN h2).",
    ),
    (
        "lwsd_h2_streams_total",
        "HTTP/2 request streams a worker opened.",
    ),
    (
        "lwsd_h2_websockets_total",
        "WebSockets over HTTP/2 (RFC 8441 extended CONNECT) a worker accepted.",
    ),
    (
        "lwsd_h2_streams_reset_total",
        "HTTP/2 streams reset (RST_STREAM) over all workers, by who reset them (peer: received, server: sent) and error code (RFC 9113 section 7 names, unknown for others).",
    ),
    (
        "lwsd_h2_goaway_sent_total",
        "HTTP/2 GOAWAY frames sent over all workers, by error code (RFC 9113 section 7 names, unknown for others).",
    ),
    (
        "lwsd_worker_loop_stall_seconds",
        "Cumulative time a worker's event loop ran late, since the worker started.",
    ),
    (
        "lwsd_worker_cpu_seconds",
        "Cumulative user+system CPU time of the worker process, since it started.",
    ),
    (
        "lwsd_worker_resident_memory_bytes",
        "Resident set size of the worker process.",
    ),
    (
        "lwsd_worker_restarts_total",
        "Times the supervisor restarted a worker that exited unexpectedly.",
    ),
    ("lwsd_workers", "Worker processes currently running."),
    (
        "lwsd_handoffs_total",
        "Accepted connections handed to a worker (MSG_RING or SCM_RIGHTS).",
    ),
    (
        "lwsd_handoff_failures_total",
        "Accepted connections closed because no worker could take them.",
    ),
    (
        "lwsd_connections_refused_total",
        "Connections the supervisor answered 503 and closed, by reason (workers_full: every worker at the connections its open-files limit allows).",
    ),
    (
        "lwsd_accept_errors_total",
        "Accepts that failed in the supervisor (EMFILE, ENFILE: out of descriptors); the connection waits in the listen backlog.",
    ),
    (
        "lwsd_connections_lost_total",
        "Connections a worker could not take because it ran out of descriptors receiving them (reason emfile); the kernel closed them.",
    ),
    (
        "lwsd_bus_messages_relayed_total",
        "Bus messages the supervisor delivered to a worker.",
    ),
    (
        "lwsd_bus_messages_dropped_total",
        "Bus messages dropped because a worker's queue was full or invalid.",
    ),
];

/// Handles of one worker index's series.
pub struct WorkerSeries {
    accepted: Counter,
    active: Gauge,
    closed: Counter,
    http: [Counter; 5],
    ws_active: Gauge,
    ws_msgs_rx: Counter,
    ws_msgs_tx: Counter,
    ws_bytes_rx: Counter,
    ws_bytes_tx: Counter,
    tls_handshakes: Counter,
    lost_emfile: Counter,
    tls_failures: [Counter; lwsd_proto::TLS_FAILURE_REASONS.len()],
    h2_active: Gauge,
    h2_conns: Counter,
    h2_streams: Counter,
    h2_websockets: Counter,
    h2_sums: H2Sums,
    stall: Gauge,
    cpu: Gauge,
    rss: Gauge,
    pub restarts: Counter,
    /// Counters of previous processes at this index (their last snapshot; the h2 reset
    /// and GOAWAY arrays stay zero here, [`H2Sums`] has them).
    base: WorkerStats,
    current: WorkerStats,
}

/// The HTTP/2 reset and GOAWAY counters by [`H2_ERROR_CODES`] index, one set shared by
/// every worker's series (the handles point at the same values).
#[derive(Clone)]
struct H2Sums {
    /// `lwsd_h2_streams_reset_total{by="peer"}`.
    rst_rx: [Counter; H2_CODES],
    /// `lwsd_h2_streams_reset_total{by="server"}`.
    rst_tx: [Counter; H2_CODES],
    /// `lwsd_h2_goaway_sent_total`.
    goaway_tx: [Counter; H2_CODES],
}

/// The supervisor's metrics: the recorder, its render handle and the series handles.
pub struct Metrics {
    handle: PrometheusHandle,
    pub workers: Vec<WorkerSeries>,
    pub live_workers: Gauge,
    pub handoffs: Counter,
    pub handoff_failures: Counter,
    /// `lwsd_connections_refused_total{reason="workers_full"}`.
    pub refused_workers_full: Counter,
    /// `lwsd_accept_errors_total`.
    pub accept_errors: Counter,
    pub bus_relayed: Counter,
    pub bus_dropped: Counter,
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    /// Registers every series for `workers` worker indexes.
    pub fn new(workers: usize) -> Metrics {
        let rec: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
        for (name, help) in DESCRIPTIONS {
            let n = KeyName::from_const_str(name);
            let h = SharedString::const_str(help);
            if name.ends_with("_total") {
                rec.describe_counter(n, None, h);
            } else {
                rec.describe_gauge(n, None, h);
            }
        }
        let c = |name, labels: &[(&'static str, String)]| {
            rec.register_counter(&key(name, labels), &METADATA)
        };
        let g = |name, labels: &[(&'static str, String)]| {
            rec.register_gauge(&key(name, labels), &METADATA)
        };
        let h2_code = |name, by: Option<&str>| -> [Counter; H2_CODES] {
            std::array::from_fn(|k| {
                let code = ("code", H2_ERROR_CODES[k].to_owned());
                match by {
                    Some(by) => c(name, &[("by", by.to_owned()), code]),
                    None => c(name, &[code]),
                }
            })
        };
        let h2_sums = H2Sums {
            rst_rx: h2_code("lwsd_h2_streams_reset_total", Some("peer")),
            rst_tx: h2_code("lwsd_h2_streams_reset_total", Some("server")),
            goaway_tx: h2_code("lwsd_h2_goaway_sent_total", None),
        };
        for h in h2_sums
            .rst_rx
            .iter()
            .chain(&h2_sums.rst_tx)
            .chain(&h2_sums.goaway_tx)
        {
            h.absolute(0);
        }
        let series = (0..workers)
            .map(|i| {
                let w = [("worker", i.to_string())];
                let dir = |d: &str| [("worker", i.to_string()), ("direction", d.to_owned())];
                let class = |k: usize| {
                    [
                        ("worker", i.to_string()),
                        ("code_class", format!("{}xx", k + 1)),
                    ]
                };
                WorkerSeries {
                    accepted: c("lwsd_connections_accepted_total", &w),
                    active: g("lwsd_connections_active", &w),
                    closed: c("lwsd_connections_closed_total", &w),
                    http: std::array::from_fn(|k| c("lwsd_http_requests_total", &class(k))),
                    ws_active: g("lwsd_ws_connections_active", &w),
                    ws_msgs_rx: c("lwsd_ws_messages_total", &dir("rx")),
                    ws_msgs_tx: c("lwsd_ws_messages_total", &dir("tx")),
                    ws_bytes_rx: c("lwsd_ws_bytes_total", &dir("rx")),
                    ws_bytes_tx: c("lwsd_ws_bytes_total", &dir("tx")),
                    tls_handshakes: c("lwsd_tls_handshakes_total", &w),
                    lost_emfile: c(
                        "lwsd_connections_lost_total",
                        &[("worker", i.to_string()), ("reason", "emfile".to_owned())],
                    ),
                    tls_failures: std::array::from_fn(|k| {
                        c(
                            "lwsd_tls_handshake_failures_total",
                            &[
                                ("worker", i.to_string()),
                                ("reason", lwsd_proto::TLS_FAILURE_REASONS[k].to_owned()),
                            ],
                        )
                    }),
                    h2_active: g("lwsd_h2_connections", &w),
                    h2_conns: c("lwsd_h2_connections_total", &w),
                    h2_streams: c("lwsd_h2_streams_total", &w),
                    h2_websockets: c("lwsd_h2_websockets_total", &w),
                    h2_sums: h2_sums.clone(),
                    stall: g("lwsd_worker_loop_stall_seconds", &w),
                    cpu: g("lwsd_worker_cpu_seconds", &w),
                    rss: g("lwsd_worker_resident_memory_bytes", &w),
                    restarts: c("lwsd_worker_restarts_total", &w),
                    base: WorkerStats::default(),
                    current: WorkerStats::default(),
                }
            })
            .collect();
        let m = Metrics {
            handle: rec.handle(),
            workers: series,
            live_workers: g("lwsd_workers", &[]),
            handoffs: c("lwsd_handoffs_total", &[]),
            handoff_failures: c("lwsd_handoff_failures_total", &[]),
            refused_workers_full: c(
                "lwsd_connections_refused_total",
                &[("reason", "workers_full".to_owned())],
            ),
            accept_errors: c("lwsd_accept_errors_total", &[]),
            bus_relayed: c("lwsd_bus_messages_relayed_total", &[]),
            bus_dropped: c("lwsd_bus_messages_dropped_total", &[]),
        };
        // Counters are created at zero so a restart count of 0 is visible, not absent.
        for w in &m.workers {
            w.restarts.absolute(0);
            w.publish();
        }
        m
    }

    /// A render handle for the endpoint thread.
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }
}

impl WorkerSeries {
    /// A new snapshot from the live process at this index.
    pub fn update(&mut self, s: &WorkerStats) {
        // The summed series take this process's growth since its previous snapshot (a
        // new process starts from the zeroed `current` left by `process_exited`).
        let c = &self.current;
        for (sums, new, old) in [
            (&self.h2_sums.rst_rx, &s.h2_rst_rx, &c.h2_rst_rx),
            (&self.h2_sums.rst_tx, &s.h2_rst_tx, &c.h2_rst_tx),
            (&self.h2_sums.goaway_tx, &s.h2_goaway_tx, &c.h2_goaway_tx),
        ] {
            for ((h, new), old) in sums.iter().zip(new).zip(old) {
                h.increment(new.saturating_sub(*old));
            }
        }
        self.current = *s;
        self.publish();
    }

    /// The process at this index exited: fold its counters into the base and zero the
    /// gauges until its successor reports.
    pub fn process_exited(&mut self) {
        let c = self.current;
        let b = &mut self.base;
        b.accepted_total = b.accepted_total.saturating_add(c.accepted_total);
        b.closed_total = b.closed_total.saturating_add(c.closed_total);
        for (b, c) in b.http_requests_total.iter_mut().zip(c.http_requests_total) {
            *b = b.saturating_add(c);
        }
        b.ws_msgs_rx = b.ws_msgs_rx.saturating_add(c.ws_msgs_rx);
        b.ws_msgs_tx = b.ws_msgs_tx.saturating_add(c.ws_msgs_tx);
        b.ws_bytes_rx = b.ws_bytes_rx.saturating_add(c.ws_bytes_rx);
        b.ws_bytes_tx = b.ws_bytes_tx.saturating_add(c.ws_bytes_tx);
        b.tls_handshakes = b.tls_handshakes.saturating_add(c.tls_handshakes);
        b.conns_lost_emfile = b.conns_lost_emfile.saturating_add(c.conns_lost_emfile);
        for (b, c) in b.tls_failures.iter_mut().zip(c.tls_failures) {
            *b = b.saturating_add(c);
        }
        b.h2_conns_total = b.h2_conns_total.saturating_add(c.h2_conns_total);
        b.h2_streams_total = b.h2_streams_total.saturating_add(c.h2_streams_total);
        b.h2_websockets_total = b.h2_websockets_total.saturating_add(c.h2_websockets_total);
        b.loop_stall_ns = b.loop_stall_ns.saturating_add(c.loop_stall_ns);
        b.cpu_ns = b.cpu_ns.saturating_add(c.cpu_ns);
        self.current = WorkerStats::default();
        self.publish();
    }

    /// The live process's last snapshot.
    pub fn current(&self) -> &WorkerStats {
        &self.current
    }

    fn publish(&self) {
        let (b, c) = (&self.base, &self.current);
        self.accepted
            .absolute(b.accepted_total.saturating_add(c.accepted_total));
        self.closed
            .absolute(b.closed_total.saturating_add(c.closed_total));
        for ((h, b), c) in self
            .http
            .iter()
            .zip(b.http_requests_total)
            .zip(c.http_requests_total)
        {
            h.absolute(b.saturating_add(c));
        }
        self.ws_msgs_rx
            .absolute(b.ws_msgs_rx.saturating_add(c.ws_msgs_rx));
        self.ws_msgs_tx
            .absolute(b.ws_msgs_tx.saturating_add(c.ws_msgs_tx));
        self.ws_bytes_rx
            .absolute(b.ws_bytes_rx.saturating_add(c.ws_bytes_rx));
        self.ws_bytes_tx
            .absolute(b.ws_bytes_tx.saturating_add(c.ws_bytes_tx));
        self.tls_handshakes
            .absolute(b.tls_handshakes.saturating_add(c.tls_handshakes));
        self.lost_emfile
            .absolute(b.conns_lost_emfile.saturating_add(c.conns_lost_emfile));
        for ((h, b), c) in self
            .tls_failures
            .iter()
            .zip(b.tls_failures)
            .zip(c.tls_failures)
        {
            h.absolute(b.saturating_add(c));
        }
        self.h2_conns
            .absolute(b.h2_conns_total.saturating_add(c.h2_conns_total));
        self.h2_streams
            .absolute(b.h2_streams_total.saturating_add(c.h2_streams_total));
        self.h2_websockets
            .absolute(b.h2_websockets_total.saturating_add(c.h2_websockets_total));
        self.active.set(f64::from(c.live_conns));
        self.h2_active.set(f64::from(c.h2_conns));
        self.ws_active.set(f64::from(c.ws_conns));
        let secs = |ns: u64| ns as f64 / 1e9;
        self.stall
            .set(secs(b.loop_stall_ns.saturating_add(c.loop_stall_ns)));
        self.cpu.set(secs(b.cpu_ns.saturating_add(c.cpu_ns)));
        self.rss.set(c.rss_bytes as f64);
    }
}

/// Binds the endpoint (so a bad address fails the start, exit 1) and serves it on a
/// thread of its own for the life of the process.
pub fn serve(addr: SocketAddr, handle: PrometheusHandle) -> io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let local = l.local_addr()?;
    std::thread::Builder::new()
        .name("lwsd-metrics".into())
        .spawn(move || {
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        if let Err(e) = answer(s, &handle) {
                            crate::log!(crate::log::INFO, "metrics request: {e}");
                        }
                    }
                    // EMFILE and friends: back off instead of spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(local)
}

/// Answers one request on `s` and closes it.
fn answer(mut s: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = [0u8; MAX_REQUEST_HEAD];
    let mut n = 0;
    let complete = loop {
        if head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break true;
        }
        if n == head.len() {
            break false;
        }
        match s.read(&mut head[n..])? {
            0 => break false,
            k => n += k,
        }
    };
    let (status, ctype, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_owned())
    } else {
        route(&head[..n], handle)
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(resp.as_bytes())?;
    s.write_all(body.as_bytes())?;
    Ok(())
}

/// RFC 9112 section 3: request-line = method SP request-target SP HTTP-version.
fn route(head: &[u8], handle: &PrometheusHandle) -> (&'static str, &'static str, String) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or(t));
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn series_and_monotonic_counters_across_restarts() {
        let mut m = Metrics::new(2);
        let addr = serve("127.0.0.1:0".parse().unwrap(), m.handle()).unwrap();
        let s = WorkerStats {
            live_conns: 3,
            accepted_total: 10,
            closed_total: 7,
            http_requests_total: [0, 5, 0, 1, 0],
            cpu_ns: 1_500_000_000,
            ..WorkerStats::default()
        };
        m.workers[1].update(&s);
        m.workers[1].process_exited();
        m.workers[1].restarts.increment(1);
        m.workers[1].update(&WorkerStats {
            accepted_total: 2,
            live_conns: 2,
            ..WorkerStats::default()
        });
        m.live_workers.set(2.0);
        let body = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
        assert!(body.contains("text/plain; version=0.0.4"));
        for want in [
            "lwsd_connections_accepted_total{worker=\"1\"} 12",
            "lwsd_connections_active{worker=\"1\"} 2",
            "lwsd_connections_closed_total{worker=\"1\"} 7",
            "lwsd_http_requests_total{worker=\"1\",code_class=\"2xx\"} 5",
            "lwsd_worker_restarts_total{worker=\"1\"} 1",
            "lwsd_worker_restarts_total{worker=\"0\"} 0",
            "lwsd_worker_cpu_seconds{worker=\"1\"} 1.5",
            "lwsd_workers 2",
            "# HELP lwsd_worker_restarts_total",
            "# TYPE lwsd_connections_accepted_total counter",
        ] {
            assert!(body.contains(want), "missing `{want}` in\n{body}");
        }
    }

    /// The HTTP/2 families, exactly: every series present from the start (0 until
    /// counted), per-worker ones carried over a restart as base + current, the reset and
    /// GOAWAY counters summed over workers and incarnations without counting a snapshot
    /// twice.
    #[test]
    fn h2_series_exact() {
        let code = |name: &str| H2_ERROR_CODES.iter().position(|c| *c == name).unwrap();
        let h2_lines = |m: &Metrics| {
            let mut v: Vec<String> = m
                .handle
                .render()
                .lines()
                .filter(|l| l.contains(" lwsd_h2_") || l.starts_with("lwsd_h2_"))
                .filter(|l| !l.starts_with("# HELP"))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        let expected = |per_worker: [[u64; 4]; 2],
                        rst_rx: &[(&str, u64)],
                        rst_tx: &[(&str, u64)],
                        goaway: &[(&str, u64)]| {
            let mut v = vec![
                "# TYPE lwsd_h2_connections gauge".to_owned(),
                "# TYPE lwsd_h2_connections_total counter".to_owned(),
                "# TYPE lwsd_h2_goaway_sent_total counter".to_owned(),
                "# TYPE lwsd_h2_streams_reset_total counter".to_owned(),
                "# TYPE lwsd_h2_streams_total counter".to_owned(),
                "# TYPE lwsd_h2_websockets_total counter".to_owned(),
            ];
            for (w, vals) in per_worker.iter().enumerate() {
                for (name, val) in [
                    "lwsd_h2_connections",
                    "lwsd_h2_connections_total",
                    "lwsd_h2_streams_total",
                    "lwsd_h2_websockets_total",
                ]
                .iter()
                .zip(vals)
                {
                    v.push(format!("{name}{{worker=\"{w}\"}} {val}"));
                }
            }
            let get = |set: &[(&str, u64)], c: &str| {
                set.iter().find(|(n, _)| *n == c).map_or(0, |(_, v)| *v)
            };
            for c in H2_ERROR_CODES {
                for (by, set) in [("peer", rst_rx), ("server", rst_tx)] {
                    v.push(format!(
                        "lwsd_h2_streams_reset_total{{by=\"{by}\",code=\"{c}\"}} {}",
                        get(set, c)
                    ));
                }
                v.push(format!(
                    "lwsd_h2_goaway_sent_total{{code=\"{c}\"}} {}",
                    get(goaway, c)
                ));
            }
            v.sort();
            v
        };

        let mut m = Metrics::new(2);
        // Before any snapshot: every series, at 0.
        assert_eq!(h2_lines(&m), expected([[0; 4]; 2], &[], &[], &[]));
        for name in [
            "lwsd_h2_connections",
            "lwsd_h2_streams_reset_total",
            "lwsd_h2_goaway_sent_total",
        ] {
            assert!(m.handle.render().contains(&format!("# HELP {name} ")));
        }

        let mut s0 = WorkerStats {
            h2_conns: 2,
            h2_conns_total: 5,
            h2_streams_total: 9,
            h2_websockets_total: 1,
            ..WorkerStats::default()
        };
        s0.h2_rst_rx[code("CANCEL")] = 3;
        s0.h2_rst_tx[code("REFUSED_STREAM")] = 1;
        s0.h2_goaway_tx[code("ENHANCE_YOUR_CALM")] = 1;
        m.workers[0].update(&s0);
        // The same snapshot again adds nothing.
        m.workers[0].update(&s0);

        let mut s1 = WorkerStats {
            h2_conns: 1,
            h2_conns_total: 4,
            h2_streams_total: 6,
            ..WorkerStats::default()
        };
        s1.h2_rst_rx[code("CANCEL")] = 2;
        s1.h2_rst_rx[code("unknown")] = 1;
        s1.h2_goaway_tx[code("NO_ERROR")] = 3;
        m.workers[1].update(&s1);
        s1.h2_rst_rx[code("CANCEL")] = 4;
        s1.h2_goaway_tx[code("NO_ERROR")] = 4;
        m.workers[1].update(&s1);
        assert_eq!(
            h2_lines(&m),
            expected(
                [[2, 5, 9, 1], [1, 4, 6, 0]],
                &[("CANCEL", 7), ("unknown", 1)],
                &[("REFUSED_STREAM", 1)],
                &[("NO_ERROR", 4), ("ENHANCE_YOUR_CALM", 1)],
            )
        );

        // Worker 1 dies and its successor reports from zero: the gauge follows the new
        // process, the counters keep what the old one counted.
        m.workers[1].process_exited();
        let mut s1 = WorkerStats {
            h2_conns_total: 1,
            h2_streams_total: 2,
            h2_websockets_total: 2,
            ..WorkerStats::default()
        };
        s1.h2_rst_rx[code("CANCEL")] = 1;
        s1.h2_rst_tx[code("CANCEL")] = 2;
        s1.h2_goaway_tx[code("NO_ERROR")] = 1;
        m.workers[1].update(&s1);
        assert_eq!(
            h2_lines(&m),
            expected(
                [[2, 5, 9, 1], [0, 5, 8, 2]],
                &[("CANCEL", 8), ("unknown", 1)],
                &[("REFUSED_STREAM", 1), ("CANCEL", 2)],
                &[("NO_ERROR", 5), ("ENHANCE_YOUR_CALM", 1)],
            )
        );
    }

    #[test]
    fn other_paths_and_bad_requests() {
        let m = Metrics::new(1);
        let addr = serve("127.0.0.1:0".parse().unwrap(), m.handle()).unwrap();
        assert!(get(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        // A head that never ends within the limit is refused without reading on.
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST_HEAD + 100, b'a');
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&big);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }
}
