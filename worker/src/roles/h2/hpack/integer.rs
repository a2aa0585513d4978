//! Integer representation (RFC 7541 5.1): an N-bit prefix, then, when the value does
//! not fit the prefix, 7 bits per continuation byte, least significant group first.
//!
//! The RFC sets no bound ("integer values [...] are not limited"), but says a decoder
//! must not be exposed to overflow (section 5.1, "Integer value encodings that exceed
//! implementation limits [...] MUST be treated as decoding errors"). Every integer in
//! HPACK is an index, a string length or a table size, all far below `u32::MAX`, so a
//! value above that, or one spread over more than [`MAX_CONTINUATION_BYTES`], is refused
//! before any arithmetic can wrap.

use bytes::BufMut;

use super::HpackError;

/// Continuation bytes accepted after the prefix. Five carry 35 bits, enough for any
/// `u32` past the prefix; a sixth could only be a redundant zero group (0x80 ...),
/// which no encoder needs and which would let a peer pad integers without bound.
pub const MAX_CONTINUATION_BYTES: usize = 5;

/// The largest value accepted (section 5.1's "implementation limits").
pub const MAX_VALUE: u64 = u32::MAX as u64;

/// Appends `value` with a `prefix_bits`-bit prefix (1..=8) to `dst`; `flags` holds the
/// bits of the first byte above the prefix (the representation's pattern).
pub fn encode(value: usize, prefix_bits: u8, flags: u8, dst: &mut impl BufMut) {
    debug_assert!((1..=8).contains(&prefix_bits));
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

/// Decodes an integer with a `prefix_bits`-bit prefix from the start of `src` (whose
/// first byte's high bits are the representation's pattern, ignored here). Returns the
/// value and the bytes it took.
pub fn decode(src: &[u8], prefix_bits: u8) -> Result<(usize, usize), HpackError> {
    debug_assert!((1..=8).contains(&prefix_bits));
    let max_prefix = (1u64 << prefix_bits) - 1;
    let Some(&first) = src.first() else {
        return Err(HpackError::Truncated);
    };
    let prefix = u64::from(first) & max_prefix;
    if prefix < max_prefix {
        return Ok((prefix as usize, 1));
    }
    let mut value = max_prefix;
    let mut shift = 0u32;
    for i in 1..=MAX_CONTINUATION_BYTES {
        let Some(&b) = src.get(i) else {
            return Err(HpackError::Truncated);
        };
        // At most 5 * 7 = 35 bits above the prefix: no u64 overflow.
        value += u64::from(b & 0x7f) << shift;
        if value > MAX_VALUE {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok((value as usize, i + 1));
        }
        shift += 7;
    }
    Err(HpackError::IntegerOverflow)
}
