//! WebSocket end to end (RFC 6455 sections 4 to 7, RFC 7692): the real `lwsd` binary
//! serving `--ws-default lws-echo`, driven by real clients.
//!
//! - tungstenite for well-formed traffic (echo of every length class of section 5.2,
//!   types preserved, pings, the client-initiated closing handshake);
//! - a raw client ([`Raw`]) for everything a correct library refuses to send: after a
//!   real opening handshake it writes hand-built frames (unmasked, reserved bits and
//!   opcodes, oversized or fragmented control frames, bad close bodies, invalid UTF-8,
//!   oversize announcements) and reads the server's frames byte by byte, so each test
//!   checks the exact close code *and* that the server then closes the TCP connection;
//! - the "fraggle" test (after lws' `libwebsockets-test-fraggle`): random messages of
//!   1..=1024 frames of 1..=2001 bytes with pings injected between fragments, each echo
//!   compared by length and checksum;
//! - rx flow control: a client that writes as fast as it can without reading is held
//!   back by TCP while the worker's memory stays bounded, then reads everything back;
//! - the Python `websockets` tests in `tests/ws_python/` (permessage-deflate in both
//!   directions, with and without context takeover, interoperability), run as
//!   subprocesses by the `python_*` tests here.
//!
//! Every read has a timeout, so a server that hangs fails the test instead of hanging it.

#[path = "support/mod.rs"]
mod support;

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// The echo server's largest message (lwsd's `DEFAULT_MAX_MESSAGE_SIZE`, 16 MiB): the
/// limit the 1009 tests hit.
const MAX_MESSAGE: u64 = 16 << 20;
/// lws-echo's queue size above which it stops reading (`plugins::echo::MAX_QUEUED`).
const ECHO_MAX_QUEUED: u64 = 1 << 20;

// Opcodes (section 5.2).
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BIN: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn start() -> Lwsd {
    Lwsd::start(&["-j", "1", "--ws-default", "lws-echo"])
}

// ------------------------------------------------------------------- raw client

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    fin: bool,
    rsv: u8,
    op: u8,
    payload: Vec<u8>,
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// One client frame: `fin`, the three RSV bits (`rsv` in bits 0..3 = RSV3..RSV1 as in
/// the header's 0x70 nibble >> 4), opcode, payload, masked with `mask` when given
/// (section 5.2 layout, 5.3 masking).
fn frame(fin: bool, rsv: u8, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(u8::from(fin) << 7 | (rsv & 7) << 4 | (op & 0xf));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        f.push(m | n as u8);
    } else if n <= 0xffff {
        f.push(m | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A header alone, announcing `len` payload bytes (for frames whose payload is sent
/// later, in pieces, or never).
fn header(fin: bool, op: u8, len: u64, mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![u8::from(fin) << 7 | op, 0x80 | 127];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&mask);
    f
}

/// A close body (section 5.5.1).
fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(reason);
    b
}

/// A client on a plain TCP stream after a real opening handshake, writing hand-built
/// frames and parsing the server's.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    rng: Rng,
}

/// The opening handshake request (section 4.1) with `extra` header lines.
fn upgrade_request(key: &str, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

impl Raw {
    fn connect(port: u16) -> Raw {
        Raw::connect_with(port, "").0
    }

    /// Handshake with `extra` request headers; returns the client and the 101 head.
    fn connect_with(port: u16, extra: &str) -> (Raw, String) {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        let key = tungstenite::handshake::client::generate_key();
        let mut r = Raw {
            s,
            buf: Vec::new(),
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(port)),
        };
        r.s.write_all(upgrade_request(&key, extra).as_bytes())
            .unwrap();
        let end = loop {
            if let Some(p) = r.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            r.fill().expect("read the 101 response");
        };
        let head = String::from_utf8_lossy(&r.buf[..end]).into_owned();
        r.buf.drain(..end);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        // Section 4.2.2 step 5.4 / 4.1: the accept key is SHA-1(key ++ GUID) in base64.
        let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
        assert_eq!(
            support::header(&head, "sec-websocket-accept"),
            Some(want.as_str())
        );
        (r, head)
    }

    fn mask(&mut self) -> [u8; 4] {
        (self.rng.next() as u32).to_ne_bytes()
    }

    /// Sends one masked frame.
    fn send(&mut self, fin: bool, op: u8, payload: &[u8]) {
        let m = self.mask();
        let f = frame(fin, 0, op, payload, Some(m));
        self.raw(&f);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 65536];
        let n = self.s.read(&mut tmp)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    fn need(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(())
    }

    /// Reads one server frame, checking that it is not masked (section 5.1).
    fn read_frame(&mut self) -> io::Result<Frame> {
        self.need(2)?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b1 & 0x80, 0, "a server frame must not be masked (5.1)");
        let (len, hl) = match b1 & 0x7f {
            126 => {
                self.need(4)?;
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.need(10)?;
                let mut l = [0u8; 8];
                l.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(l), 10)
            }
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).unwrap();
        assert!(
            len <= MAX_MESSAGE as usize + 1024,
            "absurd frame length {len}"
        );
        self.need(hl + len)?;
        let payload = self.buf[hl..hl + len].to_vec();
        self.buf.drain(..hl + len);
        Ok(Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            op: b0 & 0xf,
            payload,
        })
    }

    /// Reads frames until a close: its status code (None for an empty body) and reason.
    /// Data and pong frames before it are returned too.
    fn read_until_close(&mut self) -> (Vec<Frame>, Option<u16>, Vec<u8>) {
        let mut before = Vec::new();
        loop {
            let f = self.read_frame().expect("a close frame from the server");
            if f.op == CLOSE {
                let code = (f.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
                let reason = f.payload.get(2..).unwrap_or_default().to_vec();
                return (before, code, reason);
            }
            before.push(f);
        }
    }

    /// The server fails the connection: the next frame is a Close with `code` (nothing
    /// else first), then the server closes TCP (section 7.1.7, 7.1.1).
    fn expect_fail(&mut self, code: u16, what: &str) {
        let (before, got, reason) = self.read_until_close();
        assert!(
            before.is_empty(),
            "{what}: frames before the close: {before:?}"
        );
        assert_eq!(
            got,
            Some(code),
            "{what}: reason {:?}",
            String::from_utf8_lossy(&reason)
        );
        self.expect_eof(what);
    }

    /// The server closes the TCP connection (EOF or reset) within the read timeout;
    /// any bytes before the end must not form another frame.
    fn expect_eof(&mut self, what: &str) {
        let t = Instant::now();
        loop {
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{what}: no TCP close after the close frame: {e}"),
            }
            assert!(t.elapsed() < IO_TIMEOUT, "{what}: server keeps talking");
        }
        assert!(
            self.buf.is_empty(),
            "{what}: bytes after the close frame: {:?}",
            self.buf
        );
    }

    /// Sends `payload` as one text/binary message and returns the echoed frame.
    fn echo(&mut self, op: u8, payload: &[u8]) -> Frame {
        self.send(true, op, payload);
        self.read_frame().expect("echo")
    }
}

/// Opens a raw connection, sends `bytes`, and expects the server to fail it with `code`.
fn fails_with(port: u16, bytes: &[u8], code: u16, what: &str) {
    let mut r = Raw::connect(port);
    r.raw(bytes);
    r.expect_fail(code, what);
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ----------------------------------------------------------- tungstenite client

type Client = tungstenite::WebSocket<TcpStream>;

fn tungstenite_client(port: u16) -> Client {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE as usize))
        .max_frame_size(Some(MAX_MESSAGE as usize));
    let (ws, resp) =
        tungstenite::client::client_with_config(format!("ws://127.0.0.1:{port}/"), s, Some(cfg))
            .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

#[test]
fn tungstenite_echo_keeps_type_and_every_length_encoding() {
    let s = start();
    let mut ws = tungstenite_client(s.port);
    // Section 5.2: 7-bit lengths up to 125, 16-bit from 126 to 65535, 64-bit above; the
    // boundaries on both sides, an empty message, and the largest message allowed.
    let mut rng = Rng(7);
    for n in [
        0usize,
        1,
        124,
        125,
        126,
        127,
        65535,
        65536,
        65537,
        1 << 20,
        16 << 20,
    ] {
        let mut bin = vec![0u8; n];
        rng.fill(&mut bin);
        ws.send(Message::binary(bin.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(b) => assert!(b == bin, "binary {n} differs"),
            m => panic!("binary {n}: got {m:?}"),
        }
        let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send(Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(t) => assert!(t.as_str() == text, "text {n} differs"),
            m => panic!("text {n}: got {m:?}"),
        }
    }
    // Multi-byte UTF-8 comes back unchanged.
    let t = "κόσμε 🎉 ü ∑ 𝄞".repeat(100);
    ws.send(Message::text(t.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(t));
    ws.close(None).unwrap();
}

#[test]
fn tungstenite_ping_is_answered_with_its_payload() {
    let s = start();
    let mut ws = tungstenite_client(s.port);
    for i in 0..5u8 {
        let p = vec![i; usize::from(i) * 25];
        ws.send(Message::Ping(p.clone().into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Pong(p.into()));
    }
    ws.close(None).unwrap();
}

/// Section 5.5.1 / 7.1.2: the client starts the closing handshake; the server echoes
/// the status code and then closes the TCP connection first (7.1.1).
#[test]
fn client_close_is_echoed_and_server_closes_tcp() {
    let s = start();
    let mut ws = tungstenite_client(s.port);
    ws.send(Message::text("before close")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("before close"));
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4321),
        reason: "done here".into(),
    }))
    .unwrap();
    let reply = match ws.read() {
        Ok(Message::Close(c)) => c,
        other => panic!("no close reply: {other:?}"),
    };
    assert_eq!(reply.map(|c| c.code), Some(CloseCode::Library(4321)));
    // The handshake is complete; the server's TCP close follows.
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        r => panic!("after the close handshake: {r:?}"),
    }
    let mut b = [0u8; 16];
    match ws.get_mut().read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        r => panic!("TCP still open after the closing handshake: {r:?}"),
    }
}

// ---------------------------------------------------------- framing rules (5.x)

/// Section 5.1: "The server MUST close the connection upon receiving a frame that is
/// not masked" (5.1), with 1002 (7.4.1).
#[test]
fn unmasked_client_frames_fail_with_1002() {
    let s = start();
    for (op, what) in [
        (TEXT, "text"),
        (BIN, "binary"),
        (PING, "ping"),
        (CLOSE, "close"),
    ] {
        fails_with(s.port, &frame(true, 0, op, b"hi", None), 1002, what);
    }
    // Unmasked in the middle of a fragmented message, after a masked first fragment.
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"first ");
    r.raw(&frame(true, 0, CONT, b"second", None));
    r.expect_fail(1002, "unmasked continuation");
}

/// Section 5.2: RSV1-3 must be 0 without an extension defining them; a reserved opcode
/// fails the connection.
#[test]
fn reserved_bits_and_opcodes_fail_with_1002() {
    let s = start();
    let m = Some([1, 2, 3, 4]);
    // No extension negotiated (no offer), so RSV1 is reserved too.
    for rsv in 1..8u8 {
        fails_with(s.port, &frame(true, rsv, TEXT, b"x", m), 1002, "rsv text");
    }
    fails_with(s.port, &frame(true, 2, PING, b"x", m), 1002, "rsv ping");
    for op in (3..=7).chain(0xb..=0xf) {
        fails_with(s.port, &frame(true, 0, op, b"", m), 1002, "reserved opcode");
        fails_with(
            s.port,
            &frame(true, 0, op, b"abc", m),
            1002,
            "reserved opcode",
        );
    }
    // A reserved opcode after a good message: the echo comes first, then the close.
    let mut r = Raw::connect(s.port);
    let e = r.echo(TEXT, b"good");
    assert_eq!((e.op, e.payload.as_slice()), (TEXT, &b"good"[..]));
    r.raw(&frame(true, 0, 5, b"", m));
    r.expect_fail(1002, "reserved opcode after an echo");
    // Section 5.2: a 64-bit length with its most significant bit set.
    let mut bad = header(true, BIN, 1 << 63, [0; 4]);
    bad.extend_from_slice(b"abc");
    fails_with(s.port, &bad, 1002, "64-bit length MSB");
}

/// Section 5.5: control frames have payloads of at most 125 bytes and are never
/// fragmented.
#[test]
fn oversized_or_fragmented_control_frames_fail_with_1002() {
    let s = start();
    let m = Some([9, 8, 7, 6]);
    for op in [PING, PONG, CLOSE] {
        let mut body = vec![b'a'; 126];
        if op == CLOSE {
            body[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        fails_with(s.port, &frame(true, 0, op, &body, m), 1002, "control 126");
        fails_with(
            s.port,
            &frame(false, 0, op, b"ab", m),
            1002,
            "fragmented ctl",
        );
    }
    // 125 is fine: answered with the same 125 bytes.
    let mut r = Raw::connect(s.port);
    let p = [b'z'; 125];
    r.send(true, PING, &p);
    let f = r.read_frame().unwrap();
    assert_eq!((f.op, f.fin, f.payload.as_slice()), (PONG, true, &p[..]));
    // A control frame announcing 126 with the 16-bit form, payload never sent: the
    // server fails on the header alone.
    let mut r = Raw::connect(s.port);
    r.raw(&[0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4]);
    r.expect_fail(1002, "ping header announcing 126");
}

/// Section 5.5.2/5.5.3: a Pong "MUST have identical Application data" to the Ping it
/// answers; pings in a row are each answered, in order.
#[test]
fn pings_in_a_row_are_each_answered_with_the_same_payload() {
    let s = start();
    let mut r = Raw::connect(s.port);
    let payloads: Vec<Vec<u8>> = (0..20u8)
        .map(|i| (0..usize::from(i) * 6).map(|j| i ^ j as u8).collect())
        .collect();
    // All pings in one write, then all pongs.
    let mut batch = Vec::new();
    for p in &payloads {
        let m = r.mask();
        batch.extend(frame(true, 0, PING, p, Some(m)));
    }
    r.raw(&batch);
    for p in &payloads {
        let f = r.read_frame().unwrap();
        assert_eq!((f.op, f.fin, f.rsv), (PONG, true, 0));
        assert_eq!(&f.payload, p);
    }
    // Binary payloads, including every byte value.
    let all: Vec<u8> = (0..=124u8).map(|b| b.wrapping_mul(3)).collect();
    r.send(true, PING, &all);
    assert_eq!(r.read_frame().unwrap().payload, all);
    // Then data still works.
    assert_eq!(r.echo(BIN, b"after").payload, b"after");
}

/// Section 5.5.3: "A Pong frame MAY be sent unsolicited ... A response to an
/// unsolicited Pong frame is not expected."
#[test]
fn unsolicited_pongs_are_ignored() {
    let s = start();
    let mut r = Raw::connect(s.port);
    for n in [0usize, 1, 125] {
        r.send(true, PONG, &vec![b'p'; n]);
    }
    // The next frame from the server is the echo, not an answer to a pong.
    let f = r.echo(TEXT, b"hello");
    assert_eq!((f.op, f.payload.as_slice()), (TEXT, &b"hello"[..]));
    // A pong between fragments is ignored too.
    r.send(false, BIN, b"ab");
    r.send(true, PONG, b"unsolicited");
    r.send(true, CONT, b"cd");
    let f = r.read_frame().unwrap();
    assert_eq!(
        (f.op, f.fin, f.payload.as_slice()),
        (BIN, true, &b"abcd"[..])
    );
}

/// Section 5.4: control frames may be injected in the middle of a fragmented message;
/// the message is reassembled around them and pings are answered at once.
#[test]
fn fragments_with_interleaved_control_frames() {
    let s = start();
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"frag1 ");
    r.send(true, PING, b"ping-1");
    // The pong arrives while the message is still open (the server does not wait).
    let f = r.read_frame().unwrap();
    assert_eq!((f.op, f.payload.as_slice()), (PONG, &b"ping-1"[..]));
    r.send(false, CONT, b"frag2 ");
    r.send(true, PONG, b"ignored");
    r.send(false, CONT, b"");
    r.send(true, PING, b"ping-2");
    r.send(true, CONT, b"frag3");
    let f = r.read_frame().unwrap();
    assert_eq!((f.op, f.payload.as_slice()), (PONG, &b"ping-2"[..]));
    let f = r.read_frame().unwrap();
    assert_eq!(
        (f.op, f.fin, f.payload.as_slice()),
        (TEXT, true, &b"frag1 frag2 frag3"[..])
    );
    // A binary message of many empty fragments and one byte.
    r.send(false, BIN, b"");
    for _ in 0..10 {
        r.send(false, CONT, b"");
    }
    r.send(true, CONT, b"!");
    let f = r.read_frame().unwrap();
    assert_eq!((f.op, f.payload.as_slice()), (BIN, &b"!"[..]));
    // A close between fragments ends the connection normally (5.5.1: after sending a
    // Close an endpoint sends no more data; the partial message is dropped).
    r.send(false, TEXT, b"never finished");
    r.send(true, CLOSE, &close_body(1000, b""));
    let (before, code, _) = r.read_until_close();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(code, Some(1000));
    r.expect_eof("close between fragments");
}

/// Section 5.4: a continuation frame with no message open, and a new data frame while
/// a fragmented message is open, are protocol errors.
#[test]
fn continuation_without_start_and_nested_start_fail_with_1002() {
    let s = start();
    let m = Some([1, 1, 1, 1]);
    fails_with(
        s.port,
        &frame(true, 0, CONT, b"x", m),
        1002,
        "lone final cont",
    );
    fails_with(s.port, &frame(false, 0, CONT, b"x", m), 1002, "lone cont");
    // After a complete message, a continuation has nothing to continue.
    let mut r = Raw::connect(s.port);
    assert_eq!(r.echo(TEXT, b"whole").payload, b"whole");
    r.send(true, CONT, b"more");
    r.expect_fail(1002, "continuation after a final frame");
    // A new message inside an open one.
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"open");
    r.send(true, BIN, b"new");
    r.expect_fail(1002, "new message inside an open one");
}

// ----------------------------------------------------------- close codes (7.4)

/// Section 7.4: every code an endpoint may send is echoed; every other one fails with
/// 1002; a one-byte body fails with 1002; a reason that is not UTF-8 fails with 1007.
#[test]
fn close_codes_valid_echoed_invalid_refused() {
    let s = start();
    let valid = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ];
    for c in valid {
        let mut r = Raw::connect(s.port);
        r.send(true, CLOSE, &close_body(c, "reason ✓".as_bytes()));
        let (before, got, _) = r.read_until_close();
        assert!(before.is_empty());
        assert_eq!(got, Some(c), "close code {c} must be echoed (5.5.1)");
        r.expect_eof("valid close code");
    }
    // An empty close body is answered with an empty one (1005 is never sent, 7.4.1).
    let mut r = Raw::connect(s.port);
    r.send(true, CLOSE, b"");
    let (_, got, reason) = r.read_until_close();
    assert_eq!((got, reason.len()), (None, 0));
    r.expect_eof("empty close");
    let invalid = [
        0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for c in invalid {
        let mut r = Raw::connect(s.port);
        r.send(true, CLOSE, &close_body(c, b""));
        r.expect_fail(1002, &format!("invalid close code {c}"));
    }
    let mut r = Raw::connect(s.port);
    r.send(true, CLOSE, &[0x03]);
    r.expect_fail(1002, "one-byte close body");
    // Section 5.5.1 + 8.1: the reason is UTF-8 (Autobahn 7.5.1's bytes).
    let mut r = Raw::connect(s.port);
    r.send(
        true,
        CLOSE,
        &close_body(
            1000,
            &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xed, 0xa0, 0x80, 0x65],
        ),
    );
    r.expect_fail(1007, "close reason not UTF-8");
}

// ------------------------------------------------------------------ UTF-8 (8.1)

/// Section 8.1: text must be UTF-8; "_Fail the WebSocket Connection_" with 1007 (7.4.1)
/// as soon as it cannot be, even before the rest of the message arrives.
#[test]
fn invalid_utf8_fails_with_1007_as_soon_as_it_is_seen() {
    let s = start();
    // A valid code point split across fragments at every byte is fine.
    let mut r = Raw::connect(s.port);
    let text = "a€😀κ".as_bytes();
    for (i, b) in text.iter().enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        r.send(i + 1 == text.len(), op, &[*b]);
    }
    assert_eq!(r.read_frame().unwrap().payload, text);

    // Invalid in the first fragment; the message is never finished: the close comes
    // without the rest (fail fast).
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"ok so far \xff");
    r.expect_fail(1007, "0xff in the first fragment");
    // A surrogate (ED A0 80) split across fragments, more fragments pending.
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, "κόσμε".as_bytes());
    r.send(false, CONT, b"\xed");
    r.send(false, CONT, b"\xa0\x80");
    r.expect_fail(1007, "surrogate across fragments");
    // Inside one big frame: the header announces 1 MiB, only the first bytes are sent.
    let mut r = Raw::connect(s.port);
    let m = r.mask();
    let mut f = header(true, TEXT, 1 << 20, m);
    let head: Vec<u8> = b"valid start then \xc0\xaf overlong"
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ m[i & 3])
        .collect();
    f.extend_from_slice(&head);
    r.raw(&f);
    r.expect_fail(1007, "overlong encoding inside a frame still arriving");
    // A code point cut off by the end of the message.
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"abc\xe2\x82");
    r.send(true, CONT, b"");
    r.expect_fail(1007, "truncated code point at the end");
    // Above U+10FFFF.
    let mut r = Raw::connect(s.port);
    r.send(true, TEXT, b"\xf4\x90\x80\x80");
    r.expect_fail(1007, "code point above U+10FFFF");
    // Binary messages are not validated.
    let mut r = Raw::connect(s.port);
    assert_eq!(
        r.echo(BIN, b"\xff\xfe\xed\xa0\x80").payload,
        b"\xff\xfe\xed\xa0\x80"
    );
}

// --------------------------------------------------------------- 1009 too big

/// Section 7.4.1 (1009): a message larger than the server accepts, refused as soon as
/// its announced size passes the limit (one frame's header, or the fragment that
/// crosses it), and a message of exactly the limit still echoed.
#[test]
fn oversize_messages_fail_with_1009() {
    let s = start();
    // One frame announcing 16 MiB + 1: only the header (and a few bytes) are sent.
    let mut r = Raw::connect(s.port);
    let mut f = header(true, BIN, MAX_MESSAGE + 1, [0; 4]);
    f.extend_from_slice(&[0; 64]);
    r.raw(&f);
    r.expect_fail(1009, "frame announcing 16 MiB + 1");

    // Fragments: 16 x 1 MiB (exactly the limit), then one more byte. The zero mask key
    // is valid (5.3) and keeps the test's own work small.
    let mut r = Raw::connect(s.port);
    r.s.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mib = vec![b'm'; 1 << 20];
    for i in 0..16 {
        let op = if i == 0 { BIN } else { CONT };
        r.raw(&frame(false, 0, op, &mib, Some([0; 4])));
    }
    r.raw(&frame(true, 0, CONT, b"!", Some([0; 4])));
    r.expect_fail(1009, "fragments summing to 16 MiB + 1");

    // The same 16 MiB in fragments, ending there, is echoed whole.
    let mut r = Raw::connect(s.port);
    r.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for i in 0..16 {
        let op = if i == 0 { TEXT } else { CONT };
        r.raw(&frame(i == 15, 0, op, &mib, Some([0; 4])));
    }
    let f = r.read_frame().unwrap();
    assert_eq!((f.op, f.payload.len() as u64), (TEXT, MAX_MESSAGE));
    assert!(f.payload.iter().all(|b| *b == b'm'));
}

// ------------------------------------------------------------- handshake (4.x)

fn handshake_answer(port: u16, req: &str) -> (u16, String, Vec<u8>) {
    split_response(&request(port, req.as_bytes()))
}

/// Section 4.2.1/4.2.2/4.4: refused upgrades get an HTTP error and no 101.
#[test]
fn handshake_errors() {
    let s = start();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let base = |version: &str, extra: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\n{version}{extra}\r\n"
        )
    };
    // Section 4.4: another version -> 426 Upgrade Required with the versions we speak.
    for v in [
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 12\r\n",
        "",
    ] {
        let (st, head, _) = handshake_answer(s.port, &base(v, ""));
        assert_eq!(st, 426, "{v:?}: {head}");
        assert_eq!(support::header(&head, "sec-websocket-version"), Some("13"));
    }
    // Section 4.2.1 item 5: no key, or one that is not 16 bytes in base64 -> 400.
    let no_key = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(handshake_answer(s.port, no_key).0, 400);
    let short_key = no_key.replace("\r\n\r\n", "\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n");
    assert_eq!(handshake_answer(s.port, &short_key).0, 400);
    // Section 4.2.2 step 5.5 (lws' policy): only unknown subprotocols -> 400 naming them.
    let ver = "Sec-WebSocket-Version: 13\r\n";
    let (st, _, body) = handshake_answer(
        s.port,
        &base(ver, "Sec-WebSocket-Protocol: chat.v9, no-such-proto\r\n"),
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 400);
    assert!(
        body.contains("chat.v9") && body.contains("no-such-proto"),
        "{body}"
    );
    // A known one among unknown ones is chosen and named in the 101.
    let (mut r, head) = Raw::connect_with(s.port, "Sec-WebSocket-Protocol: nope, lws-echo\r\n");
    assert_eq!(
        support::header(&head, "sec-websocket-protocol"),
        Some("lws-echo")
    );
    assert_eq!(r.echo(TEXT, b"chosen").payload, b"chosen");
    // No subprotocol asked: none named in the answer (4.2.2 step 5.5).
    let (_, head) = Raw::connect_with(s.port, "");
    assert_eq!(support::header(&head, "sec-websocket-protocol"), None);
    // Section 4.2.1 item 1: the upgrade must be a GET.
    for req in [
        base(ver, "Content-Length: 0\r\n").replacen("GET", "POST", 1),
        base(ver, "").replacen("GET", "PUT", 1),
    ] {
        let (st, head, _) = handshake_answer(s.port, &req);
        assert_eq!(st, 400, "{req:?}: {head}");
    }
    // ... of HTTP/1.1 or higher; RFC 9110 7.8: "A server MUST ignore an Upgrade header
    // field that is received in an HTTP/1.0 request": answered as plain HTTP.
    let req = base(ver, "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    let (st, head, _) = handshake_answer(s.port, &req);
    assert_eq!(st, 200, "{head}");
    assert_eq!(support::header(&head, "upgrade"), None, "{head}");
    // The server still upgrades a correct request afterwards.
    let mut r = Raw::connect(s.port);
    assert_eq!(r.echo(BIN, b"still fine").payload, b"still fine");
}

// ----------------------------------------------------------------- fraggle

/// lws' fraggle test, against the echo server: messages of 1..=1024 fragments of
/// 1..=2001 bytes each (random), text and binary, pings injected between fragments;
/// each echo is compared by length and checksum, the pongs by payload, in order.
#[test]
fn fraggle_random_fragmentation_round_trips() {
    let s = start();
    let seed = std::env::var("LWSD_FRAGGLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f4a6_61e5_u64);
    eprintln!("fraggle seed {seed} (LWSD_FRAGGLE_SEED to repeat)");
    let mut rng = Rng(seed);
    let mut r = Raw::connect(s.port);
    r.s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut total_frames, mut total_bytes) = (0u64, 0u64);
    // The first message always has 1024 fragments of 2001 bytes (the extremes).
    for msg in 0..24 {
        let (frames, max) = if msg == 0 {
            (1024, 2001)
        } else {
            (rng.range(1, 1024), 2001)
        };
        let binary = msg % 2 == 0;
        let mut sent = Vec::new();
        let mut wire = Vec::new();
        let mut pings = Vec::new();
        for i in 0..frames {
            let n = if msg == 0 { max } else { rng.range(1, max) } as usize;
            let mut p = vec![0u8; n];
            if binary {
                rng.fill(&mut p);
            } else {
                // ASCII text (multi-byte text cut at random is tested elsewhere).
                p.iter_mut()
                    .for_each(|b| *b = b' ' + (rng.next() % 95) as u8);
            }
            let op = match (i, binary) {
                (0, true) => BIN,
                (0, false) => TEXT,
                _ => CONT,
            };
            let m = r.mask();
            wire.extend(frame(i + 1 == frames, 0, op, &p, Some(m)));
            sent.extend_from_slice(&p);
            if rng.next().is_multiple_of(64) {
                let ping = rng.next().to_be_bytes().to_vec();
                let m = r.mask();
                wire.extend(frame(true, 0, PING, &ping, Some(m)));
                pings.push(ping);
            }
            total_frames += 1;
        }
        total_bytes += sent.len() as u64;
        r.raw(&wire);
        for p in &pings {
            let f = r.read_frame().unwrap();
            assert_eq!((f.op, &f.payload), (PONG, p), "message {msg}");
        }
        let f = r.read_frame().unwrap();
        assert_eq!(f.op, if binary { BIN } else { TEXT }, "message {msg}");
        assert!(f.fin);
        assert_eq!(f.payload.len(), sent.len(), "message {msg} length");
        assert_eq!(fnv1a(&f.payload), fnv1a(&sent), "message {msg} checksum");
    }
    eprintln!("fraggle: {total_frames} frames, {total_bytes} bytes echoed");
    r.send(true, CLOSE, &close_body(1000, b""));
    assert_eq!(r.read_until_close().1, Some(1000));
}

// -------------------------------------------------------------- close paths

fn ws_active(s: &Lwsd) -> Option<f64> {
    metric(&s.metrics(), "lwsd_ws_connections_active{worker=\"0\"}")
}

fn wait_ws_active(s: &Lwsd, want: f64) -> bool {
    let t = Instant::now();
    while t.elapsed() < IO_TIMEOUT {
        if ws_active(s) == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// TCP drops at every stage (mid-header, mid-payload, mid-message, with a reset) are
/// closed without a trace: the connections are released and the worker keeps serving.
#[test]
fn tcp_drops_release_the_connection() {
    let s = start();
    let worker = s.worker_pids();
    let mut keep = Raw::connect(s.port);
    assert_eq!(keep.echo(TEXT, b"x").payload, b"x");
    assert!(wait_ws_active(&s, 1.0), "metric: {:?}", ws_active(&s));
    // Mid-header.
    let mut r = Raw::connect(s.port);
    r.raw(&[0x82, 0xfe, 0x10]);
    drop(r);
    // Mid-payload of an announced frame.
    let mut r = Raw::connect(s.port);
    r.raw(&header(true, BIN, 100_000, [0; 4]));
    r.raw(&[0; 5000]);
    drop(r);
    // Mid-message, between fragments, with a ping answer unread.
    let mut r = Raw::connect(s.port);
    r.send(false, TEXT, b"half");
    r.send(true, PING, b"unread");
    drop(r);
    // A reset (SO_LINGER 0) with an echo waiting to be sent.
    let mut r = Raw::connect(s.port);
    r.send(true, BIN, &vec![7u8; 300_000]);
    nix::sys::socket::setsockopt(
        &r.s,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(r);
    assert!(
        wait_ws_active(&s, 1.0),
        "dropped connections still counted: {:?}",
        ws_active(&s)
    );
    assert_eq!(keep.echo(TEXT, b"still here").payload, b"still here");
    assert_eq!(s.worker_pids(), worker, "the worker survived");
    drop(keep);
    assert!(wait_ws_active(&s, 0.0), "{:?}", ws_active(&s));
}

/// Section 7.4.1 (1001 going away): a server shutting down closes its WebSocket
/// connections with a close handshake, then exits.
#[test]
fn server_shutdown_sends_1001() {
    let s = start();
    let mut r = Raw::connect(s.port);
    assert_eq!(r.echo(TEXT, b"up").payload, b"up");
    s.signal(libc::SIGTERM);
    let (before, code, _) = r.read_until_close();
    assert!(before.is_empty());
    assert_eq!(code, Some(1001));
    r.send(true, CLOSE, &close_body(1001, b""));
    r.expect_eof("shutdown");
    let mut s = s;
    assert!(s.wait_exit(STOP_TIMEOUT).is_some(), "lwsd did not exit");
}

// --------------------------------------------------------- rx flow control

/// A client that sends as fast as it can and does not read: lws-echo queues up to
/// 1 MiB of echoes, then stops reading (`rx_flow_control(false)`), so TCP pushes back
/// and the client's writes block while the worker's memory stays bounded; once the
/// client reads, everything completes with the right content.
#[test]
fn rx_flow_control_holds_a_fast_sender_back() {
    let s = start();
    let worker = s.worker_pids()[0];
    let mut r = Raw::connect(s.port);
    assert_eq!(r.echo(BIN, b"warm up").payload, b"warm up");
    let rss0 = rss_bytes(worker);
    // 64 KiB messages, each carrying its index, zero mask key (5.3 allows it).
    const MSG: usize = 64 << 10;
    let msg = |i: u64| -> Vec<u8> {
        let mut p = vec![0u8; MSG];
        for (j, c) in p.chunks_mut(8).enumerate() {
            c.copy_from_slice(&(i.wrapping_mul(0x1_0000) + j as u64).to_le_bytes());
        }
        frame(true, 0, BIN, &p, Some([0; 4]))
    };
    // Write until one write makes no progress for a whole second.
    r.s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let (mut sent_msgs, mut off, mut cur) = (0u64, 0usize, msg(0));
    let t = Instant::now();
    let blocked = loop {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the client was never blocked: {} MiB sent",
            (sent_msgs * MSG as u64) >> 20
        );
        match r.s.write(&cur[off..]) {
            Ok(n) => {
                off += n;
                if off == cur.len() {
                    sent_msgs += 1;
                    cur = msg(sent_msgs);
                    off = 0;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break sent_msgs * MSG as u64 + off as u64;
            }
            Err(e) => panic!("write: {e}"),
        }
    };
    let rss_blocked = rss_bytes(worker);
    eprintln!(
        "flow control: client blocked after {} KiB; worker RSS {} -> {} KiB",
        blocked >> 10,
        rss0 >> 10,
        rss_blocked >> 10
    );
    // What can be in flight: the echo queue (1 MiB plus the message that crossed it),
    // the socket buffers of both directions on both ends (Linux autotuning: up to
    // tcp_rmem/tcp_wmem max, 6 MiB and 4 MiB by default), and one message being read.
    assert!(
        blocked < 64 << 20,
        "{blocked} bytes accepted before blocking: not held back"
    );
    assert!(
        blocked > ECHO_MAX_QUEUED,
        "blocked before the echo queue filled"
    );
    assert!(
        rss_blocked < rss0 + (24 << 20),
        "worker RSS grew from {rss0} to {rss_blocked}"
    );
    // A moment later the client is still held (at most a little more accepted, e.g. a
    // window update in flight) and memory did not move: the server stopped reading
    // rather than buffering slowly.
    std::thread::sleep(Duration::from_millis(500));
    let mut more = 0usize;
    while let Ok(n) = r.s.write(&cur[off..]) {
        more += n;
        off += n;
        assert!(more < 1 << 20, "the client was let go without reading");
        if off == cur.len() {
            sent_msgs += 1;
            cur = msg(sent_msgs);
            off = 0;
        }
    }
    assert!(rss_bytes(worker) < rss0 + (24 << 20));

    // Now read while finishing the sends: every message comes back in order, intact.
    let total = sent_msgs + 64;
    let reader_stream = r.s.try_clone().unwrap();
    reader_stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let leftover = std::mem::take(&mut r.buf);
    let reader = std::thread::spawn(move || {
        let mut rr = Raw {
            s: reader_stream,
            buf: leftover,
            rng: Rng(1),
        };
        for i in 0..total {
            let f = rr.read_frame().expect("echo after unblocking");
            assert_eq!((f.op, f.payload.len()), (BIN, MSG), "message {i}");
            let want = &msg(i)[14..];
            assert!(f.payload == want, "message {i} content differs");
        }
    });
    r.s.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    r.s.write_all(&cur[off..]).unwrap();
    for i in sent_msgs + 1..total {
        r.s.write_all(&msg(i)).unwrap();
    }
    reader.join().expect("reader");
    r.send(true, CLOSE, &close_body(1000, b""));
    assert_eq!(r.read_until_close().1, Some(1000));
}

// ------------------------------------------------------------ Python clients

/// Runs `tests/ws_python/<script>` against a fresh lwsd and asserts it passes. The
/// scripts need Python 3 with the `websockets` package (scripts/install-deps.sh
/// installs it).
fn python(script: &str) {
    let s = start();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ws_python/");
    let mut child = Command::new("python3")
        .arg(format!("{path}{script}"))
        .arg(s.port.to_string())
        .spawn()
        .expect("run python3 (scripts/install-deps.sh installs it)");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{script} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{script}: {status}");
    assert_eq!(s.worker_pids().len(), 1, "the worker survived {script}");
}

#[test]
fn python_websockets_echo_ping_fragments_close() {
    python("echo.py");
}

#[test]
fn python_websockets_permessage_deflate() {
    python("deflate.py");
}

/// Section 7.1.7 and lws-echo's promise: the answer to a complete message goes out
/// before the close caused by a later protocol error, even when the bad frame arrives
/// in a separate read while the worker is busy (Autobahn 4.1.5 sends octet by octet).
#[test]
fn an_echo_is_not_overtaken_by_a_later_protocol_error() {
    let s = start();
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A neighbour keeps the worker busy so reads pile up between its passes.
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = Raw::connect(port);
            let big = vec![b'b'; 256 << 10];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                r.raw(&frame(true, 0, BIN, &big, Some([0; 4])));
                assert_eq!(r.read_frame().unwrap().payload.len(), big.len());
            }
        })
    };
    let mut lost = 0;
    for i in 0..300 {
        let mut r = Raw::connect(port);
        r.send(true, TEXT, b"Hello, world!");
        for b in frame(true, 0, 7, b"Hello, world!", Some([1, 2, 3, 4])) {
            r.raw(&[b]);
        }
        let (before, code, _) = r.read_until_close();
        assert_eq!(code, Some(1002), "connection {i}");
        if before.len() != 1 {
            lost += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.join().unwrap();
    assert_eq!(
        lost, 0,
        "echoes lost before the close in {lost} of 300 connections"
    );
}
