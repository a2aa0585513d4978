//! HPACK decoding (RFC 7541) of hostile header blocks, then a round trip through lwsd's
//! own encoder.
//!
//! Input layout: byte 0 sets the decoder's SETTINGS_HEADER_TABLE_SIZE (0 to 1020, small
//! so evictions and size updates happen), byte 1 its SETTINGS_MAX_HEADER_LIST_SIZE (16
//! to 4096), byte 2 the table size the re-encoder's peer allows; the rest is a sequence
//! of blocks, each a length byte then that many bytes, decoded in order with one
//! decoder (one connection).
//!
//! Checks: no panic; the dynamic table's size never exceeds its maximum, nor that the
//! announced limit, and its arena stays within twice the limit; the fields delivered
//! for a block never sum past the list limit; after a list-size error the decoder goes
//! on (its context is intact), after any other error the connection would end, so the
//! input does too. Every block that decodes is re-encoded by an `Encoder` and decoded
//! by a second `Decoder` (one connection the other way): the same list comes back, with
//! every never-indexed field still never-indexed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::roles::h2::hpack::{
    Decoder, ENTRY_OVERHEAD, Encoder, Field, HpackError, Sensitive,
};

type List = Vec<(Vec<u8>, Vec<u8>, Sensitive)>;

fn decode(d: &mut Decoder, block: &[u8]) -> (List, Result<(), HpackError>) {
    let mut out = Vec::new();
    let res = d.decode(block, |n, v, s| out.push((n.to_vec(), v.to_vec(), s)));
    (out, res)
}

fuzz_target!(|data: &[u8]| {
    let [table, list, peer, stream @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = stream;
    let limit = usize::from(*table) * 4;
    let max_list = (usize::from(*list) + 1) * 16;
    let mut d = Decoder::new(limit);
    d.set_max_header_list_size(max_list);
    let mut e = Encoder::new();
    e.set_peer_max_table_size(usize::from(*peer) * 8);
    let mut back = Decoder::new(4096);
    back.set_max_table_size(usize::from(*peer) * 8);
    back.set_max_header_list_size(max_list);
    let mut wire = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (block, next) = tail.split_at(n);
        rest = next;
        let (fields, res) = decode(&mut d, block);
        let (size, max) = d.table_size();
        assert!(
            size <= max && max <= limit,
            "table {size}/{max}, limit {limit}"
        );
        assert!(
            d.table_capacity() <= 2 * limit,
            "arena {}",
            d.table_capacity()
        );
        let listed: usize = fields
            .iter()
            .map(|(n, v, _)| n.len() + v.len() + ENTRY_OVERHEAD)
            .sum();
        assert!(listed <= max_list, "delivered {listed} > {max_list}");
        match res {
            Ok(()) => {}
            Err(err) if err.context_intact() => continue,
            Err(_) => return,
        }
        wire.clear();
        e.encode(
            fields.iter().map(|(n, v, s)| Field {
                name: n,
                value: v,
                sensitive: *s,
            }),
            &mut wire,
        );
        let (again, res) = decode(&mut back, &wire);
        res.expect("the encoder's output decodes");
        assert_eq!(again.len(), fields.len());
        for (a, b) in fields.iter().zip(&again) {
            assert_eq!((&a.0, &a.1), (&b.0, &b.1), "round trip differs");
            if a.2 == Sensitive::Yes {
                assert_eq!(b.2, Sensitive::Yes, "never-indexed field lost its flag");
            }
        }
        assert_eq!(e.table_size(), back.table_size());
    }
});
