//! (being written)
pub mod deflate;
