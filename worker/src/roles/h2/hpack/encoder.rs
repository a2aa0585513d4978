//! The HPACK encoder (RFC 7541 3.1, 6): one per connection, for every header block
//! this endpoint sends, in order.
//!
//! For each field, in this order of preference:
//! 1. a field matching a static entry, name and value, is sent as that index (6.1);
//! 2. likewise for a dynamic entry;
//! 3. a sensitive field (marked [`Sensitive::Yes`], or `authorization`,
//!    `proxy-authorization`, `set-cookie`, and `cookie` values shorter than 20 bytes,
//!    which are guessable, RFC 7541 7.1.3) is a never-indexed literal (6.2.3), its name
//!    by index when a table has it;
//! 4. a field worth keeping is a literal with incremental indexing (6.2.1) and goes into
//!    the dynamic table; not worth keeping are fields whose values rarely repeat on a
//!    connection (`age`, ranges, conditional request headers; [`worth_indexing`]) and
//!    entries over three quarters of the table, which would flush it. A response's
//!    `content-length`, `etag` and `last-modified` are kept: a client that asks for a
//!    resource again on the connection (polling, a benchmark, a page's shared assets)
//!    gets them as one-byte indices instead of Huffman-coded literals, which is both
//!    smaller and cheaper to produce (h2o indexes them likewise);
//! 5. anything else is a literal without indexing (6.2.2).
//!
//! Strings are Huffman-coded (5.2) when that is strictly shorter. The dynamic table's
//! maximum size is the smaller of the peer's SETTINGS_HEADER_TABLE_SIZE and this
//! encoder's own bound (4096 by default, memory per connection; 0 turns the dynamic
//! table off); a change is signalled at the start of the next block (4.2, 6.3): the
//! smallest size reached since the last block, then the final one if larger.

use bytes::BufMut;

use super::table::{self, DEFAULT_TABLE_SIZE, DYNAMIC_BASE, DynamicTable, ENTRY_OVERHEAD};
use super::{Sensitive, huffman, integer};

/// The encoder's own bound on its dynamic table (memory per connection) unless set
/// otherwise: the protocol's default size, which every peer accepts without SETTINGS.
pub const DEFAULT_ENCODER_TABLE_SIZE: usize = DEFAULT_TABLE_SIZE;

/// `cookie` values shorter than this are never indexed: short cookies have little
/// entropy and could be guessed through the compression context (RFC 7541 7.1.3).
const SHORT_COOKIE: usize = 20;

/// One field to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub sensitive: Sensitive,
}

impl<'a> From<(&'a [u8], &'a [u8])> for Field<'a> {
    fn from((name, value): (&'a [u8], &'a [u8])) -> Field<'a> {
        Field {
            name,
            value,
            sensitive: Sensitive::No,
        }
    }
}

impl<'a> From<(&'a str, &'a str)> for Field<'a> {
    fn from((name, value): (&'a str, &'a str)) -> Field<'a> {
        Field {
            name: name.as_bytes(),
            value: value.as_bytes(),
            sensitive: Sensitive::No,
        }
    }
}

impl<'a> From<(&'a [u8], &'a [u8], Sensitive)> for Field<'a> {
    fn from((name, value, sensitive): (&'a [u8], &'a [u8], Sensitive)) -> Field<'a> {
        Field {
            name,
            value,
            sensitive,
        }
    }
}

/// The encoding context of one connection.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// The peer's SETTINGS_HEADER_TABLE_SIZE.
    peer_max: usize,
    /// This encoder's own bound; 0 = no dynamic table.
    cap: usize,
    /// Size updates owed at the start of the next block: the smallest maximum since
    /// the last block (section 4.2).
    pending_min: Option<usize>,
    huffman: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder at the protocol's start: the peer's table size is 4096 until its
    /// SETTINGS say otherwise, Huffman coding on.
    pub fn new() -> Encoder {
        Encoder::with_table_size(DEFAULT_TABLE_SIZE)
    }

    /// An encoder whose peer already expects a dynamic table of maximum size `size`
    /// (and bound to it): no size update is signalled for it. HTTP/2 always starts at
    /// 4096 ([`Encoder::new`]); this is for contexts agreed otherwise, such as RFC
    /// 7541's examples.
    pub fn with_table_size(size: usize) -> Encoder {
        Encoder {
            table: DynamicTable::new(size),
            peer_max: size,
            cap: size,
            pending_min: None,
            huffman: true,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE (RFC 9113 6.5.2) changed.
    pub fn set_peer_max_table_size(&mut self, size: usize) {
        self.peer_max = size;
        self.resize();
    }

    /// This encoder's own bound on its dynamic table; 0 uses no dynamic table at all
    /// (the peer is told to drop its copy at the next block).
    pub fn set_table_size_cap(&mut self, cap: usize) {
        self.cap = cap;
        self.resize();
    }

    /// Whether strings may be Huffman-coded (when shorter); on by default.
    pub fn set_huffman(&mut self, on: bool) {
        self.huffman = on;
    }

    /// The dynamic table's size and maximum size.
    pub fn table_size(&self) -> (usize, usize) {
        (self.table.size(), self.table.max_size())
    }

    /// Entries in the dynamic table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Bytes allocated for the dynamic table's names and values (at most twice its
    /// largest maximum size).
    pub fn table_capacity(&self) -> usize {
        self.table.capacity()
    }

    fn resize(&mut self) {
        let size = self.peer_max.min(self.cap);
        if size == self.table.max_size() && self.pending_min.is_none() {
            return;
        }
        // Evict now: the peer evicts when it reads the update, before any field of
        // the next block, so both tables stay the same.
        self.table.set_max_size(size);
        self.pending_min = Some(self.pending_min.map_or(size, |m| m.min(size)));
    }

    /// Appends one header block holding `fields`, in order, to `dst`.
    pub fn encode<'f, I>(&mut self, fields: I, dst: &mut impl BufMut)
    where
        I: IntoIterator,
        I::Item: Into<Field<'f>>,
    {
        if let Some(min) = self.pending_min.take() {
            // 6.3: 001xxxxx, 5-bit size; the smallest first, then the final (4.2).
            let size = self.table.max_size();
            if min < size {
                integer::encode(min, 5, 0x20, dst);
            }
            integer::encode(size, 5, 0x20, dst);
        }
        for f in fields {
            self.field(f.into(), dst);
        }
    }

    fn field(&mut self, f: Field<'_>, dst: &mut impl BufMut) {
        let sensitive = f.sensitive == Sensitive::Yes || is_sensitive(f.name, f.value);
        let (static_exact, static_name) = table::static_find(f.name, f.value);
        if !sensitive && let Some(i) = static_exact {
            integer::encode(i, 7, 0x80, dst);
            return;
        }
        let (dyn_exact, dyn_name) = if self.table.is_empty() {
            (None, None)
        } else {
            self.table.find(f.name, f.value, table::name_hash(f.name))
        };
        if !sensitive && let Some(i) = dyn_exact {
            integer::encode(DYNAMIC_BASE + i, 7, 0x80, dst);
            return;
        }
        let name_index = static_name.or(dyn_name.map(|i| DYNAMIC_BASE + i));
        let entry = f.name.len() + f.value.len() + ENTRY_OVERHEAD;
        let (pattern, prefix, insert) = if sensitive {
            (0x10, 4, false)
        } else if worth_indexing(f.name) && entry <= self.table.max_size() / 4 * 3 {
            (0x40, 6, true)
        } else {
            (0x00, 4, false)
        };
        match name_index {
            Some(i) => integer::encode(i, prefix, pattern, dst),
            None => {
                integer::encode(0, prefix, pattern, dst);
                self.string(f.name, dst);
            }
        }
        self.string(f.value, dst);
        if insert {
            self.table.insert(f.name, f.value);
        }
    }

    /// A string literal (5.2), Huffman-coded when strictly shorter.
    fn string(&self, s: &[u8], dst: &mut impl BufMut) {
        if self.huffman {
            let len = huffman::encoded_len(s);
            if len < s.len() {
                integer::encode(len, 7, 0x80, dst);
                huffman::encode(s, dst);
                return;
            }
        }
        integer::encode(s.len(), 7, 0, dst);
        dst.put_slice(s);
    }
}

/// Fields that must never be indexed (RFC 7541 7.1.3): credentials, and short cookies.
fn is_sensitive(name: &[u8], value: &[u8]) -> bool {
    match name {
        b"authorization" | b"proxy-authorization" | b"set-cookie" => true,
        b"cookie" => value.len() < SHORT_COOKIE,
        _ => false,
    }
}

/// Whether a field's value is likely to repeat on the connection, so that a table
/// entry pays for itself. The exceptions change with every message (ages, ranges,
/// conditional requests' validators).
pub fn worth_indexing(name: &[u8]) -> bool {
    !matches!(
        name,
        b"age"
            | b"if-modified-since"
            | b"if-none-match"
            | b"if-unmodified-since"
            | b"if-match"
            | b"if-range"
            | b"content-range"
    )
}
