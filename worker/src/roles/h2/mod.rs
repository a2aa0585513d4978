//! HTTP/2 (RFC 9113), sans-IO: the frame layer, the stream state machine, HPACK
//! (RFC 7541) and the errors with their wire answers. Hand-written: the `h2` crate's
//! protocol code is tied to tokio's I/O traits and cannot run under lwsd's completion
//! (io_uring) loop.

#![forbid(unsafe_code)]

pub mod conn;
pub mod error;
pub mod frame;
pub mod hpack;
pub mod state;
