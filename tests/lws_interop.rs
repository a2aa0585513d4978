//! Interoperability with libwebsockets' own test client (`libwebsockets-test-client`,
//! Debian package `libwebsockets-test-server`, lws 4.1.6): the real client against the
//! real `lwsd` binary with its defaults, permessage-deflate negotiated.
//!
//! The client opens a `dumb-increment-protocol` connection (it logs every counter value
//! it receives) and an `lws-mirror-protocol` connection (it sends a stroke each time it
//! can write, and receives every stroke back through the mirror). Two properties of that
//! client shape what lwsd must do:
//!
//! - Once it has agreed permessage-deflate it handles only compressed messages: a message
//!   without RSV1 (which RFC 7692 6.1 allows) makes its receive loop spin without end
//!   (seen: its mirror stopped after 3 strokes, no counter value logged). So lwsd
//!   compresses every message on a connection that negotiated deflate.
//! - It cannot use deflate on a protocol whose receive buffer is under 128 bytes (its
//!   dumb-increment one is 20) but it still offers it, and when the server accepts it
//!   carries on with the extension off: compressed messages there would be refused. lws'
//!   own test server gives dumb-increment a 10-byte buffer and so never accepts deflate
//!   on it; lwsd's dumb-increment protocol does not negotiate it either.
//!
//! The client binary must be installed (scripts/install-deps.sh does it); without it the
//! test fails, unless `LWSD_SKIP_LWS_INTEROP=1` says to skip it.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

const CLIENT: &str = "libwebsockets-test-client";

/// The client's log lines (stdout and stderr), collected by reader threads.
struct ClientRun {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ClientRun {
    /// Starts the client against `127.0.0.1:port` at log level 15 (errors, warnings,
    /// notices and infos: the infos include every dumb-increment value received).
    /// `-l`: the mirror connection lives long (otherwise it closes after 16k..80k
    /// strokes and reconnects up to 2 s later, a pause that is not a stall).
    fn start(port: u16) -> Option<ClientRun> {
        let mut child = match Command::new(CLIENT)
            .args(["127.0.0.1", &format!("--port={port}"), "-l", "-d", "15"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("run {CLIENT}: {e}"),
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for r in [out, err] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines() {
                    let Ok(l) = l else { break };
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Some(ClientRun { child, lines })
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dumb-increment values the client logged (`rx <len> '<value>'`), in order.
fn counter_values(log: &[String]) -> Vec<u64> {
    log.iter()
        .filter_map(|l| {
            let rest = &l[l.find(" rx ")? + 4..];
            let v = rest.split('\'').nth(1)?;
            v.parse().ok()
        })
        .collect()
}

/// Messages lwsd received and sent, summed over workers.
fn ws_messages(l: &Lwsd) -> (f64, f64) {
    let m = l.metrics();
    let get = |dir: &str| {
        metric(
            &m,
            &format!("lwsd_ws_messages_total{{worker=\"0\",direction=\"{dir}\"}}"),
        )
        .unwrap_or(0.0)
    };
    (get("rx"), get("tx"))
}

/// Lets the client run for `secs` seconds and returns lwsd's (rx, tx) message counts
/// then (the workers push their figures every 250 ms: wait that out too).
fn after(l: &Lwsd, secs: f64) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs_f64(secs));
    std::thread::sleep(Duration::from_millis(300));
    ws_messages(l)
}

#[test]
fn lws_test_client_counter_rises_and_mirror_keeps_going_with_deflate() {
    // Defaults, except one worker (so the figures are one series) and the dumb-increment
    // period the test server uses (50 ms, the default).
    let l = Lwsd::start(&["-j", "1"]);
    let Some(client) = ClientRun::start(l.port) else {
        if std::env::var_os("LWSD_SKIP_LWS_INTEROP").is_some() {
            eprintln!("{CLIENT} not found; skipped (LWSD_SKIP_LWS_INTEROP is set)");
            return;
        }
        panic!(
            "{CLIENT} not found: install the Debian package libwebsockets-test-server \
             (scripts/install-deps.sh), or set LWSD_SKIP_LWS_INTEROP=1 to skip this test"
        );
    };

    let (rx1, tx1) = after(&l, 2.0);
    let (rx2, tx2) = after(&l, 2.0);
    let log = client.log();
    let tail = || log[log.len().saturating_sub(40)..].join("\n");

    // permessage-deflate was negotiated and set up on the mirror connection (the only one
    // of the client's two whose protocol can use it), and nowhere refused.
    let instantiated = log
        .iter()
        .filter(|l| l.contains("instantiating client ext permessage-deflate"))
        .count();
    assert!(
        instantiated >= 1,
        "the client never set up permessage-deflate:\n{}",
        tail()
    );
    assert!(
        !log.iter().any(|l| l.contains("failed construction")),
        "lwsd accepted permessage-deflate on a connection the client cannot use it on:\n{}",
        log.iter()
            .filter(|l| l.contains("ext") || l.contains("deflate"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The dumb-increment counter reached the client and rises: 4 s at one value per
    // 50 ms is ~80 values (before the fix: none); half that allows for a slow start
    // on a loaded machine.
    let values = counter_values(&log);
    assert!(
        values.len() >= 40,
        "the client logged {} counter values in 4 s (want >= 40):\n{}",
        values.len(),
        tail()
    );
    assert!(
        values.windows(2).all(|w| w[1] == w[0] + 1),
        "counter values not consecutive: {values:?}"
    );

    // The mirror keeps going: strokes arrive from the client (rx) and go back to it (tx)
    // in both halves of the run, not just at the start. The client sends a stroke each
    // time it can write (sleeping 50 µs): thousands per second, so 200 per 2 s is a
    // stall, not a slow machine.
    assert!(
        rx1 >= 200.0 && rx2 - rx1 >= 200.0,
        "mirror strokes received by lwsd: {rx1} after 2 s, {rx2} after 4 s:\n{}",
        tail()
    );
    assert!(
        tx2 - tx1 >= 200.0,
        "messages sent by lwsd: {tx1} after 2 s, {tx2} after 4 s"
    );
    eprintln!(
        "lws client: {} counter values; lwsd rx {rx2} tx {tx2} messages in 4 s",
        values.len()
    );
}
