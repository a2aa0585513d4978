//! The service loop driven alone (no supervisor): a raw echo role over real loopback
//! sockets, pipelined writes, partial sends of a large echo, timers, close on EOF, stale
//! completions after slot reuse, and the ServiceHandle woken from other threads.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lwsd_worker::App;
use lwsd_worker::config::WorkerConfig;
use lwsd_worker::service::{Cx, EventLoop, Flow, Loop, LoopConfig, Role};

/// Echoes every byte; "quit" closes after flushing; closes after `idle_ms` idle.
struct Echo {
    idle_ms: u64,
}

/// The idle time of the echo connections, except in the test of the timer itself: long
/// enough that a machine busy with other work (a test suite compiling beside it) never
/// lets a connection of a burst test idle out between its rounds.
const ECHO_IDLE_MS: u64 = 10_000;

impl Role for Echo {
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        *cx.deadline = cx.now_ms + self.idle_ms;
        if data.is_empty() {
            return (0, Flow::Continue);
        }
        if data.starts_with(b"quit") {
            cx.out.push(Bytes::from_static(b"bye\n"));
            return (data.len(), Flow::CloseAfterFlush { linger: false });
        }
        cx.out.push(Bytes::copy_from_slice(data));
        (data.len(), Flow::Continue)
    }
    fn on_timer(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Abort
    }
    fn on_drain(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::CloseAfterFlush { linger: false }
    }
}

fn new_loop() -> Loop {
    new_loop_idle(ECHO_IDLE_MS)
}

fn new_loop_idle(idle_ms: u64) -> Loop {
    new_loop_on(EventLoop::Uring, idle_ms)
}

/// An echo loop on the io_uring or the epoll driver.
fn new_loop_on(event_loop: EventLoop, idle_ms: u64) -> Loop {
    let factory = Box::new(move |_: &mut App, _| Box::new(Echo { idle_ms }) as Box<dyn Role>);
    let cfg = LoopConfig {
        event_loop,
        ..LoopConfig::default()
    };
    let l = Loop::new(cfg, App::new(WorkerConfig::default(), 0), factory)
        .expect("event loop available");
    assert_eq!(l.is_uring(), event_loop == EventLoop::Uring);
    l
}

fn connect(l: &mut Loop, listener: &TcpListener) -> TcpStream {
    connect_with(l, listener, b"")
}

/// A connection whose first bytes (`data`) are in the server socket before the loop
/// adopts it and submits its recv, as TCP_DEFER_ACCEPT delivers them; the client end is
/// nonblocking when it sent any.
fn connect_with(l: &mut Loop, listener: &TcpListener, data: &[u8]) -> TcpStream {
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    if !data.is_empty() {
        client.write_all(data).unwrap();
        client.set_nonblocking(true).unwrap();
    }
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    l.adopt(OwnedFd::from(server), 0);
    client
}

fn drive_until(l: &mut Loop, mut done: impl FnMut(&mut Loop) -> bool) {
    let t = Instant::now();
    while !done(l) {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out");
        l.run_once(Some(Duration::from_millis(20))).unwrap();
    }
}

#[test]
fn echo_many_connections_and_large_partial_sends() {
    echo_many_connections_and_large_partial_sends_on(EventLoop::Uring);
}

#[test]
fn echo_many_connections_and_large_partial_sends_epoll() {
    echo_many_connections_and_large_partial_sends_on(EventLoop::Epoll);
}

fn echo_many_connections_and_large_partial_sends_on(ev: EventLoop) {
    let mut l = new_loop_on(ev, ECHO_IDLE_MS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clients: Vec<TcpStream> = (0..50).map(|_| connect(&mut l, &listener)).collect();
    assert_eq!(l.live(), 50);
    // 4 MiB through one connection: far more than the socket buffer, so sends are partial
    // and the recv side runs through many ring buffers.
    let big: Vec<u8> = (0..4 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let writer_data = big.clone();
    let mut w = clients[0].try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&writer_data).unwrap());
    let mut r = clients[0].try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 4 << 20];
        r.read_exact(&mut got).unwrap();
        got
    });
    for c in clients.iter_mut().skip(1) {
        c.write_all(b"ping").unwrap();
    }
    let t = Instant::now();
    while !reader.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(20));
        l.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    writer.join().unwrap();
    assert!(reader.join().unwrap() == big, "echo corrupted");
    for c in clients.iter_mut().skip(1) {
        let mut b = [0u8; 4];
        // the loop keeps running while we read
        c.set_nonblocking(true).unwrap();
        let mut got = 0;
        drive_until(&mut l, |_| {
            if let Ok(n) = c.read(&mut b[got..]) {
                got += n;
            }
            got == 4
        });
        assert_eq!(&b, b"ping");
    }
}

#[test]
fn close_after_flush_eof_and_timer() {
    close_after_flush_eof_and_timer_on(EventLoop::Uring);
}

#[test]
fn close_after_flush_eof_and_timer_epoll() {
    close_after_flush_eof_and_timer_on(EventLoop::Epoll);
}

fn close_after_flush_eof_and_timer_on(ev: EventLoop) {
    let mut l = new_loop_on(ev, 300);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = connect(&mut l, &listener);
    let b = connect(&mut l, &listener);
    let mut c = connect(&mut l, &listener);
    a.write_all(b"quit").unwrap();
    drop(b); // EOF
    c.write_all(b"x").unwrap();
    drive_until(&mut l, |l| l.live() == 1);
    let mut s = String::new();
    a.read_to_string(&mut s).unwrap();
    assert_eq!(s, "bye\n", "output queued before the close is delivered");
    // c idles past its 300 ms deadline and is closed by the timer
    drive_until(&mut l, |l| l.live() == 0);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"x");
    assert_eq!(l.app.stats.wire.accepted_total, 3);
    assert_eq!(l.app.stats.wire.closed_total, 3);
    // slots are reused with a new generation; the new connection works
    let mut d = connect(&mut l, &listener);
    d.write_all(b"again").unwrap();
    let mut b5 = [0u8; 5];
    drive_until(&mut l, |_| {
        d.set_nonblocking(true).unwrap();
        d.read_exact(&mut b5).is_ok()
    });
    assert_eq!(&b5, b"again");
}

#[test]
fn service_handle_posts_from_other_threads_while_running() {
    service_handle_posts_from_other_threads_while_running_on(EventLoop::Uring);
}

#[test]
fn service_handle_posts_from_other_threads_while_running_epoll() {
    service_handle_posts_from_other_threads_while_running_on(EventLoop::Epoll);
}

fn service_handle_posts_from_other_threads_while_running_on(ev: EventLoop) {
    let mut l = new_loop_on(ev, ECHO_IDLE_MS);
    let h = l.handle();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..250u32 {
                    h.post(t * 1000 + i).unwrap();
                    if i % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    drive_until(&mut l, |l| l.app.plugin.posted.len() == 1000);
    for t in threads {
        t.join().unwrap();
    }
    let mut got: Vec<u32> = l
        .app
        .plugin
        .posted
        .drain(..)
        .map(|m| *m.downcast::<u32>().unwrap())
        .collect();
    got.sort();
    let want: Vec<u32> = (0..4)
        .flat_map(|t| (0..250).map(move |i| t * 1000 + i))
        .collect();
    assert_eq!(got, want);
    assert!(l.app.wakes >= 1);
    // cancel_service alone wakes the loop too
    let before = l.app.wakes;
    h.cancel_service();
    drive_until(&mut l, |l| l.app.wakes > before);
}

/// More connections than provided buffers (`LoopConfig::default().buf_count`), all with
/// data waiting when their recvs are first submitted: the ring runs dry, the recvs that
/// find no buffer end with ENOBUFS, the loop re-arms them once the pass has returned its
/// buffers, and the ring grows. Every connection gets its own bytes back, twice (the
/// re-armed recv keeps working).
#[test]
fn burst_beyond_the_buffer_ring_is_echoed_whole() {
    burst_beyond_the_buffer_ring_is_echoed_whole_on(EventLoop::Uring);
}

#[test]
fn burst_beyond_the_buffer_ring_is_echoed_whole_epoll() {
    burst_beyond_the_buffer_ring_is_echoed_whole_on(EventLoop::Epoll);
}

fn burst_beyond_the_buffer_ring_is_echoed_whole_on(ev: EventLoop) {
    const CONNS: usize = 600;
    assert!(CONNS > LoopConfig::default().buf_count as usize);
    assert!(CONNS < LoopConfig::default().buf_max as usize);
    let mut l = new_loop_on(ev, ECHO_IDLE_MS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let msg = |i: usize, round: u8| -> Vec<u8> {
        (0..1000)
            .map(|k| (i * 31 + k * 7 + round as usize) as u8)
            .collect()
    };
    let mut clients = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        // Data is in the server socket before the loop submits the recv.
        clients.push(connect_with(&mut l, &listener, &msg(i, 0)));
    }
    for round in 0..2u8 {
        if round == 1 {
            for (i, c) in clients.iter_mut().enumerate() {
                c.write_all(&msg(i, 1)).unwrap();
            }
        }
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); CONNS];
        let t = Instant::now();
        let mut buf = [0u8; 2048];
        while got.iter().any(|g| g.len() < 1000) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "round {round}: timed out"
            );
            l.run_once(Some(Duration::from_millis(5))).unwrap();
            for (c, g) in clients.iter_mut().zip(got.iter_mut()) {
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => panic!("server closed a connection"),
                        Ok(n) => g.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
        }
        for (i, g) in got.iter().enumerate() {
            assert!(
                *g == msg(i, round),
                "round {round}: connection {i} echo wrong"
            );
        }
    }
    if ev == EventLoop::Epoll {
        // (No buffer ring: every read goes through the one scratch buffer.)
        assert_eq!(l.recv_buffers(), 0);
        return;
    }
    assert!(
        l.app.stats.recv_enobufs > 0,
        "the burst did not run the ring dry: the test no longer tests ENOBUFS"
    );
    // Running dry grew the ring (doubling from buf_count), within its bound.
    let cfg = LoopConfig::default();
    assert!(
        l.recv_buffers() > cfg.buf_count && l.recv_buffers() <= cfg.buf_max,
        "{} provided buffers after the burst",
        l.recv_buffers()
    );
    assert_eq!(l.live(), CONNS);
}

/// One burst that runs the ring dry once (a stall that queued many connections) is
/// served by re-arming the recvs that found no buffer, without growing the ring for good.
#[test]
fn a_single_burst_does_not_grow_the_buffer_ring() {
    let cfg = LoopConfig::default();
    let conns = cfg.buf_count as usize + cfg.buf_count as usize / 2;
    let mut l = new_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        clients.push(connect_with(&mut l, &listener, &[i as u8; 100]));
    }
    let mut got = vec![0usize; conns];
    let mut buf = [0u8; 256];
    drive_until(&mut l, |_| {
        for (c, g) in clients.iter_mut().zip(got.iter_mut()) {
            while let Ok(n) = c.read(&mut buf) {
                assert!(n > 0, "server closed a connection");
                *g += n;
            }
        }
        got.iter().all(|&g| g == 100)
    });
    assert!(
        l.app.stats.recv_enobufs > 0,
        "the burst did not run the ring dry"
    );
    assert_eq!(l.recv_buffers(), cfg.buf_count);
}

/// A worker that never sees a burst keeps its first buffers: connections arriving and
/// talking one at a time do not grow the ring (each grown buffer costs resident memory).
#[test]
fn the_buffer_ring_stays_small_without_bursts() {
    let mut l = new_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    for _ in 0..200 {
        let mut c = connect(&mut l, &listener);
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.set_nonblocking(true).unwrap();
        let mut n = 0;
        drive_until(&mut l, |_| {
            match c.read(&mut got[n..]) {
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
            n == 4
        });
        assert_eq!(&got, b"ping");
    }
    assert_eq!(l.app.stats.recv_enobufs, 0);
    assert_eq!(l.recv_buffers(), LoopConfig::default().buf_count);
}

/// Closes the connection on any data.
struct AbortOnData;

impl Role for AbortOnData {
    fn on_data(&mut self, _cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        if data.is_empty() {
            (0, Flow::Continue)
        } else {
            (data.len(), Flow::Abort)
        }
    }
    fn on_timer(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Abort
    }
    fn on_drain(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Abort
    }
}

/// A completion queue far smaller than the burst: the kernel ends multishot recvs whose
/// completion does not fit, so data arrives in a recv's last completion; a role that
/// closes the connection on that data frees it while the loop is still handling the
/// completion (this panicked with 15,000 WebSocket clients leaving at once).
#[test]
fn a_role_closing_on_a_recvs_last_completion() {
    const CONNS: usize = 300;
    let factory = Box::new(|_: &mut App, _| Box::new(AbortOnData) as Box<dyn Role>);
    let cfg = LoopConfig {
        ring_entries: 8, // 32 completions
        ..LoopConfig::default()
    };
    let mut l = Loop::new(cfg, App::new(WorkerConfig::default(), 0), factory).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        clients.push(connect(&mut l, &listener));
    }
    // Every recv armed before any data: each ends with a completion carrying data.
    l.run_once(Some(Duration::from_millis(1))).unwrap();
    for c in &mut clients {
        c.write_all(b"x").unwrap();
    }
    drive_until(&mut l, |l| l.live() == 0);
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 8];
        // closed by the server: EOF (or a reset, the byte having been unread)
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)));
    }
}

/// A control socket as the supervisor leaves it: `peer_end` closed, with or without a
/// packet of the worker's unread in it.
fn orphaned_control(unread_packet: bool) -> OwnedFd {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (worker_end, peer_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .unwrap();
    if unread_packet {
        // The worker's Hello (or a stats snapshot) still queued when the supervisor dies.
        lwsd_proto::send(std::os::fd::AsFd::as_fd(&worker_end), b"hello", &[]).unwrap();
    }
    drop(peer_end);
    worker_end
}

/// A worker whose supervisor is gone drains and exits, whichever way the socket reports
/// it: EOF, or (the supervisor died with a packet of ours unread) ECONNRESET once and
/// then no further wake-up of the poll. Before the reset was handled, such a worker
/// stayed up for ever, sending its stats into EPIPE every 250 ms. A connection it holds
/// is finished, not cut: its echo arrives, then an orderly EOF.
#[test]
fn a_worker_exits_when_its_supervisor_is_gone() {
    for (ev, unread_packet) in [
        (EventLoop::Uring, false),
        (EventLoop::Uring, true),
        (EventLoop::Epoll, false),
        (EventLoop::Epoll, true),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        client.write_all(b"in flight").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut l = new_loop_on(ev, ECHO_IDLE_MS);
            l.adopt(OwnedFd::from(server), 0);
            l.set_control(orphaned_control(unread_packet));
            let _ = tx.send(l.run().map_err(|e| e.to_string()));
        });
        let r = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
            panic!("loop still running ({ev:?}, unread packet: {unread_packet})")
        });
        assert_eq!(r, Ok(()));
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("an orderly close");
        assert_eq!(got, b"in flight");
    }
}

/// Sets a 10 s deadline when the connection arrives (as the HTTP role's header timeout)
/// and a 300 s one once data comes (as a WebSocket's keepalive); echoes nothing.
struct Upgrading;

impl Role for Upgrading {
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        *cx.deadline = cx.now_ms + if data.is_empty() { 10_000 } else { 300_000 };
        (data.len(), Flow::Continue)
    }
    fn on_timer(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Abort
    }
    fn on_drain(&mut self, _cx: &mut Cx<'_>) -> Flow {
        Flow::Abort
    }
}

/// A connection whose request is read right after it arrives leaves one timer entry (its
/// standing deadline), not a stale one for the header timeout it no longer has: each
/// stale entry costs a pop and a push when it comes due.
#[test]
fn a_deadline_replaced_on_arrival_leaves_no_stale_timer() {
    const CONNS: usize = 50;
    let factory = Box::new(|_: &mut App, _| Box::new(Upgrading) as Box<dyn Role>);
    let mut l = Loop::new(
        LoopConfig::default(),
        App::new(WorkerConfig::default(), 0),
        factory,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        // The request is in the socket when the connection arrives (TCP_DEFER_ACCEPT).
        clients.push(connect_with(&mut l, &listener, b"GET"));
    }
    for _ in 0..5 {
        l.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    let (entries, earliest) = l.queued_timers();
    assert_eq!(entries, CONNS);
    assert!(
        earliest.is_some_and(|t| t >= 300_000),
        "a header-timeout entry is still queued: {earliest:?}"
    );
}
