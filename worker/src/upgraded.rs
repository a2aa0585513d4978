//! An HTTP/1.1 connection after `Upgrade: websocket`: the connection's bytes are the
//! stream of one session (RFC 6455 section 4: after the 101 the connection carries
//! WebSocket frames and nothing else). [`Upgraded`] is the carrier's role for that state:
//! it gives the session the connection as its [`Stream`] and maps what the session
//! asks ([`Next`]) to what the connection core does ([`Flow`]).

use bytes::Bytes;

use crate::App;
use crate::api::{ConnAction, ConnId};
use crate::service::conn::OutQueue;
use crate::service::{Cx, Flow, Role};
use crate::session::ws::{OUT_HIGH_WATER, WsSession};
use crate::session::{Next, SessionCx, SessionId, Stream};
use crate::sink::Sink;

/// The connection's output queue as the stream of the session it carries.
struct ConnStream<'a> {
    id: SessionId,
    out: &'a mut OutQueue,
}

impl Sink for ConnStream<'_> {
    fn push(&mut self, b: Bytes) {
        self.out.push(b);
    }

    fn queued(&self) -> usize {
        self.out.len()
    }
}

impl Stream for ConnStream<'_> {
    fn id(&self) -> SessionId {
        self.id
    }

    fn send_data(&mut self, data: Bytes, _fin: bool) {
        // The end of the stream is the end of the connection: the session's close
        // handshake ends with Next::Close, which closes it.
        self.out.push(data);
    }

    fn credit(&self) -> usize {
        OUT_HIGH_WATER.saturating_sub(self.out.len())
    }
}

fn flow(n: Next) -> Flow {
    match n {
        Next::Continue => Flow::Continue,
        Next::Close { linger } => Flow::CloseAfterFlush { linger },
        Next::Abort => Flow::Abort,
    }
}

fn session_id(conn: ConnId) -> SessionId {
    SessionId { conn, stream: 0 }
}

/// The role of an upgraded HTTP/1.1 connection carrying a WebSocket session.
pub struct Upgraded {
    session: WsSession,
}

impl Upgraded {
    pub fn new(session: WsSession) -> Upgraded {
        Upgraded { session }
    }

    /// Runs `f` on the session with a [`SessionCx`] over the connection.
    fn with<R>(
        &mut self,
        cx: &mut Cx<'_>,
        f: impl FnOnce(&mut WsSession, &mut SessionCx<'_>) -> R,
    ) -> R {
        let id = session_id(cx.id);
        let mut stream = ConnStream { id, out: cx.out };
        let mut scx = SessionCx {
            id,
            app: cx.app,
            stream: &mut stream,
            now_ms: cx.now_ms,
            deadline: cx.deadline,
            draining: cx.draining,
        };
        f(&mut self.session, &mut scx)
    }
}

impl Role for Upgraded {
    fn on_data(&mut self, cx: &mut Cx<'_>, data: &mut [u8]) -> (usize, Flow) {
        let (used, next) = self.with(cx, |s, scx| s.on_data(scx, data));
        (used, flow(next))
    }

    fn on_sent(&mut self, cx: &mut Cx<'_>) -> Flow {
        flow(self.with(cx, |s, scx| s.on_sent(scx)))
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>) -> Flow {
        flow(self.with(cx, |s, scx| s.on_timer(scx)))
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) -> Flow {
        flow(self.with(cx, |s, scx| s.on_drain(scx)))
    }

    fn on_peer_eof(&mut self, _cx: &mut Cx<'_>) -> Flow {
        flow(self.session.on_peer_eof())
    }

    fn wants_input(&self) -> bool {
        self.session.wants_input()
    }

    fn wants_writeable(&self) -> bool {
        self.session.wants_writeable()
    }

    fn request_writeable(&mut self) {
        self.session.request_writeable();
    }

    fn protocol(&self) -> Option<u16> {
        self.session.protocol()
    }

    fn on_writeable(&mut self, cx: &mut Cx<'_>) -> Flow {
        flow(self.with(cx, |s, scx| s.on_writeable(scx)))
    }

    fn on_action(&mut self, cx: &mut Cx<'_>, _stream: u32, action: ConnAction) -> Flow {
        flow(self.with(cx, |s, scx| s.on_action(scx, action)))
    }

    fn on_closed(&mut self, app: &mut App, id: ConnId) {
        self.session.on_closed(app, session_id(id));
    }
}
