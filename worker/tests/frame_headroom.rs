//! WebSocket frames written into the room in front of their payload (lws' `LWS_PRE`,
//! issue 10): the same bytes as a frame built from a separate header, one buffer, and no
//! allocation for the framing. Allocations are counted per thread by the tests' counting
//! global allocator (`common`),
//! so this file holds only tests that need it.

use bytes::{Bytes, BytesMut};
use lwsd_worker::api::LWS_PRE;
use lwsd_worker::roles::ws::conn::{WsConfig, WsConn};
use lwsd_worker::roles::ws::frame::DataKind;

mod common;
use common::{Counting, allocs};

#[global_allocator]
static A: Counting = Counting;

/// A buffer of exactly `LWS_PRE + n` bytes: room, then `n` payload bytes.
fn room(n: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(LWS_PRE + n);
    b.resize(LWS_PRE, 0);
    b.extend((0..n).map(|i| (i % 251) as u8));
    b
}

#[test]
fn a_frame_in_its_room_is_the_same_bytes_in_one_buffer_with_no_allocation() {
    for n in [0usize, 1, 125, 126, 1000, 65_535, 65_536, 100_000] {
        let payload = Bytes::from(room(n).split_off(LWS_PRE));
        // The reference: header and payload as separate chunks.
        let mut a = WsConn::server(WsConfig::default(), 0);
        let mut plain: Vec<Bytes> = Vec::new();
        a.send_frame_into(DataKind::Binary, false, true, payload.clone(), &mut plain)
            .unwrap();
        let expected: Vec<u8> = plain.iter().flat_map(|b| b.iter().copied()).collect();

        let mut b = WsConn::server(WsConfig::default(), 0);
        let mut out: Vec<Bytes> = Vec::with_capacity(4);
        let buf = room(n);
        let start = buf.as_ptr() as usize;
        let before = allocs();
        b.send_room_into(DataKind::Binary, false, true, buf, &mut out)
            .unwrap();
        let allocs = allocs() - before;
        assert_eq!(out.len(), 1, "one buffer for header and payload ({n} B)");
        assert_eq!(&out[0][..], &expected[..], "{n} B");
        let hlen = expected.len() - n;
        assert_eq!(
            out[0].as_ptr() as usize,
            start + LWS_PRE - hlen,
            "the header sits in the room, the payload where it was written ({n} B)"
        );
        assert_eq!(allocs, 0, "framing {n} B allocated");
    }
}

#[test]
fn a_masked_client_frame_in_its_room_matches_too() {
    for n in [0usize, 5, 300, 70_000] {
        let payload = Bytes::from(room(n).split_off(LWS_PRE));
        let mut a = WsConn::client(WsConfig::default(), 7, 0);
        let mut plain: Vec<Bytes> = Vec::new();
        a.send_frame_into(DataKind::Text, false, true, payload, &mut plain)
            .unwrap();
        let expected: Vec<u8> = plain.iter().flat_map(|b| b.iter().copied()).collect();
        let mut b = WsConn::client(WsConfig::default(), 7, 0);
        let mut out: Vec<Bytes> = Vec::new();
        b.send_room_into(DataKind::Text, false, true, room(n), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..], &expected[..], "{n} B");
    }
}
