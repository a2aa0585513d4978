//! The plugin API driven through a real service loop and real WebSocket clients
//! (tungstenite): one write per writeable callback, no write outside it, writeable for all
//! connections of a protocol, rx flow control stopping delivery until resumed, protocol
//! timers, the bus (looped back when no supervisor runs), posts from other threads
//! reaching `event_wait_cancelled`, `closed` for an HTTP session whose body was cut
//! short, and HTTP answers streamed through `http_writeable` (chunked framing checked
//! byte by byte, HEAD, HTTP/1.0, pipelining after a stream, a reader that stops, a peer
//! that resets, pacing from a timer by the exchange's connection id, curl).

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lwsd_worker::App;
use lwsd_worker::api::{
    CbResult, Close, Conn, ConnId, FrameInfo, HttpAnswer, HttpConn, HttpRequest, HttpResponse,
    Plugin, Protocol, Vhost, WriteError, WriteKind,
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

// ---- HTTP answers streamed through `http_writeable` ----

/// What the streaming protocol saw.
#[derive(Default, Debug)]
struct StreamLog {
    writeables: usize,
    /// Body bytes written (without framing).
    written: usize,
    second_write: Vec<Result<(), WriteError>>,
    /// The connection of each exchange, as its `HttpConn` says.
    conns: Vec<ConnId>,
    closed: usize,
    finished: usize,
}

/// Answers `GET /formtest?PIECES,SIZE[,paced]` with a streamed body: a first piece
/// `[` in the head's answer, then PIECES pieces of SIZE bytes (piece `i` filled with
/// byte `b'a' + i % 26`; PIECES 0 means without end), the last with `fin`. `paced`: the
/// protocol does not ask for the next callback itself, a timer does, through
/// `Vhost::callback_on_writable` with the exchange's connection id.
struct Streamer {
    log: Arc<Mutex<StreamLog>>,
    paced: Vec<ConnId>,
}

struct Piece {
    left: Option<usize>,
    size: usize,
    index: usize,
    paced: bool,
}

fn piece(index: usize, size: usize) -> Vec<u8> {
    vec![b'a' + (index % 26) as u8; size]
}

impl Protocol for Streamer {
    type Session = Piece;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<Piece, Close> {
        Err(Close::new(1008, "HTTP only"))
    }

    fn http(&mut self, _vh: &mut Vhost<'_>, req: &HttpRequest<'_>) -> HttpAnswer<Piece> {
        let q = std::str::from_utf8(req.query.unwrap_or_default()).unwrap();
        let mut parts = q.split(',');
        let pieces: usize = parts.next().unwrap().parse().unwrap();
        let size: usize = parts.next().unwrap().parse().unwrap();
        let paced = parts.next() == Some("paced");
        let head = HttpResponse::new(200, "application/octet-stream", Bytes::from_static(b"["))
            .with_header("X-Stream", "yes")
            .unwrap();
        HttpAnswer::Stream(
            head,
            Piece {
                left: (pieces > 0).then_some(pieces),
                size,
                index: 0,
                paced,
            },
        )
    }

    fn http_writeable(&mut self, http: &mut HttpConn<'_>, s: &mut Piece) -> CbResult {
        let mut log = self.log.lock().unwrap();
        log.writeables += 1;
        if s.index == 0 {
            log.conns.push(http.id());
            assert_eq!(http.session_id().conn, http.id());
        }
        let fin = s.left == Some(1);
        http.write(Bytes::from(piece(s.index, s.size)), fin)
            .unwrap();
        log.written += s.size;
        if s.index == 0 {
            let again = http.write(Bytes::from_static(b"x"), false);
            log.second_write.push(again);
        }
        s.index += 1;
        if let Some(l) = s.left.as_mut() {
            *l -= 1;
        }
        if fin {
            log.finished += 1;
        } else if s.paced {
            self.paced.push(http.id());
            http.vhost().set_timer(Duration::from_millis(5), 1);
        } else {
            http.callback_on_writable();
        }
        Ok(())
    }

    fn timer(&mut self, vh: &mut Vhost<'_>, _id: u64) {
        for id in self.paced.drain(..) {
            vh.callback_on_writable(id);
        }
    }

    fn closed(&mut self, _vh: &mut Vhost<'_>, _id: ConnId, _s: Piece) {
        self.log.lock().unwrap().closed += 1;
    }
}

fn stream_setup() -> (Loop, TcpListener, Arc<Mutex<StreamLog>>) {
    let log = Arc::new(Mutex::new(StreamLog::default()));
    let l2 = log.clone();
    let plugins = vec![Plugin::new(
        lwsd_worker::plugins::post_demo::NAME,
        move |_| {
            Ok(Streamer {
                log: l2.clone(),
                paced: Vec::new(),
            })
        },
    )];
    let mut app = App::new(WorkerConfig::default(), 0);
    app.install_protocols(&plugins).unwrap();
    let factory = lwsd_worker::http::role_factory(&mut app).unwrap();
    let l = Loop::new(LoopConfig::default(), app, factory).expect("io_uring");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (l, listener, log)
}

/// A raw client connection adopted by the loop, having sent `req`.
fn raw_client(l: &mut Loop, listener: &TcpListener, req: &[u8]) -> TcpStream {
    use std::io::Write;
    let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    c.write_all(req).unwrap();
    c
}

/// Reads from `c` while the loop runs until `done(bytes so far)` or EOF.
fn read_until(l: &mut Loop, c: &mut TcpStream, mut done: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    use std::io::Read;
    c.set_nonblocking(true).unwrap();
    let t = Instant::now();
    let mut r = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !done(&r) {
        l.run_once(Some(Duration::from_millis(2))).unwrap();
        loop {
            match c.read(&mut buf) {
                Ok(0) => return r,
                Ok(n) => r.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "timed out");
    }
    r
}

/// Splits one response off `r`: (head, rest).
fn split_head(r: &[u8]) -> (String, &[u8]) {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    (String::from_utf8(r[..end].to_vec()).unwrap(), &r[end..])
}

/// Decodes a chunked body (RFC 9112 7.1) strictly: returns the chunk sizes, the data,
/// and what follows the last chunk.
fn dechunk(mut r: &[u8]) -> (Vec<usize>, Vec<u8>, &[u8]) {
    let mut sizes = Vec::new();
    let mut data = Vec::new();
    loop {
        let nl = r.windows(2).position(|w| w == b"\r\n").expect("chunk line");
        let line = std::str::from_utf8(&r[..nl]).unwrap();
        assert!(
            !line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()),
            "bad chunk line {line:?}"
        );
        let n = usize::from_str_radix(line, 16).unwrap();
        r = &r[nl + 2..];
        if n == 0 {
            assert!(r.starts_with(b"\r\n"), "no empty trailer section");
            return (sizes, data, &r[2..]);
        }
        sizes.push(n);
        data.extend_from_slice(&r[..n]);
        assert_eq!(&r[n..n + 2], b"\r\n", "chunk data not followed by CRLF");
        r = &r[n + 2..];
    }
}

fn expected_body(pieces: usize, size: usize) -> Vec<u8> {
    let mut b = b"[".to_vec();
    for i in 0..pieces {
        b.extend(piece(i, size));
    }
    b
}

/// Whether `r` holds a complete chunked response followed by `more` complete ones
/// (a crude scan: the last chunk marker, counted).
fn ends_count(r: &[u8]) -> usize {
    r.windows(7).filter(|w| *w == b"\r\n0\r\n\r\n").count()
}

#[test]
fn a_streamed_answer_is_chunked_byte_exact_and_a_pipelined_request_follows_in_order() {
    let (mut l, listener, log) = stream_setup();
    // 64 pieces of 16 KiB (1 MiB + the first byte), then a small streamed answer, in one
    // write: the second waits for the first's last chunk.
    let mut c = raw_client(
        &mut l,
        &listener,
        b"GET /formtest?64,16384 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /formtest?2,3 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = read_until(&mut l, &mut c, |r| ends_count(r) == 2);
    let (head, rest) = split_head(&r);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nX-Stream: yes\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: application/octet-stream\r\n"));
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(!head.contains("Connection: close"), "{head}");
    let (sizes, body, rest) = dechunk(rest);
    // One chunk per write, each as the protocol wrote it.
    let mut want_sizes = vec![1];
    want_sizes.extend([16384; 64]);
    assert_eq!(sizes, want_sizes);
    assert!(body == expected_body(64, 16384), "body differs");
    // The pipelined request's answer, after the first one's end.
    let (head2, rest2) = split_head(rest);
    assert!(head2.starts_with("HTTP/1.1 200 OK\r\n"), "{head2}");
    let (sizes2, body2, tail) = dechunk(rest2);
    assert_eq!(sizes2, [1, 3, 3]);
    assert_eq!(body2, expected_body(2, 3));
    assert!(tail.is_empty());
    let log = log.lock().unwrap();
    assert_eq!(log.writeables, 66);
    assert_eq!(log.finished, 2);
    assert_eq!(log.closed, 0, "finished sessions are not closed");
    assert_eq!(
        log.second_write,
        [Err(WriteError::AlreadyWrote), Err(WriteError::AlreadyWrote)]
    );
    // Both exchanges say the connection that carried them.
    assert_eq!(log.conns.len(), 2);
    assert_eq!(log.conns[0], log.conns[1]);
}

#[test]
fn head_on_a_streamed_route_gets_the_head_only_and_the_session_back() {
    let (mut l, listener, log) = stream_setup();
    let mut c = raw_client(
        &mut l,
        &listener,
        b"HEAD /formtest?4,10 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /formtest?1,2 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = read_until(&mut l, &mut c, |r| ends_count(r) == 1);
    let (head, rest) = split_head(&r);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    // No body: the next answer's head follows at once.
    let (head2, rest2) = split_head(rest);
    assert!(head2.starts_with("HTTP/1.1 200 OK\r\n"), "{head2}");
    let (_, body2, _) = dechunk(rest2);
    assert_eq!(body2, expected_body(1, 2));
    let log = log.lock().unwrap();
    assert_eq!(
        log.closed, 1,
        "the HEAD's session comes back through closed"
    );
    assert_eq!(log.finished, 1);
}

#[test]
fn http10_gets_a_close_delimited_stream() {
    let (mut l, listener, log) = stream_setup();
    let mut c = raw_client(&mut l, &listener, b"GET /formtest?5,1000 HTTP/1.0\r\n\r\n");
    let r = read_until(&mut l, &mut c, |_| false); // to EOF
    let (head, body) = split_head(&r);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert!(!head.contains("Transfer-Encoding") && !head.contains("Content-Length"));
    assert!(body == expected_body(5, 1000), "body differs");
    assert_eq!(log.lock().unwrap().finished, 1);
}

#[test]
fn paced_by_a_timer_through_the_exchanges_connection_id() {
    let (mut l, listener, log) = stream_setup();
    let mut c = raw_client(
        &mut l,
        &listener,
        b"GET /formtest?10,7,paced HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = read_until(&mut l, &mut c, |r| ends_count(r) == 1);
    let (_, rest) = split_head(&r);
    let (_, body, _) = dechunk(rest);
    assert_eq!(body, expected_body(10, 7));
    assert_eq!(log.lock().unwrap().writeables, 10);
}

#[test]
fn a_reader_that_stops_stops_the_callbacks_and_a_reset_gets_closed_once() {
    let (mut l, listener, log) = stream_setup();
    // A small receive window, and no reading: an endless stream of 16 KiB pieces.
    let sock = socket2_small_rcvbuf(&listener);
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    {
        use std::io::Write;
        (&sock)
            .write_all(b"GET /formtest?0,16384 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    let run = |l: &mut Loop, ms: u64| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(ms) {
            l.run_once(Some(Duration::from_millis(5))).unwrap();
        }
    };
    run(&mut l, 500);
    let stalled = log.lock().unwrap().writeables;
    assert!(stalled > 0);
    run(&mut l, 300);
    let later = log.lock().unwrap().writeables;
    assert_eq!(
        stalled, later,
        "writeable callbacks go on for a reader that stopped"
    );
    // What was written is what the socket buffers and the output limit hold.
    let written = log.lock().unwrap().written;
    assert!(
        written < 16 << 20,
        "{written} bytes written for a stopped reader"
    );
    assert_eq!(log.lock().unwrap().closed, 0);
    // The peer resets mid-stream: the session comes back once.
    nix::sys::socket::setsockopt(
        &sock,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(sock);
    drive(&mut l, || log.lock().unwrap().closed == 1);
    run(&mut l, 50);
    assert_eq!(log.lock().unwrap().closed, 1);
    assert_eq!(log.lock().unwrap().finished, 0);
    assert_eq!(l.live(), 0);
}

/// A client socket connected to `listener` with a 16 KiB receive buffer (set after
/// the connect: the window it advertises stays small).
fn socket2_small_rcvbuf(listener: &TcpListener) -> TcpStream {
    let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    nix::sys::socket::setsockopt(&c, nix::sys::socket::sockopt::RcvBuf, &16384).unwrap();
    c
}

#[test]
fn curl_reads_a_streamed_answer() {
    let (mut l, listener, log) = stream_setup();
    let addr = listener.local_addr().unwrap();
    let out = std::env::temp_dir().join(format!("lwsd-stream-{}", std::process::id()));
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "--raw", "-D", "-", "-o"])
        .arg(&out)
        .arg(format!("http://{addr}/formtest?40,25000"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    let t = Instant::now();
    let status = loop {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
        if let Some(s) = curl.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "curl timed out");
    };
    assert!(status.success());
    // --raw keeps the chunk framing: decode it here, strictly.
    let raw = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let (sizes, body, tail) = dechunk(&raw);
    assert_eq!(sizes.len(), 41);
    assert!(tail.is_empty());
    assert!(body == expected_body(40, 25000), "body differs");
    assert_eq!(log.lock().unwrap().finished, 1);
    // And decoded by curl itself.
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "-o", "-"])
        .arg(format!("http://{addr}/formtest?3,5"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    let t = Instant::now();
    while curl.try_wait().unwrap().is_none() {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
        assert!(t.elapsed() < Duration::from_secs(20), "curl timed out");
    }
    let o = curl.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, expected_body(3, 5));
}
