//! The built-in protocols end to end: the real `lwsd` binary with two workers, driven by
//! tungstenite clients and raw HTTP: dumb-increment counts and resets; the mirror reaches
//! every client on both workers in order per sender, and a client that stops reading
//! loses messages while the others get all of them and the workers' memory stays
//! bounded; server-status lists both workers in the documented JSON shape; the
//! `/formtest` POST handler answers urlencoded and multipart forms; subprotocol choice
//! (unknown -> 400 naming it, none -> `--ws-default`'s).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Upper bound on any wait for a message in these tests.
const MSG_TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket client on `port` asking for `protocols` (none: no header). Returns the
/// socket and the protocol the server chose.
fn ws_connect(port: u16, protocols: &[&str]) -> (Ws, Option<String>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(MSG_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(MSG_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut req = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    let (ws, resp) = tungstenite::client(req, stream).expect("websocket handshake");
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, chosen)
}

/// The next text message (pings and pongs are skipped; anything else fails the test).
fn read_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            m => panic!("unexpected {m:?}"),
        }
    }
}

fn send_text(ws: &mut Ws, s: &str) {
    ws.send(Message::text(s)).expect("send");
}

/// The index of the worker holding the server side of `ws`.
fn worker_of(s: &Lwsd, ws: &Ws) -> usize {
    let local = ws.get_ref().local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = s.worker_pids();
        if let Some(pid) = pid_holding_tcp(s.port, local, &pids)
            && let Some(i) = process_env(pid, "LWSD_WORKER_INDEX")
        {
            return i.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no worker holds port {local}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- dumb-increment-protocol ----

#[test]
fn dumb_increment_counts_every_50ms_and_resets() {
    let s = Lwsd::start(&["-j", "2"]);
    let (mut ws, proto) = ws_connect(s.port, &["dumb-increment-protocol"]);
    assert_eq!(proto.as_deref(), Some("dumb-increment-protocol"));

    // The counter starts at 0 and rises by one per message, every ~50 ms.
    let t = Instant::now();
    let first: Vec<u64> = (0..10)
        .map(|_| read_text(&mut ws).parse().unwrap())
        .collect();
    let took = t.elapsed();
    assert_eq!(first, (0..10).collect::<Vec<u64>>());
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "10 counter messages took {took:?}"
    );

    // "reset\n" (what test.js sends) and "reset" set it back to 0; a near miss does not.
    for cmd in ["reset\n", "reset"] {
        let before: u64 = read_text(&mut ws).parse().unwrap();
        assert!(before > 0);
        send_text(&mut ws, cmd);
        let mut seen = Vec::new();
        loop {
            let n: u64 = read_text(&mut ws).parse().unwrap();
            seen.push(n);
            if n == 0 {
                break;
            }
            assert!(seen.len() < 10, "{cmd:?} did not reset: {seen:?}");
        }
        let next: Vec<u64> = (0..3)
            .map(|_| read_text(&mut ws).parse().unwrap())
            .collect();
        assert_eq!(next, [1, 2, 3], "after {cmd:?}");
    }
    send_text(&mut ws, "reset me");
    let mut last: u64 = read_text(&mut ws).parse().unwrap();
    for _ in 0..5 {
        let n: u64 = read_text(&mut ws).parse().unwrap();
        assert_eq!(n, last + 1, "a near miss must not reset");
        last = n;
    }
    ws.close(None).unwrap();
}

// ---- lws-mirror-protocol ----

/// `c<client>:<seq>:<padding>` -> (client, seq).
fn parse_stamp(m: &str) -> (usize, usize) {
    let mut it = m.split(':');
    let c = it.next().and_then(|c| c.strip_prefix('c')).unwrap();
    let n = it.next().unwrap();
    (c.parse().unwrap(), n.parse().unwrap())
}

#[test]
fn mirror_reaches_every_client_on_both_workers_in_order() {
    const CLIENTS: usize = 6;
    const PER_CLIENT: usize = 100;
    let s = Lwsd::start(&["-j", "2"]);
    let clients: Vec<Ws> = (0..CLIENTS)
        .map(|_| {
            let (ws, p) = ws_connect(s.port, &["lws-mirror-protocol"]);
            assert_eq!(p.as_deref(), Some("lws-mirror-protocol"));
            ws
        })
        .collect();
    let workers: BTreeSet<usize> = clients.iter().map(|ws| worker_of(&s, ws)).collect();
    assert_eq!(workers, BTreeSet::from([0, 1]), "clients on both workers");

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(id, mut ws)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for seq in 0..PER_CLIENT {
                    send_text(&mut ws, &format!("c{id}:{seq}:d #123 1 2 3 4;"));
                }
                let mut next = [0usize; CLIENTS];
                for _ in 0..CLIENTS * PER_CLIENT {
                    let (c, n) = parse_stamp(&read_text(&mut ws));
                    assert_eq!(n, next[c], "client {id}: from {c}, out of order");
                    next[c] += 1;
                }
                assert_eq!(next, [PER_CLIENT; CLIENTS]);
                ws.close(None).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a mirror client failed");
    }
    // The workers' figures agree: at least CLIENTS^2 * PER_CLIENT messages went out
    // (snapshots reach /metrics periodically: poll, bounded).
    let want = (CLIENTS * CLIENTS * PER_CLIENT) as f64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tx = sum_series(&s.metrics(), "lwsd_ws_messages_total", "direction=\"tx\"");
        if tx >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lwsd_ws_messages_total tx {tx} < {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bus_dropped(&s), 0.0);
}

/// Bus messages the supervisor dropped (all workers).
fn bus_dropped(s: &Lwsd) -> f64 {
    sum_series(&s.metrics(), "lwsd_bus_messages_dropped_total", "")
}

/// The sum of every series of `name` whose labels contain `label`.
fn sum_series(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn mirror_slow_reader_loses_messages_fast_readers_get_all_memory_bounded() {
    // 16 KiB messages: the ring (4 MiB) holds ~250 of them; the slow reader's kernel
    // buffers a few MiB more. 3000 messages (47 MiB) go far past both.
    const COUNT: usize = 3000;
    const SIZE: usize = 16 * 1024;
    const WINDOW: usize = 16;
    let s = Lwsd::start(&["-j", "2"]);
    let (mut slow, _) = ws_connect(s.port, &["lws-mirror-protocol"]);
    // The slow reader advertises a small window, so the kernel holds little for it.
    nix::sys::socket::setsockopt(slow.get_ref(), nix::sys::socket::sockopt::RcvBuf, &65536)
        .unwrap();
    let fast: Vec<Ws> = (0..2)
        .map(|_| ws_connect(s.port, &["lws-mirror-protocol"]).0)
        .collect();
    let (mut sender, _) = ws_connect(s.port, &["lws-mirror-protocol"]);
    let mut on: BTreeSet<usize> = fast.iter().map(|ws| worker_of(&s, ws)).collect();
    on.insert(worker_of(&s, &slow));
    on.insert(worker_of(&s, &sender));
    assert_eq!(on, BTreeSet::from([0, 1]));

    let pids = s.worker_pids();
    let rss0: Vec<u64> = pids.iter().map(|&p| rss_bytes(p)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let stop = stop.clone();
        let pids = pids.clone();
        std::thread::spawn(move || {
            let mut peak = vec![0; pids.len()];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (p, &pid) in peak.iter_mut().zip(&pids) {
                    *p = (*p).max(rss_bytes(pid));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };

    // Each fast reader publishes how many messages it has; the sender keeps at most
    // WINDOW messages ahead of the slowest of them and of its own copies: "fast" readers
    // are those within WINDOW of the head, and they must lose nothing. Nothing waits for
    // the slow reader.
    let progress: Vec<_> = (0..fast.len())
        .map(|_| std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)))
        .collect();
    let readers: Vec<_> = fast
        .into_iter()
        .zip(progress.clone())
        .map(|(mut ws, got)| {
            std::thread::spawn(move || {
                for want in 0..COUNT {
                    let (_, n) = parse_stamp(&read_text(&mut ws));
                    assert_eq!(n, want, "a fast reader lost or reordered a message");
                    got.store(want + 1, std::sync::atomic::Ordering::Relaxed);
                }
                ws
            })
        })
        .collect();
    let pad = "x".repeat(SIZE - 16);
    let (mut sent, mut got) = (0, 0);
    let t = Instant::now();
    while got < COUNT {
        let slowest_fast = progress
            .iter()
            .map(|p| p.load(std::sync::atomic::Ordering::Relaxed))
            .min()
            .unwrap_or(0)
            .min(got);
        while sent < COUNT && sent < slowest_fast + WINDOW {
            send_text(&mut sender, &format!("c0:{sent}:{pad}"));
            sent += 1;
        }
        if got < sent {
            let (_, n) = parse_stamp(&read_text(&mut sender));
            assert_eq!(n, got, "the sender's own copies arrive in order");
            got += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(t.elapsed() < Duration::from_secs(120), "mirror too slow");
    }
    for r in readers {
        r.join().expect("a fast reader failed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = peak.join().unwrap();
    eprintln!(
        "mirror: {COUNT} x {SIZE} B in {:?}; workers' RSS {:?} -> peak {:?} KiB",
        t.elapsed(),
        rss0.iter().map(|r| r / 1024).collect::<Vec<_>>(),
        peak.iter().map(|r| r / 1024).collect::<Vec<_>>(),
    );
    // Each worker is bounded by its ring (4 MiB) plus transient bus and receive buffers
    // and allocator slack (~13 MiB measured), well below the 47 MiB the slow reader did
    // not read, which unbounded buffering would have kept.
    for (before, peak) in rss0.iter().zip(&peak) {
        let grew = peak.saturating_sub(*before);
        assert!(
            grew < 24 << 20,
            "a worker grew by {} KiB while a client did not read",
            grew / 1024
        );
    }

    // Now the slow reader reads (with a normal window again): what was in the kernel
    // buffers, then a skip to what the ring still held, in order, up to the last message.
    nix::sys::socket::setsockopt(
        slow.get_ref(),
        nix::sys::socket::sockopt::RcvBuf,
        &(4 << 20),
    )
    .unwrap();
    let mut seen = Vec::new();
    while seen.last() != Some(&(COUNT - 1)) {
        let (_, n) = parse_stamp(&read_text(&mut slow));
        if let Some(&l) = seen.last() {
            assert!(n > l, "slow reader: {n} after {l}");
        }
        seen.push(n);
    }
    assert!(
        seen.len() < COUNT / 3,
        "the slow reader lost nothing? got {} of {COUNT}",
        seen.len()
    );
    // The losses were the ring's (the policy), not the bus's.
    assert_eq!(bus_dropped(&s), 0.0);
    let gap = seen.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(gap >= 1, "one skip at least");
    // A skip keeps the newest messages: at least the ring's worth at the end.
    let tail = seen
        .iter()
        .rev()
        .zip((0..COUNT).rev())
        .take_while(|(a, b)| *a == b)
        .count();
    assert!(tail >= 100, "only {tail} consecutive messages at the end");
}

#[test]
fn mirror_refuses_messages_over_the_bus_limit_with_1009() {
    let s = Lwsd::start(&["-j", "1"]);
    let (mut ws, _) = ws_connect(s.port, &["lws-mirror-protocol"]);
    let big = "y".repeat(64 * 1024);
    send_text(&mut ws, &big);
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1009);
                break;
            }
            Ok(Message::Text(t)) => panic!("relayed {} bytes", t.len()),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

// ---- lws-server-status ----

#[test]
fn server_status_lists_both_workers_in_the_documented_shape() {
    let s = Lwsd::start(&["-j", "2"]);
    let (mut ws, proto) = ws_connect(s.port, &["lws-server-status"]);
    // The first document comes right after the handshake, not at the first tick (1 s).
    let t = Instant::now();
    let first: serde_json::Value = serde_json::from_str(&read_text(&mut ws)).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "first document only after {:?}",
        t.elapsed()
    );
    assert_eq!(proto.as_deref(), Some("lws-server-status"));
    let me = worker_of(&s, &ws);
    assert_eq!(first["you"]["worker"], me);

    let pids: BTreeSet<u64> = s.worker_pids().into_iter().map(u64::from).collect();
    let mut doc = first;
    let deadline = Instant::now() + Duration::from_secs(6);
    while doc["workers"].as_array().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "never both workers: {doc}");
        doc = serde_json::from_str(&read_text(&mut ws)).unwrap();
    }
    let o = doc.as_object().unwrap();
    assert_eq!(
        o.keys().collect::<Vec<_>>(),
        ["server", "uptime_s", "workers", "you"]
    );
    assert!(doc["server"].as_str().unwrap().starts_with("lwsd/"));
    assert!(doc["uptime_s"].as_u64().unwrap() < 60);
    assert_eq!(doc["you"], serde_json::json!({ "worker": me }));
    let workers = doc["workers"].as_array().unwrap();
    let mut seen_pids = BTreeSet::new();
    for (i, w) in workers.iter().enumerate() {
        let w = w.as_object().unwrap();
        assert_eq!(
            w.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            [
                "conns",
                "index",
                "pid",
                "requests",
                "ws_conns",
                "ws_msgs_rx",
                "ws_msgs_tx"
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
        );
        assert_eq!(w["index"], i);
        assert!(w.values().all(|v| v.is_u64()));
        seen_pids.insert(w["pid"].as_u64().unwrap());
    }
    assert_eq!(seen_pids, pids);
    // Our own worker has (at least) this WebSocket and has sent documents.
    assert!(workers[me]["ws_conns"].as_u64().unwrap() >= 1);
    assert!(workers[me]["ws_msgs_tx"].as_u64().unwrap() >= 1);

    // Documents keep coming about once a second.
    let t = Instant::now();
    for _ in 0..2 {
        let d: serde_json::Value = serde_json::from_str(&read_text(&mut ws)).unwrap();
        assert_eq!(d["you"]["worker"], me);
    }
    let took = t.elapsed();
    assert!(
        took > Duration::from_millis(1000) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

// ---- protocol-post-demo on /formtest ----

fn post(s: &Lwsd, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (status, _, body) = split_response(&s.request(&req));
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn formtest_answers_urlencoded_and_multipart_posts() {
    let s = Lwsd::start(&["-j", "2"]);
    let (status, head, body) = s.get("/formtest");
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(body).unwrap();
    assert_eq!(page.matches("<form").count(), 2);
    assert!(page.contains("multipart/form-data"));

    let (status, page) = post(
        &s,
        "application/x-www-form-urlencoded",
        b"text=Give+me+%3Csome%3E+text&send=Send%20the%20form",
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(
            "<td class=\"name\">text</td><td class=\"value\">Give me &lt;some&gt; text</td>"
        ),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"value\">Send the form</td>"),
        "{page}"
    );

    let b = "----lwsdTestBoundary7MA4YWxkTrZu0gW";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nline 1\r\nline 2\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"abc.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nabc\r\n--{b}--\r\n"
    );
    let (status, page) = post(
        &s,
        &format!("multipart/form-data; boundary={b}"),
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<td class=\"value\">line 1\r\nline 2</td>"),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"filename\">abc.txt</span> (text/plain)"),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"size\">3</span> bytes"),
        "{page}"
    );
    // sha1("abc"), FIPS 180 appendix A.
    assert!(
        page.contains("a9993e364706816aba3e25717850c26c9cd0d89d"),
        "{page}"
    );

    // Refusals: no boundary, no closing boundary, an unknown type, too big.
    assert_eq!(post(&s, "multipart/form-data", body.as_bytes()).0, 400);
    let cut = &body.as_bytes()[..body.len() - 8];
    assert_eq!(
        post(&s, &format!("multipart/form-data; boundary={b}"), cut).0,
        400
    );
    assert_eq!(post(&s, "text/plain", b"x").0, 415);
    // Declared over 1 MiB: read (and dropped), then 413; over h1's own bound (16 MiB):
    // 413 at the head.
    let over = vec![b'a'; (1 << 20) + 1];
    assert_eq!(post(&s, "application/x-www-form-urlencoded", &over).0, 413);
    let head = "POST /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20000000\r\n\r\n";
    let (status, _, _) = split_response(&s.request(head.as_bytes()));
    assert_eq!(status, 413);
    // A chunked body over the bound: read, not parsed, then 413.
    let mut req = b"POST /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                    Content-Type: application/x-www-form-urlencoded\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..17 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, _, _) = split_response(&s.request(&req));
    assert_eq!(status, 413);
    // Another method: 405 with the Allow field RFC 9110 15.5.6 asks for (a header the
    // protocol adds to its answer), and the server's own fields once each.
    let (status, head, _) = split_response(&s.request(
        b"PUT /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ));
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("GET, HEAD, POST"), "{head}");
    assert_eq!(
        head.to_ascii_lowercase()
            .matches("\r\ncontent-length:")
            .count(),
        1,
        "{head}"
    );
    assert!(
        header(&head, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
}

#[test]
fn formtest_body_limit_is_a_pvo() {
    let s = Lwsd::start(&["-j", "1", "--pvo", "protocol-post-demo:max-body=100"]);
    let form = |n: usize| format!("text={}", "a".repeat(n - 5));
    let ct = "application/x-www-form-urlencoded";
    assert_eq!(post(&s, ct, form(100).as_bytes()).0, 200);
    let (status, page) = post(&s, ct, form(101).as_bytes());
    assert_eq!(status, 413);
    assert!(page.contains("over 100 bytes"), "{page}");
    // A chunked body (no length at the head) is cut at the same point.
    let req = format!(
        "POST /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {ct}\r\n\
         Transfer-Encoding: chunked\r\n\r\n65\r\n{}\r\n0\r\n\r\n",
        form(101)
    );
    assert_eq!(split_response(&s.request(req.as_bytes())).0, 413);
}

#[test]
fn bad_pvos_stop_lwsd_at_start_naming_the_cause() {
    for (pvo, says) in [
        ("no-such-protocol:x=1", "no-such-protocol: no such protocol"),
        ("protocol-post-demo:max-body=lots", "option max-body"),
        (
            "protocol-post-demo:max-bdoy=10",
            "unknown option `max-bdoy`",
        ),
        ("protocol-post-demo", "is not PROTOCOL:NAME=VALUE"),
    ] {
        let out = std::process::Command::new(lwsd_bin())
            .args(["-p", &free_port().to_string(), "--metrics-addr", "off"])
            .args(["--pvo", pvo])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{pvo}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{pvo}: {err}");
        assert!(err.contains("--pvo"), "{pvo}: {err}");
    }
}

// ---- subprotocol choice ----

#[test]
fn unknown_subprotocol_gets_400_naming_it() {
    let s = Lwsd::start(&["-j", "1"]);
    let r = s.request(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: no-such-proto\r\n\r\n",
    );
    let (status, head, body) = split_response(&r);
    assert_eq!(status, 400);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("no-such-proto"), "{body}");
    // Like every other answer: Date and Server, a body of the length given, and the
    // connection closes after it.
    assert!(
        header(&head, "date").is_some_and(|d| d.ends_with(" GMT")),
        "{head}"
    );
    assert!(
        header(&head, "server").is_some_and(|s| s.starts_with("lwsd")),
        "{head}"
    );
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert_eq!(
        header(&head, "content-length").and_then(|l| l.parse::<usize>().ok()),
        Some(body.len()),
        "{head}"
    );
    // A missing version is 426 with Sec-WebSocket-Version: 13 (RFC 6455 4.4), same head.
    let r = s.request(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let (status, head, _) = split_response(&r);
    assert_eq!(status, 426, "{head}");
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"), "{head}");
    assert!(header(&head, "date").is_some(), "{head}");
    assert!(header(&head, "server").is_some(), "{head}");
}

#[test]
fn a_client_naming_no_protocol_gets_the_default() {
    // Without --ws-default: the first built-in protocol, lws-echo.
    let s = Lwsd::start(&["-j", "1"]);
    let (mut ws, proto) = ws_connect(s.port, &[]);
    assert_eq!(proto, None);
    send_text(&mut ws, "hello");
    assert_eq!(read_text(&mut ws), "hello");
    drop(s);

    // With it: the named one (dumb-increment's counter arrives unasked).
    let s = Lwsd::start(&["-j", "1", "--ws-default", "dumb-increment-protocol"]);
    let (mut ws, proto) = ws_connect(s.port, &[]);
    assert_eq!(proto, None);
    assert_eq!(read_text(&mut ws), "0");
    assert_eq!(read_text(&mut ws), "1");
}
