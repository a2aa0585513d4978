//! The indexing tables (RFC 7541 2.3): the static table of Appendix A (indices 1 to
//! 61) and the dynamic table (indices 62 and up, newest first), shared by the decoder
//! and the encoder.
//!
//! The dynamic table keeps every entry's name and value in one byte arena, appended at
//! the end and dropped from the front as entries are evicted (oldest first, section
//! 4.4); the dead front is reclaimed by moving the live bytes down once it is as large
//! as they are, so reclaiming costs O(1) per byte inserted, and the arena grows by
//! doubling up to twice the table's maximum size, after which inserting never
//! allocates.

use std::collections::VecDeque;

/// Each entry counts its name, its value and this overhead towards the table size
/// (RFC 7541 4.1: "an estimated overhead associated with an entry").
pub const ENTRY_OVERHEAD: usize = 32;

/// The protocol's initial dynamic table size (SETTINGS_HEADER_TABLE_SIZE's initial
/// value, RFC 9113 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Index of the first dynamic table entry (RFC 7541 2.3.3).
pub const DYNAMIC_BASE: usize = STATIC.len() + 1;

/// The static table, RFC 7541 Appendix A; `STATIC[i - 1]` is index `i`.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The static indices whose name is `name`: `(first index, count)`. Entries sharing a
/// name are adjacent in Appendix A, so a name maps to one run.
pub fn static_name(name: &[u8]) -> Option<(usize, usize)> {
    // A match on the bytes: the compiler turns it into a length switch and a few
    // comparisons, cheaper than hashing the name.
    let run = match name {
        b":authority" => (1, 1),
        b":method" => (2, 2),
        b":path" => (4, 2),
        b":scheme" => (6, 2),
        b":status" => (8, 7),
        b"accept-charset" => (15, 1),
        b"accept-encoding" => (16, 1),
        b"accept-language" => (17, 1),
        b"accept-ranges" => (18, 1),
        b"accept" => (19, 1),
        b"access-control-allow-origin" => (20, 1),
        b"age" => (21, 1),
        b"allow" => (22, 1),
        b"authorization" => (23, 1),
        b"cache-control" => (24, 1),
        b"content-disposition" => (25, 1),
        b"content-encoding" => (26, 1),
        b"content-language" => (27, 1),
        b"content-length" => (28, 1),
        b"content-location" => (29, 1),
        b"content-range" => (30, 1),
        b"content-type" => (31, 1),
        b"cookie" => (32, 1),
        b"date" => (33, 1),
        b"etag" => (34, 1),
        b"expect" => (35, 1),
        b"expires" => (36, 1),
        b"from" => (37, 1),
        b"host" => (38, 1),
        b"if-match" => (39, 1),
        b"if-modified-since" => (40, 1),
        b"if-none-match" => (41, 1),
        b"if-range" => (42, 1),
        b"if-unmodified-since" => (43, 1),
        b"last-modified" => (44, 1),
        b"link" => (45, 1),
        b"location" => (46, 1),
        b"max-forwards" => (47, 1),
        b"proxy-authenticate" => (48, 1),
        b"proxy-authorization" => (49, 1),
        b"range" => (50, 1),
        b"referer" => (51, 1),
        b"refresh" => (52, 1),
        b"retry-after" => (53, 1),
        b"server" => (54, 1),
        b"set-cookie" => (55, 1),
        b"strict-transport-security" => (56, 1),
        b"transfer-encoding" => (57, 1),
        b"user-agent" => (58, 1),
        b"vary" => (59, 1),
        b"via" => (60, 1),
        b"www-authenticate" => (61, 1),
        _ => return None,
    };
    Some(run)
}

/// A static table lookup: `(index of name and value, index of the name)`.
pub fn static_find(name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
    let Some((first, count)) = static_name(name) else {
        return (None, None);
    };
    let exact = (first..first + count).find(|&i| STATIC[i - 1].1 == value);
    (exact, Some(first))
}

/// The arena's first allocation: a few typical entries, so a table that holds little
/// (a client sending a handful of fields) costs little.
const MIN_ARENA: usize = 256;

/// One dynamic entry: where its bytes are in the arena.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Offset of the name in `DynamicTable::data`; the value follows it.
    start: usize,
    name_len: usize,
    value_len: usize,
    /// [`name_hash`] of the name, so the encoder's lookups compare names only when the
    /// hashes agree.
    hash: u32,
}

impl Slot {
    fn size(&self) -> usize {
        self.name_len + self.value_len + ENTRY_OVERHEAD
    }
}

/// A cheap hash of a header name (FNV-1a, 32 bits) for the encoder's lookups.
pub fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The dynamic table (RFC 7541 2.3.2, 4): entries newest first, size accounted as
/// section 4.1 says, evicted oldest first (4.4).
#[derive(Debug)]
pub struct DynamicTable {
    /// Newest first: `slots[0]` is index 62.
    slots: VecDeque<Slot>,
    /// Names and values, oldest first; bytes before `dead` belong to evicted entries.
    data: Vec<u8>,
    dead: usize,
    /// Sum of the entries' sizes (section 4.1).
    size: usize,
    /// The current maximum size (section 4.2), set by size updates (6.3).
    max_size: usize,
}

impl DynamicTable {
    /// An empty table with maximum size `max_size`. Nothing is allocated until the
    /// first insertion.
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            slots: VecDeque::new(),
            data: Vec::new(),
            dead: 0,
            size: 0,
            max_size,
        }
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The table size (section 4.1): name + value + 32 summed over the entries.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The maximum size (section 4.2).
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Bytes held for entries (the arena's capacity), for memory accounting.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// The entry at dynamic position `i` (0 = newest = index 62).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let s = self.slots.get(i)?;
        let name_end = s.start + s.name_len;
        Some((
            &self.data[s.start..name_end],
            &self.data[name_end..name_end + s.value_len],
        ))
    }

    /// Sets the maximum size and evicts until the table fits (section 4.3).
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
        if self.slots.is_empty() && max_size == 0 {
            // A table turned off: give its memory back.
            self.data = Vec::new();
            self.dead = 0;
        }
    }

    /// Adds an entry at the front (section 4.4): evicts oldest entries until it fits;
    /// an entry larger than the maximum size empties the table and is not added (not an
    /// error).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let need = name.len() + value.len();
        let size = need + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        self.make_room(need);
        let start = self.data.len();
        self.data.extend_from_slice(name);
        self.data.extend_from_slice(value);
        self.slots.push_front(Slot {
            start,
            name_len: name.len(),
            value_len: value.len(),
            hash: name_hash(name),
        });
        self.size += size;
    }

    /// Looks `name`/`value` up (name hash `hash`): `(position of the entry with both,
    /// position of the newest entry with the name)`, positions counted from the newest.
    pub fn find(&self, name: &[u8], value: &[u8], hash: u32) -> (Option<usize>, Option<usize>) {
        let mut by_name = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.hash != hash || s.name_len != name.len() {
                continue;
            }
            let name_end = s.start + s.name_len;
            if &self.data[s.start..name_end] != name {
                continue;
            }
            if &self.data[name_end..name_end + s.value_len] == value {
                return (Some(i), Some(by_name.unwrap_or(i)));
            }
            by_name.get_or_insert(i);
        }
        (None, by_name)
    }

    /// Evicts oldest entries until the size is at most `target` (section 4.4).
    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some(old) = self.slots.pop_back() else {
                break;
            };
            self.size -= old.size();
        }
        match self.slots.back() {
            Some(oldest) => self.dead = oldest.start,
            None => {
                self.data.clear();
                self.dead = 0;
            }
        }
    }

    /// Ensures `need` more bytes fit in the arena: reclaims the dead front once it is
    /// at least as large as the live bytes (so each byte is moved at most once per byte
    /// evicted), else grows the arena by doubling, never past twice the maximum size.
    /// Live bytes plus the new entry never exceed the maximum size, so at twice that the
    /// arena always has room after reclaiming and stops growing.
    fn make_room(&mut self, need: usize) {
        if self.data.len() + need <= self.data.capacity() {
            return;
        }
        if self.dead > 0 && self.dead >= self.data.len() - self.dead {
            self.data.drain(..self.dead);
            for s in &mut self.slots {
                s.start -= self.dead;
            }
            self.dead = 0;
            if self.data.len() + need <= self.data.capacity() {
                return;
            }
        }
        let least = self.data.len() + need;
        let want = (2 * self.data.capacity())
            .max(MIN_ARENA)
            .min(2 * self.max_size)
            .max(least);
        self.data.reserve_exact(want - self.data.len());
    }
}
