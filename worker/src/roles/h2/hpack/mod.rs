//! HPACK, header compression for HTTP/2 (RFC 7541), sans-IO: a [`Decoder`] turns a
//! complete header block (HEADERS plus its CONTINUATIONs, reassembled by the framing
//! layer) into fields, an [`Encoder`] turns fields into a block. Neither performs I/O;
//! the connection carries SETTINGS values in and blocks in and out.
//!
//! - [`integer`]: the prefixed integers of section 5.1, bounded to `u32`.
//! - [`huffman`]: the Appendix B code; a table-driven decoder, a nibble at a time.
//! - [`table`]: the static table (Appendix A) and the dynamic table (sections 2.3, 4).
//! - [`decoder`]: the representations of section 6, with the limits a server needs:
//!   size updates only at the start of a block and within the announced size (4.2,
//!   6.3), and SETTINGS_MAX_HEADER_LIST_SIZE against HPACK bombs (RFC 9113 6.5.2).
//! - [`encoder`]: static and dynamic matches, incremental indexing, never-indexed
//!   literals for sensitive fields (7.1.3), Huffman when it is shorter, and size
//!   updates for the peer's SETTINGS_HEADER_TABLE_SIZE (4.2).
//!
//! Written by hand rather than taken from the `h2` crate: h2's HPACK, like its framing,
//! is internal to a crate built on tokio's I/O traits, and lwsd's io_uring worker
//! drives sans-IO state machines from its own completion loop (DESIGN.md 4). Its test
//! vectors are the RFC's Appendix C and the public hpack-test-case stories (`tests`).

#![forbid(unsafe_code)]

pub mod decoder;
pub mod encoder;
pub mod error;
pub mod huffman;
pub mod integer;
pub mod table;

#[cfg(test)]
mod stories;
#[cfg(test)]
mod tests;

pub use decoder::{DEFAULT_MAX_HEADER_LIST_SIZE, Decoder};
pub use encoder::{DEFAULT_ENCODER_TABLE_SIZE, Encoder, Field};
pub use error::{Answer, COMPRESSION_ERROR, HpackError};
pub use table::{DEFAULT_TABLE_SIZE, ENTRY_OVERHEAD};

/// Whether a field must stay out of every compression table (RFC 7541 6.2.3): it
/// arrived as a never-indexed literal, or the sender marks it so. An intermediary
/// re-encoding it must keep it never-indexed (7.1.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sensitive {
    /// Any representation may be used.
    #[default]
    No,
    /// Never-indexed literal only (section 6.2.3).
    Yes,
}
