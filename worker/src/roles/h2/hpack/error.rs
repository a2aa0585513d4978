//! What can go wrong decoding a header block, who is to blame, and the wire answer.

use std::fmt;

use super::huffman::HuffmanError;

/// A header block the decoder refused. Every variant but [`HeaderListTooLarge`] is the
/// peer's fault and leaves the decoding context unusable, so it is a connection error
/// of type COMPRESSION_ERROR (RFC 9113 4.3); [`HeaderListTooLarge`] is a local limit
/// reached by a well-formed block, decoded to its end so the dynamic table stays in
/// step with the peer's, and only the stream is refused.
///
/// [`HeaderListTooLarge`]: HpackError::HeaderListTooLarge
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation (an integer, or a literal's name or
    /// value missing).
    Truncated,
    /// A string literal's length runs past the end of the block (RFC 7541 5.2).
    StringPastEnd { len: usize, left: usize },
    /// An integer above `u32::MAX` or spread over more continuation bytes than any
    /// such value needs (RFC 7541 5.1, "implementation limits").
    IntegerOverflow,
    /// Index 0 in an indexed header field (RFC 7541 6.1: "MUST be treated as a decoding
    /// error").
    IndexZero,
    /// An index past both tables (RFC 7541 2.3.3: "MUST be treated as a decoding
    /// error"); `max` is the highest valid index then.
    IndexOutOfRange { index: usize, max: usize },
    /// A Huffman-coded string with EOS in it, or bad padding (RFC 7541 5.2).
    Huffman(HuffmanError),
    /// A dynamic table size update after the first field of a block (RFC 7541 4.2:
    /// "MUST occur at the beginning of the first header block following the change").
    SizeUpdateNotAtStart,
    /// A dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE this endpoint
    /// announced (RFC 7541 6.3: "MUST be treated as a decoding error").
    SizeUpdateAboveLimit { size: usize, limit: usize },
    /// This endpoint lowered its SETTINGS_HEADER_TABLE_SIZE below the table's maximum
    /// size, and the next block did not start with a size update within the new limit
    /// (RFC 7541 4.2: the encoder "MUST signal" it).
    SizeUpdateMissing { limit: usize },
    /// The decoded header list is larger than the SETTINGS_MAX_HEADER_LIST_SIZE this
    /// endpoint enforces (RFC 9113 6.5.2: name + value + 32 per field). A local limit:
    /// the rest of the block was still decoded to keep the table in step, but no field
    /// past the limit was delivered.
    HeaderListTooLarge { limit: usize },
}

/// The wire answer to an [`HpackError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// GOAWAY with COMPRESSION_ERROR (0x9): the peer broke HPACK and the decoding
    /// context is lost, so the connection cannot go on (RFC 9113 4.3).
    CompressionError,
    /// The request is refused but the connection goes on: a server answers 431
    /// (Request Header Fields Too Large, RFC 6585 5) or resets the stream (RST_STREAM),
    /// RFC 9113 8.2.3 / 10.5.1.
    HeaderListTooLarge,
}

/// The HTTP/2 error code COMPRESSION_ERROR (RFC 9113 7).
pub const COMPRESSION_ERROR: u32 = 0x9;

impl HpackError {
    /// How the connection answers this error.
    pub fn answer(&self) -> Answer {
        match self {
            HpackError::HeaderListTooLarge { .. } => Answer::HeaderListTooLarge,
            _ => Answer::CompressionError,
        }
    }

    /// Whether the decoding context is still in step with the peer's encoder (only a
    /// local limit leaves it so).
    pub fn context_intact(&self) -> bool {
        self.answer() == Answer::HeaderListTooLarge
    }
}

impl From<HuffmanError> for HpackError {
    fn from(e: HuffmanError) -> HpackError {
        HpackError::Huffman(e)
    }
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => write!(f, "peer's header block ends inside a field"),
            HpackError::StringPastEnd { len, left } => write!(
                f,
                "peer's string literal of {len} bytes runs past the block ({left} left)"
            ),
            HpackError::IntegerOverflow => {
                write!(
                    f,
                    "peer's HPACK integer exceeds 2^32-1 or 5 continuation bytes"
                )
            }
            HpackError::IndexZero => write!(f, "peer sent HPACK index 0"),
            HpackError::IndexOutOfRange { index, max } => {
                write!(
                    f,
                    "peer's HPACK index {index} is past the tables (max {max})"
                )
            }
            HpackError::Huffman(HuffmanError::Eos) => {
                write!(f, "peer's Huffman string contains EOS")
            }
            HpackError::Huffman(HuffmanError::Padding) => write!(
                f,
                "peer's Huffman string has padding that is not 1 to 7 one bits"
            ),
            HpackError::SizeUpdateNotAtStart => {
                write!(f, "peer's dynamic table size update follows a header field")
            }
            HpackError::SizeUpdateAboveLimit { size, limit } => write!(
                f,
                "peer's dynamic table size update to {size} exceeds the announced {limit}"
            ),
            HpackError::SizeUpdateMissing { limit } => write!(
                f,
                "peer did not signal a dynamic table size update after the limit fell to {limit}"
            ),
            HpackError::HeaderListTooLarge { limit } => {
                write!(
                    f,
                    "peer's header list exceeds the local limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for HpackError {}
