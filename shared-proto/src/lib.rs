//! What crosses lwsd's process boundaries (DESIGN.md sections 1 and 7).
//!
//! - [`msg`]: the control messages exchanged between the supervisor and each worker over
//!   a `SOCK_SEQPACKET` socketpair (one message per packet), and their versioned,
//!   hand-written little-endian encoding with a decoder that rejects anything malformed
//!   with a typed error and never panics.
//! - [`fdpass`]: sending and receiving one packet together with file descriptors in
//!   `SCM_RIGHTS` (unix(7)), the way accepted connections travel from the supervisor to a
//!   worker.
//! - [`handoff`]: the 64-bit token that names a connection's listener and peer when the
//!   supervisor sends its fd straight into a worker's io_uring (`IORING_OP_MSG_RING`).
//!
//! The encoding is hand-written rather than serde + bincode because the messages are
//! few and fixed, the decoder must be total on hostile bytes with exact limits, and the
//! hot message (`NewConns`, one per accept pass) must encode into a reused buffer
//! without allocating.

// `deny`, not `forbid`: one audited function in `fdpass` must turn the fd numbers the
// kernel installed via SCM_RIGHTS into `OwnedFd`s, which safe Rust cannot express.
#![deny(unsafe_code)]

pub mod fdpass;
pub mod handoff;
pub mod msg;

pub use fdpass::{recv, send};
pub use msg::{
    BusMessage, DecodeError, EncodeError, FromWorker, H2_CODES, H2_ERROR_CODES, MAX_BUS_CHANNEL,
    MAX_BUS_PAYLOAD, MAX_FDS_PER_MSG, MAX_MSG_SIZE, MAX_TICKET_KEYS, NewConn, PeerAddr,
    TLS_FAILURE_REASONS, TicketKey, ToWorker, WorkerStats,
};
