//! permessage-deflate (RFC 7692) through [`WsConn`]: a client and a server connection,
//! each with the [`Pmd`] their handshake negotiated, exchange compressed messages; the
//! RFC's 7.2.3 example frames are fed as frames; the RSV1 rules of 6.1, the inflated
//! size bound (bombs), UTF-8 of inflated text and corrupt data are checked at the
//! connection level. Helpers (frame builders, the event recorder) come from `tests.rs`.

use std::num::NonZeroU64;

use bytes::Bytes;

use super::conn::{INFLATE_BUF_KEEP, MAX_INFLATE_INPUT_STEP, MAX_QUEUED_OUTPUT};
use super::deflate::{
    Pmd, PmdParams, PmdPolicy, Side as PSide, client_accept, client_offer, negotiate_server,
};
use super::tests::{Ev, Rng, cf, frame, normalize, output, run, whole};
use super::*;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const RSV1: u8 = 0x40;

fn cfg(max: u64) -> WsConfig {
    WsConfig {
        max_message_size: NonZeroU64::new(max).unwrap(),
        ..WsConfig::default()
    }
}

/// Runs the RFC 7692 7.1 negotiation for `offer` against `policy` (the server's
/// answer is checked by the client side) and returns a connected client/server pair
/// with compression on.
fn pair_with(offer: &PmdParams, policy: &PmdPolicy, max: u64) -> (WsConn, WsConn, PmdParams) {
    let offer_s = client_offer(offer);
    let (params, response) = negotiate_server(&[offer_s.as_bytes()], policy).expect("agreed");
    let client_params = client_accept(response.as_bytes(), offer).expect("valid response");
    assert_eq!(
        client_params, params,
        "both ends agree ({offer_s} -> {response})"
    );
    let mut server = WsConn::server(cfg(max), 0);
    server.set_compression(Pmd::new(PSide::Server, &params));
    let mut client = WsConn::client(cfg(max), 99, 0);
    client.set_compression(Pmd::new(PSide::Client, &client_params));
    (client, server, params)
}

fn pair() -> (WsConn, WsConn) {
    let (c, s, _) = pair_with(&PmdParams::default(), &PmdPolicy::default(), 16 << 20);
    (c, s)
}

/// A server connection with compression at the default parameters.
fn pmd_server(max: u64) -> WsConn {
    let mut s = WsConn::server(cfg(max), 0);
    s.set_compression(Pmd::new(PSide::Server, &PmdParams::default()));
    s
}

/// A client connection with compression at the default parameters.
fn pmd_client(max: u64) -> WsConn {
    let mut c = WsConn::client(cfg(max), 5, 0);
    c.set_compression(Pmd::new(PSide::Client, &PmdParams::default()));
    c
}

/// What a client with `params` puts on the wire for one whole message.
fn client_deflate(params: &PmdParams, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Pmd::new(PSide::Client, params).compress(msg, &mut out);
    out
}

/// Take everything `from` queued and feed it to `to` in reads of 1..=`max_read` bytes
/// chosen by `rng`; returns the recorded events.
fn pump(from: &mut WsConn, to: &mut WsConn, rng: &mut Rng, max_read: u64) -> Vec<Ev> {
    let wire = output(from);
    let mut pieces = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let n = (1 + rng.below(max_read) as usize).min(wire.len() - pos);
        pieces.push(&wire[pos..pos + n]);
        pos += n;
    }
    run(to, &pieces)
}

/// Text-like, compressible test data of `len` bytes.
fn chatter(rng: &mut Rng, len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"hello ",
        b"world ",
        b"{\"type\":\"msg\",",
        b"\"n\":42}",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 ",
        b"\n",
    ];
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        v.extend_from_slice(words[rng.below(words.len() as u64) as usize]);
    }
    // Cut at a char boundary so the text stays valid UTF-8.
    let mut end = len;
    while std::str::from_utf8(&v[..end]).is_err() {
        end -= 1;
    }
    v.truncate(end);
    v
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

// ------------------------------------------------------------------ round trips

/// Messages both ways, with and without context takeover on either side, every
/// window size 9..15 (8 is offered as 9, RFC 7692 7.1.2 via client_offer); reads cut at
/// random points. Compressible messages travel with RSV1 and fewer bytes than raw.
#[test]
fn compressed_round_trips_all_parameters() {
    let mut rng = Rng(0x5eed);
    for bits in 9..=15u8 {
        for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
            let offer = PmdParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: bits,
                client_max_window_bits: bits,
            };
            let (mut client, mut server, params) =
                pair_with(&offer, &PmdPolicy::default(), 16 << 20);
            assert_eq!(params.server_max_window_bits, bits);
            assert_eq!(params.client_max_window_bits, bits);
            let tag = format!("bits {bits} snct {snct} cnct {cnct}");
            for i in 0..12 {
                let len = [0, 1, 31, 32, 33, 200, 5000, 70_000][i % 8] + i;
                let msg = chatter(&mut rng, len);
                let bin = random_bytes(&mut rng, len / 2);
                // client -> server
                client
                    .send(DataKind::Text, Bytes::from(msg.clone()))
                    .unwrap();
                client
                    .send(DataKind::Binary, Bytes::from(bin.clone()))
                    .unwrap();
                let evs = pump(&mut client, &mut server, &mut rng, 3000);
                assert_eq!(
                    normalize(&evs),
                    vec![whole(&msg, false), whole(&bin, true)],
                    "{tag} c->s {len}"
                );
                // server -> client, checking the wire form of the text message.
                server
                    .send(DataKind::Text, Bytes::from(msg.clone()))
                    .unwrap();
                let wire = output(&mut server);
                assert_ne!(wire[0] & RSV1, 0, "{tag} {len}: every message compressed");
                if msg.len() >= 200 {
                    assert!(
                        wire.len() < msg.len(),
                        "{tag}: {} >= {}",
                        wire.len(),
                        msg.len()
                    );
                }
                let evs = run(&mut client, &[&wire]);
                assert_eq!(normalize(&evs), vec![whole(&msg, false)], "{tag} s->c");
            }
            // Context takeover: the same message again compresses to a back reference.
            // Shorter than the smallest window's reach (512 - 262 bytes in zlib).
            let msg = chatter(&mut rng, 200);
            for _ in 0..2 {
                server
                    .send(DataKind::Text, Bytes::from(msg.clone()))
                    .unwrap();
            }
            let (a, b) = (output_one(&mut server), output_one(&mut server));
            if snct {
                assert_eq!(a.len(), b.len(), "{tag}: a fresh stream per message");
            } else {
                assert!(b.len() < a.len(), "{tag}: {} vs {}", b.len(), a.len());
            }
            let evs = run(&mut client, &[&a, &b]);
            assert_eq!(
                normalize(&evs),
                vec![whole(&msg, false), whole(&msg, false)]
            );
        }
    }
}

/// The code of the (unmasked, server) Close frame the connection queued.
fn close_code_sent(c: &mut WsConn) -> Option<u16> {
    match output(c).as_slice() {
        [0x88, _, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// One queued frame (a compressed message is one buffer).
fn output_one(c: &mut WsConn) -> Vec<u8> {
    c.poll_transmit().expect("a frame").to_vec()
}

/// A compressed message sent as several frames (RSV1 on the first only, RFC 7692 6.1),
/// with a ping between fragments, split into two reads at every byte.
#[test]
fn fragmented_compressed_message_split_everywhere() {
    let params = PmdParams::default();
    let msg = "κόσμε hello hello hello κόσμε, world! ".repeat(8);
    let z = client_deflate(&params, msg.as_bytes());
    let (a, b) = (z.len() / 3, 2 * z.len() / 3);
    let stream = [
        cf(false, TEXT | RSV1, &z[..a]),
        cf(false, 0, &z[a..b]),
        cf(true, 9, b"between"),
        cf(false, 0, b""),
        cf(true, 0, &z[b..]),
        cf(true, BINARY, b"plain"),
        cf(true, 8, &[0x03, 0xe8]),
    ]
    .concat();
    let want = vec![
        whole(msg.as_bytes(), false),
        whole(b"plain", true),
        Ev::Close(Some(1000), String::new()),
    ];
    let mut s = pmd_server(1 << 20);
    assert_eq!(normalize(&run(&mut s, &[&stream])), want);
    let reply = output(&mut s);
    for cut in 0..=stream.len() {
        let mut s = pmd_server(1 << 20);
        let evs = run(&mut s, &[&stream[..cut], &stream[cut..]]);
        assert_eq!(normalize(&evs), want, "cut at {cut}");
        assert_eq!(output(&mut s), reply, "cut at {cut}");
    }
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(normalize(&run(&mut pmd_server(1 << 20), &bytewise)), want);
}

/// Uncompressed messages on a compressing connection keep the no-copy path: the chunk
/// is a slice of the caller's buffer.
#[test]
fn uncompressed_message_still_delivered_in_place() {
    let mut s = pmd_server(1 << 20);
    let mut buf = cf(true, BINARY, &[7u8; 300]);
    let range = buf.as_ptr_range();
    let p = s.process(&mut buf, 0).unwrap();
    let Some(Event::Data(d)) = p.event else {
        panic!("data expected")
    };
    assert_eq!(d.payload, &[7u8; 300][..]);
    assert!(range.contains(&d.payload.as_ptr()));
    assert_eq!(s.inflate_buffer_capacity(), 0);
}

// ------------------------------------------------------------------ RFC 7692 7.2.3

/// The RFC's example frames (server to client, unmasked), fed to a client as frames.
#[test]
fn rfc7692_7_2_3_examples_as_frames() {
    let hello = || vec![whole(b"Hello", false)];
    // 7.2.3.1: a message compressed in one frame, and the same message in two frames.
    let one = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(normalize(&run(&mut pmd_client(1024), &[&one])), hello());
    let two = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(normalize(&run(&mut pmd_client(1024), &[&two])), hello());
    // 7.2.3.2: the second message refers to the first through the shared window.
    let again = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    let evs = run(&mut pmd_client(1024), &[&one, &again]);
    assert_eq!(normalize(&evs), [hello(), hello()].concat());
    // 7.2.3.3: a DEFLATE block with no compression.
    let stored = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(normalize(&run(&mut pmd_client(1024), &[&stored])), hello());
    // 7.2.3.4: a block with BFINAL set (then the 0x00 byte).
    let bfinal = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(normalize(&run(&mut pmd_client(1024), &[&bfinal])), hello());
    // ... and another message after it (the stream restarted).
    let evs = run(&mut pmd_client(1024), &[&bfinal, &one]);
    assert_eq!(normalize(&evs), [hello(), hello()].concat());
    // 7.2.3.5: two DEFLATE blocks in one message.
    let blocks = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(normalize(&run(&mut pmd_client(1024), &[&blocks])), hello());
    // 7.2.3.6: an empty message.
    let empty = [0xc1, 0x01, 0x00];
    assert_eq!(
        normalize(&run(&mut pmd_client(1024), &[&empty])),
        vec![whole(b"", false)]
    );
    // The same frames masked, to a server.
    let masked = cf(
        true,
        TEXT | RSV1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    );
    assert_eq!(normalize(&run(&mut pmd_server(1024), &[&masked])), hello());
}

// ------------------------------------------------------------------ RSV1 rules (6.1)

#[test]
fn rsv1_rules() {
    let z = client_deflate(&PmdParams::default(), b"Hello Hello Hello");
    // RSV1 on a continuation frame: 1002.
    let stream = [cf(false, TEXT | RSV1, &z[..3]), cf(true, RSV1, &z[3..])].concat();
    let evs = run(&mut pmd_server(1024), &[&stream]);
    let Some(Ev::Err(e)) = evs.last() else {
        panic!("{evs:?}")
    };
    assert_eq!(e.code, code::PROTOCOL_ERROR);
    // RSV1 on a continuation of an uncompressed message: 1002.
    let stream = [cf(false, TEXT, b"ab"), cf(true, RSV1, b"cd")].concat();
    let evs = run(&mut pmd_server(1024), &[&stream]);
    assert!(
        matches!(evs.last(), Some(Ev::Err(e)) if e.code == 1002),
        "{evs:?}"
    );
    // RSV1 on control frames: 1002.
    for op in [8u8, 9, 0xa] {
        let evs = run(&mut pmd_server(1024), &[&cf(true, op | RSV1, b"")]);
        assert!(
            matches!(evs.last(), Some(Ev::Err(e)) if e.code == 1002),
            "{op}"
        );
    }
    // RSV1 without permessage-deflate negotiated: 1002 (RFC 6455 5.2).
    let evs = run(&mut super::tests::server(), &[&cf(true, TEXT | RSV1, &z)]);
    assert_eq!(evs, vec![Ev::Err(WsError::RSV_BITS)]);
    let mut plain_client = WsConn::client(WsConfig::default(), 1, 0);
    let evs = run(&mut plain_client, &[&frame(true, TEXT | RSV1, &z, None)]);
    assert_eq!(evs, vec![Ev::Err(WsError::RSV_BITS)]);
    // RSV2 and RSV3 stay reserved with permessage-deflate.
    for bits in [0x20u8, 0x10, 0x60, 0x70] {
        let evs = run(&mut pmd_server(1024), &[&cf(true, TEXT | bits, &z)]);
        assert_eq!(evs, vec![Ev::Err(WsError::RSV_BITS)], "{bits:#x}");
    }
    // The failing close frame carries the code.
    let mut s = pmd_server(1024);
    run(&mut s, &[&cf(true, 9 | RSV1, b"")]);
    assert_eq!(close_code_sent(&mut s), Some(1002));
}

// ------------------------------------------------------------------ limits

/// 100 MiB of zeros compress to ~100 KiB; with a 1 MiB maximum the connection fails
/// with 1009 as soon as the inflated size passes 1 MiB, and never holds more than the
/// maximum (+1 byte) of inflated data.
#[test]
fn deflate_bomb_fails_1009_with_bounded_memory() {
    const MAX: u64 = 1 << 20;
    let bomb = zeros_deflated(100 << 20);
    assert!(bomb.len() < 200 << 10, "{}", bomb.len());
    let stream = cf(true, BINARY | RSV1, &bomb);
    let mut s = pmd_server(MAX);
    let mut buf = stream.clone();
    let (mut delivered, mut peak, mut pos) = (0u64, 0usize, 0);
    let err = loop {
        match s.process(&mut buf[pos..], 0) {
            Ok(p) => {
                pos += p.consumed;
                if let Some(Event::Data(d)) = p.event {
                    delivered += d.payload.len() as u64;
                }
                peak = peak.max(s.inflate_buffer_capacity());
                assert!(pos < buf.len(), "the bomb must not be accepted");
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, code::MESSAGE_TOO_BIG);
    assert!(delivered <= MAX, "{delivered}");
    assert!(peak as u64 <= MAX + 1, "inflate buffer peaked at {peak}");
    assert_eq!(s.state(), WsState::Closed);
    assert_eq!(close_code_sent(&mut s), Some(1009));
    // Byte-by-byte reads stop at the same place.
    let mut s = pmd_server(MAX);
    let mut total = 0u64;
    let mut failed = None;
    for chunk in stream.chunks(1 << 10) {
        let mut c = chunk.to_vec();
        match s.feed(&mut c, 0, |e| {
            if let Event::Data(d) = e {
                total += d.payload.len() as u64;
            }
        }) {
            Ok(_) => {}
            Err(e) => {
                failed = Some(e.code);
                break;
            }
        }
        assert!(s.inflate_buffer_capacity() as u64 <= MAX + 1);
    }
    assert_eq!(failed, Some(1009));
    assert!(total <= MAX);
}

/// With an effectively unlimited maximum, one step still inflates at most
/// MAX_INFLATE_INPUT_STEP wire bytes (DEFLATE: <= 1032:1), so the buffer stays bounded.
#[test]
fn inflate_step_bounds_the_buffer_without_a_size_limit() {
    let n = 40 << 20;
    let bomb = zeros_deflated(n);
    let mut s = pmd_server(u64::MAX);
    let mut buf = cf(true, BINARY | RSV1, &bomb);
    let (mut total, mut chunks, mut peak) = (0usize, 0, 0);
    s.feed(&mut buf, 0, |e| {
        if let Event::Data(d) = e {
            total += d.payload.len();
            chunks += 1;
        }
    })
    .unwrap();
    // (feed's callback can not look at the connection; check after each process call.)
    let mut s2 = pmd_server(u64::MAX);
    let mut buf = cf(true, BINARY | RSV1, &bomb);
    let mut pos = 0;
    while pos < buf.len() {
        let p = s2.process(&mut buf[pos..], 0).unwrap();
        pos += p.consumed;
        if let Some(Event::Data(d)) = p.event {
            assert!(d.payload.len() <= 1032 * MAX_INFLATE_INPUT_STEP + 258);
        }
        peak = peak.max(s2.inflate_buffer_capacity());
    }
    assert_eq!(total, n);
    assert!(chunks >= bomb.len() / MAX_INFLATE_INPUT_STEP, "{chunks}");
    assert!(peak <= 2 * (1032 * MAX_INFLATE_INPUT_STEP + 4096), "{peak}");
    // The next (small) message does not keep the big buffer.
    let z = client_deflate(&PmdParams::default(), &[1u8; 100]);
    let small = cf(true, BINARY | RSV1, &z);
    let mut s3 = s2;
    let evs = run(&mut s3, &[&small]);
    assert_eq!(normalize(&evs), vec![whole(&[1u8; 100], true)]);
    assert!(s3.inflate_buffer_capacity() <= INFLATE_BUF_KEEP);
}

/// Incompressible data of exactly the maximum size is accepted even though its
/// DEFLATE form is longer (zlib-rs level 1 codes it with the fixed Huffman code: +5.5%); a compressed frame announcing far more than the
/// maximum is refused at its header (1009, before its payload arrives).
#[test]
fn compressed_wire_size_limit() {
    let max = 64 << 10;
    let mut rng = Rng(77);
    let data = random_bytes(&mut rng, max);
    let z = client_deflate(&PmdParams::default(), &data);
    assert!(z.len() > max);
    // The worst case the wire limit allows for: every literal a 9-bit code.
    let mut fixed = Vec::new();
    deflate_fixed_huffman(&[0xff; 60_000], &mut fixed);
    assert!(fixed.len() > 60_000 * 9 / 8);
    let evs = run(&mut pmd_server(60_000), &[&cf(true, BINARY | RSV1, &fixed)]);
    assert!(
        normalize(&evs) == vec![whole(&[0xff; 60_000], true)],
        "{:?}",
        evs.last()
    );
    let mut s = pmd_server(max as u64);
    let evs = run(&mut s, &[&cf(true, BINARY | RSV1, &z)]);
    assert!(
        normalize(&evs) == vec![whole(&data, true)],
        "{:?}",
        evs.last()
    );
    // One byte more inflates past the maximum: 1009.
    let z = client_deflate(&PmdParams::default(), &random_bytes(&mut rng, max + 1));
    let evs = run(&mut pmd_server(max as u64), &[&cf(true, BINARY | RSV1, &z)]);
    assert!(
        matches!(evs.last(), Some(Ev::Err(e)) if e.code == 1009),
        "{evs:?}"
    );
    // A header announcing 2x the maximum: refused with only the header read.
    let mut hdr = cf(true, BINARY | RSV1, &vec![0; 2 * max]);
    hdr.truncate(14);
    let evs = run(&mut pmd_server(max as u64), &[&hdr]);
    assert_eq!(evs, vec![Ev::Err(WsError::TOO_BIG)]);
}

/// Inflated text is UTF-8 validated: invalid bytes inside a compressed text message
/// fail with 1007, also when the bad sequence straddles two fragments.
#[test]
fn invalid_utf8_inside_compressed_text_1007() {
    let params = PmdParams::default();
    let mut bad = b"valid prefix, then a surrogate: ".to_vec();
    bad.extend_from_slice(&[0xed, 0xa0, 0x80]);
    bad.extend_from_slice(b" and more text after it");
    let z = client_deflate(&params, &bad);
    let evs = run(&mut pmd_server(1024), &[&cf(true, TEXT | RSV1, &z)]);
    assert_eq!(evs.last(), Some(&Ev::Err(WsError::TEXT_UTF8)));
    // The same bytes as binary are fine.
    let evs = run(&mut pmd_server(1024), &[&cf(true, BINARY | RSV1, &z)]);
    assert_eq!(normalize(&evs), vec![whole(&bad, true)]);
    // Truncated code point at the end of the message (only the end can tell).
    let z = client_deflate(&params, "ends inside κ".as_bytes().split_last().unwrap().1);
    let stream = [cf(false, TEXT | RSV1, &z[..2]), cf(true, 0, &z[2..])].concat();
    let evs = run(&mut pmd_server(1024), &[&stream]);
    assert_eq!(evs.last(), Some(&Ev::Err(WsError::TEXT_UTF8)));
    let mut s = pmd_server(1024);
    run(&mut s, &[&stream]);
    assert_eq!(close_code_sent(&mut s), Some(1007));
}

/// Data that is not DEFLATE fails the connection with PmdError's code (1007).
#[test]
fn corrupt_deflate_data_fails() {
    // 0xff: BTYPE 11, a reserved block type (RFC 1951 3.2.3).
    let evs = run(
        &mut pmd_server(1024),
        &[&cf(true, BINARY | RSV1, &[0xff, 0x00])],
    );
    let Some(Ev::Err(e)) = evs.last() else {
        panic!("{evs:?}")
    };
    assert_eq!(e.code, deflate::PmdError::Corrupt.close_code());
    // A distance reaching before the start of the (fresh) window.
    let evs = run(
        &mut pmd_client(1024),
        &[&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]],
    );
    assert!(
        matches!(evs.last(), Some(Ev::Err(e)) if e.code == 1007),
        "{evs:?}"
    );
}

// ------------------------------------------------------------------ sending

/// Every message goes out compressed (libwebsockets' client takes nothing else once
/// deflate is agreed, `tests/lws_interop.rs`): RSV1 on the first frame of whole,
/// fragmented, shared and one-byte messages, none on continuations (RFC 7692 6.1); a
/// client masks the compressed bytes; everything decodes.
#[test]
fn what_is_compressed_on_send() {
    let (mut client, mut server) = pair();
    let long = "a message long enough to be worth compressing, a message".repeat(4);
    // A fragmented message: RSV1 on the first frame only, each fragment decodable as
    // it arrives (sync flush).
    server
        .send_frame(DataKind::Text, false, false, Bytes::from(long.clone()))
        .unwrap();
    let first = output(&mut server);
    assert_eq!(first[0], 0x41, "RSV1, text, no FIN");
    let evs = run(&mut client, &[&first]);
    let got: usize = evs
        .iter()
        .map(|e| match e {
            Ev::Data { payload, .. } => payload.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(
        got,
        long.len(),
        "the first fragment inflates at once: {evs:?}"
    );
    server
        .send_frame(DataKind::Text, true, false, Bytes::from_static(b""))
        .unwrap();
    server
        .send_frame(DataKind::Text, true, true, Bytes::from(long.clone()))
        .unwrap();
    let rest = output(&mut server);
    assert_eq!(rest[0], 0x00, "continuation: no RSV1, no FIN");
    let mut evs2 = evs;
    evs2.extend(run(&mut client, &[&rest]));
    assert_eq!(
        normalize(&evs2),
        vec![whole(long.repeat(2).as_bytes(), false)]
    );
    // A shared frame: its compressed encoding, the same bytes for every connection.
    let shared = SharedFrame::new(DataKind::Text, Bytes::from(long.clone()));
    server.send_shared(&shared).unwrap();
    let wire = output(&mut server);
    assert_eq!(wire[0], 0xc1);
    assert!(wire.len() < long.len());
    assert_eq!(&wire[..], &shared.deflated()[..]);
    let mut other = pmd_server(1 << 20);
    other.send_shared(&shared).unwrap();
    assert_eq!(output(&mut other), wire);
    assert_eq!(
        normalize(&run(&mut client, &[&wire])),
        vec![whole(long.as_bytes(), false)]
    );
    // Without deflate the shared frame goes as encoded.
    let mut plain = WsConn::server(cfg(1 << 20), 0);
    plain.send_shared(&shared).unwrap();
    assert_eq!(output(&mut plain)[0], 0x81);
    server
        .send(DataKind::Binary, Bytes::from(long.clone()))
        .unwrap();
    let wire = output(&mut server);
    assert_eq!(wire[0], 0xc2);
    assert_eq!(
        normalize(&run(&mut client, &[&wire])),
        vec![whole(long.as_bytes(), true)]
    );
    // Client side: masked (bit 0x80 of byte 1) and RSV1, one buffer.
    client
        .send(DataKind::Text, Bytes::from(long.clone()))
        .unwrap();
    assert_eq!(client.queued_output(), 1);
    let wire = output(&mut client);
    assert_eq!((wire[0], wire[1] & 0x80), (0xc1, 0x80));
    assert_eq!(
        normalize(&run(&mut server, &[&wire])),
        vec![whole(long.as_bytes(), false)]
    );
    // Tiny and empty messages too (a 1-byte message: 3 bytes of DEFLATE data).
    for m in [&b"7"[..], b"short", b""] {
        server
            .send(DataKind::Text, Bytes::copy_from_slice(m))
            .unwrap();
        let wire = output(&mut server);
        assert_eq!(wire[0], 0xc1, "{m:?}");
        assert_eq!(
            normalize(&run(&mut client, &[&wire])),
            vec![whole(m, false)]
        );
    }
}

/// Shared frames between a connection's own compressed messages, with context
/// takeover: the shared encoding is made without context, and the connection's
/// compressor forgets its history after one (else its back-references would land in
/// the shared message in the peer's window: RFC 7692 7.2.3.2). A shared message longer
/// than the connection's window is compressed by the connection itself. Every window.
#[test]
fn shared_frames_between_own_messages_with_context_takeover() {
    let mut rng = Rng(77);
    for bits in 9..=15u8 {
        let offer = PmdParams {
            server_max_window_bits: bits,
            ..PmdParams::default()
        };
        let (mut client, mut server, params) = pair_with(&offer, &PmdPolicy::default(), 16 << 20);
        assert!(!params.server_no_context_takeover);
        let own = chatter(&mut rng, 300);
        let mut sent = Vec::new();
        for i in 0..6 {
            // The same text again and again: with context it compresses to a reference
            // to the previous copy, which must not be the shared message's bytes.
            server
                .send(DataKind::Text, Bytes::from(own.clone()))
                .unwrap();
            sent.push(whole(&own, false));
            let len = [10, 300, 511, 512, 513, 3000][i];
            let s = chatter(&mut rng, len);
            server
                .send_shared(&SharedFrame::new(DataKind::Text, Bytes::from(s.clone())))
                .unwrap();
            sent.push(whole(&s, false));
        }
        let evs = pump(&mut server, &mut client, &mut rng, 700);
        assert_eq!(normalize(&evs), sent, "bits {bits}");
    }
}

/// After our Close, compressed data from the peer is dropped unread; its Close is still
/// found behind it.
#[test]
fn compressed_data_after_close_sent_is_dropped() {
    let mut s = pmd_server(1024);
    s.close(1000, "", 0).unwrap();
    output(&mut s);
    let z = client_deflate(&PmdParams::default(), b"late late late late late late");
    let stream = [
        cf(false, TEXT | RSV1, &z[..4]),
        cf(true, 0, &z[4..]),
        cf(true, 8, &[0x03, 0xe8]),
    ]
    .concat();
    let evs = run(&mut s, &[&stream]);
    assert_eq!(evs, vec![Ev::Close(Some(1000), String::new())]);
}

// ------------------------------------------------------------------ idle memory

/// release_idle_memory frees the streams without context takeover and the inflate
/// buffer; streams with context takeover are kept (they hold the window), and a
/// message in progress keeps its decompressor. Messages still flow afterwards.
#[test]
fn release_idle_memory_follows_context_takeover() {
    let mut rng = Rng(3);
    for nct in [false, true] {
        let offer = PmdParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            ..PmdParams::default()
        };
        let (mut client, mut server, _) = pair_with(&offer, &PmdPolicy::default(), 1 << 20);
        let msg = chatter(&mut rng, 3000);
        client
            .send(DataKind::Text, Bytes::from(msg.clone()))
            .unwrap();
        pump(&mut client, &mut server, &mut rng, 500);
        server
            .send(DataKind::Text, Bytes::from(msg.clone()))
            .unwrap();
        pump(&mut server, &mut client, &mut rng, 500);
        let pmd = server.compression().unwrap();
        assert!(pmd.has_compressor() && pmd.has_decompressor());
        assert!(server.inflate_buffer_capacity() > 0);
        assert!(server.release_idle_memory());
        let pmd = server.compression().unwrap();
        assert_eq!(pmd.has_compressor(), !nct, "nct {nct}");
        assert_eq!(pmd.has_decompressor(), !nct, "nct {nct}");
        assert_eq!(server.inflate_buffer_capacity(), 0);
        assert!(!server.release_idle_memory());
        // Messages still flow, both ways.
        client
            .send(DataKind::Text, Bytes::from(msg.clone()))
            .unwrap();
        let evs = pump(&mut client, &mut server, &mut rng, 500);
        assert_eq!(normalize(&evs), vec![whole(&msg, false)]);
        server
            .send(DataKind::Text, Bytes::from(msg.clone()))
            .unwrap();
        let evs = pump(&mut server, &mut client, &mut rng, 500);
        assert_eq!(normalize(&evs), vec![whole(&msg, false)]);
    }
    // Mid-message, the decompressor is kept even without context takeover.
    let offer = PmdParams {
        client_no_context_takeover: true,
        ..PmdParams::default()
    };
    let (_, mut server, params) = pair_with(&offer, &PmdPolicy::default(), 1 << 20);
    let msg = "half a message, then idle; half a message, then idle".repeat(3);
    let z = client_deflate(&params, msg.as_bytes());
    let first = cf(false, TEXT | RSV1, &z[..z.len() / 2]);
    let rest = cf(true, 0, &z[z.len() / 2..]);
    let mut evs = run(&mut server, &[&first]);
    server.release_idle_memory();
    assert!(server.compression().unwrap().has_decompressor());
    evs.extend(run(&mut server, &[&rest]));
    assert_eq!(normalize(&evs), vec![whole(msg.as_bytes(), false)]);
}

// ------------------------------------------------------------------ randomized

/// Fraggle with compression: random messages, whole or fragmented (both compressed)
/// or, from the server, shared frames, pings between, random read sizes, both
/// directions; the messages arrive intact and in order. Half of the rounds without
/// context takeover.
#[test]
fn fraggle_compressed_both_ways() {
    let mut rng = Rng(0xfade_d00d);
    for round in 0..6 {
        let nct = round % 2 == 1;
        let offer = PmdParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            server_max_window_bits: 9 + (round as u8 % 7),
            client_max_window_bits: 15 - (round as u8 % 7),
        };
        let (mut client, mut server, _) = pair_with(&offer, &PmdPolicy::default(), 16 << 20);
        for dir in 0..2 {
            let (tx, rx) = if dir == 0 {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let mut sent = Vec::new();
            for _ in 0..40 {
                let cap = if rng.below(8) == 0 { 200_000 } else { 3000 };
                let len = rng.below(cap) as usize;
                let binary = rng.below(2) == 0;
                let data = if binary && rng.below(2) == 0 {
                    random_bytes(&mut rng, len)
                } else {
                    chatter(&mut rng, len)
                };
                let kind = if binary {
                    DataKind::Binary
                } else {
                    DataKind::Text
                };
                if rng.below(3) == 0 && data.len() > 1 && !binary {
                    // Fragments, cut at char boundaries so each is sent as given.
                    let s = std::str::from_utf8(&data).unwrap();
                    let mut cuts: Vec<usize> = (0..rng.below(5))
                        .map(|_| rng.below(data.len() as u64) as usize)
                        .filter(|&c| s.is_char_boundary(c))
                        .collect();
                    cuts.sort_unstable();
                    cuts.push(data.len());
                    let mut at = 0;
                    for (i, &c) in cuts.iter().enumerate() {
                        let last = i == cuts.len() - 1;
                        let piece = Bytes::copy_from_slice(&data[at..c]);
                        tx.send_frame(kind, i > 0, last, piece).unwrap();
                        at = c;
                    }
                } else if dir == 1 && rng.below(3) == 0 {
                    let f = SharedFrame::new(kind, Bytes::from(data.clone()));
                    tx.send_shared(&f).unwrap();
                } else {
                    tx.send(kind, Bytes::from(data.clone())).unwrap();
                }
                if rng.below(6) == 0 {
                    tx.ping(b"p").unwrap();
                }
                sent.push(whole(&data, binary));
                if tx.queued_output() > MAX_QUEUED_OUTPUT / 2 {
                    let evs = pump(tx, rx, &mut rng, 5000);
                    let got: Vec<Ev> = normalize(&evs)
                        .into_iter()
                        .filter(|e| !matches!(e, Ev::Pong(_)))
                        .collect();
                    assert_eq!(got.len(), sent.len(), "round {round} dir {dir}");
                    assert_eq!(got, std::mem::take(&mut sent), "round {round} dir {dir}");
                    output(rx);
                }
            }
            let evs = pump(tx, rx, &mut rng, 5000);
            let got: Vec<Ev> = normalize(&evs)
                .into_iter()
                .filter(|e| !matches!(e, Ev::Pong(_)))
                .collect();
            assert_eq!(got, sent, "round {round} dir {dir}");
            output(rx);
        }
    }
}

// ------------------------------------------------------------------ helpers

/// `msg` as one DEFLATE block with the fixed Huffman code and no matches (RFC 1951
/// 3.2.6: literals 144..=255 take 9 bits), the largest a sane encoder's output gets;
/// in permessage-deflate form (a non-final block, byte aligned by an empty stored
/// block whose 00 00 ff ff the receiver adds back, RFC 7692 7.2.1).
fn deflate_fixed_huffman(msg: &[u8], out: &mut Vec<u8>) {
    // RFC 1951 3.1.1: bits fill bytes from the least significant bit.
    struct Bits<'a>(&'a mut Vec<u8>, u64, u32);
    impl Bits<'_> {
        fn put(&mut self, bits: u64, len: u32) {
            self.1 |= bits << self.2;
            self.2 += len;
            while self.2 >= 8 {
                self.0.push(self.1 as u8);
                self.1 >>= 8;
                self.2 -= 8;
            }
        }
    }
    // Huffman codes are sent most significant bit first: reverse them.
    let rev = |code: u64, len: u32| code.reverse_bits() >> (64 - len);
    let mut w = Bits(out, 0, 0);
    w.put(0b010, 3); // BFINAL 0, BTYPE 01 (fixed)
    for &b in msg {
        let (code, len) = if b < 144 {
            (0x30 + u64::from(b), 8)
        } else {
            (0x190 + u64::from(b) - 144, 9)
        };
        w.put(rev(code, len), len);
    }
    w.put(0, 7); // end of block: code 256 = 0000000
    w.put(0, 3); // BFINAL 0, BTYPE 00 (stored): the sync flush's empty block
    let pad = (8 - w.2 % 8) % 8;
    w.put(0, pad);
}

/// `n` zero bytes as one permessage-deflate message (what a client's compressor
/// sends), built in 1 MiB pieces so the test does not hold `n` bytes.
fn zeros_deflated(n: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::new(9), false);
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(n / 900 + 1024);
    let mut left = n;
    while left > 0 {
        let mut input = &zeros[..left.min(zeros.len())];
        while !input.is_empty() {
            out.reserve(4096);
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::None)
                .unwrap();
            let used = (c.total_in() - before) as usize;
            input = &input[used..];
            left -= used;
        }
    }
    loop {
        out.reserve(4096);
        c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
        if out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Compression figures for small messages (they are all compressed; run with
/// `cargo test --release -p lwsd-worker measure_compression -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_compression() {
    use std::time::Instant;
    let mut rng = Rng(11);
    for nct in [false, true] {
        let params = PmdParams {
            server_no_context_takeover: nct,
            ..PmdParams::default()
        };
        for len in [4usize, 8, 16, 24, 32, 48, 64, 128, 512] {
            let mut pmd = Pmd::new(PSide::Server, &params);
            let msgs: Vec<Vec<u8>> = (0..2000).map(|_| chatter(&mut rng, len)).collect();
            let (mut raw, mut z) = (0usize, 0usize);
            let mut out = Vec::new();
            let t = Instant::now();
            for m in &msgs {
                out.clear();
                pmd.compress(m, &mut out);
                raw += m.len();
                z += out.len();
            }
            let ns = t.elapsed().as_nanos() as f64 / msgs.len() as f64;
            println!(
                "nct {nct} len {len:4}: wire {:.2} of raw, {ns:.0} ns/message",
                z as f64 / raw as f64
            );
        }
    }
}

/// Throughput of the compressed paths through a connection (run with `cargo test
/// --release -p lwsd-worker measure_pmd -- --ignored --nocapture`): a server receiving
/// and sending 2 KB JSON-like text messages, with and without context takeover.
#[test]
#[ignore]
fn measure_pmd_throughput() {
    use std::time::Instant;
    let mut rng = Rng(21);
    let msgs: Vec<Vec<u8>> = (0..1000).map(|_| chatter(&mut rng, 2000)).collect();
    for nct in [false, true] {
        let offer = PmdParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            ..PmdParams::default()
        };
        let (mut client, mut server, _) = pair_with(&offer, &PmdPolicy::default(), 1 << 20);
        // What the client sends, encoded once.
        for m in &msgs {
            client.send(DataKind::Text, Bytes::from(m.clone())).unwrap();
        }
        let wire = output(&mut client);
        let rounds = 20;
        let t = Instant::now();
        let mut got = 0usize;
        for _ in 0..rounds {
            // A fresh receiver each round: the stream must start where the encoder did.
            let mut s = WsConn::server(cfg(1 << 20), 0);
            let params = PmdParams {
                server_no_context_takeover: nct,
                client_no_context_takeover: nct,
                ..PmdParams::default()
            };
            s.set_compression(Pmd::new(PSide::Server, &params));
            let mut buf = wire.clone();
            s.feed(&mut buf, 0, |e| {
                if let Event::Data(d) = e {
                    got += d.payload.len();
                }
            })
            .unwrap();
        }
        let ns = t.elapsed().as_nanos() as f64 / (rounds * msgs.len()) as f64;
        assert_eq!(got, rounds * msgs.iter().map(Vec::len).sum::<usize>());
        println!(
            "nct {nct}: receive 2 KB compressed text ({:.2} of raw on the wire): {ns:.0} ns/message",
            wire.len() as f64 / msgs.iter().map(Vec::len).sum::<usize>() as f64
        );
        let t = Instant::now();
        for _ in 0..rounds {
            for m in &msgs {
                server.send(DataKind::Text, Bytes::from(m.clone())).unwrap();
                server.drain_output(&mut Vec::new());
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (rounds * msgs.len()) as f64;
        println!("nct {nct}: send 2 KB text compressed: {ns:.0} ns/message");
    }
}
