//! `lws-echo`: every message comes back whole, with its type (text or binary).
//!
//! Messages are reassembled (up to the connection's maximum message size, enforced by
//! the WebSocket role) and queued; each `writeable` callback sends one. When more than
//! [`MAX_QUEUED`] bytes wait to be echoed, reading stops (`rx_flow_control(false)`) until
//! the queue drains: a client that sends faster than it reads is slowed by TCP, never
//! buffered without bound. This is the protocol the Autobahn testsuite is pointed at.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::api::{CbResult, Close, Conn, FrameInfo, Protocol, WriteKind};

/// The protocol name clients ask for.
pub const NAME: &str = "lws-echo";

/// Bytes waiting to be echoed above which reading stops. 1 MiB: several messages of any
/// ordinary size, and one 16 MiB message still gets through (the check is between
/// messages).
pub const MAX_QUEUED: usize = 1 << 20;

pub struct Echo;

/// A connection's state.
#[derive(Default)]
pub struct EchoSession {
    partial: BytesMut,
    queue: VecDeque<(bool, Bytes)>,
    queued: usize,
    paused: bool,
}

impl Protocol for Echo {
    type Session = EchoSession;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<EchoSession, Close> {
        Ok(EchoSession::default())
    }

    fn receive(
        &mut self,
        conn: &mut Conn<'_>,
        s: &mut EchoSession,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult {
        if f.first && f.last {
            s.queue.push_back((f.binary, Bytes::copy_from_slice(data)));
            s.queued += data.len();
        } else {
            s.partial.extend_from_slice(data);
            if f.last {
                let msg = s.partial.split().freeze();
                s.queued += msg.len();
                s.queue.push_back((f.binary, msg));
            }
        }
        if f.last {
            conn.callback_on_writable();
            if s.queued > MAX_QUEUED && !s.paused {
                s.paused = true;
                conn.rx_flow_control(false);
            }
        }
        Ok(())
    }

    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut EchoSession) -> CbResult {
        let Some((binary, msg)) = s.queue.pop_front() else {
            return Ok(());
        };
        s.queued -= msg.len();
        let kind = if binary {
            WriteKind::Binary
        } else {
            WriteKind::Text
        };
        conn.write(kind, true, msg).map_err(|_| Close::INTERNAL)?;
        if s.queue.is_empty() {
            // Idle again: do not keep the queue's buffer (4 entries, 160 bytes) on a
            // connection that may now sit idle for hours.
            s.queue = VecDeque::new();
        } else {
            conn.callback_on_writable();
        }
        if s.paused && s.queued <= MAX_QUEUED / 2 {
            s.paused = false;
            conn.rx_flow_control(true);
        }
        Ok(())
    }
}
