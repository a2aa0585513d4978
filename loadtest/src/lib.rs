//! lwsd-load: a WebSocket and HTTP/1.1 load generator for lwsd (and any server that
//! speaks RFC 6455 / RFC 9112 on plain TCP).
//!
//! - [`ws`]: many WebSocket client connections per thread on epoll, driven by lwsd's
//!   own sans-IO client state machine (`lwsd_worker::roles::ws`); echo/mirror round
//!   trips, mirror fan-out, idle holds.
//! - [`http`]: keep-alive, pipelined or connection-per-request GET load.
//! - [`pacer`], [`payload`], [`stats`], [`spec`], [`sys`], [`live`]: rate limiting, the
//!   timestamped test message, histograms and the report, command-line values, OS
//!   glue, counters shared between threads.
//! - [`cli`]: the command line, the progress bar, the run and its output.
//!
//! Written here rather than using wrk/h2load/tcpkali: none of those drives lwsd's own
//! client role (so the WebSocket client is exercised along with the server), embeds a
//! send timestamp for fan-out delivery latency, or holds tens of thousands of idle
//! WebSocket connections from one small process.

#![forbid(unsafe_code)]

pub mod cli;
pub mod http;
pub mod live;
pub mod pacer;
pub mod payload;
pub mod spec;
pub mod stats;
pub mod sys;
pub mod ws;
