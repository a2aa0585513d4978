//! Fuzz the server side of the WebSocket role: arbitrary bytes, cut into arbitrary
//! reads, into a `WsConn`, with or without a negotiated permessage-deflate (RFC 7692).
//! Checks: no panic; nothing delivered after a Close or an error; the output queue
//! stays bounded; every text message assembled from the deliveries is valid UTF-8 and
//! no message exceeds the configured maximum (inflated size, with compression); the
//! inflate buffer never exceeds the maximum message size (or its keep size).
//!
//! Every assembled message is echoed back (as the echo protocol and Autobahn do), so
//! the send side (compression when on) runs too; all the server's output is decoded by
//! a client `WsConn` with the matching parameters, which must accept it and receive
//! exactly the echoed messages, in order.
//!
//! Input layout: byte 0 chooses compression (bit 0 on; bits 1..=3 window bits 9..=15;
//! bit 4 client_no_context_takeover; bit 5 server_no_context_takeover), byte 1 the
//! maximum message size (small, to reach 1009), byte 2 seeds the generator that
//! chooses read sizes and when output is drained, the rest is the byte stream from the
//! "client".
#![no_main]

use std::collections::VecDeque;
use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::ws::conn::{INFLATE_BUF_KEEP, MAX_QUEUED_OUTPUT};
use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams};
use lwsd_worker::roles::ws::{DataKind, Event, MessageAssembler, Side, WsConfig, WsConn, WsState};

/// The echo side: decodes what the server sent and checks it against what it echoed.
struct Peer {
    client: WsConn,
    asm: MessageAssembler,
    expected: VecDeque<(bool, Vec<u8>)>,
}

impl Peer {
    fn take(&mut self, server: &mut WsConn) {
        while let Some(b) = server.poll_transmit() {
            let mut buf = b.to_vec();
            let mut off = 0;
            // Each round consumes input or (blocked) drains the client's output.
            while off < buf.len() {
                let (asm, expected) = (&mut self.asm, &mut self.expected);
                let fed = self
                    .client
                    .feed(&mut buf[off..], 0, |e| {
                        if let Event::Data(d) = e {
                            if let Some(m) = asm.push(&d).expect("echo within limits") {
                                let want = expected.pop_front().expect("an echo was sent");
                                assert_eq!(
                                    (m.binary, &m.data[..]),
                                    (want.0, &want.1[..]),
                                    "echo differs"
                                );
                            }
                        }
                    })
                    .expect("the server's output is valid for the client");
                off += fed.consumed;
                // The client's own output (pongs, its close reply) is not needed.
                while self.client.poll_transmit().is_some() {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [pmd_byte, cfg_byte, seed, stream @ ..] = data else {
        return;
    };
    let max = 1 + u64::from(*cfg_byte) * 97;
    let cfg = WsConfig {
        max_message_size: NonZeroU64::new(max).unwrap_or(NonZeroU64::MIN),
        ping_interval_ms: Some(1_000),
        pong_timeout_ms: 100,
        close_timeout_ms: 100,
    };
    let mut conn = WsConn::server(cfg, 0);
    let client_cfg = WsConfig {
        max_message_size: NonZeroU64::new(1 << 30).unwrap_or(NonZeroU64::MIN),
        ping_interval_ms: None,
        ..cfg
    };
    let mut peer = Peer {
        client: WsConn::client(client_cfg, 1, 0),
        asm: MessageAssembler::new(max),
        expected: VecDeque::new(),
    };
    if pmd_byte & 1 != 0 {
        let bits = 9 + (pmd_byte >> 1) % 7;
        let params = PmdParams {
            client_no_context_takeover: pmd_byte & 0x10 != 0,
            server_no_context_takeover: pmd_byte & 0x20 != 0,
            server_max_window_bits: bits,
            client_max_window_bits: 24 - bits,
        };
        conn.set_compression(Pmd::new(Side::Server, &params));
        peer.client.set_compression(Pmd::new(Side::Client, &params));
    }
    let mut asm = MessageAssembler::new(max);
    let mut rng = u32::from(*seed) | 0x100;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
    let buffer_bound = (max as usize + 1).max(INFLATE_BUF_KEEP);
    let mut echo = Vec::new();
    let mut ended = false;
    let mut pos = 0;
    let mut now = 0u64;
    while pos < stream.len() {
        let r = next();
        let n = (1 + (r % 300) as usize).min(stream.len() - pos);
        let mut buf = stream[pos..pos + n].to_vec();
        pos += n;
        now += u64::from(r >> 24);
        let mut off = 0;
        // Each round either consumes input or drains the output, so this ends.
        for _ in 0..(2 * n + 4) {
            if off >= buf.len() {
                break;
            }
            let res = conn.feed(&mut buf[off..], now, |e| match e {
                Event::Data(d) => {
                    assert!(!ended, "data after close");
                    let msg = asm
                        .push(&d)
                        .expect("the connection enforces the maximum first");
                    assert!(asm.buffered() as u64 <= max);
                    if let Some(m) = msg {
                        assert!(m.data.len() as u64 <= max);
                        if !m.binary {
                            assert!(
                                std::str::from_utf8(&m.data).is_ok(),
                                "invalid text delivered"
                            );
                        }
                        echo.push((m.binary, m.data));
                    }
                }
                Event::Close(c) => {
                    assert!(!ended);
                    ended = true;
                    assert!(c.reason.len() <= 123);
                }
                Event::Pong(p) => assert!(p.len() <= 125),
                Event::Blocked => unreachable!("feed does not pass Blocked on"),
            });
            assert!(
                conn.queued_output() <= MAX_QUEUED_OUTPUT + 1,
                "unbounded output"
            );
            assert!(
                conn.inflate_buffer_capacity() <= buffer_bound,
                "inflate buffer"
            );
            // Echo what arrived before this error or close (the echo protocol's order),
            // then hand it to the peer: what the application queues is its own to
            // bound (writeable discipline), the queue limit is about the connection's.
            let echoed = !echo.is_empty();
            for (binary, m) in echo.drain(..) {
                let kind = if binary {
                    DataKind::Binary
                } else {
                    DataKind::Text
                };
                let copy = m.to_vec();
                if conn.send(kind, m).is_ok() {
                    peer.expected.push_back((binary, copy));
                }
            }
            if echoed {
                peer.take(&mut conn);
            }
            match res {
                Ok(fed) => {
                    off += fed.consumed;
                    if fed.blocked || next() % 4 == 0 {
                        peer.take(&mut conn);
                    }
                    if next() % 16 == 0 {
                        conn.release_idle_memory();
                    }
                }
                Err(_) => {
                    ended = true;
                    assert_eq!(conn.state(), WsState::Closed);
                    break;
                }
            }
        }
        if conn.next_deadline().is_some_and(|d| d <= now) {
            let _ = conn.on_timer(now);
        }
        if conn.state() == WsState::Closed {
            ended = true;
        }
    }
    peer.take(&mut conn);
    assert!(peer.expected.is_empty(), "echoes not received");
});
