//! `lws-echo`: every message comes back whole, with its type (text or binary).
//!
//! Messages are reassembled (up to the connection's maximum message size, enforced by
//! the WebSocket role) and queued; each `writeable` callback sends one. When more than
//! [`MAX_QUEUED`] bytes wait to be echoed, reading stops (`rx_flow_control(false)`) until
//! the queue drains: a client that sends faster than it reads is slowed by TCP, never
//! buffered without bound. This is the protocol the Autobahn testsuite is pointed at.

use std::collections::VecDeque;

use crate::api::{CbResult, Close, Conn, FrameInfo, Payload, Protocol, WriteKind};

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
    /// A fragmented message being collected (with its frame header's room in front).
    partial: Option<Payload>,
    queue: VecDeque<(bool, Payload)>,
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
        // Copied once, into a buffer with room for the echo's frame header in front:
        // the echo then leaves as that one buffer (Conn::write_payload).
        if f.first && f.last {
            s.queue
                .push_back((f.binary, Payload::copy_from_slice(data)));
            s.queued += data.len();
        } else {
            // Sized for what this frame announces, up to 64 KiB: a peer's announced
            // length is not a reason to allocate it before it arrives.
            let hint = data.len() + (f.remaining as usize).min(64 * 1024);
            let p = s
                .partial
                .get_or_insert_with(|| Payload::with_capacity(hint));
            p.extend_from_slice(data);
            if f.last
                && let Some(msg) = s.partial.take()
            {
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
        conn.write_payload(kind, true, msg)
            .map_err(|_| Close::INTERNAL)?;
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
