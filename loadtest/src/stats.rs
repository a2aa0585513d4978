//! Counters and latency histograms, per thread, merged at the end; the human summary
//! and the JSON figures.
//!
//! Latencies are recorded in microseconds in an HDR histogram (hdrhistogram crate: fixed
//! memory, 3 significant digits, merge by addition) from 1 µs to [`MAX_LATENCY_US`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Largest latency a histogram records: 10 minutes, longer than any run is allowed to
/// last; larger values are clamped to it (and so still count in `max`).
pub const MAX_LATENCY_US: u64 = 600_000_000;
/// Significant digits kept: 3 gives 0.1 % resolution in about 200 KiB per histogram.
const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

/// The usual quantiles of a [`Hist`], in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Hist {
    pub fn new() -> Hist {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5), so this cannot fail.
        Hist(
            Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds")),
        )
    }

    /// Record one latency; values are clamped into [1, MAX_LATENCY_US].
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> Summary {
        let h = &self.0;
        Summary {
            count: h.len(),
            min: if h.is_empty() { 0 } else { h.min() },
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count, "min_us": self.min, "mean_us": (self.mean * 10.0).round() / 10.0,
            "p50_us": self.p50, "p90_us": self.p90, "p99_us": self.p99,
            "p999_us": self.p999, "max_us": self.max,
        })
    }

    /// One line: `p50 1.2ms  p90 ...`.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
            fmt_us(self.p50),
            fmt_us(self.p90),
            fmt_us(self.p99),
            fmt_us(self.p999),
            fmt_us(self.max),
            self.count
        )
    }
}

/// `850µs`, `1.25ms`, `3.20s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// Everything one thread counted. Connections, messages and payload bytes; latency
/// histograms; errors by kind.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// TCP connect() to connection established.
    pub connect: Hist,
    /// TCP connect() to the 101 validated (WebSocket) — the user-visible connect time.
    pub handshake: Hist,
    /// Own message sent to own message received back (echo / mirror round trip).
    pub rtt: Hist,
    /// Any of our stamped messages: sent (by any connection) to received here.
    pub delivery: Hist,
    /// HTTP: request written to response complete.
    pub request: Hist,
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub msgs_sent: u64,
    pub bytes_sent: u64,
    pub msgs_recv: u64,
    pub bytes_recv: u64,
    /// Messages received without our stamp (a server's own, or cut/merged ones).
    pub unstamped: u64,
    /// Stamped messages from a sender whose sequence number did not advance
    /// (duplicated or reordered by the server).
    pub out_of_order: u64,
    /// Sends skipped because the connection's unsent output was over its bound.
    pub sends_skipped: u64,
    /// Closing handshakes completed at the end of the run.
    pub clean_closes: u64,
    /// HTTP: responses by status code.
    pub status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, o: &Stats) {
        self.connect.merge(&o.connect);
        self.handshake.merge(&o.handshake);
        self.rtt.merge(&o.rtt);
        self.delivery.merge(&o.delivery);
        self.request.merge(&o.request);
        self.attempted += o.attempted;
        self.established += o.established;
        self.failed += o.failed;
        self.msgs_sent += o.msgs_sent;
        self.bytes_sent += o.bytes_sent;
        self.msgs_recv += o.msgs_recv;
        self.bytes_recv += o.bytes_recv;
        self.sends_skipped += o.sends_skipped;
        self.unstamped += o.unstamped;
        self.out_of_order += o.out_of_order;
        self.clean_closes += o.clean_closes;
        for (k, v) in &o.status {
            *self.status.entry(*k).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// The final figures of a run: the merged stats plus the run's timing.
#[derive(Debug, Clone)]
pub struct Report {
    pub mode: &'static str,
    pub target: String,
    pub stats: Stats,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
    /// Seconds over which the message/request rates are computed (the send phase for
    /// fanout, the whole run otherwise).
    pub rate_window_s: f64,
    /// Deliveries expected in fan-out: messages sent times receiving connections.
    pub expected_deliveries: Option<u64>,
    /// The options of the run, for the JSON file.
    pub config: Value,
}

impl Report {
    fn per_sec(&self, n: u64) -> f64 {
        if self.rate_window_s > 0.0 {
            n as f64 / self.rate_window_s
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let mut v = json!({
            "mode": self.mode,
            "target": self.target,
            "config": self.config,
            "elapsed_s": self.elapsed_s,
            "rate_window_s": self.rate_window_s,
            "connections": {
                "attempted": s.attempted, "established": s.established, "failed": s.failed,
                "clean_closes": s.clean_closes,
            },
            "messages": {
                "sent": s.msgs_sent, "sent_bytes": s.bytes_sent,
                "received": s.msgs_recv, "received_bytes": s.bytes_recv,
                "received_per_s": self.per_sec(s.msgs_recv),
                "sent_per_s": self.per_sec(s.msgs_sent),
                "sends_skipped": s.sends_skipped,
                "unstamped": s.unstamped,
                "out_of_order": s.out_of_order,
            },
            "latency": {
                "connect": s.connect.summary().to_json(),
                "handshake": s.handshake.summary().to_json(),
                "rtt": s.rtt.summary().to_json(),
                "delivery": s.delivery.summary().to_json(),
                "request": s.request.summary().to_json(),
            },
            "errors": s.errors,
            "error_count": s.error_count(),
        });
        if let Some(e) = self.expected_deliveries {
            v["messages"]["expected_deliveries"] = json!(e);
        }
        if !s.status.is_empty() {
            let st: BTreeMap<String, u64> =
                s.status.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            v["http_status"] = json!(st);
            v["requests_per_s"] = json!(self.per_sec(s.status.values().sum()));
        }
        v
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let s = &self.stats;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "lwsd-load {} {}: {:.2} s",
            self.mode, self.target, self.elapsed_s
        );
        let _ = write!(
            o,
            "  connections: {} attempted, {} established, {} failed",
            s.attempted, s.established, s.failed
        );
        if self.mode == "http" {
            let _ = writeln!(o);
        } else {
            let _ = writeln!(o, ", {} closed cleanly", s.clean_closes);
        }
        for (name, h) in [
            ("tcp connect", &s.connect),
            ("ws handshake", &s.handshake),
            ("round trip", &s.rtt),
            ("delivery", &s.delivery),
            ("request", &s.request),
        ] {
            if h.count() > 0 {
                let _ = writeln!(o, "  {name:<13} {}", h.summary().line());
            }
        }
        if self.mode != "http" {
            let _ = writeln!(
                o,
                "  messages: sent {} ({} B), received {} ({} B), {:.0} received/s over {:.2} s",
                s.msgs_sent,
                s.bytes_sent,
                s.msgs_recv,
                s.bytes_recv,
                self.per_sec(s.msgs_recv),
                self.rate_window_s
            );
        }
        if let Some(e) = self.expected_deliveries {
            let pct = if e > 0 {
                100.0 * s.msgs_recv as f64 / e as f64
            } else {
                0.0
            };
            let _ = writeln!(
                o,
                "  deliveries: {} of {e} expected ({pct:.2} %)",
                s.msgs_recv
            );
        }
        if s.unstamped > 0 || s.out_of_order > 0 {
            let _ = writeln!(
                o,
                "  received without our stamp: {}, out of sequence: {}",
                s.unstamped, s.out_of_order
            );
        }
        if s.sends_skipped > 0 {
            let _ = writeln!(o, "  sends skipped (output backlog): {}", s.sends_skipped);
        }
        if !s.status.is_empty() {
            let n: u64 = s.status.values().sum();
            let _ = writeln!(
                o,
                "  responses: {n}, {:.0}/s, read {} B; status {:?}",
                self.per_sec(n),
                s.bytes_recv,
                s.status
            );
        }
        if s.errors.is_empty() {
            let _ = writeln!(o, "  errors: none");
        } else {
            let _ = writeln!(o, "  errors: {}", s.error_count());
            for (k, v) in &s.errors {
                let _ = writeln!(o, "    {v:>8}  {k}");
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_summary() {
        let mut h = Hist::new();
        assert_eq!(h.summary().count, 0);
        assert_eq!(h.summary().line(), "no samples");
        for us in 1..=1000 {
            h.record(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert!((s.mean - 500.5).abs() < 0.5, "{}", s.mean);
        // Merging doubles the counts, keeps the quantiles.
        let mut m = Hist::new();
        m.merge(&h);
        m.merge(&h);
        assert_eq!(m.summary().count, 2000);
        assert_eq!(m.summary().p50, 500);
        // Out-of-range values are clamped, not lost.
        h.record(0);
        h.record(u64::MAX);
        let s = h.summary();
        assert_eq!(s.count, 1002);
        assert_eq!(s.min, 1);
        assert!(s.max >= MAX_LATENCY_US && s.max <= MAX_LATENCY_US + MAX_LATENCY_US / 500);
        let j = s.to_json();
        assert_eq!(j["count"], 1002);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(1250), "1.25ms");
        assert_eq!(fmt_us(3_200_000), "3.20s");
    }

    #[test]
    fn merge_and_report() {
        let mut a = Stats {
            established: 2,
            msgs_recv: 10,
            ..Default::default()
        };
        a.error("connect: ECONNREFUSED");
        a.status.insert(200, 3);
        let mut b = Stats {
            established: 3,
            msgs_recv: 5,
            ..Default::default()
        };
        b.error("connect: ECONNREFUSED");
        b.error("eof");
        b.status.insert(200, 1);
        a.merge(&b);
        assert_eq!(a.established, 5);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors["connect: ECONNREFUSED"], 2);
        let r = Report {
            mode: "ws",
            target: "ws://x/".into(),
            stats: a,
            elapsed_s: 2.0,
            rate_window_s: 2.0,
            expected_deliveries: Some(30),
            config: json!({}),
        };
        let j = r.to_json();
        assert_eq!(j["messages"]["received_per_s"], 7.5);
        assert_eq!(j["http_status"]["200"], 4);
        assert_eq!(j["error_count"], 3);
        let h = r.human();
        assert!(h.contains("15 of 30 expected (50.00 %)"), "{h}");
        assert!(h.contains("eof"), "{h}");
    }
}
