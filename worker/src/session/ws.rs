//! The WebSocket session: the sans-IO [`WsConn`] state machine joined to the protocol
//! the handshake chose, over a [`Stream`](super::Stream)'s data (an HTTP/1.1 connection
//! after the upgrade; an HTTP/2 stream by RFC 8441).
//!
//! Received data goes to [`Protocol::receive`] as it arrives (pieces of messages with
//! [`FrameInfo`], lws style). Writes happen only in [`Protocol::writeable`], called by the
//! loop when the protocol asked for it and no send is in flight. `rx_flow_control(false)`
//! stops consuming input: the loop then stops reading the socket. Control-frame answers
//! (pongs, the close reply) are queued as they arise; if the peer does not read them and
//! more than [`OUT_HIGH_WATER`] bytes wait, input is not consumed until they drain, so a
//! ping flood cannot grow memory.
//!
//! [`Protocol::receive`]: crate::api::Protocol::receive
//! [`Protocol::writeable`]: crate::api::Protocol::writeable

use std::any::Any;

use super::{Next, SessionCx, SessionId, StreamExtend};
use crate::App;
use crate::api::{Close, Conn, ConnAction, ConnFlags, FrameInfo, Vhost};
use crate::roles::ws::conn::{Action, Event, WsConn, WsState};

/// Queued output above which a WebSocket connection stops consuming input until it
/// drains (control-frame replies to a peer that does not read).
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// One WebSocket connection bound to its protocol: 120 bytes, and no heap of its own
/// while idle (the protocol's session is the one other allocation).
pub struct WsSession {
    ws: WsConn,
    session: Option<Box<dyn Any>>,
    flags: ConnFlags,
    proto: u16,
}

impl WsSession {
    pub fn new(ws: WsConn, proto: u16) -> WsSession {
        WsSession {
            ws,
            proto,
            session: None,
            flags: ConnFlags::default(),
        }
    }

    /// Runs `f` with the protocol instance, a [`Conn`] handle and the session.
    fn callback<R>(
        &mut self,
        cx: &mut SessionCx<'_>,
        writeable: bool,
        f: impl FnOnce(&mut dyn crate::api::DynProtocol, &mut Conn<'_>, &mut dyn Any) -> R,
    ) -> Option<R> {
        let app = &mut *cx.app;
        let proto = app.protocols.list.get_mut(self.proto as usize)?.as_mut()?;
        let session = self.session.as_mut()?;
        self.flags.in_writeable = writeable;
        self.flags.wrote = false;
        let mut conn = Conn {
            id: cx.id.conn_id(),
            ws: if writeable { Some(&mut self.ws) } else { None },
            out: &mut *cx.stream,
            flags: &mut self.flags,
            vhost: Vhost {
                shared: &mut app.plugin,
                protocol: self.proto,
            },
            written: 0,
        };
        let r = f(proto.as_mut(), &mut conn, session.as_mut());
        app.stats.wire.ws_bytes_tx += conn.written;
        self.flags.in_writeable = false;
        Some(r)
    }

    fn establish(&mut self, cx: &mut SessionCx<'_>) -> Option<Next> {
        self.flags.established = true;
        let app = &mut *cx.app;
        let Some(proto) = app
            .protocols
            .list
            .get_mut(self.proto as usize)
            .and_then(|p| p.as_mut())
        else {
            return Some(self.fail(cx, Close::INTERNAL));
        };
        let mut conn = Conn {
            id: cx.id.conn_id(),
            ws: None,
            out: &mut *cx.stream,
            flags: &mut self.flags,
            vhost: Vhost {
                shared: &mut app.plugin,
                protocol: self.proto,
            },
            written: 0,
        };
        match proto.established(&mut conn) {
            Ok(s) => {
                self.session = Some(s);
                cx.app.stats.wire.ws_conns += 1;
                None
            }
            Err(c) => Some(self.fail(cx, c)),
        }
    }

    /// Starts the close handshake with `c` (or, if it is already under way, waits).
    fn fail(&mut self, cx: &mut SessionCx<'_>, c: Close) -> Next {
        let _ = self.ws.close_into(
            c.code,
            c.reason,
            cx.now_ms,
            &mut StreamExtend(&mut *cx.stream),
        );
        self.after(cx)
    }

    /// After any event: apply a requested close, move output, set the timer, and say
    /// whether the connection is finished.
    fn after(&mut self, cx: &mut SessionCx<'_>) -> Next {
        if let Some(c) = self.flags.close.take() {
            let _ = self.ws.close_into(
                c.code,
                c.reason,
                cx.now_ms,
                &mut StreamExtend(&mut *cx.stream),
            );
        }
        *cx.deadline = self.ws.next_deadline().unwrap_or(u64::MAX);
        if self.ws.state() == WsState::Closed {
            // The closing handshake is over (or the peer failed it): the server closes
            // the TCP connection first (RFC 6455 7.1.1).
            return Next::Close { linger: false };
        }
        Next::Continue
    }
}

impl WsSession {
    pub fn on_data(&mut self, cx: &mut SessionCx<'_>, data: &mut [u8]) -> (usize, Next) {
        if !self.flags.established
            && let Some(flow) = self.establish(cx)
        {
            return (data.len(), flow);
        }
        if self.flags.answer_pending
            && self.flags.want_writeable
            && self.ws.state() == WsState::Open
        {
            // The loop keeps the bytes and feeds them again after `writeable`.
            return (0, Next::Continue);
        }
        self.flags.answer_pending = false;
        let mut pos = 0;
        while pos < data.len() && self.wants_input() && cx.stream.queued() < OUT_HIGH_WATER {
            let prog = match self.ws.process_into(
                &mut data[pos..],
                cx.now_ms,
                &mut StreamExtend(&mut *cx.stream),
            ) {
                Ok(p) => p,
                Err(_) => {
                    // A protocol error: the close frame (1002/1007/1009) is queued and the
                    // state is Closed. Nothing more is read.
                    return (data.len(), Next::Close { linger: true });
                }
            };
            pos += prog.consumed;
            let chunk = match prog.event {
                None => break,
                Some(Event::Data(c)) => c,
                Some(Event::Pong(_)) | Some(Event::Close(_)) => continue,
                Some(Event::Blocked) => break,
            };
            let info = FrameInfo {
                first: chunk.first,
                last: chunk.last,
                binary: chunk.binary,
                remaining: chunk.remaining,
            };
            let payload = chunk.payload;
            cx.app.stats.wire.ws_bytes_rx += payload.len() as u64;
            if info.last {
                cx.app.stats.wire.ws_msgs_rx += 1;
            }
            // The chunk borrows `self.ws`: the callback gets no writer (writes belong in
            // `writeable`), which is what lets the payload stay in place, unmasked.
            let app = &mut *cx.app;
            let (Some(proto), Some(session)) = (
                app.protocols
                    .list
                    .get_mut(self.proto as usize)
                    .and_then(|p| p.as_mut()),
                self.session.as_mut(),
            ) else {
                break;
            };
            let mut conn = Conn {
                id: cx.id.conn_id(),
                ws: None,
                out: &mut *cx.stream,
                flags: &mut self.flags,
                vhost: Vhost {
                    shared: &mut app.plugin,
                    protocol: self.proto,
                },
                written: 0,
            };
            if let Err(c) = proto.receive(&mut conn, session.as_mut(), payload, info) {
                self.flags.close = Some(Box::new(c));
            }
            if self.flags.close.is_some() {
                break;
            }
            if info.last && self.flags.want_writeable {
                // Let the protocol answer this message before the next is read: its
                // answer then precedes anything a later frame causes (a close on a
                // protocol error, say). The loop feeds the rest after `writeable`.
                self.flags.answer_pending = true;
                break;
            }
        }
        let flow = self.after(cx);
        if matches!(flow, Next::Close { .. }) {
            return (data.len(), flow);
        }
        (pos, flow)
    }

    pub fn on_sent(&mut self, cx: &mut SessionCx<'_>) -> Next {
        // Everything queued went out: a compressing connection without context takeover
        // frees its zlib streams (~300-400 KiB) until its next compressed message.
        if self.ws.compression().is_some() {
            self.ws.release_idle_memory();
        }
        self.after(cx)
    }

    pub fn on_timer(&mut self, cx: &mut SessionCx<'_>) -> Next {
        match self
            .ws
            .on_timer_into(cx.now_ms, &mut StreamExtend(&mut *cx.stream))
        {
            Action::Hangup => Next::Abort,
            Action::Write | Action::Idle => self.after(cx),
        }
    }

    pub fn on_drain(&mut self, cx: &mut SessionCx<'_>) -> Next {
        // 1001: the server is going away (RFC 6455 7.4.1).
        self.fail(cx, Close::new(1001, "server shutting down"))
    }

    pub fn on_peer_eof(&mut self) -> Next {
        // A TCP close without a close frame: 1006 for the protocol (nothing to send).
        Next::Abort
    }

    pub fn wants_input(&self) -> bool {
        !self.flags.rx_disabled
    }

    pub fn wants_writeable(&self) -> bool {
        self.flags.want_writeable && self.ws.state() == WsState::Open
    }

    pub fn request_writeable(&mut self) {
        self.flags.want_writeable = true;
    }

    pub fn protocol(&self) -> Option<u16> {
        Some(self.proto)
    }

    pub fn on_writeable(&mut self, cx: &mut SessionCx<'_>) -> Next {
        self.flags.want_writeable = false;
        self.flags.answer_pending = false;
        let r = self.callback(cx, true, |p, conn, s| p.writeable(conn, s));
        if self.flags.wrote {
            cx.app.stats.wire.ws_msgs_tx += 1;
        }
        if let Some(Err(c)) = r {
            self.flags.close = Some(Box::new(c));
        }
        self.after(cx)
    }

    pub fn on_action(&mut self, cx: &mut SessionCx<'_>, action: ConnAction) -> Next {
        match action {
            ConnAction::Writeable => self.flags.want_writeable = true,
            ConnAction::RxFlow(enable) => self.flags.rx_disabled = !enable,
            ConnAction::Close(c) => self.flags.close = Some(Box::new(c)),
        }
        self.after(cx)
    }

    pub fn on_closed(&mut self, app: &mut App, id: SessionId) {
        if let Some(session) = self.session.take() {
            app.stats.wire.ws_conns = app.stats.wire.ws_conns.saturating_sub(1);
            if let Some(proto) = app
                .protocols
                .list
                .get_mut(self.proto as usize)
                .and_then(|p| p.as_mut())
            {
                let mut vh = Vhost {
                    shared: &mut app.plugin,
                    protocol: self.proto,
                };
                proto.closed(&mut vh, id.conn_id(), session);
            }
        }
    }
}
