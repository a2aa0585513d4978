//! Connection-level tests, grouped by RFC 6455 section. Frame builders and an event
//! recorder make each test read like the exchange it checks.

use std::num::NonZeroU64;

use bytes::Bytes;

use super::conn::MAX_QUEUED_OUTPUT;
use super::mask::apply_mask;
use super::*;

pub(super) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked with KEY), or unmasked with `mask = None`.
pub(super) fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = vec![(u8::from(fin) << 7) | op];
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        v.push(mbit | len as u8);
    } else if len <= 0xffff {
        v.push(mbit | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(mbit | 127);
        v.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let start = match mask {
        Some(m) => {
            v.extend_from_slice(&m);
            v.len()
        }
        None => v.len(),
    };
    v.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut v[start..], m, 0);
    }
    v
}

pub(super) fn cf(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, op, payload, Some(KEY))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ev {
    Data {
        payload: Vec<u8>,
        first: bool,
        last: bool,
        binary: bool,
        remaining: u64,
    },
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Blocked,
    Err(WsError),
}

pub(super) fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Data(d) => Ev::Data {
            payload: d.payload.to_vec(),
            first: d.first,
            last: d.last,
            binary: d.binary,
            remaining: d.remaining,
        },
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close(c) => Ev::Close(c.code, c.reason.to_string()),
        Event::Blocked => Ev::Blocked,
    }
}

/// Feed `pieces` in order (as separate reads) and record every event; stops at an error.
pub(super) fn run(c: &mut WsConn, pieces: &[&[u8]]) -> Vec<Ev> {
    let mut evs = Vec::new();
    for p in pieces {
        let mut buf = p.to_vec();
        let mut pos = 0;
        loop {
            match c.process(&mut buf[pos..], 0) {
                Ok(pr) => {
                    pos += pr.consumed;
                    match pr.event {
                        None => break,
                        Some(e) => evs.push(own(e)),
                    }
                }
                Err(e) => {
                    evs.push(Ev::Err(e));
                    return evs;
                }
            }
        }
    }
    evs
}

pub(super) fn server() -> WsConn {
    WsConn::server(WsConfig::default(), 0)
}

pub(super) fn output(c: &mut WsConn) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = c.poll_transmit() {
        v.extend_from_slice(&b);
    }
    v
}

/// Whole messages and control events, independent of how the data was chunked.
pub(super) fn normalize(evs: &[Ev]) -> Vec<Ev> {
    let mut out = Vec::new();
    let mut cur: Option<(Vec<u8>, bool)> = None;
    for e in evs {
        match e {
            Ev::Data {
                payload,
                first,
                last,
                binary,
                ..
            } => {
                if *first {
                    assert!(cur.is_none(), "first inside a message");
                    cur = Some((Vec::new(), *binary));
                }
                let (buf, _) = cur.as_mut().expect("chunk outside a message");
                buf.extend_from_slice(payload);
                if *last {
                    let (payload, binary) = cur.take().unwrap();
                    out.push(Ev::Data {
                        payload,
                        first: true,
                        last: true,
                        binary,
                        remaining: 0,
                    });
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

pub(super) fn whole(payload: &[u8], binary: bool) -> Ev {
    Ev::Data {
        payload: payload.to_vec(),
        first: true,
        last: true,
        binary,
        remaining: 0,
    }
}

// ------------------------------------------------------------------ 5.1 masking

#[test]
fn s5_1_server_requires_masked_frames() {
    let mut c = server();
    let evs = run(&mut c, &[&frame(true, 1, b"Hello", None)]);
    assert_eq!(evs, vec![Ev::Err(WsError::UNMASKED)]);
    assert_eq!(c.state(), WsState::Closed);
    // The failure is answered with Close 1002 (7.1.7), unmasked from a server.
    let out = output(&mut c);
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xea]);
    assert_eq!(out[1] & 0x80, 0);
    // Nothing is delivered afterwards.
    assert_eq!(run(&mut c, &[&cf(true, 1, b"late")]), vec![]);
    assert!(c.is_done());
}

#[test]
fn s5_1_client_rejects_masked_frames_and_masks_its_own() {
    let mut c = WsConn::client(WsConfig::default(), 42, 0);
    let evs = run(&mut c, &[&frame(true, 1, b"Hello", None)]);
    assert_eq!(evs, vec![whole(b"Hello", false)]);
    assert_eq!(
        run(&mut c, &[&cf(true, 1, b"x")]),
        vec![Ev::Err(WsError::MASKED)]
    );
    let out = output(&mut c);
    // The client's Close 1002 is masked.
    assert_eq!(out[0], 0x88);
    assert_ne!(out[1] & 0x80, 0);
    let mut c = WsConn::client(WsConfig::default(), 42, 0);
    c.send(DataKind::Text, Bytes::from_static(b"Hello"))
        .unwrap();
    let mut out = output(&mut c);
    assert_eq!(&out[..2], &[0x81, 0x85]);
    let key = [out[2], out[3], out[4], out[5]];
    apply_mask(&mut out[6..], key, 0);
    assert_eq!(&out[6..], b"Hello");
    // Server output is not masked, and the payload is not copied.
    let mut s = server();
    let p = Bytes::from_static(b"Hello");
    s.send(DataKind::Binary, p.clone()).unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], &[0x82, 0x05]);
    assert_eq!(s.poll_transmit().unwrap().as_ptr(), p.as_ptr());
}

// ------------------------------------------------------------------ 5.2 framing

#[test]
fn s5_2_lengths_across_the_boundaries() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
        let mut c = server();
        let f = cf(true, 2, &payload);
        let evs = normalize(&run(&mut c, &[&f]));
        assert_eq!(evs, vec![whole(&payload, true)], "len {len}");
    }
}

#[test]
fn s5_2_rsv_bits_and_reserved_opcodes() {
    for b0 in [0xc1u8, 0xa1, 0x91] {
        let mut f = cf(true, 1, b"x");
        f[0] = b0;
        assert_eq!(run(&mut server(), &[&f]), vec![Ev::Err(WsError::RSV_BITS)]);
    }
    for op in [3u8, 7, 0xb, 0xf] {
        let f = cf(true, op, b"");
        assert_eq!(
            run(&mut server(), &[&f]),
            vec![Ev::Err(WsError::RESERVED_OPCODE)]
        );
    }
    // 64-bit length with the MSB set.
    let f = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        run(&mut server(), &[&f]),
        vec![Ev::Err(WsError::LENGTH_MSB)]
    );
}

#[test]
fn s5_2_payload_is_delivered_in_place_and_in_pieces() {
    let payload = vec![7u8; 1000];
    let f = cf(true, 2, &payload);
    let mut c = server();
    // First read: header (2 + 2 + 4 bytes) + 300 bytes, second: the rest.
    let mut a = f[..308].to_vec();
    let range = a.as_ptr_range();
    let p = c.process(&mut a, 0).unwrap();
    assert_eq!(p.consumed, 308);
    match p.event {
        Some(Event::Data(d)) => {
            assert!(d.first && !d.last && d.binary);
            assert_eq!(d.remaining, 700);
            assert_eq!(d.payload, &payload[..300]);
            assert!(range.contains(&d.payload.as_ptr()), "not zero-copy");
        }
        e => panic!("{e:?}"),
    }
    let evs = run(&mut c, &[&f[308..]]);
    assert_eq!(
        evs,
        vec![Ev::Data {
            payload: payload[300..].to_vec(),
            first: false,
            last: true,
            binary: true,
            remaining: 0
        }]
    );
}

// ------------------------------------------------------------------ 5.4 fragmentation

#[test]
fn s5_4_fragmented_message() {
    let mut c = server();
    let evs = run(&mut c, &[&cf(false, 1, b"Hel"), &cf(true, 0, b"lo")]);
    assert_eq!(
        evs,
        vec![
            Ev::Data {
                payload: b"Hel".to_vec(),
                first: true,
                last: false,
                binary: false,
                remaining: 0
            },
            Ev::Data {
                payload: b"lo".to_vec(),
                first: false,
                last: true,
                binary: false,
                remaining: 0
            },
        ]
    );
    // Empty fragments: an empty first and final frame still mark the message.
    let mut c = server();
    let evs = run(
        &mut c,
        &[&cf(false, 2, b""), &cf(false, 0, b""), &cf(true, 0, b"")],
    );
    assert_eq!(normalize(&evs), vec![whole(b"", true)]);
}

#[test]
fn s5_4_fragmentation_violations() {
    let e = run(&mut server(), &[&cf(true, 0, b"x")]);
    assert_eq!(e, vec![Ev::Err(WsError::NO_MESSAGE)]);
    let e = run(&mut server(), &[&cf(false, 1, b"a"), &cf(true, 1, b"b")]);
    assert_eq!(e.last(), Some(&Ev::Err(WsError::MESSAGE_OPEN)));
    let e = run(&mut server(), &[&cf(false, 1, b"a"), &cf(true, 2, b"b")]);
    assert_eq!(e.last(), Some(&Ev::Err(WsError::MESSAGE_OPEN)));
}

#[test]
fn s5_4_control_frames_between_fragments() {
    let mut c = server();
    let evs = run(
        &mut c,
        &[&[
            cf(false, 1, b"fragment1"),
            cf(true, 9, b"ping!"),
            cf(true, 0xa, b"unsolicited"),
            cf(true, 0, b"fragment2"),
        ]
        .concat()],
    );
    assert_eq!(
        normalize(&evs),
        vec![
            Ev::Pong(b"unsolicited".to_vec()),
            whole(b"fragment1fragment2", false)
        ]
    );
    assert_eq!(output(&mut c), frame(true, 0xa, b"ping!", None));
}

// ------------------------------------------------------------------ 5.5 control frames

#[test]
fn s5_5_pings_each_answered() {
    let mut c = server();
    let mut input = Vec::new();
    for i in 0..10u8 {
        input.extend(cf(true, 9, &[i; 125][..usize::from(i) * 12]));
    }
    assert_eq!(run(&mut c, &[&input]), vec![]);
    let mut want = Vec::new();
    for i in 0..10u8 {
        want.extend(frame(true, 0xa, &[i; 125][..usize::from(i) * 12], None));
    }
    assert_eq!(output(&mut c), want);
}

#[test]
fn s5_5_control_frame_limits() {
    // 125 bytes is the maximum; 126 fails; a fragmented ping fails.
    let mut c = server();
    assert_eq!(run(&mut c, &[&cf(true, 9, &[1; 125])]), vec![]);
    assert_eq!(output(&mut c), frame(true, 0xa, &[1; 125], None));
    let e = run(&mut server(), &[&cf(true, 9, &[1; 126])]);
    assert_eq!(e, vec![Ev::Err(WsError::CONTROL_TOO_LONG)]);
    let e = run(&mut server(), &[&cf(false, 9, b"x")]);
    assert_eq!(e, vec![Ev::Err(WsError::FRAGMENTED_CONTROL)]);
}

#[test]
fn s5_5_ping_split_across_reads() {
    let f = cf(true, 9, b"Hello");
    for cut in 1..f.len() {
        let mut c = server();
        assert_eq!(run(&mut c, &[&f[..cut], &f[cut..]]), vec![]);
        assert_eq!(
            output(&mut c),
            frame(true, 0xa, b"Hello", None),
            "cut {cut}"
        );
    }
}

#[test]
fn s5_5_output_queue_is_bounded() {
    let mut c = server();
    let ping = cf(true, 9, b"p");
    let n = MAX_QUEUED_OUTPUT + 36;
    let mut input: Vec<u8> = ping.repeat(n);
    let fed = c.feed(&mut input, 0, |_| panic!("no events")).unwrap();
    assert!(fed.blocked);
    assert_eq!(fed.consumed, ping.len() * MAX_QUEUED_OUTPUT);
    assert_eq!(c.queued_output(), MAX_QUEUED_OUTPUT);
    let mut sent = 0;
    let mut pos = fed.consumed;
    while c.poll_transmit().is_some() {
        sent += 1;
    }
    let fed = c
        .feed(&mut input[pos..], 0, |_| panic!("no events"))
        .unwrap();
    pos += fed.consumed;
    assert!(!fed.blocked);
    assert_eq!(pos, input.len());
    while c.poll_transmit().is_some() {
        sent += 1;
    }
    assert_eq!(sent, n);
}

// ------------------------------------------------------------------ 5.5.1 / 7 closing

#[test]
fn s5_5_1_close_is_echoed_then_nothing_more() {
    let mut c = server();
    let mut body = 1000u16.to_be_bytes().to_vec();
    body.extend_from_slice(b"bye");
    let input = [cf(true, 8, &body), cf(true, 1, b"after")].concat();
    let evs = run(&mut c, &[&input]);
    assert_eq!(evs, vec![Ev::Close(Some(1000), "bye".into())]);
    assert_eq!(output(&mut c), frame(true, 8, &[0x03, 0xe8], None));
    assert!(c.is_done());
    assert!(c.send(DataKind::Text, Bytes::new()).is_err());
    // An empty close is answered by an empty close.
    let mut c = server();
    assert_eq!(
        run(&mut c, &[&cf(true, 8, b"")]),
        vec![Ev::Close(None, String::new())]
    );
    assert_eq!(output(&mut c), frame(true, 8, b"", None));
}

#[test]
fn s7_4_close_codes_from_the_peer() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999,
    ] {
        let mut c = server();
        let evs = run(&mut c, &[&cf(true, 8, &code.to_be_bytes())]);
        assert_eq!(evs, vec![Ev::Close(Some(code), String::new())]);
        assert_eq!(output(&mut c), frame(true, 8, &code.to_be_bytes(), None));
    }
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let mut c = server();
        let evs = run(&mut c, &[&cf(true, 8, &code.to_be_bytes())]);
        assert_eq!(evs, vec![Ev::Err(WsError::CLOSE_CODE)], "{code}");
        assert_eq!(&output(&mut c)[2..4], &1002u16.to_be_bytes());
    }
    let evs = run(&mut server(), &[&cf(true, 8, &[0x03])]);
    assert_eq!(evs, vec![Ev::Err(WsError::CLOSE_BODY_ONE_BYTE)]);
    let mut c = server();
    let evs = run(&mut c, &[&cf(true, 8, &[0x03, 0xe8, 0xed, 0xa0, 0x80])]);
    assert_eq!(evs, vec![Ev::Err(WsError::CLOSE_REASON_UTF8)]);
    assert_eq!(&output(&mut c)[2..4], &1007u16.to_be_bytes());
}

#[test]
fn s7_local_close_waits_for_the_peer() {
    let mut c = WsConn::server(WsConfig::default(), 1_000);
    c.close(1001, "going", 1_000).unwrap();
    assert_eq!(c.state(), WsState::CloseSent);
    let mut want = vec![0x88, 7, 0x03, 0xe9];
    want.extend_from_slice(b"going");
    assert_eq!(output(&mut c), want);
    assert_eq!(
        c.close_deadline(),
        Some(1_000 + conn::DEFAULT_CLOSE_TIMEOUT_MS)
    );
    assert_eq!(c.next_deadline(), c.close_deadline());
    assert_eq!(c.close(1000, "", 1_000), Err(UsageError::Closing));
    assert_eq!(
        c.send(DataKind::Text, Bytes::new()),
        Err(UsageError::Closing)
    );
    // Data and pings from the peer are dropped; its Close ends the handshake.
    let input = [
        cf(false, 1, b"dropped"),
        cf(true, 9, b"no pong"),
        cf(true, 0, b"dropped too"),
        cf(true, 8, &1001u16.to_be_bytes()),
    ]
    .concat();
    assert_eq!(
        run(&mut c, &[&input]),
        vec![Ev::Close(Some(1001), String::new())]
    );
    assert_eq!(c.state(), WsState::Closed);
    assert!(!c.has_output());
    assert_eq!(c.next_deadline(), None);
    // Without the peer's reply, the deadline hangs up.
    let mut c = WsConn::server(WsConfig::default(), 0);
    c.close(1000, "", 0).unwrap();
    assert_eq!(c.on_timer(conn::DEFAULT_CLOSE_TIMEOUT_MS - 1), Action::Idle);
    assert_eq!(c.on_timer(conn::DEFAULT_CLOSE_TIMEOUT_MS), Action::Hangup);
    assert_eq!(c.state(), WsState::Closed);
}

// ------------------------------------------------------------------ 5.6 / 8.1 text

#[test]
fn s8_1_invalid_utf8_fails_before_the_rest_arrives() {
    // Autobahn 6.4.1: κόσμε + ED A0 80 (a surrogate) + "edited", in one frame; only
    // the first part has arrived when the connection must fail.
    let text = [
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65,
        0x64, 0x69, 0x74, 0x65, 0x64,
    ];
    let f = cf(true, 1, &text);
    let mut c = server();
    // Header (6 bytes) + 13 payload bytes: up to ED A0.
    let evs = run(&mut c, &[&f[..6 + 13]]);
    assert_eq!(evs, vec![Ev::Err(WsError::TEXT_UTF8)]);
    assert_eq!(&output(&mut c)[2..4], &1007u16.to_be_bytes());
    // With only up to ED the bytes are still a valid prefix: delivered.
    let mut c = server();
    let evs = run(&mut c, &[&f[..6 + 12]]);
    assert_eq!(evs.len(), 1);
    assert!(matches!(&evs[0], Ev::Data { remaining: 8, .. }));
}

#[test]
fn s8_1_text_split_inside_code_points() {
    let text = "κόσμε 𝄞 Hello-µ@ßöäüàá-UTF-8!!".as_bytes();
    for cut in 1..text.len() {
        let input = [cf(false, 1, &text[..cut]), cf(true, 0, &text[cut..])].concat();
        let evs = normalize(&run(&mut server(), &[&input]));
        assert_eq!(evs, vec![whole(text, false)], "cut {cut}");
    }
    // Truncated at the end of the message -> 1007.
    let evs = run(&mut server(), &[&cf(true, 1, &text[..1])]);
    assert_eq!(evs, vec![Ev::Err(WsError::TEXT_UTF8)]);
    // Binary is not checked.
    let evs = run(&mut server(), &[&cf(true, 2, &[0xff, 0xfe])]);
    assert_eq!(evs, vec![whole(&[0xff, 0xfe], true)]);
}

// ------------------------------------------------------------------ limits

#[test]
fn max_message_size_is_enforced_at_the_header() {
    let cfg = WsConfig {
        max_message_size: NonZeroU64::new(1000).unwrap(),
        ..WsConfig::default()
    };
    let ok = cf(true, 2, &[0; 1000]);
    let evs = normalize(&run(&mut WsConn::server(cfg, 0), &[&ok]));
    assert_eq!(evs, vec![whole(&[0; 1000], true)]);
    // One byte over: fails on the header alone, before any payload.
    let big = cf(true, 2, &[0; 1001]);
    let mut c = WsConn::server(cfg, 0);
    assert_eq!(run(&mut c, &[&big[..8]]), vec![Ev::Err(WsError::TOO_BIG)]);
    assert_eq!(&output(&mut c)[2..4], &1009u16.to_be_bytes());
    // Over the limit across fragments.
    let frags = [cf(false, 1, &[b'a'; 600]), cf(true, 0, &[b'a'; 401])].concat();
    let evs = run(&mut WsConn::server(cfg, 0), &[&frags]);
    assert_eq!(evs.last(), Some(&Ev::Err(WsError::TOO_BIG)));
    // Control frames do not count toward it.
    let frags = [
        cf(false, 1, &[b'a'; 600]),
        cf(true, 9, &[0; 125]),
        cf(true, 0, &[b'a'; 400]),
    ]
    .concat();
    let evs = normalize(&run(&mut WsConn::server(cfg, 0), &[&frags]));
    assert_eq!(evs, vec![whole(&[b'a'; 1000], false)]);
}

// ------------------------------------------------------------------ keepalive

#[test]
fn keepalive_ping_then_hangup() {
    let cfg = WsConfig::default();
    let mut c = WsConn::server(cfg, 1_000);
    let t = 1_000 + conn::DEFAULT_PING_INTERVAL_MS;
    assert_eq!(c.next_deadline(), Some(t));
    assert_eq!(c.on_timer(t - 1), Action::Idle);
    assert_eq!(c.on_timer(t), Action::Write);
    assert_eq!(output(&mut c), vec![0x89, 0x00]);
    assert_eq!(c.next_deadline(), Some(t + conn::DEFAULT_PONG_TIMEOUT_MS));
    // A pong clears it and re-arms the interval from the time it arrived.
    let mut pong = cf(true, 0xa, b"");
    let p = c.process(&mut pong, t + 5).unwrap();
    assert_eq!(p.event, Some(Event::Pong(b"")));
    assert_eq!(
        c.next_deadline(),
        Some(t + 5 + conn::DEFAULT_PING_INTERVAL_MS)
    );
    // Next time nobody answers.
    let t2 = t + 5 + conn::DEFAULT_PING_INTERVAL_MS;
    assert_eq!(c.on_timer(t2), Action::Write);
    assert_eq!(
        c.on_timer(t2 + conn::DEFAULT_PONG_TIMEOUT_MS - 1),
        Action::Idle
    );
    assert_eq!(
        c.on_timer(t2 + conn::DEFAULT_PONG_TIMEOUT_MS),
        Action::Hangup
    );
    // Disabled pings: no deadline.
    let c = WsConn::server(
        WsConfig {
            ping_interval_ms: None,
            ..cfg
        },
        0,
    );
    assert_eq!(c.next_deadline(), None);
}

// ------------------------------------------------------------------ send side misuse

#[test]
fn send_side_rules() {
    let mut s = server();
    assert_eq!(
        s.send_frame(DataKind::Text, true, true, Bytes::new()),
        Err(UsageError::NoMessageInProgress)
    );
    s.send_frame(DataKind::Text, false, false, Bytes::from_static(b"Hel"))
        .unwrap();
    assert_eq!(
        s.send(DataKind::Binary, Bytes::new()),
        Err(UsageError::MessageInProgress)
    );
    let shared = SharedFrame::new(DataKind::Text, Bytes::from_static(b"x"));
    assert_eq!(s.send_shared(&shared), Err(UsageError::MessageInProgress));
    s.ping(b"in between").unwrap();
    s.send_frame(DataKind::Text, true, true, Bytes::from_static(b"lo"))
        .unwrap();
    s.send_shared(&shared).unwrap();
    let want = [
        frame(false, 1, b"Hel", None),
        frame(true, 9, b"in between", None),
        frame(true, 0, b"lo", None),
        frame(true, 1, b"x", None),
    ]
    .concat();
    assert_eq!(output(&mut s), want);
    assert_eq!(s.ping(&[0; 126]), Err(UsageError::ControlPayloadTooLong));
    assert_eq!(
        s.close(1005, "", 0),
        Err(UsageError::InvalidCloseCode(1005))
    );
    let mut c = WsConn::client(WsConfig::default(), 1, 0);
    assert_eq!(c.send_shared(&shared), Err(UsageError::SharedFrameOnClient));
}

// ------------------------------------------------------------------ splitting

/// A stream exercising every path: fragments, interleaved control frames, lengths
/// around 125/126, text split inside code points, and a final close.
fn mixed_stream() -> (Vec<u8>, Vec<Ev>) {
    let text = "κόσμε 𝄞".as_bytes();
    let big: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let stream = [
        cf(true, 1, b"Hello"),
        cf(false, 1, &text[..3]),
        cf(true, 9, b"ping"),
        cf(false, 0, &text[3..7]),
        cf(true, 0xa, b"pong"),
        cf(true, 0, &text[7..]),
        cf(true, 2, &big[..126]),
        cf(true, 2, &big),
        cf(false, 2, b""),
        cf(true, 0, b""),
        cf(true, 8, &[0x03, 0xe8, b'o', b'k']),
        cf(true, 1, b"after close"),
    ]
    .concat();
    let want = vec![
        whole(b"Hello", false),
        Ev::Pong(b"pong".to_vec()),
        whole(text, false),
        whole(&big[..126], true),
        whole(&big, true),
        whole(b"", true),
        Ev::Close(Some(1000), "ok".into()),
    ];
    (stream, want)
}

#[test]
fn every_split_point_same_deliveries() {
    let (stream, want) = mixed_stream();
    let mut c = server();
    assert_eq!(normalize(&run(&mut c, &[&stream])), want);
    let reply = output(&mut c);
    for a in 0..=stream.len() {
        let mut c = server();
        let evs = run(&mut c, &[&stream[..a], &stream[a..]]);
        assert_eq!(normalize(&evs), want, "split at {a}");
        assert_eq!(output(&mut c), reply, "split at {a}");
    }
    // Byte by byte, and three pieces over a window of cut points.
    let pieces: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(normalize(&run(&mut server(), &pieces)), want);
    for a in 0..40 {
        for b in a..stream.len().min(a + 60) {
            let evs = run(&mut server(), &[&stream[..a], &stream[a..b], &stream[b..]]);
            assert_eq!(normalize(&evs), want, "split at {a} {b}");
        }
    }
}

/// The longest header (64-bit length + mask = MAX_HEADER_LEN bytes) cut at every
/// point: the partial header is kept across reads and the frame arrives intact.
#[test]
fn longest_header_split_everywhere() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let f = cf(true, 2, &payload);
    assert_eq!(f.len() - payload.len(), frame::MAX_HEADER_LEN);
    for a in 1..=frame::MAX_HEADER_LEN {
        for b in a..=frame::MAX_HEADER_LEN + 1 {
            let evs = run(&mut server(), &[&f[..a], &f[a..b], &f[b..]]);
            assert_eq!(normalize(&evs), vec![whole(&payload, true)], "cuts {a} {b}");
        }
    }
}

/// A tiny deterministic PRNG for the randomized tests (no dependency).
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fraggle-style: random messages of 1..=1024 frames of 1..=2001 bytes each, encoded
/// by the client side, cut into random reads, decoded by the server side; the
/// checksums and sizes of what arrives match what was sent, message by message.
#[test]
fn fraggle_client_to_server() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut client = WsConn::client(WsConfig::default(), 7, 0);
    let mut server = server();
    let mut sent = Vec::new();
    for m in 0..12 {
        let frames = if m % 4 == 0 {
            1 + rng.below(1024)
        } else {
            1 + rng.below(16)
        };
        let mut sum = 0u64;
        let mut len = 0u64;
        for i in 0..frames {
            let n = 1 + rng.below(2001) as usize;
            let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            for b in &data {
                sum = sum.wrapping_mul(31).wrapping_add(u64::from(*b));
            }
            len += n as u64;
            client
                .send_frame(DataKind::Binary, i > 0, i == frames - 1, Bytes::from(data))
                .unwrap();
            if rng.below(8) == 0 {
                client.ping(b"interleaved").unwrap();
            }
        }
        sent.push((len, sum));
    }
    let mut wire = Vec::new();
    while let Some(b) = client.poll_transmit() {
        wire.extend_from_slice(&b);
    }
    let mut got = Vec::new();
    let (mut sum, mut len) = (0u64, 0u64);
    let mut pos = 0;
    while pos < wire.len() {
        let n = (1 + rng.below(4000) as usize).min(wire.len() - pos);
        let mut piece = wire[pos..pos + n].to_vec();
        pos += n;
        server
            .feed(&mut piece, 0, |e| {
                if let Event::Data(d) = e {
                    if d.first {
                        (sum, len) = (0, 0);
                    }
                    for b in d.payload {
                        sum = sum.wrapping_mul(31).wrapping_add(u64::from(*b));
                    }
                    len += d.payload.len() as u64;
                    if d.last {
                        got.push((len, sum));
                    }
                }
            })
            .unwrap();
        server.drain_output(&mut Vec::new());
    }
    assert_eq!(got, sent);
}

/// The same in the other direction, through the MessageAssembler.
#[test]
fn fraggle_server_to_client_assembled() {
    let mut rng = Rng(12345);
    let mut server = server();
    let mut sent = Vec::new();
    for m in 0..20 {
        let frames = 1 + rng.below(if m == 0 { 1024 } else { 8 });
        let mut whole_msg = Vec::new();
        for i in 0..frames {
            let n = 1 + rng.below(2001) as usize;
            let data: Vec<u8> = (0..n).map(|_| b'a' + (rng.next() % 26) as u8).collect();
            whole_msg.extend_from_slice(&data);
            server
                .send_frame(DataKind::Text, i > 0, i == frames - 1, Bytes::from(data))
                .unwrap();
        }
        sent.push(whole_msg);
    }
    let mut wire = Vec::new();
    while let Some(b) = server.poll_transmit() {
        wire.extend_from_slice(&b);
    }
    let mut client = WsConn::client(WsConfig::default(), 3, 0);
    let mut asm = MessageAssembler::new(DEFAULT_TEST_MAX);
    let mut got = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let n = (1 + rng.below(3000) as usize).min(wire.len() - pos);
        let mut piece = wire[pos..pos + n].to_vec();
        pos += n;
        client
            .feed(&mut piece, 0, |e| {
                let Event::Data(d) = e else { return };
                if let Some(m) = asm.push(&d).unwrap() {
                    assert!(!m.binary);
                    got.push(m.data.to_vec());
                }
            })
            .unwrap();
    }
    assert_eq!(got, sent);
}

const DEFAULT_TEST_MAX: u64 = 16 << 20;

/// Throughput figures (run with `cargo test --release -p lwsd-worker measure_ -- --ignored
/// --nocapture`); not a pass/fail test, so ignored by default.
#[test]
#[ignore]
fn measure_throughput() {
    use std::time::Instant;
    let key = [1, 2, 3, 4];
    let mut buf = vec![0x5au8; 64 << 10];
    let rounds = 20_000;
    for (name, f) in [
        (
            "mask word-at-a-time",
            super::mask::apply_mask as fn(&mut [u8], [u8; 4], usize),
        ),
        ("mask naive", super::mask::apply_mask_naive),
    ] {
        let t = Instant::now();
        for i in 0..rounds {
            f(&mut buf, key, i);
            std::hint::black_box(&mut buf);
        }
        let s = t.elapsed().as_secs_f64();
        println!("{name}: {:.2} GB/s", (buf.len() * rounds) as f64 / s / 1e9);
    }
    // Small messages through a server WsConn (masked 16-byte binary frames).
    let one = cf(true, 2, &[7; 16]);
    let batch = one.repeat(1000);
    let mut c = server();
    let mut n = 0u64;
    let t = Instant::now();
    for _ in 0..2_000 {
        let mut b = batch.clone();
        c.feed(&mut b, 0, |e| {
            if let Event::Data(d) = e {
                n += d.payload.len() as u64;
            }
        })
        .unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!("16-byte frames: {:.1} ns/frame ({n} bytes)", s * 1e9 / 2e6);
    // Large frames (64 KiB text, UTF-8 validated).
    let one = cf(true, 1, &[b'a'; 65536]);
    let t = Instant::now();
    for _ in 0..5_000 {
        let mut b = one.clone();
        c.feed(&mut b, 0, |_| {}).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "64 KiB text frames: {:.2} GB/s",
        5_000.0 * 65536.0 / s / 1e9
    );
}
