//! Fuzz target: arbitrary frames into `Pmd::decompress` (RFC 7692 7.2.2).
//!
//! Input layout: byte 0 picks the negotiated parameters (window bits 9..=15 and no
//! context takeover for the peer, either side); then frames, each `len: u8, flags: u8,
//! payload[len]`; flags bit 0 = fin. The message bound is small (4 KiB), so a bomb
//! shows at once. Checks: no panic, `out` never beyond the bound plus one byte (its
//! capacity included: decompress grows it only up to the bound), a message that
//! decodes is reproduced by our compressor and decodes again to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams, Side};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let params = PmdParams {
        server_no_context_takeover: sel & 0x10 != 0,
        client_no_context_takeover: sel & 0x20 != 0,
        server_max_window_bits: 9 + (sel & 0x07) % 7,
        client_max_window_bits: 9 + ((sel >> 3) & 0x01) * 6,
    };
    let side = if sel & 0x80 != 0 {
        Side::Server
    } else {
        Side::Client
    };
    let mut pmd = Pmd::new(side, &params);
    let mut out = Vec::new();
    while let [len, flags, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let fin = flags & 1 != 0;
        let r = pmd.decompress(payload, fin, &mut out, MAX);
        assert!(out.len() <= MAX + 1, "len {}", out.len());
        assert!(out.capacity() <= MAX + 1, "capacity {}", out.capacity());
        match r {
            Err(_) => return,
            Ok(()) if fin => {
                // A valid message: our own encoding of it must round-trip.
                let mut c = Vec::new();
                let mut tx = Pmd::new(side, &params);
                tx.compress(&out, &mut c);
                let other = if side == Side::Server {
                    Side::Client
                } else {
                    Side::Server
                };
                let mut rx = Pmd::new(other, &params);
                let mut back = Vec::new();
                rx.decompress(&c, true, &mut back, MAX)
                    .expect("own output decodes");
                assert_eq!(back, out);
                out.clear();
            }
            Ok(()) => {}
        }
    }
});
