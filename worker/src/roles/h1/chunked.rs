//! Incremental decoder for the chunked transfer coding (RFC 9112 7.1), and the
//! encoder helpers for streamed response bodies.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! Hand-written (httparse only offers `parse_chunk_size`, which needs the whole size
//! line in one buffer and is lenient about extensions): this decoder works byte by
//! byte across any split of the input, never buffers (framing bytes are consumed as
//! they arrive, data is handed out as slices of the input), and is strict:
//!
//! - Line ends must be CRLF. RFC 9112 2.2 lets a recipient accept a bare LF, but chunk
//!   framing that two parsers read differently is how requests are smuggled through
//!   a proxy, so we take the grammar literally.
//! - Chunk extensions are skipped (7.1.1: "MUST ignore unrecognized extensions") but
//!   must be visible characters, SP or HTAB: a CTL (CR, LF, NUL) inside one is 400.
//! - Trailer fields are parsed for syntax and discarded (7.1.2 allows a recipient to
//!   drop them), bounded by the header limits.

use bytes::{BufMut, BytesMut};

use super::{ErrorKind, H1Error, H1Limits};

/// Longest chunk-size line we accept (size, extensions, not the CRLF). 16 hex digits
/// cover any u64 size; extensions are unused by browsers and curl, and 1 KiB leaves
/// room for the odd signed extension while keeping a flood of them cheap to refuse.
pub const MAX_CHUNK_LINE: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Reading chunk-size hex digits.
    Size,
    /// Skipping a chunk extension up to CR.
    Ext,
    /// Saw CR of the size line.
    SizeLf,
    /// Inside chunk-data.
    Data,
    /// After chunk-data, expecting CR then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// Saw CR of the final empty line.
    EndLf,
    Done,
}

/// What one [`ChunkedDecoder::decode`] call found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A piece of chunk-data, a subslice of the input.
    Data(&'a [u8]),
    /// All input consumed, body not finished.
    NeedMore,
    /// The body and its trailer section are complete.
    Done,
}

/// State of one chunked body being received.
#[derive(Clone, Debug)]
pub(crate) struct ChunkedDecoder {
    st: St,
    size: u64,
    /// Significant hex digits of the current size (leading zeros not counted).
    digits: u8,
    /// Whether any hex digit was seen on the current size line.
    any_digit: bool,
    line: usize,
    total: u64,
    trailer_bytes: usize,
    trailer_fields: usize,
}

#[inline]
fn is_tchar(b: u8) -> bool {
    // RFC 9110 5.6.2 token characters.
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[inline]
fn is_field_vchar(b: u8) -> bool {
    // RFC 9110 5.5: field-vchar / SP / HTAB, obs-text allowed.
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn bad(kind: ErrorKind) -> H1Error {
    H1Error::new(kind)
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        ChunkedDecoder {
            st: St::Size,
            size: 0,
            digits: 0,
            any_digit: false,
            line: 0,
            total: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }

    /// Consume framing bytes from `input` until a piece of data, the end of the body,
    /// or the end of the input. Returns the bytes consumed (which include a returned
    /// data slice) and the step.
    pub(crate) fn decode<'a>(
        &mut self,
        input: &'a [u8],
        limits: &H1Limits,
    ) -> Result<(usize, Step<'a>), H1Error> {
        let mut i = 0usize;
        while let Some(&b) = input.get(i) {
            match self.st {
                St::Data => {
                    let avail = (input.len() - i) as u64;
                    let n = self.size.min(avail) as usize;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.st = St::DataCr;
                    }
                    let data = input.get(i..i + n).unwrap_or(&[]);
                    return Ok((i + n, Step::Data(data)));
                }
                St::Size => {
                    let d = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    if let Some(d) = d {
                        self.any_digit = true;
                        if self.size != 0 || d != 0 {
                            self.digits += 1;
                            if self.digits > 16 {
                                // Does not fit in 64 bits: no body is that large.
                                return Err(bad(ErrorKind::BadChunk));
                            }
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.line += 1;
                    } else if !self.any_digit {
                        return Err(bad(ErrorKind::BadChunk));
                    } else {
                        match b {
                            // BWS before ";" (7.1.1) or the extension itself.
                            b';' | b' ' | b'\t' => {
                                self.st = St::Ext;
                                self.line += 1;
                            }
                            b'\r' => self.st = St::SizeLf,
                            _ => return Err(bad(ErrorKind::BadChunk)),
                        }
                    }
                    if self.line > MAX_CHUNK_LINE {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                }
                St::Ext => {
                    if b == b'\r' {
                        self.st = St::SizeLf;
                    } else if is_field_vchar(b) {
                        self.line += 1;
                        if self.line > MAX_CHUNK_LINE {
                            return Err(bad(ErrorKind::BadChunk));
                        }
                    } else {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                }
                St::SizeLf => {
                    if b != b'\n' {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                    self.line = 0;
                    self.digits = 0;
                    self.any_digit = false;
                    if self.size == 0 {
                        self.st = St::TrailerStart;
                    } else {
                        // Refuse as soon as the declared size passes the limit
                        // rather than after receiving it.
                        self.total = self
                            .total
                            .checked_add(self.size)
                            .filter(|&t| t <= limits.max_body)
                            .ok_or_else(|| bad(ErrorKind::BodyTooLarge))?;
                        self.st = St::Data;
                    }
                }
                St::DataCr => {
                    if b != b'\r' {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                    self.st = St::DataLf;
                }
                St::DataLf => {
                    if b != b'\n' {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                    self.st = St::Size;
                }
                St::TrailerStart => {
                    self.count_trailer_byte(limits)?;
                    if b == b'\r' {
                        self.st = St::EndLf;
                    } else if is_tchar(b) {
                        // No leading whitespace: that would be obs-fold (RFC 9112 5.2).
                        self.trailer_fields += 1;
                        if self.trailer_fields > limits.max_headers {
                            return Err(bad(ErrorKind::TooManyHeaders));
                        }
                        self.st = St::TrailerName;
                    } else {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                }
                St::TrailerName => {
                    self.count_trailer_byte(limits)?;
                    if b == b':' {
                        self.st = St::TrailerValue;
                    } else if !is_tchar(b) {
                        // Includes whitespace before the colon (RFC 9112 5.1).
                        return Err(bad(ErrorKind::BadChunk));
                    }
                }
                St::TrailerValue => {
                    self.count_trailer_byte(limits)?;
                    if b == b'\r' {
                        self.st = St::TrailerLf;
                    } else if !is_field_vchar(b) {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                }
                St::TrailerLf => {
                    self.count_trailer_byte(limits)?;
                    if b != b'\n' {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                    self.st = St::TrailerStart;
                }
                St::EndLf => {
                    self.count_trailer_byte(limits)?;
                    if b != b'\n' {
                        return Err(bad(ErrorKind::BadChunk));
                    }
                    self.st = St::Done;
                    return Ok((i + 1, Step::Done));
                }
                St::Done => return Ok((i, Step::Done)),
            }
            i += 1;
        }
        Ok((
            i,
            if self.st == St::Done {
                Step::Done
            } else {
                Step::NeedMore
            },
        ))
    }

    /// The trailer section is a header section: it shares `max_header_bytes`.
    #[inline]
    fn count_trailer_byte(&mut self, limits: &H1Limits) -> Result<(), H1Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > limits.max_header_bytes {
            return Err(bad(ErrorKind::HeadersTooLarge));
        }
        Ok(())
    }
}

/// The last chunk and an empty trailer section, ending a chunked body (RFC 9112 7.1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The CRLF that ends each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// Longest chunk header [`write_chunk_header`] writes: 16 hex digits + CRLF.
pub const MAX_CHUNK_HEADER: usize = 18;

/// Write a chunk-size line (`<hex>\r\n`) for `len` bytes of data; the caller sends
/// the data next (from its own buffer, no copy) and then [`CHUNK_END`]. `len` must
/// not be 0: a zero size is the last chunk, see [`LAST_CHUNK`].
#[inline]
pub fn write_chunk_header(out: &mut BytesMut, len: u64) {
    let mut tmp = [0u8; MAX_CHUNK_HEADER];
    let digits = if len == 0 {
        1
    } else {
        (64 - len.leading_zeros()).div_ceil(4) as usize
    };
    for (k, slot) in tmp[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - k);
        *slot = b"0123456789abcdef"[((len >> shift) & 0xf) as usize];
    }
    tmp[digits] = b'\r';
    tmp[digits + 1] = b'\n';
    out.put_slice(&tmp[..digits + 2]);
}

/// Write one whole chunk (header, data, CRLF) by copying `data`; for small pieces.
/// Empty data writes nothing (an empty chunk would end the body).
#[inline]
pub fn write_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + MAX_CHUNK_HEADER + 2);
    write_chunk_header(out, data.len() as u64);
    out.put_slice(data);
    out.put_slice(CHUNK_END);
}
