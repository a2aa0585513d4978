//! The lwsd worker: one process per core, one io_uring service thread, every
//! connection of that worker in a slab. See DESIGN.md sections 1 to 4.
//!
//! - [`roles`]: sans-IO protocol state machines (bytes in, bytes and events out).
//! - [`mount`]: what a URL maps to (files today; redirect, callback, cgi, proxy later).
//! - [`service`]: the only module that does I/O: the io_uring loop.

pub mod assets;
pub mod config;
pub mod mount;
pub mod roles;
