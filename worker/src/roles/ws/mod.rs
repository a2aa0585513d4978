//! The WebSocket role (RFC 6455), sans-IO: the opening handshake, the frame codec, and
//! the per-connection state machine for both the server and the client side.
//!
//! - [`handshake`]: section 4 (server accept, client request and validation).
//! - [`frame`]: section 5.2 header codec; unmasked frame builders; [`SharedFrame`].
//! - [`mask`]: section 5.3 masking, a word at a time.
//! - [`utf8`]: section 8.1 incremental UTF-8 validation (fail fast).
//! - [`close`]: section 5.5.1 close bodies and the section 7.4 status codes.
//! - [`conn`]: [`WsConn`], fragmentation (5.4), control frames (5.5), the closing
//!   handshake (7), keepalive pings, delivery of payload slices in place.
//! - [`assemble`]: [`MessageAssembler`] for protocols that want whole messages.
//!
//! Nothing here performs I/O or reads a clock: bytes come in as `&mut [u8]` (unmasked in
//! place and delivered as slices of the same buffer), bytes go out as `bytes::Bytes`,
//! and the time is an argument in milliseconds on any monotonic clock the caller picks.
//!
//! Hand-written instead of using tungstenite: tungstenite owns the socket buffers and
//! copies each payload into its own frames and messages; lwsd's io_uring loop owns the
//! receive buffers and wants payloads delivered where they landed (lws' receive
//! callback model) and headers written without copying payloads.

#![forbid(unsafe_code)]

pub mod assemble;
pub mod close;
pub mod conn;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

#[cfg(test)]
mod pmd_tests;
#[cfg(test)]
mod tests;

pub use assemble::{AssembledMessage, MessageAssembler};
pub use close::code;
pub use conn::{Action, CloseInfo, DataChunk, Event, Fed, Progress, WsConfig, WsConn, WsState};
pub use frame::{
    DataKind, FrameHeader, HeaderBuf, Opcode, SharedFrame, encode_close, encode_data,
    encode_header, encode_ping, encode_pong,
};
pub use handshake::{
    Accept, ClientAccepted, ClientHandshakeError, HandshakeError, client_key, client_request,
    client_validate, server_accept, server_response_head,
};

/// Which end of the connection this endpoint is. Decides the masking rules of
/// section 5.1: a client masks every frame it sends and a server none; each rejects
/// frames masked the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// The peer broke the protocol: the connection is failed (section 7.1.7) with a close
/// frame carrying `code` (1002 protocol error, 1007 invalid payload, 1009 too big),
/// then closed. `reason` is sent as the close reason and is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

impl WsError {
    const fn proto(reason: &'static str) -> WsError {
        WsError {
            code: code::PROTOCOL_ERROR,
            reason,
        }
    }
    pub const RESERVED_OPCODE: WsError = WsError::proto("reserved opcode");
    pub const FRAGMENTED_CONTROL: WsError = WsError::proto("fragmented control frame");
    pub const CONTROL_TOO_LONG: WsError = WsError::proto("control frame over 125 bytes");
    pub const LENGTH_MSB: WsError = WsError::proto("64-bit length with MSB set");
    pub const RSV_BITS: WsError = WsError::proto("reserved bits set");
    pub const UNMASKED: WsError = WsError::proto("client frame not masked");
    pub const MASKED: WsError = WsError::proto("server frame masked");
    pub const NO_MESSAGE: WsError = WsError::proto("continuation without a message");
    pub const MESSAGE_OPEN: WsError = WsError::proto("new message inside a fragmented one");
    pub const CLOSE_BODY_ONE_BYTE: WsError = WsError::proto("close body of one byte");
    pub const CLOSE_CODE: WsError = WsError::proto("invalid close code");
    pub const CLOSE_REASON_UTF8: WsError = WsError {
        code: code::INVALID_PAYLOAD,
        reason: "close reason not UTF-8",
    };
    pub const TEXT_UTF8: WsError = WsError {
        code: code::INVALID_PAYLOAD,
        reason: "text not UTF-8",
    };
    pub const TOO_BIG: WsError = WsError {
        code: code::MESSAGE_TOO_BIG,
        reason: "message too big",
    };
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "websocket peer error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for WsError {}

/// The local code used the API wrongly (a bug in the caller, not the peer's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageError {
    /// A control frame payload over 125 bytes (section 5.5), or a close reason over 123.
    ControlPayloadTooLong,
    /// A close code an endpoint must not send (section 7.4).
    InvalidCloseCode(u16),
    /// A close reason needs a close code (section 5.5.1).
    ReasonWithoutCode,
    /// A new message was started while a fragmented one is still open (section 5.4).
    MessageInProgress,
    /// A continuation was sent with no fragmented message open (section 5.4).
    NoMessageInProgress,
    /// Data after this endpoint sent a close frame (section 5.5.1), or after the
    /// connection closed.
    Closing,
    /// A [`SharedFrame`] is unmasked, so only a server may send it (section 5.1).
    SharedFrameOnClient,
    /// A handshake header value containing CR, LF or NUL (header injection).
    InvalidHeaderValue,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "websocket API misuse: {self:?}")
    }
}

impl std::error::Error for UsageError {}
