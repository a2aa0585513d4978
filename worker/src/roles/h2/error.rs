//! HTTP/2 errors (RFC 9113 section 5.4 and 7): the wire [`ErrorCode`], and [`H2Error`],
//! which says whether the connection or only one stream fails (5.4.1, 5.4.2), who is to
//! blame, and so which frame answers it: GOAWAY for a connection error, RST_STREAM for a
//! stream error.

use std::fmt;

use super::frame::StreamId;

/// An HTTP/2 error code (RFC 9113 section 7), as carried by RST_STREAM and GOAWAY.
/// A newtype rather than an enum: "Unknown or unsupported error codes MUST NOT trigger
/// any special behavior" (section 7), so a code outside the registry is kept as it came
/// (and can be logged) instead of being folded into another.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful shutdown, or a stream that is no longer needed.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// An unspecific protocol error.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// An unexpected internal error (the local side's fault).
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The peer broke flow control (section 5.2, 6.9).
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// A SETTINGS frame was not acknowledged in time (section 6.5.3).
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame arrived after the stream was half-closed or closed (section 5.1).
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame with an invalid size (section 4.2).
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any application processing (section 8.7).
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The field section compression context cannot be maintained (HPACK).
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// A CONNECT tunnel was reset or abnormally closed (section 8.5).
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// The peer behaves in a way that may generate excessive load.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// The transport does not meet minimum security requirements (section 9.2).
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// HTTP/1.1 is required for this request.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The registry name (section 7), or `None` for a code outside it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What an error ends (section 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A connection error (5.4.1): send GOAWAY, then close the connection.
    Connection,
    /// A stream error (5.4.2): send RST_STREAM on this stream; the connection goes on.
    Stream(StreamId),
}

/// Who is to blame for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The peer broke a rule of RFC 9113 (or RFC 8441).
    Peer,
    /// The peer kept to the RFC but went past a limit this endpoint sets to protect
    /// itself (a field block too long, too many CONTINUATION frames).
    LocalLimit,
    /// This endpoint's own code asked for something the protocol forbids (sending DATA
    /// on a stream it already ended): a bug here, answered with INTERNAL_ERROR.
    Local,
}

/// An HTTP/2 error: what it ends, its wire code, who is to blame, and a short reason for
/// the log line (and, for connection errors, the GOAWAY debug data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Error {
    pub scope: Scope,
    pub code: ErrorCode,
    pub blame: Blame,
    pub reason: &'static str,
}

/// The frame that answers an error on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// GOAWAY with this code (section 6.8); the connection fills in the last stream id
    /// it processed, then closes.
    GoAway(ErrorCode),
    /// RST_STREAM on this stream with this code (section 6.4).
    RstStream(StreamId, ErrorCode),
}

impl H2Error {
    /// A connection error the peer caused.
    pub const fn connection(code: ErrorCode, reason: &'static str) -> H2Error {
        H2Error {
            scope: Scope::Connection,
            code,
            blame: Blame::Peer,
            reason,
        }
    }

    /// A stream error the peer caused. Stream 0 is the connection itself, so an error
    /// "on stream 0" is a connection error (as section 6.9 says of WINDOW_UPDATE).
    pub const fn stream(id: StreamId, code: ErrorCode, reason: &'static str) -> H2Error {
        if id.is_zero() {
            return H2Error::connection(code, reason);
        }
        H2Error {
            scope: Scope::Stream(id),
            code,
            blame: Blame::Peer,
            reason,
        }
    }

    /// A connection error for a local limit the peer went past.
    pub const fn limit(code: ErrorCode, reason: &'static str) -> H2Error {
        H2Error {
            scope: Scope::Connection,
            code,
            blame: Blame::LocalLimit,
            reason,
        }
    }

    /// Local misuse of the protocol on stream `id` (a bug here): INTERNAL_ERROR.
    pub const fn local(id: StreamId, reason: &'static str) -> H2Error {
        let scope = if id.is_zero() {
            Scope::Connection
        } else {
            Scope::Stream(id)
        };
        H2Error {
            scope,
            code: ErrorCode::INTERNAL_ERROR,
            blame: Blame::Local,
            reason,
        }
    }

    pub fn is_connection_error(&self) -> bool {
        self.scope == Scope::Connection
    }

    /// The frame to send for this error (section 5.4.1, 5.4.2).
    pub fn answer(&self) -> Answer {
        match self.scope {
            Scope::Connection => Answer::GoAway(self.code),
            Scope::Stream(id) => Answer::RstStream(id, self.code),
        }
    }
}

impl fmt::Display for H2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.blame {
            Blame::Peer => "peer error",
            Blame::LocalLimit => "peer over a local limit",
            Blame::Local => "local error",
        };
        match self.scope {
            Scope::Connection => write!(f, "h2 {who} {}: {}", self.code, self.reason),
            Scope::Stream(id) => write!(
                f,
                "h2 {who} {} on stream {}: {}",
                self.code,
                id.get(),
                self.reason
            ),
        }
    }
}

impl std::error::Error for H2Error {}
