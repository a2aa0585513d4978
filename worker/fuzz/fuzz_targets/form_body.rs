//! Form body parsers (protocol-post-demo): urlencoded and multipart/form-data.
//!
//! Input: byte 0 picks the split points' seed, byte 1 the boundary length (1..=70, taken
//! from the following bytes), the rest is the body. Each parser must not panic, and its
//! verdict (fields or error) must not depend on how the body is split into chunks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::plugins::form::{FormError, Multipart, UrlEncoded};

fn url(pieces: &[&[u8]]) -> Result<Vec<lwsd_worker::plugins::form::Field>, FormError> {
    let mut p = UrlEncoded::new();
    for x in pieces {
        p.feed(x)?;
    }
    p.finish()
}

fn multipart(b: &[u8], pieces: &[&[u8]]) -> Result<Vec<lwsd_worker::plugins::form::Field>, FormError> {
    let mut p = Multipart::new(b);
    for x in pieces {
        p.feed(x)?;
    }
    p.finish()
}

/// `body` cut into pieces at pseudo-random points from `seed`.
fn split(body: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut s = u32::from(seed) | 1;
    while !rest.is_empty() {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (s >> 16) as usize % (rest.len().min(97));
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [seed, blen, rest @ ..] = data else {
        return;
    };
    let blen = (usize::from(*blen) % 70 + 1).min(rest.len());
    let (boundary, body) = rest.split_at(blen);
    let pieces = split(body, *seed);

    assert_eq!(url(&[body]), url(&pieces));
    if !boundary.is_empty() {
        assert_eq!(multipart(boundary, &[body]), multipart(boundary, &pieces));
    }
});
