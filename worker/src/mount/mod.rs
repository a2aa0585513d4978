//! Mounts: what a URL path maps to.

#![forbid(unsafe_code)]

pub mod file;
pub mod mime;
