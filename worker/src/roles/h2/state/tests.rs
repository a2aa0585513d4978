//! Stream state machine tests (RFC 9113 section 5.1): every (state, event) pair, for
//! receiving and for sending, against the table the RFC's section 5.1 paragraphs give;
//! stream identifier rules (5.1.1); flow-control windows (6.9).

use super::*;
use crate::roles::h2::error::{Blame, Scope};

const SC: ErrorCode = ErrorCode::STREAM_CLOSED;
const PE: ErrorCode = ErrorCode::PROTOCOL_ERROR;

/// What a (state, event) pair must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum X {
    /// Processed, now in this state.
    To(State),
    /// Processed, state unchanged.
    Same,
    /// Minimally processed and discarded, state unchanged.
    Ignore,
    /// Connection error with this code.
    Conn(ErrorCode),
    /// Stream error with this code.
    Strm(ErrorCode),
    /// Refused as local misuse (sending only).
    Local,
}
use X::*;

const C_ES: State = State::Closed(Cause::EndStream);
const C_RL: State = State::Closed(Cause::ResetLocal);
const C_RR: State = State::Closed(Cause::ResetRemote);
const C_F: State = State::Closed(Cause::Forgotten);

/// The columns of the tables below.
const EVENTS: [Event; 8] = [
    Event::Headers { end_stream: false },
    Event::Headers { end_stream: true },
    Event::Data { end_stream: false },
    Event::Data { end_stream: true },
    Event::RstStream,
    Event::WindowUpdate,
    Event::Priority,
    Event::PushPromise,
];

/// Receiving, section 5.1. Columns: HEADERS, HEADERS+ES, DATA, DATA+ES, RST_STREAM,
/// WINDOW_UPDATE, PRIORITY, PUSH_PROMISE (promising this stream).
#[rustfmt::skip]
const RECV: [(State, [X; 8]); 10] = [
    // idle: HEADERS opens; PUSH_PROMISE reserves; anything else but PRIORITY is a
    // connection PROTOCOL_ERROR.
    (State::Idle, [To(State::Open), To(State::HalfClosedRemote), Conn(PE), Conn(PE), Conn(PE), Conn(PE), Same, To(State::ReservedRemote)]),
    // reserved (local): RST_STREAM, PRIORITY, WINDOW_UPDATE only.
    (State::ReservedLocal, [Conn(PE), Conn(PE), Conn(PE), Conn(PE), To(C_RR), Same, Same, Conn(PE)]),
    // reserved (remote): HEADERS, RST_STREAM, PRIORITY only.
    (State::ReservedRemote, [To(State::HalfClosedLocal), To(C_ES), Conn(PE), Conn(PE), To(C_RR), Conn(PE), Same, Conn(PE)]),
    // open: any frame; END_STREAM half-closes, RST_STREAM closes.
    (State::Open, [Same, To(State::HalfClosedRemote), Same, To(State::HalfClosedRemote), To(C_RR), Same, Same, Conn(PE)]),
    // half-closed (local): any frame; END_STREAM closes.
    (State::HalfClosedLocal, [Same, To(C_ES), Same, To(C_ES), To(C_RR), Same, Same, Conn(PE)]),
    // half-closed (remote): only WINDOW_UPDATE, PRIORITY, RST_STREAM; else STREAM_CLOSED.
    (State::HalfClosedRemote, [Strm(SC), Strm(SC), Strm(SC), Strm(SC), To(C_RR), Same, Same, Conn(PE)]),
    // closed by END_STREAM both ways: WINDOW_UPDATE / RST_STREAM may cross (ignored).
    (C_ES, [Strm(SC), Strm(SC), Strm(SC), Strm(SC), Ignore, Ignore, Same, Conn(PE)]),
    // closed by this endpoint's RST_STREAM: everything in flight is ignored.
    (C_RL, [Ignore, Ignore, Ignore, Ignore, Ignore, Ignore, Same, Conn(PE)]),
    // closed by the peer's RST_STREAM: it must send nothing but PRIORITY.
    (C_RR, [Strm(SC), Strm(SC), Strm(SC), Strm(SC), Ignore, Ignore, Same, Conn(PE)]),
    // closed and forgotten, or skipped (5.1.1): HEADERS reuses an identifier.
    (C_F, [Conn(PE), Conn(PE), Strm(SC), Strm(SC), Ignore, Ignore, Same, Conn(PE)]),
];

/// Sending, section 5.1 (same columns). Misuse is refused, blamed on the local side.
#[rustfmt::skip]
const SEND: [(State, [X; 8]); 10] = [
    (State::Idle, [To(State::Open), To(State::HalfClosedLocal), Local, Local, Local, Local, Same, To(State::ReservedLocal)]),
    // reserved (local): "MUST NOT send any type of frame other than HEADERS,
    // RST_STREAM, or PRIORITY".
    (State::ReservedLocal, [To(State::HalfClosedRemote), To(C_ES), Local, Local, To(C_RL), Local, Same, Local]),
    // reserved (remote): "MUST NOT send any type of frame other than RST_STREAM,
    // WINDOW_UPDATE, or PRIORITY".
    (State::ReservedRemote, [Local, Local, Local, Local, To(C_RL), Same, Same, Local]),
    (State::Open, [Same, To(State::HalfClosedLocal), Same, To(State::HalfClosedLocal), To(C_RL), Same, Same, Local]),
    // half-closed (local): "cannot send frames other than WINDOW_UPDATE, PRIORITY, and
    // RST_STREAM".
    (State::HalfClosedLocal, [Local, Local, Local, Local, To(C_RL), Same, Same, Local]),
    (State::HalfClosedRemote, [Same, To(C_ES), Same, To(C_ES), To(C_RL), Same, Same, Local]),
    // closed: PRIORITY only, and RST_STREAM answering a late frame (5.4.2).
    (C_ES, [Local, Local, Local, Local, To(C_RL), Local, Same, Local]),
    (C_RL, [Local, Local, Local, Local, Same, Local, Same, Local]),
    (C_RR, [Local, Local, Local, Local, To(C_RL), Local, Same, Local]),
    (C_F, [Local, Local, Local, Local, To(C_RL), Local, Same, Local]),
];

fn outcome(before: State, after: State, r: Result<Option<Verdict>, H2Error>, id: StreamId) -> X {
    match r {
        Ok(Some(Verdict::Ignore)) => {
            assert_eq!(after, before, "an ignored frame changes nothing");
            Ignore
        }
        Ok(_) if after == before => Same,
        Ok(_) => To(after),
        Err(e) => {
            assert_eq!(after, before, "an error changes nothing");
            match (e.blame, e.scope) {
                (Blame::Local, _) => {
                    assert_eq!(e.code, ErrorCode::INTERNAL_ERROR);
                    Local
                }
                (_, Scope::Connection) => Conn(e.code),
                (_, Scope::Stream(s)) => {
                    assert_eq!(s, id);
                    Strm(e.code)
                }
            }
        }
    }
}

#[test]
fn recv_table_5_1() {
    let id = StreamId::new(1);
    for (state, row) in RECV {
        for (ev, want) in EVENTS.into_iter().zip(row) {
            let mut s = state;
            let r = s.recv(id, ev).map(Some);
            assert_eq!(outcome(state, s, r, id), want, "recv {ev:?} in {state:?}");
        }
    }
}

#[test]
fn send_table_5_1() {
    let id = StreamId::new(2);
    for (state, row) in SEND {
        for (ev, want) in EVENTS.into_iter().zip(row) {
            let mut s = state;
            let r = s.send(id, ev).map(|()| None);
            assert_eq!(outcome(state, s, r, id), want, "send {ev:?} in {state:?}");
        }
    }
}

#[test]
fn request_response_lifecycle_5_1() {
    // A GET: the client's HEADERS with END_STREAM, the response's HEADERS and DATA.
    let id = StreamId::new(1);
    let mut s = State::Idle;
    assert!(!s.is_active());
    s.recv(id, Event::Headers { end_stream: true }).unwrap();
    assert_eq!(s, State::HalfClosedRemote);
    assert!(s.is_active() && s.can_send_data());
    s.send(id, Event::Headers { end_stream: false }).unwrap();
    s.send(id, Event::Data { end_stream: false }).unwrap();
    // The client's WINDOW_UPDATE while the body flows.
    assert_eq!(s.recv(id, Event::WindowUpdate), Ok(Verdict::Process));
    s.send(id, Event::Data { end_stream: true }).unwrap();
    assert_eq!(s, C_ES);
    assert!(s.is_closed() && !s.is_active() && !s.can_send_data());
    // A WINDOW_UPDATE that crossed the END_STREAM is not an error (6.9).
    assert_eq!(s.recv(id, Event::WindowUpdate), Ok(Verdict::Ignore));
    // DATA now is: 6.1, STREAM_CLOSED, a stream error.
    let e = s.recv(id, Event::Data { end_stream: false }).unwrap_err();
    assert_eq!((e.scope, e.code), (Scope::Stream(id), SC));
    // The server answers it with RST_STREAM, after which late frames are ignored.
    s.send(id, Event::RstStream).unwrap();
    assert_eq!(
        s.recv(id, Event::Data { end_stream: false }),
        Ok(Verdict::Ignore)
    );
}

#[test]
fn stream_ids_monotonic_and_odd_from_a_client_5_1_1() {
    let mut ids = StreamIds::new(Side::Server);
    let conn_pe = |r: Result<(), H2Error>| {
        let e = r.unwrap_err();
        assert_eq!(
            (e.scope, e.code, e.blame),
            (Scope::Connection, PE, Blame::Peer)
        );
    };
    ids.open_remote(StreamId::new(1)).unwrap();
    ids.open_remote(StreamId::new(3)).unwrap();
    conn_pe(ids.open_remote(StreamId::new(3))); // reused
    conn_pe(ids.open_remote(StreamId::new(1))); // lower
    conn_pe(ids.open_remote(StreamId::new(4))); // even: a server's
    conn_pe(ids.open_remote(StreamId::ZERO));
    ids.open_remote(StreamId::new(9)).unwrap(); // gaps are fine
    assert_eq!(ids.last_remote(), StreamId::new(9));
    conn_pe(ids.open_remote(StreamId::new(7)));
    ids.open_remote(StreamId::MAX).unwrap();
    conn_pe(ids.open_remote(StreamId::MAX));
}

#[test]
fn untracked_streams_idle_or_implicitly_closed_5_1_1() {
    let mut ids = StreamIds::new(Side::Server);
    ids.open_remote(StreamId::new(7)).unwrap();
    // 5 was skipped: closed implicitly by the use of 7.
    assert_eq!(ids.untracked(StreamId::new(5)), C_F);
    assert_eq!(ids.untracked(StreamId::new(9)), State::Idle);
    // Server-initiated ids: idle until this endpoint uses them.
    assert_eq!(ids.untracked(StreamId::new(2)), State::Idle);
    assert_eq!(ids.next_local(), Some(StreamId::new(2)));
    assert_eq!(ids.next_local(), Some(StreamId::new(4)));
    assert_eq!(ids.untracked(StreamId::new(2)), C_F);
    assert_eq!(ids.untracked(StreamId::new(6)), State::Idle);
}

#[test]
fn recv_untracked_applies_the_id_rules_5_1_1() {
    let mut ids = StreamIds::new(Side::Server);
    let h = Event::Headers { end_stream: true };
    assert_eq!(
        ids.recv_untracked(StreamId::new(3), h),
        Ok((State::HalfClosedRemote, Verdict::Process))
    );
    // HEADERS on a lower identifier: PROTOCOL_ERROR (h2spec 5.1.1 #2).
    let e = ids.recv_untracked(StreamId::new(1), h).unwrap_err();
    assert_eq!((e.scope, e.code), (Scope::Connection, PE));
    // DATA there: the stream is closed, STREAM_CLOSED on that stream (6.1).
    let e = ids
        .recv_untracked(StreamId::new(1), Event::Data { end_stream: false })
        .unwrap_err();
    assert_eq!((e.scope, e.code), (Scope::Stream(StreamId::new(1)), SC));
    // WINDOW_UPDATE / RST_STREAM there: ignored.
    assert_eq!(
        ids.recv_untracked(StreamId::new(1), Event::WindowUpdate),
        Ok((C_F, Verdict::Ignore))
    );
    // On an idle stream: DATA, RST_STREAM, WINDOW_UPDATE are connection errors (5.1).
    for ev in [
        Event::Data { end_stream: false },
        Event::RstStream,
        Event::WindowUpdate,
    ] {
        let e = ids.recv_untracked(StreamId::new(5), ev).unwrap_err();
        assert_eq!((e.scope, e.code), (Scope::Connection, PE), "{ev:?}");
    }
    // PRIORITY on an idle stream leaves it idle and does not use up its identifier.
    assert_eq!(
        ids.recv_untracked(StreamId::new(5), Event::Priority),
        Ok((State::Idle, Verdict::Process))
    );
    assert_eq!(ids.last_remote(), StreamId::new(3));
    // An even identifier from a client.
    let e = ids.recv_untracked(StreamId::new(6), h).unwrap_err();
    assert_eq!((e.scope, e.code), (Scope::Connection, PE));
    assert_eq!(
        ids.recv_untracked(StreamId::new(5), Event::Headers { end_stream: false }),
        Ok((State::Open, Verdict::Process))
    );
}

#[test]
fn client_side_ids_5_1_1() {
    let mut ids = StreamIds::new(Side::Client);
    assert_eq!(ids.next_local(), Some(StreamId::new(1)));
    assert_eq!(ids.next_local(), Some(StreamId::new(3)));
    // A server opens (reserves) even identifiers only.
    assert!(ids.open_remote(StreamId::new(5)).is_err());
    assert_eq!(
        ids.recv_untracked(StreamId::new(2), Event::PushPromise),
        Ok((State::ReservedRemote, Verdict::Process))
    );
    assert!(
        ids.recv_untracked(StreamId::new(2), Event::PushPromise)
            .is_err()
    );
}

#[test]
fn local_ids_run_out_5_1_1() {
    let mut ids = StreamIds::new(Side::Server);
    ids.next_local = StreamId::MAX.get() - 1;
    assert_eq!(ids.next_local(), Some(StreamId::new(0x7fff_fffe)));
    assert_eq!(ids.next_local(), None);
    assert_eq!(ids.next_local(), None);
    let mut ids = StreamIds::new(Side::Client);
    ids.next_local = StreamId::MAX.get();
    assert_eq!(ids.next_local(), Some(StreamId::MAX));
    assert_eq!(ids.next_local(), None);
}

// ---- 6.9 flow control ----

const MAX: u32 = 0x7fff_ffff;

#[test]
fn window_recv_over_credit_is_flow_control_error_6_9_1() {
    let s = StreamId::new(1);
    let mut w = Window::new(65_535);
    w.recv(s, 65_000).unwrap();
    w.recv(s, 535).unwrap();
    assert_eq!(w.available(), 0);
    let e = w.recv(s, 1).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Stream(s), ErrorCode::FLOW_CONTROL_ERROR)
    );
    // On the connection window: a connection error.
    let e = w.recv(StreamId::ZERO, 1).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Connection, ErrorCode::FLOW_CONTROL_ERROR)
    );
    assert_eq!(w.get(), 0, "unchanged on error");
}

#[test]
fn window_increase_up_to_2_31_minus_1_6_9_1() {
    let s = StreamId::new(3);
    let mut w = Window::new(65_535);
    w.increase(s, MAX - 65_535).unwrap();
    assert_eq!(w.available(), MAX);
    let e = w.increase(s, 1).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Stream(s), ErrorCode::FLOW_CONTROL_ERROR)
    );
    let e = w.increase(StreamId::ZERO, MAX).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Connection, ErrorCode::FLOW_CONTROL_ERROR)
    );
    assert_eq!(w.get(), MAX as i32, "unchanged on error");
    assert_eq!(Window::new(u32::MAX).get(), MAX as i32);
}

#[test]
fn window_goes_negative_after_initial_window_size_drops_6_9_2() {
    let s = StreamId::new(1);
    let mut w = Window::new(65_535);
    w.send(s, 60_000).unwrap();
    // SETTINGS_INITIAL_WINDOW_SIZE 65535 -> 1000: 5535 - 64535 = -59000.
    w.adjust(65_535, 1_000).unwrap();
    assert_eq!(w.get(), -59_000);
    assert_eq!(w.available(), 0);
    // Nothing may be sent until WINDOW_UPDATE makes it positive.
    let e = w.send(s, 1).unwrap_err();
    assert_eq!((e.blame, e.code), (Blame::Local, ErrorCode::INTERNAL_ERROR));
    w.increase(s, 59_001).unwrap();
    assert_eq!(w.available(), 1);
    w.send(s, 1).unwrap();
    // Back up: +1000 -> 66535 is fine.
    w.adjust(1_000, 66_535).unwrap();
    assert_eq!(w.get(), 65_535);
}

#[test]
fn window_adjust_over_the_maximum_is_a_connection_error_6_9_2() {
    let mut w = Window::new(65_535);
    w.increase(StreamId::new(1), 1_000).unwrap();
    // 66535 + (2^31-1 - 65535) = 2^31-1 + 1000: over.
    let e = w.adjust(65_535, MAX).unwrap_err();
    assert_eq!(
        (e.scope, e.code),
        (Scope::Connection, ErrorCode::FLOW_CONTROL_ERROR)
    );
    assert_eq!(w.get(), 66_535, "unchanged on error");
    // The lowest value reachable: 0 and a drop from 2^31-1 to 0.
    let mut w = Window::new(MAX);
    w.send(StreamId::new(1), MAX).unwrap();
    w.adjust(MAX, 0).unwrap();
    assert_eq!(w.get(), -(MAX as i32));
}
