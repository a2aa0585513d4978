//! `lws-server-status`: every worker's figures as JSON, pushed to each status client
//! every `update-ms` (pvo, default [`DEFAULT_UPDATE_MS`]) and once right after it connects.
//!
//! ```json
//! {"server":"lwsd/0.1.0","uptime_s":12,
//!  "workers":[{"index":0,"pid":41,"conns":3,"ws_conns":2,"requests":9,"ws_msgs_rx":0,"ws_msgs_tx":40}, ...],
//!  "you":{"worker":0}}
//! ```
//! (the shape test.js renders; `you.worker` is the worker serving the client).
//!
//! Each worker publishes its own figures ([`Vhost::figures`]) on the bus every tick; every
//! worker keeps the latest publication of each other worker and builds one document per
//! tick, encoded once as a [`SharedFrame`] that all its clients share. A worker's own row
//! is always its live figures. Rows older than [`STALE_TICKS`] ticks are left out, so a
//! worker that died disappears until its replacement publishes.
//!
//! The tick starts lazily rather than in [`Protocol::init`], so an idle server never
//! wakes for it: a worker arms it when a status client connects, and any worker arms its own as soon as
//! it hears a publication from a worker that has status clients (each publication
//! carries that count). Ticks lapse on a worker once neither it nor any fresh row has
//! clients: an idle server publishes nothing.
//!
//! `uptime_s` counts from the supervisor's start (the worker's parent, read once from
//! /proc at init), so it does not restart with a respawned worker. The JSON is written
//! by hand: numbers and one fixed ASCII string need no escaping and no serde.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;

use crate::api::{
    CbResult, Close, Conn, ConnId, DataKind, PluginInit, Protocol, SharedFrame, Vhost,
    WorkerFigures,
};

/// The protocol name clients ask for.
pub const NAME: &str = "lws-server-status";

/// The `server` field.
pub const SERVER: &str = concat!("lwsd/", env!("CARGO_PKG_VERSION"));

/// lws' server-status plugin updates once a second.
pub const DEFAULT_UPDATE_MS: u64 = 1000;
/// Fastest tick: each is one bus message per worker and one document per worker; 50 ms
/// keeps that a few dozen a second.
pub const MIN_UPDATE_MS: u64 = 50;
/// Slowest tick, one hour.
pub const MAX_UPDATE_MS: u64 = 3_600_000;
/// A worker's row is shown while its last publication is at most this many ticks old:
/// one missed tick (a busy loop) does not hide a worker; a dead one goes within seconds.
pub const STALE_TICKS: u64 = 3;

/// The pvo options this protocol reads.
const OPTIONS: &[&str] = &["update-ms"];

/// Version byte of the bus payload.
const WIRE_VERSION: u8 = 1;
/// Bus payload length: version, 4 u32, 4 u64, the clients u32.
pub const WIRE_LEN: usize = 1 + 4 * 4 + 4 * 8 + 4;

/// One worker's row, as last heard.
#[derive(Clone, Copy, Debug)]
struct Row {
    figures: WorkerFigures,
    /// Status clients on that worker.
    clients: u32,
    /// When it arrived (loop clock).
    at_ms: u64,
}

/// The protocol instance of one vhost on one worker.
pub struct ServerStatus {
    update: Duration,
    me: usize,
    /// Latest publication of each worker (index = worker), bounded by the worker count.
    rows: Vec<Option<Row>>,
    /// Status clients on this worker.
    clients: u32,
    armed: bool,
    /// The current document, shared by every client.
    doc: Option<SharedFrame>,
    /// Bumped each time `doc` is rebuilt.
    generation: u64,
    start_unix: u64,
}

/// A connection's state: the document generation it was last sent.
#[derive(Debug, Default)]
pub struct StatusSession {
    sent: u64,
}

impl ServerStatus {
    /// Builds the instance from its pvos (`update-ms`).
    pub fn from_init(init: &PluginInit<'_>) -> Result<ServerStatus, String> {
        super::known_options(init.options, OPTIONS)?;
        let ms = super::option_u64(
            init.options,
            "update-ms",
            DEFAULT_UPDATE_MS,
            MIN_UPDATE_MS,
            MAX_UPDATE_MS,
        )?;
        let start = std::os::unix::process::parent_id();
        let start_unix = process_start_unix(start).unwrap_or_else(crate::unix_now);
        Ok(ServerStatus::new(
            Duration::from_millis(ms),
            init.worker,
            init.workers,
            start_unix,
        ))
    }

    pub fn new(update: Duration, me: usize, workers: usize, start_unix: u64) -> ServerStatus {
        ServerStatus {
            update,
            me,
            rows: vec![None; workers.max(me + 1)],
            clients: 0,
            armed: false,
            doc: None,
            generation: 0,
            start_unix,
        }
    }

    fn stale_ms(&self) -> u64 {
        self.update.as_millis() as u64 * STALE_TICKS
    }

    fn fresh(&self, row: &Row, now_ms: u64) -> bool {
        now_ms.saturating_sub(row.at_ms) <= self.stale_ms()
    }

    /// Publishes this worker's figures and arms the next tick.
    fn tick(&mut self, vhost: &mut Vhost<'_>) {
        let _ = vhost.publish(&encode(&vhost.figures(), self.clients));
        vhost.set_timer(self.update, 0);
        self.armed = true;
    }

    /// Rebuilds the shared document from the rows and the live figures.
    fn rebuild(&mut self, vhost: &Vhost<'_>) {
        let now = vhost.now_ms();
        let own = vhost.figures();
        let workers: Vec<WorkerFigures> = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                if i == self.me {
                    Some(WorkerFigures { index: i, ..own })
                } else {
                    r.filter(|r| self.fresh(r, now)).map(|r| WorkerFigures {
                        index: i,
                        ..r.figures
                    })
                }
            })
            .collect();
        let uptime = vhost.now_unix().saturating_sub(self.start_unix);
        let json = status_json(SERVER, uptime, &workers, self.me);
        self.doc = Some(SharedFrame::new(DataKind::Text, Bytes::from(json)));
        self.generation += 1;
    }
}

impl Protocol for ServerStatus {
    type Session = StatusSession;

    fn established(&mut self, conn: &mut Conn<'_>) -> Result<StatusSession, Close> {
        self.clients += 1;
        self.rebuild(conn.vhost());
        conn.callback_on_writable();
        if !self.armed {
            self.tick(conn.vhost());
        }
        Ok(StatusSession::default())
    }

    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut StatusSession) -> CbResult {
        if s.sent == self.generation {
            return Ok(());
        }
        if let Some(doc) = &self.doc {
            conn.write_shared(doc).map_err(|_| Close::INTERNAL)?;
            s.sent = self.generation;
        }
        Ok(())
    }

    fn closed(&mut self, _vhost: &mut Vhost<'_>, _id: ConnId, _s: StatusSession) {
        self.clients = self.clients.saturating_sub(1);
    }

    fn timer(&mut self, vhost: &mut Vhost<'_>, _id: u64) {
        self.armed = false;
        let now = vhost.now_ms();
        let others_watch =
            self.rows.iter().enumerate().any(|(i, r)| {
                i != self.me && r.is_some_and(|r| r.clients > 0 && self.fresh(&r, now))
            });
        if self.clients == 0 && !others_watch {
            // Nobody watches: stop ticking (after telling the others we have no clients).
            let _ = vhost.publish(&encode(&vhost.figures(), 0));
            return;
        }
        self.tick(vhost);
        if self.clients > 0 {
            self.rebuild(vhost);
            vhost.callback_on_writable_all_protocol();
        }
    }

    fn bus(&mut self, vhost: &mut Vhost<'_>, origin: usize, payload: &[u8]) {
        if origin == self.me {
            return;
        }
        let Some((figures, clients)) = decode(payload) else {
            return;
        };
        let Some(slot) = self.rows.get_mut(origin) else {
            return;
        };
        *slot = Some(Row {
            figures,
            clients,
            at_ms: vhost.now_ms(),
        });
        if clients > 0 && !self.armed {
            // Someone watches: take part in the ticks.
            self.tick(vhost);
        }
    }
}

/// The status document (see the module docs for its shape).
pub fn status_json(server: &str, uptime_s: u64, workers: &[WorkerFigures], you: usize) -> String {
    let mut s = String::with_capacity(96 + workers.len() * 112);
    // `server` is a fixed ASCII constant without quotes or backslashes: no escaping.
    let _ = write!(
        s,
        "{{\"server\":\"{server}\",\"uptime_s\":{uptime_s},\"workers\":["
    );
    for (i, w) in workers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"index\":{},\"pid\":{},\"conns\":{},\"ws_conns\":{},\"requests\":{},\"ws_msgs_rx\":{},\"ws_msgs_tx\":{}}}",
            w.index, w.pid, w.conns, w.ws_conns, w.requests, w.ws_msgs_rx, w.ws_msgs_tx
        );
    }
    let _ = write!(s, "],\"you\":{{\"worker\":{you}}}}}");
    s
}

/// A worker's figures and status-client count as a bus payload ([`WIRE_LEN`] bytes,
/// little-endian).
pub fn encode(f: &WorkerFigures, clients: u32) -> [u8; WIRE_LEN] {
    let mut b = [0u8; WIRE_LEN];
    b[0] = WIRE_VERSION;
    let mut at = 1;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&(f.index as u32).to_le_bytes());
    put(&f.pid.to_le_bytes());
    put(&f.conns.to_le_bytes());
    put(&f.ws_conns.to_le_bytes());
    put(&f.accepted.to_le_bytes());
    put(&f.requests.to_le_bytes());
    put(&f.ws_msgs_rx.to_le_bytes());
    put(&f.ws_msgs_tx.to_le_bytes());
    put(&clients.to_le_bytes());
    b
}

/// The inverse of [`encode`]; `None` for anything else (another version, another length).
pub fn decode(b: &[u8]) -> Option<(WorkerFigures, u32)> {
    if b.len() != WIRE_LEN || b.first() != Some(&WIRE_VERSION) {
        return None;
    }
    let mut at = 1;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let mut u32_ = || -> Option<u32> { Some(u32::from_le_bytes(take(4)?.try_into().ok()?)) };
    let index = u32_()? as usize;
    let pid = u32_()?;
    let conns = u32_()?;
    let ws_conns = u32_()?;
    let mut u64_ = || -> Option<u64> { Some(u64::from_le_bytes(take(8)?.try_into().ok()?)) };
    let accepted = u64_()?;
    let requests = u64_()?;
    let ws_msgs_rx = u64_()?;
    let ws_msgs_tx = u64_()?;
    let clients = u32::from_le_bytes(take(4)?.try_into().ok()?);
    Some((
        WorkerFigures {
            index,
            pid,
            conns,
            ws_conns,
            accepted,
            requests,
            ws_msgs_rx,
            ws_msgs_tx,
        },
        clients,
    ))
}

/// When process `pid` started, in Unix seconds (from /proc/PID/stat's start time in clock
/// ticks since boot, field 22, and /proc/stat's `btime`).
fn process_start_unix(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start with field 3 (state).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let ticks: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux ABI lwsd targets.
    Some(btime + ticks / 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fig(index: usize) -> WorkerFigures {
        WorkerFigures {
            index,
            pid: 1000 + index as u32,
            conns: 3,
            ws_conns: 2,
            accepted: 17,
            requests: 9,
            ws_msgs_rx: 4,
            ws_msgs_tx: u64::MAX,
        }
    }

    #[test]
    fn json_shape_is_exact() {
        let j = status_json("lwsd/9.9", 61, &[fig(0), fig(1)], 1);
        assert_eq!(
            j,
            concat!(
                r#"{"server":"lwsd/9.9","uptime_s":61,"workers":["#,
                r#"{"index":0,"pid":1000,"conns":3,"ws_conns":2,"requests":9,"ws_msgs_rx":4,"ws_msgs_tx":18446744073709551615},"#,
                r#"{"index":1,"pid":1001,"conns":3,"ws_conns":2,"requests":9,"ws_msgs_rx":4,"ws_msgs_tx":18446744073709551615}"#,
                r#"],"you":{"worker":1}}"#
            )
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["workers"][1]["pid"], 1001);
        assert_eq!(v["you"]["worker"], 1);
        let empty = status_json(SERVER, 0, &[], 0);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(v["workers"].as_array().unwrap().len(), 0);
        assert!(v["server"].as_str().unwrap().starts_with("lwsd/"));
    }

    #[test]
    fn bus_payload_round_trips_and_rejects_garbage() {
        let f = fig(7);
        let b = encode(&f, 3);
        assert_eq!(decode(&b), Some((f, 3)));
        assert_eq!(decode(&b[..WIRE_LEN - 1]), None);
        let mut longer = b.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut v2 = b;
        v2[0] = 2;
        assert_eq!(decode(&v2), None);
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn rows_go_stale() {
        let s = ServerStatus::new(Duration::from_millis(1000), 0, 2, 0);
        let row = Row {
            figures: fig(1),
            clients: 1,
            at_ms: 10_000,
        };
        assert!(s.fresh(&row, 10_000 + 3000));
        assert!(!s.fresh(&row, 10_000 + 3001));
        assert!(s.fresh(&row, 0)); // a clock never goes back, but this must not wrap
    }

    #[test]
    fn options_and_start_time() {
        let mut o = BTreeMap::new();
        let init = |o: &BTreeMap<String, String>| {
            ServerStatus::from_init(&PluginInit {
                options: o,
                worker: 1,
                workers: 2,
            })
        };
        let s = init(&o).unwrap();
        assert_eq!(
            (s.update, s.me, s.rows.len()),
            (Duration::from_secs(1), 1, 2)
        );
        // The test process's parent started before now and after 2020.
        assert!(s.start_unix <= crate::unix_now() && s.start_unix > 1_577_836_800);
        o.insert("update-ms".into(), "49".into());
        assert!(init(&o).err().unwrap().contains("update-ms"));
        o.insert("update-ms".into(), "250".into());
        assert_eq!(init(&o).unwrap().update, Duration::from_millis(250));
    }

    #[test]
    fn own_process_start_time_is_plausible() {
        let t = process_start_unix(std::process::id()).unwrap();
        let now = crate::unix_now();
        assert!(t <= now && now - t < 3600, "started {t}, now {now}");
    }
}
