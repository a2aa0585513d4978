//! The Huffman code of RFC 7541 Appendix B, for string literals (section 5.2).
//!
//! Encoding packs each symbol's code into a 64-bit accumulator and pads the last
//! byte with the most significant bits of EOS (all ones), as section 5.2 requires.
//!
//! Decoding is table-driven, four bits at a time: the code's binary tree has 256
//! internal nodes (257 leaves: the 256 byte values and EOS), and `DECODE` says, for
//! each node and each 4-bit nibble, which node the walk reaches, whether a symbol was
//! completed on the way (at most one: the shortest code is 5 bits) and whether stopping
//! there is a valid end of string. The table is built at compile time from [`CODES`],
//! so it cannot drift from the RFC's code. Section 5.2's two rules on the end are
//! enforced: EOS inside the string is an error, and the padding must be the most
//! significant bits of EOS (all ones) and shorter than 8 bits.

use bytes::BufMut;

/// `(code, length in bits)` for each symbol, codes aligned to the least significant
/// bit; index 256 is EOS. RFC 7541 Appendix B.
pub const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28), // 0..
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28), // 4..
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28), // 8..
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28), // 12..
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28), // 16..
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28), // 20..
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28), // 24..
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28), // 28..
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12), // 32..
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11), // 36..
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11), // 40..
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6), // 44..
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6), // 48..
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6), // 52..
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8), // 56..
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10), // 60..
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7), // 64..
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7), // 68..
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7), // 72..
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7), // 76..
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7), // 80..
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7), // 84..
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13), // 88..
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6), // 92..
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5), // 96..
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6), // 100..
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7), // 104..
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5), // 108..
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5), // 112..
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7), // 116..
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15), // 120..
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28), // 124..
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20), // 128..
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23), // 132..
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23), // 136..
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23), // 140..
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23), // 144..
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23), // 148..
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23), // 152..
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24), // 156..
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22), // 160..
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21), // 164..
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24), // 168..
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23), // 172..
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21), // 176..
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23), // 180..
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22), // 184..
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23), // 188..
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19), // 192..
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25), // 196..
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27), // 200..
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25), // 204..
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27), // 208..
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24), // 212..
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26), // 216..
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27), // 220..
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21), // 224..
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23), // 228..
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25), // 232..
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23), // 236..
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26), // 240..
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27), // 244..
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27), // 248..
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),  // 252..
    (0x3fffffff, 30), // 256..
];

/// The EOS symbol (RFC 7541 Appendix B): 30 one bits, never sent inside a string.
pub const EOS: u16 = 256;

/// Why a Huffman-coded string was refused (RFC 7541 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol was decoded inside the string: "a Huffman-encoded string literal
    /// containing the EOS symbol MUST be treated as a decoding error".
    Eos,
    /// The string ended inside a code: the leftover bits were not all ones (not a prefix
    /// of EOS) or were 8 or more ("padding strictly longer than 7 bits MUST be treated as
    /// a decoding error").
    Padding,
}

/// Bytes `src` takes Huffman-coded, padding included.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman-coded to `dst` ([`encoded_len`] bytes).
pub fn encode(src: &[u8], dst: &mut impl BufMut) {
    // Bits above `pending` in `acc` are stale; they are shifted out or cut off by the
    // `as u8` casts, never written.
    let mut acc: u64 = 0;
    let mut pending: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            dst.put_u8((acc >> pending) as u8);
        }
    }
    if pending > 0 {
        // Pad with the high bits of EOS, that is ones (section 5.2).
        dst.put_u8(((acc << (8 - pending)) as u8) | (0xff >> pending));
    }
}

/// Appends the decoding of `src` to `dst`. On error `dst` holds a partial result.
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // The shortest code is 5 bits, so a byte yields at most 8/5 symbols.
    dst.reserve(src.len() * 8 / 5 + 1);
    let mut state = 0usize;
    let mut flags = ACCEPT;
    for &b in src {
        for nibble in [b >> 4, b & 0x0f] {
            let step = DECODE[state][usize::from(nibble)];
            flags = step.flags;
            if flags & FAIL != 0 {
                return Err(HuffmanError::Eos);
            }
            if flags & SYMBOL != 0 {
                dst.push(step.symbol);
            }
            state = usize::from(step.next);
        }
    }
    if flags & ACCEPT == 0 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// One transition of the decoder: from a node, over one nibble.
#[derive(Clone, Copy)]
struct Step {
    /// The internal node reached (0 is the root).
    next: u8,
    /// [`ACCEPT`], [`SYMBOL`], [`FAIL`].
    flags: u8,
    /// The symbol completed on the way, when [`SYMBOL`] is set.
    symbol: u8,
}

/// Ending the string at `next` is valid: the bits since the last symbol are all ones
/// and fewer than 8 (at the root: none).
const ACCEPT: u8 = 1;
/// `symbol` was completed during this nibble.
const SYMBOL: u8 = 2;
/// EOS was completed during this nibble.
const FAIL: u8 = 4;

/// Internal nodes of the code tree: a complete prefix code with 257 leaves has 256.
const NODES: usize = 256;
/// A child that is a leaf: `LEAF | symbol`.
const LEAF: u16 = 0x8000;

/// `DECODE[node][nibble]`.
static DECODE: [[Step; 16]; NODES] = build_decode_table();

/// Builds the code tree from [`CODES`], then walks it four bits at a time from every
/// internal node. Runs at compile time; a malformed code table fails the build.
const fn build_decode_table() -> [[Step; 16]; NODES] {
    // children[node][bit]: an internal node index, or LEAF | symbol; 0 = not yet set
    // (the root is never a child, so 0 is free as a marker).
    let mut children = [[0u16; 2]; NODES];
    // Depth of each node and whether the path to it from the root is all ones.
    let mut depth = [0u8; NODES];
    let mut all_ones = [false; NODES];
    all_ones[0] = true;
    let mut used = 1usize;
    let mut sym = 0usize;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                assert!(children[node][bit] == 0, "Huffman code is not prefix-free");
                children[node][bit] = LEAF | sym as u16;
            } else {
                let child = children[node][bit];
                if child == 0 {
                    assert!(used < NODES, "too many internal nodes");
                    children[node][bit] = used as u16;
                    depth[used] = depth[node] + 1;
                    all_ones[used] = all_ones[node] && bit == 1;
                    node = used;
                    used += 1;
                } else {
                    assert!(child & LEAF == 0, "Huffman code is not prefix-free");
                    node = child as usize;
                }
            }
        }
        sym += 1;
    }
    assert!(used == NODES, "Huffman code is not complete");

    let empty = Step {
        next: 0,
        flags: 0,
        symbol: 0,
    };
    let mut table = [[empty; 16]; NODES];
    let mut start = 0usize;
    while start < NODES {
        let mut nibble = 0usize;
        while nibble < 16 {
            let mut node = start;
            let mut flags = 0u8;
            let mut symbol = 0u8;
            let mut i = 4;
            while i > 0 {
                i -= 1;
                let child = children[node][(nibble >> i) & 1];
                if child & LEAF != 0 {
                    let s = child & !LEAF;
                    if s == EOS {
                        flags |= FAIL;
                    } else {
                        flags |= SYMBOL;
                        symbol = s as u8;
                    }
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            if node == 0 || (all_ones[node] && depth[node] <= 7) {
                flags |= ACCEPT;
            }
            table[start][nibble] = Step {
                next: node as u8,
                flags,
                symbol,
            };
            nibble += 1;
        }
        start += 1;
    }
    table
}
