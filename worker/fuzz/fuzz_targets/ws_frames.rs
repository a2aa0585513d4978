//! Fuzz the server side of the WebSocket role: arbitrary bytes, cut into arbitrary
//! reads, into a `WsConn`. Checks: no panic; nothing delivered after a Close or an
//! error; the output queue stays bounded; every text message assembled from the
//! deliveries is valid UTF-8 and no message exceeds the configured maximum.
//!
//! Input layout: byte 0 picks the maximum message size (small, to reach 1009), byte 1
//! seeds the generator that chooses read sizes and when output is drained, the rest
//! is the byte stream from the "client".
#![no_main]

use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::ws::conn::MAX_QUEUED_OUTPUT;
use lwsd_worker::roles::ws::{Event, MessageAssembler, WsConfig, WsConn, WsState};

fuzz_target!(|data: &[u8]| {
    let [cfg_byte, seed, stream @ ..] = data else {
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
    let mut asm = MessageAssembler::new(max);
    let mut rng = u32::from(*seed) | 0x100;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
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
                    let msg = asm.push(&d).expect("the connection enforces the maximum first");
                    assert!(asm.buffered() as u64 <= max);
                    if let Some(m) = msg {
                        assert!(m.data.len() as u64 <= max);
                        if !m.binary {
                            assert!(std::str::from_utf8(&m.data).is_ok(), "invalid text delivered");
                        }
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
            assert!(conn.queued_output() <= MAX_QUEUED_OUTPUT + 1, "unbounded output");
            match res {
                Ok(fed) => {
                    off += fed.consumed;
                    if fed.blocked || next() % 4 == 0 {
                        while conn.poll_transmit().is_some() {}
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
});
