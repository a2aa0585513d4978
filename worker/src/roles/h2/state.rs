//! The stream state machine (RFC 9113 section 5.1), stream identifier rules (5.1.1)
//! and flow-control window arithmetic (6.9).
//!
//! ```text
//!                              +--------+
//!                      send PP |        | recv PP
//!                     ,--------+  idle  +--------.
//!                    /         |        |         \
//!                   v          +--------+          v
//!            +----------+          |           +----------+
//!            |          |          | send H /  |          |
//!     ,------+ reserved |          | recv H    | reserved +------.
//!     |      | (local)  |          |           | (remote) |      |
//!     |      +---+------+          v           +------+---+      |
//!     |          |             +--------+             |          |
//!     |          |     recv ES |        | send ES     |          |
//!     |   send H |     ,-------+  open  +-------.     | recv H   |
//!     |          |    /        |        |        \    |          |
//!     |          v   v         +---+----+         v   v          |
//!     |      +----------+          |           +----------+      |
//!     |      |   half-  |          |           |   half-  |      |
//!     |      |  closed  |          | send R /  |  closed  |      |
//!     |      | (remote) |          | recv R    | (local)  |      |
//!     |      +----+-----+          |           +-----+----+      |
//!     |           |                |                 |           |
//!     |           | send ES /      |       recv ES / |           |
//!     |           |  send R /      v        send R / |           |
//!     |           |  recv R    +--------+   recv R   |           |
//!     | send R /  `----------->|        |<-----------'  send R / |
//!     | recv R                 | closed |               recv R   |
//!     `----------------------->|        |<-----------------------'
//!                              +--------+
//!
//!    send:   endpoint sends this frame
//!    recv:   endpoint receives this frame
//!
//!    H:  HEADERS frame (with implied CONTINUATION frames)
//!    ES: END_STREAM flag
//!    R:  RST_STREAM frame
//!    PP: PUSH_PROMISE frame (with implied CONTINUATION frames); state
//!        transitions are for the promised stream
//! ```
//!
//! (Figure 2 of RFC 9113.) The reserved states are modelled although lwsd's server
//! neither sends nor accepts pushes (the frame parser refuses PUSH_PROMISE from a
//! client, 8.4): the client side reuses these roles, and modelling them keeps the
//! table below the RFC's, state for state. PRIORITY never changes a state (5.3.2).
//!
//! [`State::recv`] says whether a received frame is processed, ignored (frames in
//! flight when this endpoint reset the stream) or an error, and of which kind;
//! [`State::send`] refuses what this endpoint must not send (a bug here, blamed on the
//! local side). [`StreamIds`] checks identifiers of new streams and gives the state of
//! streams the connection keeps no entry for. [`Window`] is one flow-control window.

use super::error::{ErrorCode, H2Error};
use super::frame::settings::MAX_WINDOW_SIZE;
use super::frame::{Side, StreamId};

/// A stream's state (section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    /// This endpoint promised the stream (sent PUSH_PROMISE).
    ReservedLocal,
    /// The peer promised the stream (received PUSH_PROMISE).
    ReservedRemote,
    Open,
    /// This endpoint sent END_STREAM; the peer may still send.
    HalfClosedLocal,
    /// The peer sent END_STREAM; this endpoint may still send.
    HalfClosedRemote,
    Closed(Cause),
}

/// How a stream closed: decides what late frames mean (section 5.1, "closed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Both sides sent END_STREAM.
    EndStream,
    /// This endpoint sent RST_STREAM: the peer "could receive any type of frame" sent
    /// before it saw the reset, so every frame is minimally processed and discarded
    /// (HEADERS still go through HPACK, DATA still counts against the connection
    /// window). The connection forgets such a stream after a while (5.1 says "for a
    /// while"), and it becomes [`Cause::Forgotten`].
    ResetLocal,
    /// The peer sent RST_STREAM.
    ResetRemote,
    /// A stream this endpoint no longer keeps (closed long ago), or one that was never
    /// opened and is closed implicitly because a higher identifier was used (5.1.1).
    Forgotten,
}

/// A frame, as far as the state machine cares (CONTINUATION is part of the HEADERS or
/// PUSH_PROMISE before it and changes nothing; SETTINGS, PING and GOAWAY have no
/// stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Headers {
        end_stream: bool,
    },
    Data {
        end_stream: bool,
    },
    RstStream,
    WindowUpdate,
    Priority,
    /// A PUSH_PROMISE promising this stream (it is sent on another, open stream).
    PushPromise,
}

/// What to do with a received frame the state allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process the frame.
    Process,
    /// Minimally process it (HPACK for a field block, the connection window for DATA)
    /// and discard it (section 5.1, "closed").
    Ignore,
}

use Event as Ev;
use State as S;

impl State {
    /// The frame `ev` arrived on stream `id` in this state: moves to the next state,
    /// or says which error answers it (section 5.1, each state's paragraph).
    pub fn recv(&mut self, id: StreamId, ev: Event) -> Result<Verdict, H2Error> {
        use ErrorCode as E;
        let proto = |reason| Err(H2Error::connection(E::PROTOCOL_ERROR, reason));
        let closed = |reason| Err(H2Error::stream(id, E::STREAM_CLOSED, reason));
        let next = match (*self, ev) {
            // PRIORITY "can be sent in any state" (6.3) and is ignored (5.3.2).
            (_, Ev::Priority) => return Ok(Verdict::Process),

            // idle: "Receiving any frame other than HEADERS or PRIORITY on a stream in
            // this state MUST be treated as a connection error of type PROTOCOL_ERROR."
            // (A PUSH_PROMISE arrives on another stream and reserves this one.)
            (S::Idle, Ev::Headers { end_stream: false }) => S::Open,
            (S::Idle, Ev::Headers { end_stream: true }) => S::HalfClosedRemote,
            (S::Idle, Ev::PushPromise) => S::ReservedRemote,
            (S::Idle, _) => return proto("frame other than HEADERS on an idle stream"),

            // reserved (local): "Receiving any type of frame other than RST_STREAM,
            // PRIORITY, or WINDOW_UPDATE ... connection error of type PROTOCOL_ERROR."
            (S::ReservedLocal, Ev::RstStream) => S::Closed(Cause::ResetRemote),
            (S::ReservedLocal, Ev::WindowUpdate) => return Ok(Verdict::Process),
            (S::ReservedLocal, _) => {
                return proto("frame not allowed on a reserved (local) stream");
            }

            // reserved (remote): "Receiving any type of frame other than HEADERS,
            // RST_STREAM, or PRIORITY ... connection error of type PROTOCOL_ERROR."
            (S::ReservedRemote, Ev::Headers { end_stream: false }) => S::HalfClosedLocal,
            (S::ReservedRemote, Ev::Headers { end_stream: true }) => S::Closed(Cause::EndStream),
            (S::ReservedRemote, Ev::RstStream) => S::Closed(Cause::ResetRemote),
            (S::ReservedRemote, _) => {
                return proto("frame not allowed on a reserved (remote) stream");
            }

            // open / half-closed (local): "frames of any type" may be received; END_STREAM
            // moves on, RST_STREAM closes.
            (S::Open, Ev::Headers { end_stream: true } | Ev::Data { end_stream: true }) => {
                S::HalfClosedRemote
            }
            (
                S::HalfClosedLocal,
                Ev::Headers { end_stream: true } | Ev::Data { end_stream: true },
            ) => S::Closed(Cause::EndStream),
            (
                S::Open | S::HalfClosedLocal,
                Ev::Headers { .. } | Ev::Data { .. } | Ev::WindowUpdate,
            ) => {
                return Ok(Verdict::Process);
            }
            (S::Open | S::HalfClosedLocal | S::HalfClosedRemote, Ev::RstStream) => {
                S::Closed(Cause::ResetRemote)
            }

            // half-closed (remote): "If an endpoint receives additional frames, other
            // than WINDOW_UPDATE, PRIORITY, or RST_STREAM, for a stream that is in this
            // state, it MUST respond with a stream error of type STREAM_CLOSED."
            (S::HalfClosedRemote, Ev::WindowUpdate) => return Ok(Verdict::Process),
            (S::HalfClosedRemote, Ev::Headers { .. } | Ev::Data { .. }) => {
                return closed("frame after the peer's END_STREAM");
            }

            // A PUSH_PROMISE must promise a new (idle) stream: promising one in any
            // other state is an unexpected identifier (5.1.1, 6.6): PROTOCOL_ERROR.
            (_, Ev::PushPromise) => return proto("PUSH_PROMISE for a stream already in use"),

            // closed, after this endpoint sent RST_STREAM: "MUST minimally process and
            // then discard any frames it receives in this state".
            (S::Closed(Cause::ResetLocal), _) => return Ok(Verdict::Ignore),
            // closed: WINDOW_UPDATE and RST_STREAM may cross this endpoint's END_STREAM
            // or RST_STREAM (5.1), and a receiver "MUST NOT treat this as an error"
            // (6.9); they are discarded.
            (S::Closed(_), Ev::WindowUpdate | Ev::RstStream) => return Ok(Verdict::Ignore),
            // 5.1.1: a HEADERS on an identifier at or below the highest one the peer
            // used, for a stream this endpoint does not know: "An endpoint that receives
            // an unexpected stream identifier MUST respond with a connection error of
            // type PROTOCOL_ERROR."
            (S::Closed(Cause::Forgotten), Ev::Headers { .. }) => {
                return proto("HEADERS reusing a closed or skipped stream identifier");
            }
            // closed (END_STREAM both ways, or reset by the peer): DATA "whose stream is
            // not in the open or half-closed (local) state" gets a STREAM_CLOSED stream
            // error (6.1); so do HEADERS (5.1: the peer "MUST NOT send frames other than
            // PRIORITY on a closed stream").
            (S::Closed(_), Ev::Headers { .. } | Ev::Data { .. }) => {
                return closed("frame on a closed stream");
            }
        };
        *self = next;
        Ok(Verdict::Process)
    }

    /// This endpoint wants to send `ev` on stream `id`: moves to the next state, or
    /// refuses with an INTERNAL_ERROR blamed on the local side (the RFC forbids the
    /// frame in this state; the caller has a bug).
    pub fn send(&mut self, id: StreamId, ev: Event) -> Result<(), H2Error> {
        let next = match (*self, ev) {
            (_, Ev::Priority) => return Ok(()),
            (S::Idle, Ev::Headers { end_stream: false }) => S::Open,
            (S::Idle, Ev::Headers { end_stream: true }) => S::HalfClosedLocal,
            (S::Idle, Ev::PushPromise) => S::ReservedLocal,
            // reserved (local): "the endpoint can send a HEADERS frame" (then it is
            // half-closed (remote)) or RST_STREAM.
            (S::ReservedLocal, Ev::Headers { end_stream: false }) => S::HalfClosedRemote,
            (S::ReservedLocal, Ev::Headers { end_stream: true }) => S::Closed(Cause::EndStream),
            // reserved (remote): RST_STREAM, WINDOW_UPDATE or PRIORITY only.
            (S::ReservedRemote, Ev::WindowUpdate) => return Ok(()),
            (S::Open, Ev::Headers { end_stream: true } | Ev::Data { end_stream: true }) => {
                S::HalfClosedLocal
            }
            (S::Open, Ev::Headers { .. } | Ev::Data { .. } | Ev::WindowUpdate) => return Ok(()),
            // half-closed (local): "cannot send frames other than WINDOW_UPDATE,
            // PRIORITY, and RST_STREAM".
            (S::HalfClosedLocal, Ev::WindowUpdate) => return Ok(()),
            // half-closed (remote): "can send a frame of any type".
            (
                S::HalfClosedRemote,
                Ev::Headers { end_stream: true } | Ev::Data { end_stream: true },
            ) => S::Closed(Cause::EndStream),
            (S::HalfClosedRemote, Ev::Headers { .. } | Ev::Data { .. } | Ev::WindowUpdate) => {
                return Ok(());
            }
            // RST_STREAM closes any stream but an idle one (6.4: "MUST NOT be sent for a
            // stream in the idle state"); on a closed stream it answers a late frame with
            // a stream error (5.4.2), and later frames are then ignored.
            (S::Idle, Ev::RstStream) => {
                return Err(H2Error::local(id, "RST_STREAM on an idle stream"));
            }
            (_, Ev::RstStream) => S::Closed(Cause::ResetLocal),
            _ => {
                return Err(H2Error::local(
                    id,
                    "frame not allowed in the stream's state",
                ));
            }
        };
        *self = next;
        Ok(())
    }

    /// Streams in open or either half-closed state count toward
    /// SETTINGS_MAX_CONCURRENT_STREAMS (5.1.2).
    pub fn is_active(&self) -> bool {
        matches!(self, S::Open | S::HalfClosedLocal | S::HalfClosedRemote)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self, S::Closed(_))
    }

    /// This endpoint may still send DATA (open or half-closed (remote)).
    pub fn can_send_data(&self) -> bool {
        matches!(self, S::Open | S::HalfClosedRemote)
    }
}

/// Stream identifier bookkeeping for one connection (section 5.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    side: Side,
    /// Highest identifier the peer opened or reserved (0: none yet).
    last_remote: u32,
    /// The next identifier this endpoint will use (1 for a client, 2 for a server).
    next_local: u32,
}

impl StreamIds {
    pub fn new(side: Side) -> StreamIds {
        StreamIds {
            side,
            last_remote: 0,
            next_local: match side {
                Side::Client => 1,
                Side::Server => 2,
            },
        }
    }

    /// Whether the peer initiates streams with this identifier: "Streams initiated by
    /// a client MUST use odd-numbered stream identifiers; those initiated by the server
    /// MUST use even-numbered stream identifiers" (5.1.1).
    pub fn is_remote(&self, id: StreamId) -> bool {
        id.is_client_initiated() == (self.side == Side::Server)
    }

    /// The highest identifier the peer opened, for GOAWAY's Last-Stream-ID (6.8).
    pub fn last_remote(&self) -> StreamId {
        StreamId::new(self.last_remote)
    }

    /// The state of a stream the connection keeps no entry for: idle if its
    /// identifier was never used; else closed ([`Cause::Forgotten`]), which covers
    /// idle streams closed implicitly by the use of a higher identifier (5.1.1: "The
    /// first use of a new stream identifier implicitly closes all streams in the idle
    /// state that might have been initiated by that peer with a lower-valued stream
    /// identifier").
    pub fn untracked(&self, id: StreamId) -> State {
        let fresh = if self.is_remote(id) {
            id.get() > self.last_remote
        } else {
            id.get() >= self.next_local
        };
        if fresh {
            State::Idle
        } else {
            State::Closed(Cause::Forgotten)
        }
    }

    /// The peer opens stream `id` with HEADERS, or reserves it with PUSH_PROMISE: "The
    /// identifier of a newly established stream MUST be numerically greater than all
    /// streams that the initiating endpoint has opened or reserved", with the peer's
    /// parity; "An endpoint that receives an unexpected stream identifier MUST respond
    /// with a connection error of type PROTOCOL_ERROR" (5.1.1).
    pub fn open_remote(&mut self, id: StreamId) -> Result<(), H2Error> {
        let e = |reason| Err(H2Error::connection(ErrorCode::PROTOCOL_ERROR, reason));
        if id.is_zero() {
            return e("stream 0 cannot be opened");
        }
        if !self.is_remote(id) {
            return e(match self.side {
                Side::Server => "client opened an even-numbered stream",
                Side::Client => "server opened an odd-numbered stream",
            });
        }
        if id.get() <= self.last_remote {
            return e("stream identifier not greater than every earlier one");
        }
        self.last_remote = id.get();
        Ok(())
    }

    /// Receives `ev` on a stream the connection keeps no entry for: applies
    /// [`StreamIds::untracked`], the identifier rules when the frame opens or reserves
    /// the stream, and [`State::recv`]. Returns the stream's new state (an entry to
    /// create when it is not idle or closed) and the verdict.
    pub fn recv_untracked(&mut self, id: StreamId, ev: Event) -> Result<(State, Verdict), H2Error> {
        let mut st = self.untracked(id);
        if st == State::Idle && matches!(ev, Ev::Headers { .. } | Ev::PushPromise) {
            self.open_remote(id)?;
        }
        let v = st.recv(id, ev)?;
        Ok((st, v))
    }

    /// The identifier for this endpoint's next stream, or `None` once the 31-bit space
    /// is used up (5.1.1: identifiers "cannot be reused"; a new connection is needed).
    pub fn next_local(&mut self) -> Option<StreamId> {
        let id = self.next_local;
        if id > StreamId::MAX.get() {
            return None;
        }
        self.next_local = id + 2;
        Some(StreamId::new(id))
    }
}

/// One flow-control window (section 6.9): the connection's or a stream's, for sending
/// or for receiving. Signed: a change of SETTINGS_INITIAL_WINDOW_SIZE can leave a
/// window negative (6.9.2, "the sender MUST NOT send new flow-controlled frames until
/// it receives WINDOW_UPDATE frames that cause the flow-control window to become
/// positive"); it never exceeds 2^31-1 (6.9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(i32);

impl Window {
    /// A window of `initial` bytes (at most 2^31-1; larger values are clamped, the
    /// SETTINGS parser having refused them already).
    pub fn new(initial: u32) -> Window {
        Window(initial.min(MAX_WINDOW_SIZE) as i32)
    }

    pub fn get(&self) -> i32 {
        self.0
    }

    /// Bytes that may be sent (or received) now: 0 when the window is negative.
    pub fn available(&self) -> u32 {
        self.0.max(0) as u32
    }

    /// A WINDOW_UPDATE of `inc` for stream `id` (0: the connection). 6.9.1: "A sender
    /// MUST NOT allow a flow-control window to exceed 2^31-1 octets. If a sender
    /// receives a WINDOW_UPDATE that causes a flow-control window to exceed this
    /// maximum, it MUST terminate either the stream or the connection, as appropriate"
    /// with FLOW_CONTROL_ERROR. The window is left unchanged on error.
    pub fn increase(&mut self, id: StreamId, inc: u32) -> Result<(), H2Error> {
        let v = i64::from(self.0) + i64::from(inc);
        if v > i64::from(MAX_WINDOW_SIZE) {
            return Err(H2Error::stream(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "WINDOW_UPDATE took the window over 2^31-1",
            ));
        }
        self.0 = v as i32;
        Ok(())
    }

    /// The peer sent `n` flow-controlled bytes on stream `id` (0: the connection):
    /// more than the window allows is a FLOW_CONTROL_ERROR (6.9.1: "The sender MUST
    /// NOT send a flow-controlled frame with a length that exceeds the space available
    /// in either of the flow-control windows advertised by the receiver"), a stream
    /// error for a stream's window and a connection error for the connection's.
    pub fn recv(&mut self, id: StreamId, n: u32) -> Result<(), H2Error> {
        if i64::from(n) > i64::from(self.0) {
            return Err(H2Error::stream(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA beyond the flow-control window",
            ));
        }
        self.0 -= n as i32;
        Ok(())
    }

    /// This endpoint sends `n` flow-controlled bytes on stream `id`: it must have the
    /// credit (else a local bug, refused with the window unchanged).
    pub fn send(&mut self, id: StreamId, n: u32) -> Result<(), H2Error> {
        if i64::from(n) > i64::from(self.0) {
            return Err(H2Error::local(
                id,
                "DATA sent beyond the flow-control window",
            ));
        }
        self.0 -= n as i32;
        Ok(())
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE changed from `old` to `new`: 6.9.2, "the receiver
    /// MUST adjust the size of all stream flow-control windows that it maintains by the
    /// difference between the new value and the old value" (the connection window is
    /// not affected). The result may be negative; over 2^31-1 it is "a connection
    /// error of type FLOW_CONTROL_ERROR".
    pub fn adjust(&mut self, old: u32, new: u32) -> Result<(), H2Error> {
        let v = i64::from(self.0) + i64::from(new) - i64::from(old);
        if v > i64::from(MAX_WINDOW_SIZE) {
            return Err(H2Error::connection(
                ErrorCode::FLOW_CONTROL_ERROR,
                "SETTINGS_INITIAL_WINDOW_SIZE took a window over 2^31-1",
            ));
        }
        // The lowest reachable value is -(2^31-1): a window of 0 and a change from
        // 2^31-1 to 0. Clamped all the same, so no input can wrap.
        self.0 = v.max(-i64::from(MAX_WINDOW_SIZE)) as i32;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
