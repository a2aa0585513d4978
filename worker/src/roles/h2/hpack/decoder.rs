//! The HPACK decoder (RFC 7541 3.2, 6): one per connection, fed every header block
//! the peer sends, in order (the dynamic table is shared by all the connection's
//! streams).
//!
//! Fields are delivered to a callback as byte slices, borrowed from the block itself
//! (plain literals), from the tables (indexed fields and names), or from two scratch
//! buffers reused across fields and blocks (Huffman-coded literals): no allocation per
//! field once the buffers and the table's arena have grown to their working size.
//!
//! Limits: every integer fits in `u32` ([`super::integer`]); a dynamic table
//! size update may only open a block and may not exceed the SETTINGS_HEADER_TABLE_SIZE
//! this endpoint announced (4.2, 6.3); the decoded header list may not exceed
//! SETTINGS_MAX_HEADER_LIST_SIZE. That last limit is what stops an HPACK bomb, a small
//! block that repeats one large table entry thousands of times by index: fields stop
//! being delivered as soon as the sum passes the limit, and the rest of the block is
//! only parsed (entries it inserts still go into the table, so the context stays in
//! step with the peer's and the connection can go on after refusing the stream). The
//! work past the limit is bounded by the block's length, which the framing layer
//! bounds.

use super::integer;
use super::table::{DYNAMIC_BASE, DynamicTable, ENTRY_OVERHEAD, STATIC};
use super::{HpackError, Sensitive, huffman};

/// Default SETTINGS_MAX_HEADER_LIST_SIZE: 32 KiB. HTTP/1.1's defaults allow an 8 KiB
/// request line and a 16 KiB header section (`H1Limits`); the list size also counts 32
/// bytes per field (2 KiB for h1's 64 fields), so 32 KiB admits whatever h1 admits and
/// bounds what one stream's headers can cost.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: usize = 32 * 1024;

/// The decoding context of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE this endpoint announced (and the peer ACKed):
    /// the largest size update the peer may send (section 6.3).
    limit: usize,
    /// The limit fell below the table's maximum size: the next block must open with a
    /// size update (section 4.2).
    update_required: bool,
    /// SETTINGS_MAX_HEADER_LIST_SIZE enforced on each block.
    max_list_size: usize,
    /// Scratch for Huffman-decoded names and values (and dynamic-table names, copied so
    /// the table may change while they are in use).
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// The literal representations (RFC 7541 6.2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Literal {
    /// 6.2.1: added to the dynamic table.
    Incremental,
    /// 6.2.2: not added.
    Without,
    /// 6.2.3: not added, here or by any intermediary.
    Never,
}

impl Decoder {
    /// A decoder for a connection on which this endpoint announces
    /// SETTINGS_HEADER_TABLE_SIZE `max_table_size` (4096 if it announces nothing,
    /// [`DEFAULT_TABLE_SIZE`](super::DEFAULT_TABLE_SIZE)); the dynamic table starts at
    /// that maximum size. The header list limit is
    /// [`DEFAULT_MAX_HEADER_LIST_SIZE`].
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            limit: max_table_size,
            update_required: false,
            max_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// This endpoint's SETTINGS_HEADER_TABLE_SIZE changed (call when the peer ACKs the
    /// SETTINGS carrying it). When it falls below the table's current maximum size, the
    /// peer's next block must open with a size update within it (section 4.2).
    pub fn set_max_table_size(&mut self, limit: usize) {
        self.limit = limit;
        if limit < self.table.max_size() {
            self.update_required = true;
        }
    }

    /// The SETTINGS_MAX_HEADER_LIST_SIZE to enforce (RFC 9113 6.5.2).
    pub fn set_max_header_list_size(&mut self, max: usize) {
        self.max_list_size = max;
    }

    /// The announced SETTINGS_HEADER_TABLE_SIZE.
    pub fn max_table_size(&self) -> usize {
        self.limit
    }

    /// The dynamic table's size (section 4.1) and its current maximum (4.2).
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

    /// The dynamic table's entry at `position` (0 = newest = index 62).
    pub fn table_entry(&self, position: usize) -> Option<(&[u8], &[u8])> {
        self.table.get(position)
    }

    /// Decodes one complete header block, calling `emit(name, value, sensitive)` for
    /// each field in order. On an error the fields already emitted belong to a refused
    /// block and must be discarded; after [`HpackError::HeaderListTooLarge`] the
    /// decoder remains usable (see [`HpackError::context_intact`]), after any other
    /// error the connection must end with COMPRESSION_ERROR.
    pub fn decode<F>(&mut self, block: &[u8], mut emit: F) -> Result<(), HpackError>
    where
        F: FnMut(&[u8], &[u8], Sensitive),
    {
        let Decoder {
            table,
            limit,
            update_required,
            max_list_size,
            name_buf,
            value_buf,
        } = self;
        if *update_required && block.first().is_none_or(|&b| b & 0xe0 != 0x20) {
            return Err(HpackError::SizeUpdateMissing { limit: *limit });
        }
        let mut pos = 0;
        let mut fields_started = false;
        let mut list_size = 0usize;
        let mut over = false;
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // 6.1 Indexed Header Field: 1xxxxxxx, 7-bit index.
                let (index, n) = integer::decode(&block[pos..], 7)?;
                pos += n;
                fields_started = true;
                let (name, value) = lookup(table, index)?;
                if !over {
                    list_size += name.len() + value.len() + ENTRY_OVERHEAD;
                    over = list_size > *max_list_size;
                    if !over {
                        emit(name, value, Sensitive::No);
                    }
                }
                continue;
            }
            if first & 0xe0 == 0x20 {
                // 6.3 Dynamic Table Size Update: 001xxxxx, 5-bit size.
                if fields_started {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let (size, n) = integer::decode(&block[pos..], 5)?;
                pos += n;
                if size > *limit {
                    return Err(HpackError::SizeUpdateAboveLimit {
                        size,
                        limit: *limit,
                    });
                }
                table.set_max_size(size);
                *update_required = false;
                continue;
            }
            // 6.2 Literal Header Field: 01xxxxxx (6-bit name index), 0001xxxx and
            // 0000xxxx (4-bit name index); index 0 means a literal name follows.
            let (kind, prefix) = if first & 0xc0 == 0x40 {
                (Literal::Incremental, 6)
            } else if first & 0xf0 == 0x10 {
                (Literal::Never, 4)
            } else {
                (Literal::Without, 4)
            };
            fields_started = true;
            let (index, n) = integer::decode(&block[pos..], prefix)?;
            pos += n;
            // Past the list limit only table insertions matter; other literals are
            // skipped without decoding.
            let wanted = !over || kind == Literal::Incremental;
            let name: &[u8] = if index == 0 {
                string(block, &mut pos, name_buf, wanted)?
            } else if index < DYNAMIC_BASE {
                STATIC[index - 1].0
            } else {
                // Copied: inserting this field may evict the entry it names (4.4).
                let (entry_name, _) = lookup(table, index)?;
                name_buf.clear();
                name_buf.extend_from_slice(entry_name);
                name_buf
            };
            let value = string(block, &mut pos, value_buf, wanted)?;
            if !over {
                list_size += name.len() + value.len() + ENTRY_OVERHEAD;
                over = list_size > *max_list_size;
                if !over {
                    let sensitive = match kind {
                        Literal::Never => Sensitive::Yes,
                        _ => Sensitive::No,
                    };
                    emit(name, value, sensitive);
                }
            }
            if kind == Literal::Incremental {
                table.insert(name, value);
            }
        }
        if over {
            return Err(HpackError::HeaderListTooLarge {
                limit: *max_list_size,
            });
        }
        Ok(())
    }
}

/// The field at `index` in the static or dynamic table (RFC 7541 2.3.3).
fn lookup(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    if index == 0 {
        return Err(HpackError::IndexZero);
    }
    if index < DYNAMIC_BASE {
        return Ok(STATIC[index - 1]);
    }
    table
        .get(index - DYNAMIC_BASE)
        .ok_or(HpackError::IndexOutOfRange {
            index,
            max: DYNAMIC_BASE - 1 + table.len(),
        })
}

/// Reads a string literal (RFC 7541 5.2: H bit, 7-bit length, the octets) at `*pos`
/// and advances past it. Plain strings are borrowed from the block, Huffman-coded ones
/// decoded into `scratch`. With `wanted` false the string is only skipped (empty
/// result).
fn string<'a>(
    block: &'a [u8],
    pos: &mut usize,
    scratch: &'a mut Vec<u8>,
    wanted: bool,
) -> Result<&'a [u8], HpackError> {
    let Some(&first) = block.get(*pos) else {
        return Err(HpackError::Truncated);
    };
    let (len, n) = integer::decode(&block[*pos..], 7)?;
    let start = *pos + n;
    let left = block.len() - start;
    if len > left {
        return Err(HpackError::StringPastEnd { len, left });
    }
    *pos = start + len;
    let raw = &block[start..start + len];
    if !wanted {
        return Ok(&[]);
    }
    if first & 0x80 == 0 {
        return Ok(raw);
    }
    scratch.clear();
    huffman::decode(raw, scratch)?;
    Ok(scratch)
}
