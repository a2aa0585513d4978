//! End-to-end: run the `lwsd-load` binary against tiny in-test servers built from
//! std's TcpListener and lwsd's own server-side WebSocket role (an echo and a mirror,
//! the behaviours of lws-echo and lws-mirror-protocol), and a tiny HTTP/1.1 server.
//! Every server thread and every lwsd-load run is bounded in time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lwsd_worker::roles::ws::{
    DataKind, Event, MessageAssembler, SharedFrame, WsConfig, WsConn, server_accept,
    server_response_head,
};
use serde_json::Value;

/// A server thread gives up after this long whatever happens.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);
/// An lwsd-load run is killed after this long (it bounds itself well before).
const RUN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Echo,
    Mirror,
}

struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Peers = Arc<Mutex<Vec<(u64, TcpStream)>>>;

fn ws_server(kind: Kind) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let peers: Peers = Arc::default();
    let (stop2, acc2) = (stop.clone(), accepted.clone());
    thread::spawn(move || {
        let t0 = Instant::now();
        let mut id = 0;
        while !stop2.load(Ordering::SeqCst) && t0.elapsed() < SERVER_LIFETIME {
            match l.accept() {
                Ok((s, _)) => {
                    acc2.fetch_add(1, Ordering::SeqCst);
                    id += 1;
                    let (stop3, peers) = (stop2.clone(), peers.clone());
                    thread::spawn(move || serve_ws(s, id, kind, &stop3, &peers));
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Server {
        port,
        stop,
        accepted,
    }
}

fn write_all_frames(s: &mut TcpStream, ws: &mut WsConn) -> std::io::Result<()> {
    while let Some(b) = ws.poll_transmit() {
        s.write_all(&b)?;
    }
    Ok(())
}

fn serve_ws(mut s: TcpStream, id: u64, kind: Kind, stop: &AtomicBool, peers: &Peers) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    // Opening handshake (RFC 6455 4.2).
    let rest = loop {
        if stop.load(Ordering::SeqCst) || t0.elapsed() > SERVER_LIFETIME {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        let mut hdrs = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut hdrs);
        if let Ok(httparse::Status::Complete(n)) = req.parse(&head) {
            let headers = req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
            let acc = server_accept(
                req.method.unwrap().as_bytes(),
                req.version.unwrap(),
                headers,
                &["lws-echo", "lws-mirror-protocol"],
                None,
            )
            .unwrap();
            let resp = server_response_head(&acc.accept_key, acc.response_protocol(), None);
            // Join the mirror before the client can see the 101 and start sending.
            if kind == Kind::Mirror {
                peers.lock().unwrap().push((id, s.try_clone().unwrap()));
            }
            s.write_all(&resp).unwrap();
            break head[n..].to_vec();
        }
    };
    let mut ws = WsConn::server(WsConfig::default(), 0);
    let mut asm = MessageAssembler::new(1 << 20);
    let mut pending = rest;
    loop {
        if stop.load(Ordering::SeqCst) || t0.elapsed() > SERVER_LIFETIME {
            break;
        }
        if pending.is_empty() {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => break,
            }
        }
        let mut msgs = Vec::new();
        let r = ws.feed(&mut pending, 0, |ev| {
            if let Event::Data(ch) = ev
                && let Ok(Some(m)) = asm.push(&ch)
            {
                msgs.push(m);
            }
        });
        pending.clear();
        let Ok(_) = r else { break };
        for m in msgs {
            let kind_ = if m.binary {
                DataKind::Binary
            } else {
                DataKind::Text
            };
            match kind {
                // After the peer's Close nothing more may be sent.
                Kind::Echo => {
                    let _ = ws.send(kind_, m.data);
                }
                Kind::Mirror => {
                    let f = SharedFrame::new(kind_, m.data);
                    let mut p = peers.lock().unwrap();
                    for (_, peer) in p.iter_mut() {
                        let _ = peer
                            .write_all(&f.header)
                            .and_then(|()| peer.write_all(&f.payload));
                    }
                }
            }
        }
        // Our own output (echoes, the Close reply) goes under the peers lock so it
        // never interleaves with a mirror frame written by another thread.
        let _g = peers.lock().unwrap();
        if write_all_frames(&mut s, &mut ws).is_err() || ws.is_done() {
            break;
        }
    }
    peers.lock().unwrap().retain(|(i, _)| *i != id);
}

fn http_server() -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let (stop2, acc2) = (stop.clone(), accepted.clone());
    thread::spawn(move || {
        let t0 = Instant::now();
        while !stop2.load(Ordering::SeqCst) && t0.elapsed() < SERVER_LIFETIME {
            match l.accept() {
                Ok((s, _)) => {
                    acc2.fetch_add(1, Ordering::SeqCst);
                    let stop3 = stop2.clone();
                    thread::spawn(move || serve_http(s, &stop3));
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Server {
        port,
        stop,
        accepted,
    }
}

/// Answers every request head with a 5-byte body; alternates Content-Length and
/// chunked framing; closes after a request carrying `Connection: close`.
fn serve_http(mut s: TcpStream, stop: &AtomicBool) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let mut acc: Vec<u8> = Vec::new();
    let mut n_resp = 0u64;
    while !stop.load(Ordering::SeqCst) && t0.elapsed() < SERVER_LIFETIME {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => acc.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        let mut out = Vec::new();
        while let Some(i) = acc.windows(4).position(|w| w == b"\r\n\r\n") {
            let close = String::from_utf8_lossy(&acc[..i]).contains("Connection: close");
            acc.drain(..i + 4);
            n_resp += 1;
            if n_resp.is_multiple_of(2) {
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            } else {
                out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                );
            }
            if close {
                let _ = s.write_all(&out);
                return;
            }
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Run lwsd-load with `args` plus `--json`; returns (exit code, the JSON figures).
fn run(args: &[&str]) -> (i32, Value) {
    let dir = std::env::temp_dir().join(format!(
        "lwsd-load-test-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_tag()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwsd-load"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--no-progress")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("lwsd-load did not finish in {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    eprintln!("{out}{err}");
    let v = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_dir_all(&dir);
    (status.code().unwrap_or(-1), v)
}

fn rand_tag() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    u128::from(
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    )
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

#[test]
fn echo_round_trips() {
    let srv = ws_server(Kind::Echo);
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let (code, v) = run(&[
        "ws",
        "--url",
        &url,
        "--protocol",
        "lws-echo",
        "-c",
        "20",
        "-t",
        "2",
        "--send-rate",
        "20/s",
        "--size",
        "100",
        "--duration",
        "1500ms",
    ]);
    assert_eq!(code, 0);
    assert_eq!(n(&v, &["connections", "established"]), 20);
    assert_eq!(n(&v, &["connections", "failed"]), 0);
    assert_eq!(n(&v, &["connections", "clean_closes"]), 20);
    assert_eq!(n(&v, &["error_count"]), 0, "{v}");
    assert_eq!(srv.accepted.load(Ordering::SeqCst), 20);
    let sent = n(&v, &["messages", "sent"]);
    // 20 connections * 20/s * 1.5 s, less the ramp: a few hundred.
    assert!((300..=700).contains(&sent), "{sent}");
    // The closing handshake comes after every echo: nothing is lost.
    assert_eq!(n(&v, &["messages", "received"]), sent);
    assert_eq!(n(&v, &["messages", "received_bytes"]), sent * 100);
    assert_eq!(n(&v, &["latency", "rtt", "count"]), sent);
    assert_eq!(n(&v, &["latency", "handshake", "count"]), 20);
    assert!(n(&v, &["latency", "rtt", "max_us"]) < 1_000_000);
}

#[test]
fn mirror_fanout_delivers_to_all() {
    let srv = ws_server(Kind::Mirror);
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let (code, v) = run(&[
        "fanout",
        "--url",
        &url,
        "-c",
        "30",
        "--senders",
        "2",
        "--rate",
        "20/s",
        "--duration",
        "1s",
    ]);
    assert_eq!(code, 0);
    assert_eq!(n(&v, &["connections", "established"]), 30);
    let sent = n(&v, &["messages", "sent"]);
    assert!((30..=50).contains(&sent), "{sent}");
    assert_eq!(n(&v, &["messages", "expected_deliveries"]), sent * 30);
    assert_eq!(n(&v, &["messages", "received"]), sent * 30, "{v}");
    assert_eq!(n(&v, &["latency", "delivery", "count"]), sent * 30);
    assert_eq!(n(&v, &["latency", "rtt", "count"]), sent);
    assert_eq!(n(&v, &["messages", "unstamped"]), 0);
    assert_eq!(n(&v, &["messages", "out_of_order"]), 0);
    assert_eq!(n(&v, &["error_count"]), 0, "{v}");
    let window = v["rate_window_s"].as_f64().unwrap();
    assert!((0.99..=1.01).contains(&window), "{window}");
}

#[test]
fn message_count_stops_early_and_hold_stays_idle() {
    let srv = ws_server(Kind::Echo);
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let t0 = Instant::now();
    let (code, v) = run(&[
        "ws",
        "--url",
        &url,
        "-c",
        "5",
        "--send-rate",
        "100/s",
        "--messages",
        "50",
        "--duration",
        "30s",
    ]);
    assert_eq!(code, 0);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(n(&v, &["messages", "received"]) >= 50);
    let (code, v) = run(&[
        "ws",
        "--url",
        &url,
        "-c",
        "10",
        "--hold",
        "--duration",
        "500ms",
    ]);
    assert_eq!(code, 0);
    assert_eq!(n(&v, &["connections", "established"]), 10);
    assert_eq!(n(&v, &["messages", "sent"]), 0);
    assert_eq!(n(&v, &["messages", "received"]), 0);
    assert_eq!(n(&v, &["connections", "clean_closes"]), 10);
}

#[test]
fn refused_connections_are_errors() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = format!("ws://127.0.0.1:{port}/");
    let (code, v) = run(&["ws", "--url", &url, "-c", "3", "--duration", "300ms"]);
    assert_eq!(code, 1);
    assert_eq!(n(&v, &["connections", "failed"]), 3);
    assert_eq!(n(&v, &["errors", "connect: ECONNREFUSED"]), 3, "{v}");
}

#[test]
fn http_keepalive_pipelined_and_close() {
    let srv = http_server();
    let url = format!("http://127.0.0.1:{}/", srv.port);
    let (code, v) = run(&[
        "http",
        "--url",
        &url,
        "-c",
        "4",
        "--pipeline",
        "8",
        "--requests",
        "2000",
        "--duration",
        "20s",
    ]);
    assert_eq!(code, 0);
    assert!(n(&v, &["http_status", "200"]) >= 2000);
    assert_eq!(n(&v, &["error_count"]), 0, "{v}");
    assert_eq!(srv.accepted.load(Ordering::SeqCst), 4);
    let (code, v) = run(&[
        "http",
        "--url",
        &url,
        "-c",
        "2",
        "--close",
        "--requests",
        "100",
        "--duration",
        "20s",
    ]);
    assert_eq!(code, 0);
    let got = n(&v, &["http_status", "200"]);
    assert!(got >= 100);
    assert_eq!(n(&v, &["error_count"]), 0, "{v}");
    // One connection per response (plus the ones open at the end).
    assert!(srv.accepted.load(Ordering::SeqCst) >= 4 + got);
}
