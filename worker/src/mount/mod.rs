//! Mounts: what a URL path maps to.

pub mod file;
pub mod mime;
