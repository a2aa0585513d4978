//! The plugin API driven through a real service loop and real WebSocket clients
//! (tungstenite): one write per writeable callback, no write outside it, writeable for all
//! connections of a protocol, rx flow control stopping delivery until resumed, protocol
//! timers, the bus (looped back when no supervisor runs), posts from other threads
//! reaching `event_wait_cancelled`, and `closed` for an HTTP session whose body was cut
//! short.

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lwsd_worker::App;
use lwsd_worker::api::{
    CbResult, Close, Conn, ConnId, FrameInfo, HttpAnswer, HttpRequest, HttpResponse, Plugin,
    Protocol, Vhost, WriteError, WriteKind,
};
use lwsd_worker::config::WorkerConfig;
use lwsd_worker::service::{Loop, LoopConfig};
use tungstenite::{Message, WebSocket};

/// What the probe protocol saw.
#[derive(Default, Debug)]
struct Log {
    received: Vec<String>,
    second_write: Vec<Result<(), WriteError>>,
    write_outside: Vec<Result<(), WriteError>>,
    bus: Vec<(usize, String)>,
    woken: usize,
    posted: Vec<String>,
    timers: Vec<u64>,
    closed: usize,
    /// Calls of `init` and `destroy`, in order.
    lifecycle: Vec<&'static str>,
}

struct Probe {
    log: Arc<Mutex<Log>>,
    paused: Option<ConnId>,
}

#[derive(Default)]
struct Session {
    outbox: Vec<String>,
}

impl Protocol for Probe {
    type Session = Session;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<Session, Close> {
        Ok(Session::default())
    }

    fn receive(
        &mut self,
        conn: &mut Conn<'_>,
        s: &mut Session,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult {
        assert!(f.first && f.last, "small messages arrive whole");
        let text = String::from_utf8(data.to_vec()).unwrap();
        let mut log = self.log.lock().unwrap();
        log.received.push(text.clone());
        log.write_outside
            .push(conn.write(WriteKind::Text, true, Bytes::from_static(b"no")));
        drop(log);
        if text == "pause" {
            conn.rx_flow_control(false);
            self.paused = Some(conn.id());
            conn.vhost().set_timer(Duration::from_millis(300), 7);
        } else if text == "all" {
            conn.vhost().callback_on_writable_all_protocol();
            s.outbox.push("all".into());
        } else if let Some(p) = text.strip_prefix("bus:") {
            conn.vhost().publish(p.as_bytes()).unwrap();
        } else {
            s.outbox.push(format!("echo:{text}"));
            conn.callback_on_writable();
        }
        Ok(())
    }

    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut Session) -> CbResult {
        let msg = if s.outbox.is_empty() {
            "all".to_string()
        } else {
            s.outbox.remove(0)
        };
        conn.write(WriteKind::Text, true, Bytes::from(msg)).unwrap();
        let again = conn.write(WriteKind::Text, true, Bytes::from_static(b"twice"));
        self.log.lock().unwrap().second_write.push(again);
        if !s.outbox.is_empty() {
            conn.callback_on_writable();
        }
        Ok(())
    }

    fn closed(&mut self, _vh: &mut Vhost<'_>, _id: ConnId, _s: Session) {
        self.log.lock().unwrap().closed += 1;
    }

    fn init(&mut self, vh: &mut Vhost<'_>) {
        self.log.lock().unwrap().lifecycle.push("init");
        // A per-vhost timer started before any connection, as lws' PROTOCOL_INIT may.
        vh.set_timer(Duration::from_millis(20), 42);
    }

    fn destroy(&mut self, _vh: &mut Vhost<'_>) {
        // (Also runs when a failed test drops the loop: no second panic on the lock.)
        if let Ok(mut log) = self.log.lock() {
            log.lifecycle.push("destroy");
        }
    }

    fn timer(&mut self, vh: &mut Vhost<'_>, id: u64) {
        self.log.lock().unwrap().timers.push(id);
        if id == 7
            && let Some(c) = self.paused.take()
        {
            vh.rx_flow_control(c, true);
        }
    }

    fn bus(&mut self, vh: &mut Vhost<'_>, origin: usize, payload: &[u8]) {
        self.log
            .lock()
            .unwrap()
            .bus
            .push((origin, String::from_utf8_lossy(payload).into()));
        vh.callback_on_writable_all_protocol();
    }

    fn event_wait_cancelled(&mut self, vh: &mut Vhost<'_>) {
        let mut log = self.log.lock().unwrap();
        log.woken += 1;
        log.posted.extend(vh.take_posted::<String>());
    }
}

fn setup() -> (Loop, TcpListener, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    let l2 = log.clone();
    let plugins = vec![Plugin::new("probe", move |_| {
        Ok(Probe {
            log: l2.clone(),
            paused: None,
        })
    })];
    let mut app = App::new(WorkerConfig::default(), 0);
    app.install_protocols(&plugins).unwrap();
    let factory = lwsd_worker::http::role_factory(&mut app).unwrap();
    let l = Loop::new(LoopConfig::default(), app, factory).expect("io_uring");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (l, listener, log)
}

#[test]
fn init_runs_when_the_vhost_starts_and_destroy_when_the_loop_ends() {
    let (mut l, _listener, log) = setup();
    assert_eq!(log.lock().unwrap().lifecycle, ["init"]);
    // The timer init armed fires with no connection at all.
    drive(&mut l, || log.lock().unwrap().timers.contains(&42));
    l.run_once(Some(Duration::from_millis(1))).unwrap();
    assert_eq!(
        log.lock().unwrap().lifecycle,
        ["init"],
        "destroy only at the end"
    );
    drop(l);
    assert_eq!(log.lock().unwrap().lifecycle, ["init", "destroy"]);
}

/// Connects a client (handshake runs while the loop is driven) and returns it.
fn client(l: &mut Loop, listener: &TcpListener) -> WebSocket<TcpStream> {
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = tungstenite::handshake::client::Request::builder()
            .uri(format!("ws://{addr}/"))
            .header("Host", addr.to_string())
            .header("Sec-WebSocket-Protocol", "probe")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header(
                "Sec-WebSocket-Key",
                tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .unwrap();
        tungstenite::client(req, s).unwrap().0
    });
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    drive(l, || t.is_finished());
    t.join().unwrap()
}

fn drive(l: &mut Loop, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out");
        l.run_once(Some(Duration::from_millis(5))).unwrap();
    }
}

/// Reads one message on a client while the loop runs.
fn recv(l: &mut Loop, c: &mut WebSocket<TcpStream>) -> String {
    c.get_mut().set_nonblocking(true).unwrap();
    let t = Instant::now();
    loop {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
        match c.read() {
            Ok(Message::Text(t)) => {
                c.get_mut().set_nonblocking(false).unwrap();
                return t.to_string();
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client read: {e}"),
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no message");
    }
}

fn send(c: &mut WebSocket<TcpStream>, text: &str) {
    c.send(Message::text(text)).unwrap();
}

#[test]
fn one_write_per_writeable_and_none_outside() {
    let (mut l, listener, log) = setup();
    let mut c = client(&mut l, &listener);
    send(&mut c, "hello");
    assert_eq!(recv(&mut l, &mut c), "echo:hello");
    let log = log.lock().unwrap();
    assert_eq!(log.second_write, vec![Err(WriteError::AlreadyWrote)]);
    assert_eq!(log.write_outside, vec![Err(WriteError::NotWriteable)]);
}

#[test]
fn writeable_for_all_connections_of_the_protocol() {
    let (mut l, listener, _log) = setup();
    let mut cs: Vec<_> = (0..5).map(|_| client(&mut l, &listener)).collect();
    send(&mut cs[0], "all");
    for c in cs.iter_mut() {
        assert_eq!(recv(&mut l, c), "all");
    }
}

#[test]
fn rx_flow_control_holds_input_until_resumed_by_a_timer() {
    let (mut l, listener, log) = setup();
    let mut c = client(&mut l, &listener);
    send(&mut c, "pause");
    drive(&mut l, || log.lock().unwrap().received.len() == 1);
    for i in 0..3 {
        send(&mut c, &format!("m{i}"));
    }
    // While paused nothing more is delivered.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(150) {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(
        log.lock().unwrap().received.len(),
        1,
        "delivered while paused"
    );
    // The protocol's timer (300 ms) turns reading back on: everything arrives, in order.
    drive(&mut l, || log.lock().unwrap().received.len() == 4);
    let log = log.lock().unwrap();
    assert_eq!(log.received, ["pause", "m0", "m1", "m2"]);
    assert!(log.timers.contains(&7));
}

#[test]
fn bus_publications_loop_back_without_a_supervisor() {
    let (mut l, listener, log) = setup();
    let mut a = client(&mut l, &listener);
    let mut b = client(&mut l, &listener);
    send(&mut a, "bus:news");
    assert_eq!(recv(&mut l, &mut b), "all");
    assert_eq!(recv(&mut l, &mut a), "all");
    assert_eq!(log.lock().unwrap().bus, [(0, "news".to_string())]);
}

#[test]
fn posts_from_other_threads_reach_event_wait_cancelled() {
    let (mut l, _listener, log) = setup();
    let h = l.handle();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || h.post(format!("from {i}")).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drive(&mut l, || log.lock().unwrap().posted.len() == 3);
    let mut posted = log.lock().unwrap().posted.clone();
    posted.sort();
    assert_eq!(posted, ["from 0", "from 1", "from 2"]);
    let woken = log.lock().unwrap().woken;
    h.cancel_service();
    drive(&mut l, || log.lock().unwrap().woken > woken);
}

#[test]
fn closed_is_called_when_the_client_goes() {
    let (mut l, listener, log) = setup();
    let mut c = client(&mut l, &listener);
    c.close(None).unwrap();
    drive(&mut l, || log.lock().unwrap().closed == 1);
    // The fd's close rides in the next submit.
    l.run_once(Some(Duration::from_millis(5))).unwrap();
    assert_eq!(l.live(), 0);
}

// ---- an HTTP callback session cut short ----

/// Reads request bodies on the `/formtest` callback mount (it takes protocol-post-demo's
/// name to get that mount) and counts what it is told.
#[derive(Default, Debug)]
struct BodyLog {
    bytes: usize,
    completed: usize,
    closed: usize,
}

struct BodyReader(Arc<Mutex<BodyLog>>);

impl Protocol for BodyReader {
    type Session = usize;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<usize, Close> {
        Err(Close::new(1008, "HTTP only"))
    }

    fn http(&mut self, _vh: &mut Vhost<'_>, _req: &HttpRequest<'_>) -> HttpAnswer<usize> {
        HttpAnswer::ReadBody(0)
    }

    fn http_body(&mut self, _vh: &mut Vhost<'_>, s: &mut usize, chunk: &[u8]) -> CbResult {
        *s += chunk.len();
        self.0.lock().unwrap().bytes += chunk.len();
        Ok(())
    }

    fn http_body_completion(&mut self, _vh: &mut Vhost<'_>, _s: usize) -> HttpAnswer<usize> {
        self.0.lock().unwrap().completed += 1;
        HttpResponse::new(200, "text/plain", Bytes::from_static(b"ok")).into()
    }

    fn closed(&mut self, _vh: &mut Vhost<'_>, _id: ConnId, s: usize) {
        let mut log = self.0.lock().unwrap();
        assert_eq!(s, log.bytes, "the session comes back as it was");
        log.closed += 1;
    }
}

fn body_setup(config: WorkerConfig) -> (Loop, TcpListener, Arc<Mutex<BodyLog>>) {
    let log = Arc::new(Mutex::new(BodyLog::default()));
    let l2 = log.clone();
    let plugins = vec![Plugin::new(
        lwsd_worker::plugins::post_demo::NAME,
        move |_| Ok(BodyReader(l2.clone())),
    )];
    let mut app = App::new(config, 0);
    app.install_protocols(&plugins).unwrap();
    let factory = lwsd_worker::http::role_factory(&mut app).unwrap();
    let l = Loop::new(LoopConfig::default(), app, factory).expect("io_uring");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (l, listener, log)
}

/// A client that sent a POST head announcing 100 bytes and the first 50 of them, once
/// the protocol has seen those 50.
fn half_a_body(l: &mut Loop, listener: &TcpListener, log: &Arc<Mutex<BodyLog>>) -> TcpStream {
    use std::io::Write;
    let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    c.write_all(b"POST /formtest HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    c.write_all(&[b'a'; 50]).unwrap();
    drive(l, || log.lock().unwrap().bytes == 50);
    c
}

#[test]
fn an_http_body_cut_short_by_the_peer_gets_closed() {
    let (mut l, listener, log) = body_setup(WorkerConfig::default());
    // A whole body first: completion, no `closed` (the answer ends the request).
    {
        use std::io::Write;
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        l.adopt(OwnedFd::from(server), 0);
        c.write_all(
            b"POST /formtest HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap();
        drive(&mut l, || log.lock().unwrap().completed == 1);
        let r = read_to_eof(&mut l, &mut c);
        assert!(r.starts_with(b"HTTP/1.1 200"), "{r:?}");
        assert_eq!(log.lock().unwrap().closed, 0);
        log.lock().unwrap().bytes = 0;
    }
    // Half a body, then the client goes (a reset: linger 0).
    let c = half_a_body(&mut l, &listener, &log);
    nix::sys::socket::setsockopt(
        &c,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(c);
    drive(&mut l, || log.lock().unwrap().closed == 1);
    // Half a body, then a clean EOF.
    log.lock().unwrap().bytes = 0;
    let c = half_a_body(&mut l, &listener, &log);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    drive(&mut l, || log.lock().unwrap().closed == 2);
    let log = log.lock().unwrap();
    assert_eq!(log.completed, 1, "no completion for a body cut short");
}

#[test]
fn an_http_body_cut_short_by_the_body_timeout_gets_closed() {
    let (mut l, listener, log) = body_setup(WorkerConfig {
        body_timeout: Duration::from_millis(200),
        ..WorkerConfig::default()
    });
    let mut c = half_a_body(&mut l, &listener, &log);
    drive(&mut l, || log.lock().unwrap().closed == 1);
    assert_eq!(log.lock().unwrap().completed, 0);
    // The client was told why: 408. (The server has closed: read what it sent.)
    let r = read_to_eof(&mut l, &mut c);
    assert!(
        r.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

/// Everything the server sends `c` until it closes, while the loop runs.
fn read_to_eof(l: &mut Loop, c: &mut TcpStream) -> Vec<u8> {
    use std::io::Read;
    c.set_nonblocking(true).unwrap();
    let t = Instant::now();
    let mut r = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
        match c.read(&mut buf) {
            Ok(0) => return r,
            Ok(n) => r.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return r,
            Err(e) => panic!("client read: {e}"),
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no EOF");
    }
}
