//! Frame layer tests: byte vectors both ways for each frame type (RFC 9113 section 6)
//! and each rule the parser enforces, with the section it comes from.

use super::settings::{MAX_MAX_FRAME_SIZE, id};
use super::*;
use crate::roles::h2::error::{Answer, Blame, Scope};

/// A frame's bytes: the header (length from the payload) and the payload.
fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn enc(f: &Frame<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    v
}

fn server() -> Parser {
    Parser::new(Side::Server)
}

/// Decodes exactly one whole frame from `bytes` with a fresh server parser.
fn one(bytes: &[u8]) -> Frame<'_> {
    let (f, n) = server().decode(bytes).expect("valid").expect("whole");
    assert_eq!(n, bytes.len());
    f
}

fn err_with(mut p: Parser, bytes: &[u8]) -> FrameError {
    p.decode(bytes).expect_err("must be refused")
}

fn err(bytes: &[u8]) -> FrameError {
    err_with(server(), bytes)
}

#[track_caller]
fn conn_err(e: FrameError, code: ErrorCode) {
    assert_eq!(e.error.scope, Scope::Connection, "{e:?}");
    assert_eq!(e.error.code, code, "{e:?}");
    assert_eq!(e.skip, 0);
}

#[track_caller]
fn stream_err(e: FrameError, stream: u32, code: ErrorCode, skip: usize) {
    assert_eq!(e.error.scope, Scope::Stream(StreamId::new(stream)), "{e:?}");
    assert_eq!(e.error.code, code, "{e:?}");
    assert_eq!(e.skip, skip);
}

/// Decodes, then checks the frame re-encodes to exactly `bytes`.
#[track_caller]
fn round_trip(bytes: &[u8]) -> Frame<'_> {
    let f = one(bytes);
    assert_eq!(enc(&f), bytes, "{f:?}");
    f
}

// ---- 4.1 frame header ----

#[test]
fn head_parse_and_encode_4_1() {
    let b = [0x00, 0x01, 0x02, 0x07, 0x25, 0x00, 0x00, 0x00, 0x0b];
    let h = Head::parse(&b).unwrap();
    assert_eq!(h, Head::new(Kind::GoAway, 0x25, StreamId::new(11), 0x102));
    assert_eq!(h.to_bytes(), b);
    assert_eq!(Head::parse(&b[..8]), None);
    // 4.1: the reserved bit "MUST be ignored when receiving" and is sent as 0.
    let r = [0, 0, 0, 0, 0, 0x80, 0, 0, 3];
    let h = Head::parse(&r).unwrap();
    assert_eq!(h.stream, StreamId::new(3));
    assert_eq!(h.to_bytes()[5], 0);
}

#[test]
fn kinds_round_trip_and_unknown_kept_5_5() {
    for v in 0..=255u8 {
        assert_eq!(Kind::from_u8(v).to_u8(), v);
    }
    assert_eq!(Kind::from_u8(0x0a), Kind::Unknown(0x0a));
}

#[test]
#[should_panic(expected = "over 2^24-1")]
fn head_length_over_24_bits_panics() {
    Head::new(Kind::Data, 0, StreamId::new(1), 1 << 24).to_bytes();
}

#[test]
fn every_prefix_of_a_frame_is_incomplete() {
    let b = raw(0, 1, 1, b"hello");
    for n in 0..b.len() {
        let mut p = server();
        assert_eq!(p.decode(&b[..n]), Ok(None), "prefix {n}");
        assert_eq!(p, server(), "no state change on an incomplete frame");
    }
}

#[test]
fn frames_back_to_back_each_report_their_length() {
    let mut b = raw(6, 0, 0, &[1; 8]);
    b.extend(raw(0, 1, 1, b"xy"));
    let mut p = server();
    let (f, n) = p.decode(&b).unwrap().unwrap();
    assert!(matches!(f, Frame::Ping(_)));
    assert_eq!(n, 17);
    let (f, m) = p.decode(&b[n..]).unwrap().unwrap();
    assert!(matches!(f, Frame::Data(d) if d.data == b"xy" && d.end_stream));
    assert_eq!(n + m, b.len());
}

// ---- 4.2 frame size ----

#[test]
fn frame_over_max_frame_size_refused_from_the_header_4_2() {
    // Only the 9 header bytes are there: the error does not wait for 16 KiB.
    let h = Head::new(Kind::Data, 0, StreamId::new(1), 16_385).to_bytes();
    conn_err(err(&h), ErrorCode::FRAME_SIZE_ERROR);
    // 16384 (the initial SETTINGS_MAX_FRAME_SIZE, 6.5.2) is allowed.
    let b = raw(0, 0, 1, &[0; 16_384]);
    assert!(matches!(one(&b), Frame::Data(d) if d.data.len() == 16_384));
    // A larger advertised maximum lets the frame through.
    let mut p = server();
    p.set_max_frame_size(1 << 20);
    assert_eq!(p.decode(&h), Ok(None));
    p.set_max_frame_size(u32::MAX);
    assert_eq!(p.max_frame_size(), MAX_MAX_FRAME_SIZE);
}

// ---- 6.1 DATA ----

#[test]
fn data_both_ways_6_1() {
    let b = raw(0x0, 0x1, 1, b"hello");
    let f = round_trip(&b);
    let Frame::Data(d) = f else { panic!() };
    assert_eq!(
        (d.stream.get(), d.end_stream, d.pad_len, d.data),
        (1, true, None, &b"hello"[..])
    );
    assert_eq!(d.flow_len(), 5);
    assert_eq!(data_head(StreamId::new(1), true, 5), b[..9]);
}

#[test]
fn data_padded_6_1() {
    // PADDED: Pad Length 3, "hello", 3 zero bytes.
    let b = raw(0x0, 0x8, 3, b"\x03hello\0\0\0");
    let Frame::Data(d) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(
        (d.pad_len, d.data, d.end_stream),
        (Some(3), &b"hello"[..], false)
    );
    // 6.9.1: the whole payload, Pad Length and padding included, is flow controlled.
    assert_eq!(d.flow_len(), 9);
    // Padding that leaves no data is allowed: Pad Length = payload length - 1.
    let b = raw(0x0, 0x8, 3, b"\x02\0\0");
    assert!(matches!(one(&b), Frame::Data(d) if d.data.is_empty()));
}

#[test]
fn data_padding_too_long_is_protocol_error_6_1() {
    // "If the length of the padding is the length of the frame payload or greater,
    // the recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
    conn_err(err(&raw(0, 0x8, 1, b"\x03ab")), ErrorCode::PROTOCOL_ERROR);
    conn_err(err(&raw(0, 0x8, 1, b"\x04abc")), ErrorCode::PROTOCOL_ERROR);
    conn_err(err(&raw(0, 0x8, 1, b"\xff")), ErrorCode::PROTOCOL_ERROR);
    // PADDED with no room for the Pad Length: too small for mandatory data (4.2).
    conn_err(err(&raw(0, 0x8, 1, b"")), ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn data_on_stream_0_is_protocol_error_6_1() {
    conn_err(err(&raw(0, 0, 0, b"x")), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn undefined_flags_ignored_4_1() {
    // 0xf6 sets every flag bit but END_STREAM (0x1) and PADDED (0x8).
    let b = raw(0, 0xf6, 1, b"abc");
    let Frame::Data(d) = one(&b) else { panic!() };
    assert_eq!(
        (d.end_stream, d.pad_len, d.data),
        (false, None, &b"abc"[..])
    );
    assert_eq!(enc(&Frame::Data(d))[4], 0, "unused flags are sent as 0");
}

#[test]
fn data_header_into_room_before_payload() {
    // A payload written after lwsd's WebSocket room (api::LWS_PRE, 14 bytes): the h2
    // header goes into the last 9 bytes of the room, the frame is one slice.
    let room = crate::api::LWS_PRE;
    let mut buf = vec![0xaa; room];
    buf.extend_from_slice(b"payload bytes");
    let start = write_data_head_before(&mut buf, room, StreamId::new(7), true);
    assert_eq!(start, room - HEADER_LEN);
    assert_eq!(buf[start..], raw(0, 1, 7, b"payload bytes")[..]);
    // Exactly 9 bytes of room is enough.
    let mut buf = vec![0; HEADER_LEN + 2];
    buf[HEADER_LEN..].copy_from_slice(b"ok");
    assert_eq!(
        write_data_head_before(&mut buf, HEADER_LEN, StreamId::new(1), false),
        0
    );
    assert_eq!(buf, raw(0, 0, 1, b"ok"));
}

#[test]
#[should_panic(expected = "no room")]
fn data_header_needs_9_bytes_of_room() {
    let mut buf = vec![0; 10];
    write_data_head_before(&mut buf, 8, StreamId::new(1), false);
}

// ---- 6.2 HEADERS ----

#[test]
fn headers_both_ways_6_2() {
    let b = raw(0x1, 0x5, 1, b"\x82\x86\x84");
    let Frame::Headers(h) = round_trip(&b) else {
        panic!()
    };
    assert!(h.end_stream && h.end_headers);
    assert_eq!(
        (h.pad_len, h.priority, h.fragment),
        (None, None, &b"\x82\x86\x84"[..])
    );
}

#[test]
fn headers_priority_fields_parsed_and_kept_6_2() {
    // PADDED | PRIORITY | END_HEADERS: Pad Length 2, E=1 dependency 3, weight 15,
    // fragment, 2 bytes of padding. Accepted; the priority is ignored (5.3.2).
    let b = raw(0x1, 0x2c, 5, b"\x02\x80\x00\x00\x03\x0f\x82\x84\0\0");
    let Frame::Headers(h) = round_trip(&b) else {
        panic!()
    };
    let p = h.priority.unwrap();
    assert_eq!((p.exclusive, p.dependency.get(), p.weight), (true, 3, 15));
    assert_eq!((h.pad_len, h.fragment), (Some(2), &b"\x82\x84"[..]));
}

#[test]
fn headers_errors_6_2() {
    conn_err(err(&raw(1, 0x4, 0, b"\x82")), ErrorCode::PROTOCOL_ERROR);
    // PRIORITY flag with fewer than 5 bytes: too small for its fields (4.2), and
    // HEADERS carries a field block, so the error is the connection's.
    conn_err(
        err(&raw(1, 0x24, 1, b"\0\0\0")),
        ErrorCode::FRAME_SIZE_ERROR,
    );
    // Padding longer than what is left after the priority fields.
    conn_err(
        err(&raw(1, 0x2c, 1, b"\x02\0\0\0\x03\x0f\x82")),
        ErrorCode::PROTOCOL_ERROR,
    );
}

// ---- 6.3 PRIORITY ----

#[test]
fn priority_both_ways_6_3() {
    let b = raw(0x2, 0, 3, b"\x00\x00\x00\x01\xff");
    let Frame::Priority(p) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(p.spec.dependency.get(), 1);
    assert!(!p.spec.exclusive && !p.depends_on_self());
    let b = raw(0x2, 0, 3, b"\x80\x00\x00\x03\x00");
    let Frame::Priority(p) = round_trip(&b) else {
        panic!()
    };
    assert!(p.spec.exclusive && p.depends_on_self());
}

#[test]
fn priority_wrong_length_is_a_stream_error_that_is_skipped_6_3() {
    // "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream
    // error of type FRAME_SIZE_ERROR": the connection skips it and goes on.
    let mut b = raw(0x2, 0, 3, b"\0\0\0\x01");
    b.extend(raw(6, 0, 0, &[9; 8]));
    let mut p = server();
    assert_eq!(
        p.decode(&b[..12]),
        Ok(None),
        "a stream error waits for the whole frame"
    );
    let e = p.decode(&b).unwrap_err();
    stream_err(e, 3, ErrorCode::FRAME_SIZE_ERROR, 13);
    assert!(matches!(
        p.decode(&b[e.skip..]),
        Ok(Some((Frame::Ping(_), 17)))
    ));
    let e = err(&raw(0x2, 0, 3, b"\0\0\0\x01\x02\x03"));
    stream_err(e, 3, ErrorCode::FRAME_SIZE_ERROR, 15);
}

#[test]
fn priority_on_stream_0_is_protocol_error_6_3() {
    conn_err(
        err(&raw(2, 0, 0, b"\0\0\0\x01\x10")),
        ErrorCode::PROTOCOL_ERROR,
    );
}

// ---- 6.4 RST_STREAM ----

#[test]
fn rst_stream_both_ways_6_4() {
    let b = raw(0x3, 0, 1, b"\x00\x00\x00\x08");
    let Frame::RstStream(r) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(r.code, ErrorCode::CANCEL);
    // Section 7: unknown codes are kept as they came.
    let b = raw(0x3, 0, 1, b"\x00\x00\xde\xad");
    let Frame::RstStream(r) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(r.code, ErrorCode(0xdead));
    assert_eq!(r.code.name(), None);
}

#[test]
fn rst_stream_errors_6_4() {
    conn_err(err(&raw(3, 0, 0, &[0; 4])), ErrorCode::PROTOCOL_ERROR);
    // Refused from the header: length 3 and 5.
    conn_err(
        err(&raw(3, 0, 1, &[0; 3])[..9]),
        ErrorCode::FRAME_SIZE_ERROR,
    );
    conn_err(err(&raw(3, 0, 1, &[0; 5])), ErrorCode::FRAME_SIZE_ERROR);
}

// ---- 6.5 SETTINGS ----

fn setting(ident: u16, v: u32) -> Vec<u8> {
    let mut b = ident.to_be_bytes().to_vec();
    b.extend_from_slice(&v.to_be_bytes());
    b
}

#[test]
fn settings_both_ways_6_5() {
    let list = [
        Setting::HeaderTableSize(8192),
        Setting::EnablePush(false),
        Setting::MaxConcurrentStreams(100),
        Setting::InitialWindowSize(1 << 20),
        Setting::MaxFrameSize(1 << 15),
        Setting::MaxHeaderListSize(16_384),
        Setting::EnableConnectProtocol(true),
        Setting::Unknown(0xf0f0, 7),
    ];
    let mut b = Vec::new();
    settings::encode_settings(&list, &mut b);
    let mut want = Vec::new();
    for (i, v) in [
        (1, 8192),
        (2, 0),
        (3, 100),
        (4, 1 << 20),
        (5, 1 << 15),
        (6, 16_384),
        (8, 1),
        (0xf0f0, 7),
    ] {
        want.extend(setting(i, v));
    }
    assert_eq!(b, raw(4, 0, 0, &want));
    let Frame::Settings(s) = round_trip(&b) else {
        panic!()
    };
    assert!(!s.ack);
    assert_eq!(s.iter().collect::<Vec<_>>(), list);
    let mut vals = SettingsValues::default();
    vals.apply_all(&s).unwrap();
    assert_eq!(
        vals,
        SettingsValues {
            header_table_size: 8192,
            enable_push: false,
            max_concurrent_streams: Some(100),
            initial_window_size: 1 << 20,
            max_frame_size: 1 << 15,
            max_header_list_size: Some(16_384),
            enable_connect_protocol: true,
        }
    );
}

#[test]
fn settings_ack_6_5() {
    let mut b = Vec::new();
    settings::encode_settings_ack(&mut b);
    assert_eq!(b, raw(4, 1, 0, b""));
    assert!(matches!(round_trip(&b), Frame::Settings(s) if s.ack && s.is_empty()));
    // "Receipt of a SETTINGS frame with the ACK flag set and a length field value other
    // than 0 MUST be treated as a connection error of type FRAME_SIZE_ERROR."
    conn_err(
        err(&raw(4, 1, 0, &setting(1, 0))),
        ErrorCode::FRAME_SIZE_ERROR,
    );
}

#[test]
fn settings_framing_errors_6_5() {
    // Length not a multiple of 6: FRAME_SIZE_ERROR; on a stream: PROTOCOL_ERROR.
    conn_err(err(&raw(4, 0, 0, &[0; 7])), ErrorCode::FRAME_SIZE_ERROR);
    conn_err(
        err(&raw(4, 0, 1, &setting(3, 1))),
        ErrorCode::PROTOCOL_ERROR,
    );
}

#[test]
fn settings_values_validated_6_5_2() {
    use ErrorCode as E;
    let cases: &[(u16, u32, Option<ErrorCode>)] = &[
        (id::ENABLE_PUSH, 0, None),
        (id::ENABLE_PUSH, 1, None),
        (id::ENABLE_PUSH, 2, Some(E::PROTOCOL_ERROR)),
        (id::INITIAL_WINDOW_SIZE, 0x7fff_ffff, None),
        (
            id::INITIAL_WINDOW_SIZE,
            0x8000_0000,
            Some(E::FLOW_CONTROL_ERROR),
        ),
        (id::MAX_FRAME_SIZE, 16_383, Some(E::PROTOCOL_ERROR)),
        (id::MAX_FRAME_SIZE, 16_384, None),
        (id::MAX_FRAME_SIZE, (1 << 24) - 1, None),
        (id::MAX_FRAME_SIZE, 1 << 24, Some(E::PROTOCOL_ERROR)),
        (id::HEADER_TABLE_SIZE, u32::MAX, None),
        (id::MAX_CONCURRENT_STREAMS, 0, None),
        (id::MAX_HEADER_LIST_SIZE, u32::MAX, None),
        // RFC 8441 section 3: "The value of the parameter MUST be 0 or 1."
        (id::ENABLE_CONNECT_PROTOCOL, 1, None),
        (id::ENABLE_CONNECT_PROTOCOL, 2, Some(E::PROTOCOL_ERROR)),
        // 6.5.2: "An endpoint that receives a SETTINGS frame with any unknown or
        // unsupported identifier MUST ignore that setting."
        (0x7, u32::MAX, None),
        (0xffff, 0, None),
    ];
    for &(ident, v, want) in cases {
        // A valid parameter after the one tested: the whole frame is refused.
        let mut p = setting(ident, v);
        p.extend(setting(id::MAX_CONCURRENT_STREAMS, 10));
        let b = raw(4, 0, 0, &p);
        match want {
            None => assert!(server().decode(&b).is_ok(), "{ident:#x}={v}"),
            Some(code) => conn_err(err(&b), code),
        }
    }
}

#[test]
fn settings_unknown_ids_change_nothing_6_5_2() {
    let b = raw(4, 0, 0, &[setting(0x7, 5), setting(0xabcd, 1)].concat());
    let Frame::Settings(s) = round_trip(&b) else {
        panic!()
    };
    let mut v = SettingsValues::default();
    v.apply_all(&s).unwrap();
    assert_eq!(v, SettingsValues::default());
}

#[test]
fn settings_enable_push_1_refused_by_a_client_6_5_2() {
    // "A client MUST treat receipt of a SETTINGS frame with SETTINGS_ENABLE_PUSH set to
    // 1 as a connection error of type PROTOCOL_ERROR." A server may receive it.
    let b = raw(4, 0, 0, &setting(id::ENABLE_PUSH, 1));
    conn_err(
        err_with(Parser::new(Side::Client), &b),
        ErrorCode::PROTOCOL_ERROR,
    );
    assert!(server().decode(&b).is_ok());
}

#[test]
fn settings_later_value_wins_and_connect_protocol_cannot_go_back_6_5_3() {
    let b = raw(4, 0, 0, &[setting(4, 10), setting(4, 20)].concat());
    let Frame::Settings(s) = one(&b) else {
        panic!()
    };
    let mut v = SettingsValues::default();
    v.apply_all(&s).unwrap();
    assert_eq!(v.initial_window_size, 20);
    // RFC 8441 section 3: no 0 after a 1.
    v.apply(Setting::EnableConnectProtocol(true)).unwrap();
    v.apply(Setting::EnableConnectProtocol(true)).unwrap();
    let e = v.apply(Setting::EnableConnectProtocol(false)).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Connection, ErrorCode::PROTOCOL_ERROR)
    );
}

// ---- 6.6 PUSH_PROMISE ----

#[test]
fn push_promise_refused_by_a_server_8_4() {
    let b = raw(5, 0x4, 1, b"\0\0\0\x02\x82");
    // From the header alone.
    conn_err(err(&b[..9]), ErrorCode::PROTOCOL_ERROR);
    // A client that did not enable push refuses it too (6.6).
    conn_err(
        err_with(Parser::new(Side::Client), &b),
        ErrorCode::PROTOCOL_ERROR,
    );
}

#[test]
fn push_promise_both_ways_on_a_client_6_6() {
    let mut p = Parser::new(Side::Client);
    p.set_accept_push(true);
    let b = raw(5, 0xc, 1, b"\x01\x80\0\0\x02\x82\0");
    let (f, n) = p.decode(&b).unwrap().unwrap();
    assert_eq!(n, b.len());
    let Frame::PushPromise(pp) = f else { panic!() };
    // The promised stream's reserved bit is ignored.
    assert_eq!(
        (pp.promised.get(), pp.pad_len, pp.fragment),
        (2, Some(1), &b"\x82"[..])
    );
    let mut canon = b.clone();
    canon[10] = 0;
    assert_eq!(enc(&f), canon);
    // Too short for the promised stream id.
    let mut p2 = p.clone();
    conn_err(
        p2.decode(&raw(5, 0x4, 1, b"\0\0\0")).unwrap_err(),
        ErrorCode::FRAME_SIZE_ERROR,
    );
    conn_err(
        p.decode(&raw(5, 0x4, 0, b"\0\0\0\x02")).unwrap_err(),
        ErrorCode::PROTOCOL_ERROR,
    );
}

// ---- 6.7 PING ----

#[test]
fn ping_both_ways_6_7() {
    let b = raw(6, 0, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08");
    let Frame::Ping(p) = round_trip(&b) else {
        panic!()
    };
    assert!(!p.ack);
    let mut v = Vec::new();
    p.pong().encode(&mut v);
    assert_eq!(v, raw(6, 1, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08"));
}

#[test]
fn ping_errors_6_7() {
    conn_err(err(&raw(6, 0, 0, &[0; 7])), ErrorCode::FRAME_SIZE_ERROR);
    conn_err(
        err(&raw(6, 0, 0, &[0; 9])[..9]),
        ErrorCode::FRAME_SIZE_ERROR,
    );
    conn_err(err(&raw(6, 0, 1, &[0; 8])), ErrorCode::PROTOCOL_ERROR);
}

// ---- 6.8 GOAWAY ----

#[test]
fn goaway_both_ways_6_8() {
    let b = raw(7, 0, 0, b"\0\0\0\x05\0\0\0\x0bcalm down");
    let Frame::GoAway(g) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(
        (g.last_stream.get(), g.code, g.debug_data),
        (5, ErrorCode::ENHANCE_YOUR_CALM, &b"calm down"[..])
    );
    let b = raw(7, 0, 0, b"\x80\0\0\x05\0\0\0\0");
    let Frame::GoAway(g) = one(&b) else { panic!() };
    assert_eq!(g.last_stream.get(), 5, "reserved bit ignored");
}

#[test]
fn goaway_errors_6_8() {
    conn_err(err(&raw(7, 0, 0, &[0; 7])), ErrorCode::FRAME_SIZE_ERROR);
    conn_err(err(&raw(7, 0, 3, &[0; 8])), ErrorCode::PROTOCOL_ERROR);
}

// ---- 6.9 WINDOW_UPDATE ----

#[test]
fn window_update_both_ways_6_9() {
    let b = raw(8, 0, 0, b"\0\x01\0\0");
    let Frame::WindowUpdate(w) = round_trip(&b) else {
        panic!()
    };
    assert_eq!((w.stream, w.increment), (StreamId::ZERO, 65_536));
    let b = raw(8, 0, 9, b"\x7f\xff\xff\xff");
    assert!(matches!(round_trip(&b), Frame::WindowUpdate(w) if w.increment == 0x7fff_ffff));
    // The reserved bit of the increment is ignored.
    let b = raw(8, 0, 9, b"\x80\0\0\x01");
    assert!(matches!(one(&b), Frame::WindowUpdate(w) if w.increment == 1));
}

#[test]
fn window_update_zero_increment_by_stream_6_9() {
    // Stream 0: connection error; a stream: stream error, skipped.
    conn_err(err(&raw(8, 0, 0, &[0; 4])), ErrorCode::PROTOCOL_ERROR);
    stream_err(
        err(&raw(8, 0, 3, &[0; 4])),
        3,
        ErrorCode::PROTOCOL_ERROR,
        13,
    );
    // Only the reserved bit set: still 0.
    stream_err(
        err(&raw(8, 0, 3, b"\x80\0\0\0")),
        3,
        ErrorCode::PROTOCOL_ERROR,
        13,
    );
}

#[test]
fn window_update_wrong_length_6_9() {
    conn_err(
        err(&raw(8, 0, 1, &[0, 0, 0, 1, 0])),
        ErrorCode::FRAME_SIZE_ERROR,
    );
    conn_err(err(&raw(8, 0, 0, &[0, 0, 1])), ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
#[should_panic(expected = "increment")]
fn window_update_zero_increment_cannot_be_sent() {
    let w = WindowUpdate {
        stream: StreamId::new(1),
        increment: 0,
    };
    w.encode(&mut Vec::new());
}

// ---- 6.10 CONTINUATION and 4.3 field blocks ----

#[test]
fn continuation_both_ways_6_10() {
    let h = raw(1, 0x1, 1, b"\x82");
    let c1 = raw(9, 0, 1, b"\x86");
    let c2 = raw(9, 0x4, 1, b"\x84");
    let mut p = server();
    let (f, _) = p.decode(&h).unwrap().unwrap();
    assert!(matches!(f, Frame::Headers(h) if !h.end_headers && h.end_stream));
    assert_eq!(p.open_field_block(), Some(StreamId::new(1)));
    let (f, _) = p.decode(&c1).unwrap().unwrap();
    assert_eq!(enc(&f), c1);
    let (f, _) = p.decode(&c2).unwrap().unwrap();
    assert_eq!(enc(&f), c2);
    assert!(matches!(f, Frame::Continuation(c) if c.end_headers));
    assert_eq!(p.open_field_block(), None);
    // The block ended: a PING is fine now.
    assert!(p.decode(&raw(6, 0, 0, &[0; 8])).is_ok());
}

#[test]
fn continuation_sequence_rules_4_3_6_10() {
    let h = raw(1, 0, 1, b"\x82");
    let open = || {
        let mut p = server();
        p.decode(&h).unwrap().unwrap();
        p
    };
    // CONTINUATION with no open block.
    conn_err(err(&raw(9, 4, 1, b"")), ErrorCode::PROTOCOL_ERROR);
    // Another frame type inside the block, from the header alone (even PING, even an
    // unknown type: "any other type of frame").
    conn_err(
        err_with(open(), &raw(6, 0, 0, &[0; 8])[..9]),
        ErrorCode::PROTOCOL_ERROR,
    );
    conn_err(
        err_with(open(), &raw(0xee, 0, 1, b"")),
        ErrorCode::PROTOCOL_ERROR,
    );
    // CONTINUATION on another stream.
    conn_err(
        err_with(open(), &raw(9, 4, 3, b"")),
        ErrorCode::PROTOCOL_ERROR,
    );
    // On stream 0.
    conn_err(err(&raw(9, 4, 0, b"")), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn field_block_local_limits() {
    let mut p = server();
    p.set_field_block_limits(100, 3);
    p.decode(&raw(1, 0, 1, &[0x82; 60])).unwrap().unwrap();
    // 60 + 41 bytes: over 100, refused from the CONTINUATION's header.
    let e = p
        .clone()
        .decode(&raw(9, 0, 1, &[0x82; 41])[..9])
        .unwrap_err();
    assert_eq!(e.error.blame, Blame::LocalLimit);
    conn_err(e, ErrorCode::ENHANCE_YOUR_CALM);
    // 3 empty CONTINUATION frames are fine, a 4th is not.
    for _ in 0..3 {
        p.decode(&raw(9, 0, 1, b"")).unwrap().unwrap();
    }
    let e = p.decode(&raw(9, 0, 1, b"")).unwrap_err();
    assert_eq!(e.error.blame, Blame::LocalLimit);
    conn_err(e, ErrorCode::ENHANCE_YOUR_CALM);
    // The defaults.
    let mut p = server();
    p.decode(&raw(1, 0, 1, b"")).unwrap().unwrap();
    for _ in 0..DEFAULT_MAX_CONTINUATIONS {
        p.decode(&raw(9, 0, 1, b"")).unwrap().unwrap();
    }
    conn_err(
        p.decode(&raw(9, 0, 1, b"")).unwrap_err(),
        ErrorCode::ENHANCE_YOUR_CALM,
    );
}

// ---- 5.5 unknown frame types ----

#[test]
fn unknown_types_kept_whole_5_5() {
    for stream in [0, 5] {
        let b = raw(0xfa, 0xff, stream, b"whatever");
        let Frame::Unknown(u) = round_trip(&b) else {
            panic!()
        };
        assert_eq!(
            (u.head.kind, u.head.flags, u.payload),
            (Kind::Unknown(0xfa), 0xff, &b"whatever"[..])
        );
    }
}

// ---- section 7 error codes, 5.4 error handling ----

#[test]
fn error_codes_7() {
    let names = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    for (i, n) in names.iter().enumerate() {
        assert_eq!(ErrorCode(i as u32).name(), Some(*n));
        assert_eq!(format!("{}", ErrorCode(i as u32)), *n);
    }
    assert_eq!(ErrorCode::HTTP_1_1_REQUIRED, ErrorCode(0xd));
    assert_eq!(ErrorCode(0xe).name(), None);
    assert_eq!(format!("{:?}", ErrorCode(0xbeef)), "ErrorCode(0xbeef)");
}

#[test]
fn errors_map_to_goaway_or_rst_stream_5_4() {
    let s = StreamId::new(3);
    let e = H2Error::stream(s, ErrorCode::STREAM_CLOSED, "late DATA");
    assert_eq!(e.answer(), Answer::RstStream(s, ErrorCode::STREAM_CLOSED));
    assert_eq!(e.blame, Blame::Peer);
    assert_eq!(
        e.to_string(),
        "h2 peer error STREAM_CLOSED on stream 3: late DATA"
    );
    let e = H2Error::stream(StreamId::ZERO, ErrorCode::FLOW_CONTROL_ERROR, "x");
    assert_eq!(e.answer(), Answer::GoAway(ErrorCode::FLOW_CONTROL_ERROR));
    let e = H2Error::limit(ErrorCode::ENHANCE_YOUR_CALM, "too many resets");
    assert_eq!(e.answer(), Answer::GoAway(ErrorCode::ENHANCE_YOUR_CALM));
    assert_eq!(
        e.to_string(),
        "h2 peer over a local limit ENHANCE_YOUR_CALM: too many resets"
    );
    let e = H2Error::local(s, "DATA after END_STREAM");
    assert_eq!(e.answer(), Answer::RstStream(s, ErrorCode::INTERNAL_ERROR));
    assert_eq!(e.blame, Blame::Local);
}
