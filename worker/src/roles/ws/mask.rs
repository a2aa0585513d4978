//! Payload masking (RFC 6455 section 5.3), in place, a word at a time.
//!
//! Masking is an XOR of each payload byte with `key[i % 4]`. Every byte a client sends
//! passes through here (and every byte a server receives), so it is written to process
//! eight bytes per step over `u64` words, with no `unsafe`: the slice is walked with
//! `chunks_exact_mut(8)`, each word is loaded with `from_ne_bytes` and stored back, which
//! the compiler turns into plain (vectorised) loads and XORs. A payload split across
//! several reads is unmasked in pieces: `phase` is the offset of the piece within the
//! frame payload, modulo 4 (section 5.3: "j = i MOD 4" counts from the payload start).
//!
//! Hand-written rather than taken from a crate: it is ten lines, and the crates that
//! offer it (tungstenite's `apply_mask`) come with their whole protocol stack.

/// The key rotated so that `rotated[0]` applies to the byte at payload offset `phase`.
#[inline]
fn rotate(key: [u8; 4], phase: usize) -> [u8; 4] {
    // RFC 6455 5.3: octet i of the payload uses key octet i MOD 4.
    let w = u32::from_be_bytes(key).rotate_left(8 * (phase as u32 & 3));
    w.to_be_bytes()
}

/// XOR `buf` with `key` as section 5.3 describes, where `buf[0]` is at offset `phase`
/// (any value; only `phase % 4` matters) of the frame payload. Masking and unmasking are
/// the same operation.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let k = rotate(key, phase);
    let k8 = [k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]];
    let m = u64::from_ne_bytes(k8);
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(a) ^ m).to_ne_bytes());
    }
    // The tail is shorter than 8 bytes and starts at a multiple of 8, so at phase 0 of `k`.
    for (b, kb) in words.into_remainder().iter_mut().zip(k8) {
        *b ^= kb;
    }
}

/// The byte-at-a-time definition of section 5.3, kept as the reference the fast version
/// is tested against.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + phase) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_5_7_masked_hello() {
        // RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
        let mut p = *b"Hello";
        apply_mask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(p, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        apply_mask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&p, b"Hello");
    }

    #[test]
    fn fast_equals_naive_every_length_phase_and_alignment() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(300 - start) {
                for phase in 0..5 {
                    let mut a = src[start..start + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, phase);
                    apply_mask_naive(&mut b, key, phase);
                    assert_eq!(a, b, "start {start} len {len} phase {phase}");
                }
            }
        }
    }

    #[test]
    fn split_unmasking_equals_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let orig: Vec<u8> = (0..100u8).collect();
        let mut whole = orig.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..orig.len() {
            let mut parts = orig.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole, "cut {cut}");
        }
    }
}
