//! Server memory per idle WebSocket connection, measured on a real service loop.
//!
//! A counting global allocator tracks the bytes live on the heap of this test's thread
//! (the loop runs on it). The test drives a real [`Loop`] with the HTTP role factory and
//! the built-in protocols, adopts [`N`] loopback connections, upgrades each to `lws-echo`
//! with raw handshake bytes (RFC 6455 4.1), exchanges one message on each, lets them go
//! idle (nothing in flight) and reports the heap each connection holds:
//!
//! - `requested`: the bytes asked of the allocator (sum of live `Layout` sizes);
//! - `chunked`: the same allocations as glibc malloc lays them out (8 bytes of header,
//!   16-byte granularity, 32-byte minimum chunk), which is what they cost in RSS;
//! - the slab entry: [`Loop`] reserves its slab for 1,024 connections up front, so
//!   `size_of::<service::conn::Conn>()` per connection is added (that is what the slab's
//!   growth costs per connection once N passes the reservation).
//!
//! Run with `--nocapture` to see the figures. The assertions pin the bound, so a
//! regression fails here (issue acceptance: <= 400 bytes of RSS per idle connection at
//! N = 10,000, measured on the process; see `shared/anchors.md`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use lwsd_worker::App;
use lwsd_worker::config::WorkerConfig;
use lwsd_worker::service::{Loop, LoopConfig};

/// Connections measured: enough that fixed costs vanish in the average, below the slab's
/// initial reservation (1,024) so the loop's up-front allocations do not land inside the
/// measured window.
const N: usize = 1000;

/// Counts the bytes live on the heap per thread (so parallel tests do not mix).
struct Counting;

thread_local! {
    static REQUESTED: Cell<isize> = const { Cell::new(0) };
    static CHUNKED: Cell<isize> = const { Cell::new(0) };
}

/// The size of the chunk glibc's malloc uses for a request of `n` bytes (x86_64/aarch64:
/// an 8-byte size header, 16-byte alignment, 32-byte minimum chunk).
fn chunk(n: usize) -> isize {
    ((n + 8).div_ceil(16) * 16).max(32) as isize
}

fn add(requested: isize, chunked: isize) {
    let _ = REQUESTED.try_with(|c| c.set(c.get() + requested));
    let _ = CHUNKED.try_with(|c| c.set(c.get() + chunked));
}

// SAFETY: every method forwards to `System` with the same arguments and only adds
// bookkeeping in thread-local cells, which never allocates (const-initialised `Cell`s).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, chunk(layout.size()));
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, chunk(layout.size()));
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize), -chunk(layout.size()));
        // SAFETY: forwarded unchanged; `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(
            new_size as isize - layout.size() as isize,
            chunk(new_size) - chunk(layout.size()),
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (requested, chunked) bytes live on this thread's heap.
fn live() -> (isize, isize) {
    (REQUESTED.with(Cell::get), CHUNKED.with(Cell::get))
}

/// RFC 6455 4.1: a client opening handshake asking for `lws-echo` (the key is the
/// RFC's example nonce, section 1.3), without permessage-deflate.
const HANDSHAKE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: lws-echo\r\n\r\n";

/// A masked text frame "Hello" (RFC 6455 5.7, the masked example).
const HELLO_MASKED: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// The echo: the unmasked text frame "Hello" (RFC 6455 5.7).
const HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];

fn new_loop() -> Loop {
    let mut app = App::new(WorkerConfig::default(), 0);
    app.install_protocols(&lwsd_worker::plugins::builtin())
        .expect("builtin protocols");
    let factory = lwsd_worker::http::role_factory(&mut app).expect("http role");
    Loop::new(LoopConfig::default(), app, factory).expect("io_uring available")
}

/// Runs the loop until every client has read `want` bytes (reads with no allocation:
/// a stack buffer, nonblocking sockets). `got` counts bytes per client.
fn drive_until_read(l: &mut Loop, clients: &mut [TcpStream], got: &mut [usize], want: usize) {
    let t = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
        let mut done = true;
        for (c, g) in clients.iter_mut().zip(got.iter_mut()) {
            while *g < want {
                match c.read(&mut buf) {
                    Ok(0) => panic!("server closed the connection"),
                    Ok(n) => *g += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            done &= *g >= want;
        }
        if done {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "timed out");
    }
}

/// Per-connection figures, in bytes.
#[derive(Debug, Clone, Copy)]
struct PerConn {
    requested: f64,
    chunked: f64,
}

fn per_conn(base: (isize, isize), now: (isize, isize), n: usize) -> PerConn {
    PerConn {
        requested: (now.0 - base.0) as f64 / n as f64,
        chunked: (now.1 - base.1) as f64 / n as f64,
    }
}

#[test]
fn idle_echo_connection_heap() {
    let mut l = new_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let response_len = {
        // Warm-up: one full connection, so the loop's lazily grown vectors (completion
        // batch, dirty list, timer heap) exist before counting; and the 101 length.
        let mut c = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        l.adopt(OwnedFd::from(s), 0);
        c.set_nonblocking(true).unwrap();
        c.write_all(HANDSHAKE).unwrap();
        let mut head = Vec::new();
        let t = Instant::now();
        while !head.ends_with(b"\r\n\r\n") {
            assert!(t.elapsed() < Duration::from_secs(10), "no 101");
            l.run_once(Some(Duration::from_millis(5))).unwrap();
            let mut b = [0u8; 512];
            match c.read(&mut b) {
                Ok(n) => head.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        c.write_all(&HELLO_MASKED).unwrap();
        let mut cs = [c];
        drive_until_read(&mut l, &mut cs, &mut [0], HELLO.len());
        drop(cs);
        let t = Instant::now();
        while l.live() != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "warm-up conn not closed"
            );
            l.run_once(Some(Duration::from_millis(5))).unwrap();
        }
        head.len()
    };

    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    let mut got = vec![0usize; N];
    let base = live();
    for _ in 0..N {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        l.adopt(OwnedFd::from(s), 0);
        c.set_nonblocking(true).unwrap();
        clients.push(c);
    }
    assert_eq!(l.live(), N);
    for c in &mut clients {
        c.write_all(HANDSHAKE).unwrap();
    }
    drive_until_read(&mut l, &mut clients, &mut got, response_len);
    assert!(
        got.iter().all(|&g| g == response_len),
        "exactly one 101 each"
    );
    let upgraded = per_conn(base, live(), N);

    got.fill(0);
    for c in &mut clients {
        c.write_all(&HELLO_MASKED).unwrap();
    }
    drive_until_read(&mut l, &mut clients, &mut got, HELLO.len());
    // Nothing in flight: let the send completions arrive, and the load pass (the pool
    // of send states keeps what the burst of N echoes needed until two trims later).
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2200) {
        l.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    let idle = per_conn(base, live(), N);
    assert_eq!(l.live(), N);
    assert_eq!(l.app.stats.wire.ws_conns as usize, N);

    let slab = std::mem::size_of::<lwsd_worker::service::conn::Conn>();
    let role = std::mem::size_of::<lwsd_worker::upgraded::Upgraded>();
    let ws = std::mem::size_of::<lwsd_worker::roles::ws::WsConn>();
    let total = idle.chunked + slab as f64;
    println!(
        "per idle connection (N = {N}): heap {:.0} B requested / {:.0} B as malloc chunks \
         after the upgrade, {:.0} / {:.0} after one echo; + slab entry {slab} B = {total:.0} B \
         (size_of Upgraded {role}, WsConn {ws})",
        upgraded.requested, upgraded.chunked, idle.requested, idle.chunked
    );
    // The bound: the 400 B. Measured 350–357 B (as malloc chunks): the WebSocket
    // role 128, the echo session 96, the service's connection 72 in the slab (its output
    // queue, reassembly buffer and TLS transport are one pointer each, storage attached
    // only while busy or on TLS), ~33 of timer heap and slot-generation table, and the loop's pool of drained
    // send states once the load has passed (`SEND_POOL_MAX` x ~300 B at most, ~38 B per
    // connection at this N, less at larger N). A regression (a retained buffer, a fatter
    // struct, a pool that keeps a burst's states) fails.
    assert!(total <= 400.0, "{total:.0} B per idle connection");
    assert!(slab <= 72, "size_of::<Conn>() = {slab}");
    // The WebSocket role's own part: one allocation, no retained buffers.
    assert!(role <= 120, "size_of::<Upgraded>() = {role}");
    assert!(ws <= 80, "size_of::<WsConn>() = {ws}");

    drop(clients);
    let t = Instant::now();
    while l.live() != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "connections not closed"
        );
        l.run_once(Some(Duration::from_millis(5))).unwrap();
    }
}

/// A masked client frame (RFC 6455 5.2, 5.3) with a fixed key.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// The sans-IO connection alone: after messages, pings and frames cut anywhere (the
/// header, a control payload), an idle server `WsConn` holds no heap memory, and its
/// answers go to the caller's sink.
#[test]
fn idle_ws_conn_holds_no_heap() {
    use lwsd_worker::roles::ws::{DataKind, Event, WsConfig, WsConn};
    let mut stream = Vec::new();
    stream.extend(client_frame(true, 1, b"hello"));
    stream.extend(client_frame(true, 9, b"are you there?"));
    stream.extend(client_frame(false, 2, &[7; 300]));
    stream.extend(client_frame(true, 0xa, b"pong"));
    stream.extend(client_frame(true, 0, &[8; 3]));
    let mut sink: Vec<bytes::Bytes> = Vec::with_capacity(64);
    let mut c = WsConn::server(WsConfig::default(), 0);
    let base = live();
    // Every cut point, so headers and control payloads are split across reads.
    for cut in 0..stream.len() {
        let mut data = stream.clone();
        let (a, b) = data.split_at_mut(cut);
        let mut events = 0;
        for piece in [a, b] {
            let mut pos = 0;
            while pos < piece.len() {
                let p = c.process_into(&mut piece[pos..], 1, &mut sink).unwrap();
                pos += p.consumed;
                match p.event {
                    Some(Event::Blocked) => panic!("blocked"),
                    Some(_) => events += 1,
                    None => {}
                }
            }
        }
        assert!(events >= 4, "cut {cut}: {events} events");
        c.send_frame_into(DataKind::Text, false, true, "hi".into(), &mut sink)
            .unwrap();
        // One pong, one header + payload.
        assert_eq!(sink.len(), 3, "cut {cut}");
        sink.clear();
        drop(data);
        assert_eq!(live(), base, "cut {cut}: heap held by an idle WsConn");
    }
    assert!(!c.has_output(), "nothing went to the internal queue");
}
