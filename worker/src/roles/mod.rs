//! Sans-IO protocol roles. A role owns its state, takes bytes in and produces
//! bytes out plus events; it never touches a socket or a clock (time is passed in).

#![forbid(unsafe_code)]

pub mod h1;
pub mod h2;
pub mod tls;
pub mod ws;
