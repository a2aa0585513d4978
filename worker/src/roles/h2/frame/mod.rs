//! The HTTP/2 frame layer (RFC 9113 sections 4 and 6): one file per frame type, the
//! 9-byte header in [`head`], and [`Parser`], which finds whole frames in a receive
//! buffer and hands them on as [`Frame`]s that borrow their payloads (no copy).
//!
//! The parser enforces what can be checked from the frames alone: the receiver's
//! SETTINGS_MAX_FRAME_SIZE (4.2), the stream identifier each type needs (section 6),
//! the fixed lengths (PING 8, RST_STREAM 4, WINDOW_UPDATE 4, PRIORITY 5, SETTINGS a
//! multiple of 6, GOAWAY at least 8), padding (6.1), each SETTINGS parameter (6.5.2),
//! the zero WINDOW_UPDATE increment (6.9), the unbroken sequence of a field block's
//! HEADERS/PUSH_PROMISE and CONTINUATION frames (4.3, 6.10) with local limits on its
//! size, and who may send PUSH_PROMISE (8.4). What needs a stream's state (5.1) is
//! [`super::state`]'s; what needs HPACK is the connection's.
//!
//! Encoders append a whole frame to any [`bytes::BufMut`]; DATA headers can also be
//! written into room left in front of the payload ([`head::Head::write_before`],
//! [`data::write_data_head_before`]) so a body is never copied to be framed.

pub mod continuation;
pub mod data;
pub mod goaway;
pub mod head;
pub mod headers;
mod pad;
pub mod ping;
pub mod priority;
pub mod push_promise;
pub mod rst_stream;
pub mod settings;
pub mod window_update;

#[cfg(test)]
mod tests;

use bytes::BufMut;

pub use super::error::{ErrorCode, H2Error};
pub use continuation::Continuation;
pub use data::{Data, data_head, write_data_head_before};
pub use goaway::GoAway;
pub use head::{HEADER_LEN, Head, Kind, StreamId, flags};
pub use headers::Headers;
pub use ping::Ping;
pub use priority::{Priority, PrioritySpec};
pub use push_promise::PushPromise;
pub use rst_stream::RstStream;
pub use settings::{Setting, Settings, SettingsValues};
pub use window_update::WindowUpdate;

use goaway::GOAWAY_MIN_LEN;
use ping::PING_LEN;
use rst_stream::RST_STREAM_LEN;
use settings::{MIN_MAX_FRAME_SIZE, SETTING_LEN};
use window_update::WINDOW_UPDATE_LEN;

/// Which end of the connection this endpoint is: decides who may push (8.4) and the
/// SETTINGS_ENABLE_PUSH rule (6.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// A frame of a type this endpoint does not know (section 5.5: "MUST ignore and
/// discard"), kept whole so it can be logged or re-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown<'a> {
    pub head: Head,
    pub payload: &'a [u8],
}

/// A decoded frame; payloads borrow the buffer given to [`Parser::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(Data<'a>),
    Headers(Headers<'a>),
    Priority(Priority),
    RstStream(RstStream),
    Settings(Settings<'a>),
    PushPromise(PushPromise<'a>),
    Ping(Ping),
    GoAway(GoAway<'a>),
    WindowUpdate(WindowUpdate),
    Continuation(Continuation<'a>),
    Unknown(Unknown<'a>),
}

impl Frame<'_> {
    /// The header this frame encodes with (only defined flags, reserved bit 0).
    pub fn head(&self) -> Head {
        match self {
            Frame::Data(f) => f.head(),
            Frame::Headers(f) => f.head(),
            Frame::Priority(f) => f.head(),
            Frame::RstStream(f) => f.head(),
            Frame::Settings(f) => {
                let fl = if f.ack { flags::ACK } else { 0 };
                Head::new(
                    Kind::Settings,
                    fl,
                    StreamId::ZERO,
                    (f.len() * SETTING_LEN) as u32,
                )
            }
            Frame::PushPromise(f) => f.head(),
            Frame::Ping(f) => f.head(),
            Frame::GoAway(f) => f.head(),
            Frame::WindowUpdate(f) => f.head(),
            Frame::Continuation(f) => f.head(),
            Frame::Unknown(f) => f.head,
        }
    }

    pub fn stream(&self) -> StreamId {
        self.head().stream
    }

    /// Appends the frame to `dst`. Padding is written as zeros; a decoded frame
    /// re-encodes to the bytes it came from once undefined flags, reserved bits and
    /// padding contents are cleared (the fuzz target checks it).
    pub fn encode(&self, dst: &mut impl BufMut) {
        match self {
            Frame::Data(f) => f.encode(dst),
            Frame::Headers(f) => f.encode(dst),
            Frame::Priority(f) => f.encode(dst),
            Frame::RstStream(f) => f.encode(dst),
            Frame::Settings(f) => {
                if f.ack {
                    settings::encode_settings_ack(dst);
                } else {
                    self.head().encode(dst);
                    for s in f.iter() {
                        dst.put_slice(&s.to_bytes());
                    }
                }
            }
            Frame::PushPromise(f) => f.encode(dst),
            Frame::Ping(f) => f.encode(dst),
            Frame::GoAway(f) => f.encode(dst),
            Frame::WindowUpdate(f) => f.encode(dst),
            Frame::Continuation(f) => f.encode(dst),
            Frame::Unknown(f) => {
                f.head.encode(dst);
                dst.put_slice(f.payload);
            }
        }
    }
}

/// Why [`Parser::decode`] refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    pub error: H2Error,
    /// For a stream error: the whole frame's bytes (header included), to skip before
    /// decoding on, the connection going on after its RST_STREAM. For a connection
    /// error: 0 (the connection ends; nothing more is read). The parser knows no
    /// stream states: a stream error on a stream that is idle (a zero WINDOW_UPDATE
    /// increment, a short PRIORITY is fine there) is the connection's to escalate to
    /// the connection error section 5.1 asks for on idle streams.
    pub skip: usize,
}

impl From<H2Error> for FrameError {
    fn from(error: H2Error) -> FrameError {
        FrameError { error, skip: 0 }
    }
}

/// Largest field block (a HEADERS or PUSH_PROMISE frame and its CONTINUATION frames,
/// counted by frame payload length) accepted by default: 64 KiB. The block must be
/// kept whole until END_HEADERS for HPACK, so this bounds that buffer; it is four
/// times lwsd's HTTP/1 limit on request header bytes (16 KiB), which leaves room for
/// HPACK literals that do not compress.
pub const DEFAULT_MAX_FIELD_BLOCK: u32 = 64 * 1024;

/// Most CONTINUATION frames in one field block by default. 64 KiB fits in 4 frames of
/// the smallest maximum frame size; 32 leaves room for peers that cut blocks smaller
/// and bounds the work a flood of tiny or empty CONTINUATION frames can cause (the
/// 2024 "CONTINUATION flood" attacks), which the byte limit alone does not.
pub const DEFAULT_MAX_CONTINUATIONS: u32 = 32;

/// The field block being received: HEADERS or PUSH_PROMISE came without END_HEADERS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    stream: StreamId,
    bytes: u32,
    continuations: u32,
}

/// Finds frames in a receive buffer (sans-IO: the caller owns the bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parser {
    side: Side,
    max_frame_size: u32,
    accept_push: bool,
    max_field_block: u32,
    max_continuations: u32,
    block: Option<Block>,
}

impl Parser {
    /// A parser for the `side` end with the initial SETTINGS_MAX_FRAME_SIZE (2^14,
    /// 6.5.2), push refused (a server never accepts it, 8.4; a client until it says
    /// otherwise) and the default field block limits.
    pub fn new(side: Side) -> Parser {
        Parser {
            side,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            accept_push: false,
            max_field_block: DEFAULT_MAX_FIELD_BLOCK,
            max_continuations: DEFAULT_MAX_CONTINUATIONS,
            block: None,
        }
    }

    /// Sets the SETTINGS_MAX_FRAME_SIZE this endpoint advertised, once the peer
    /// acknowledged it (6.5.3). Values are clamped to 2^14..=2^24-1.
    pub fn set_max_frame_size(&mut self, v: u32) {
        self.max_frame_size = v.clamp(MIN_MAX_FRAME_SIZE, settings::MAX_MAX_FRAME_SIZE);
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// A client that enabled push (SETTINGS_ENABLE_PUSH 1) accepts PUSH_PROMISE; a
    /// server never does, whatever this says.
    pub fn set_accept_push(&mut self, on: bool) {
        self.accept_push = on;
    }

    /// Local limits on a field block: its payload bytes and its CONTINUATION frames.
    pub fn set_field_block_limits(&mut self, max_bytes: u32, max_continuations: u32) {
        self.max_field_block = max_bytes;
        self.max_continuations = max_continuations;
    }

    /// The stream whose field block is still open (CONTINUATION frames expected).
    pub fn open_field_block(&self) -> Option<StreamId> {
        self.block.map(|b| b.stream)
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` when `buf` does not hold a
    /// whole frame yet (nothing is consumed and no state changes), else the frame and
    /// the bytes it took. Connection errors are raised as soon as the 9-byte header
    /// shows them, so an oversized or misplaced frame is refused before its payload
    /// is waited for; stream errors wait for the whole frame, whose length they give
    /// to skip.
    pub fn decode<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(Frame<'b>, usize)>, FrameError> {
        let Some(head) = Head::parse(buf) else {
            return Ok(None);
        };
        let conn = |code, reason| Err(FrameError::from(H2Error::connection(code, reason)));
        use ErrorCode as E;
        // 4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
        // exceeds the size defined in SETTINGS_MAX_FRAME_SIZE". Frames carrying a field
        // block, SETTINGS and stream-0 frames need a connection error; for the others
        // a stream error would do, but 5.4 lets an endpoint treat any stream error as a
        // connection error, which spares skipping up to 16 MiB of refused payload.
        if head.len > self.max_frame_size {
            return conn(
                E::FRAME_SIZE_ERROR,
                "frame larger than SETTINGS_MAX_FRAME_SIZE",
            );
        }
        // 4.3, 6.10: a field block is a contiguous sequence of frames; "Receiving any
        // other type of frame or a frame on a different stream MUST be treated as a
        // connection error of type PROTOCOL_ERROR".
        let mut block = self.block;
        match (block.as_mut(), head.kind) {
            (Some(b), Kind::Continuation) if b.stream == head.stream => {
                b.continuations += 1;
                b.bytes = b.bytes.saturating_add(head.len);
            }
            (Some(_), _) => {
                return conn(
                    E::PROTOCOL_ERROR,
                    "field block interrupted before END_HEADERS",
                );
            }
            (None, Kind::Continuation) => {
                return conn(
                    E::PROTOCOL_ERROR,
                    "CONTINUATION without an open field block",
                );
            }
            (None, Kind::Headers | Kind::PushPromise) => {
                block = Some(Block {
                    stream: head.stream,
                    bytes: head.len,
                    continuations: 0,
                });
            }
            (None, _) => {}
        }
        if let Some(b) = block {
            if b.bytes > self.max_field_block {
                return Err(H2Error::limit(
                    E::ENHANCE_YOUR_CALM,
                    "field block over the local limit",
                )
                .into());
            }
            if b.continuations > self.max_continuations {
                return Err(
                    H2Error::limit(E::ENHANCE_YOUR_CALM, "too many CONTINUATION frames").into(),
                );
            }
        }
        self.check_head(head)?;
        let total = HEADER_LEN + head.len as usize;
        let Some(payload) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let frame = match head.kind {
            Kind::Data => Frame::Data(Data::decode(head, payload)?),
            Kind::Headers => Frame::Headers(Headers::decode(head, payload)?),
            Kind::Priority => match payload.try_into() {
                Ok(b) => Frame::Priority(Priority {
                    stream: head.stream,
                    spec: PrioritySpec::parse(b),
                }),
                // 6.3: "A PRIORITY frame with a length other than 5 octets MUST be
                // treated as a stream error of type FRAME_SIZE_ERROR."
                Err(_) => {
                    return Err(FrameError {
                        error: H2Error::stream(
                            head.stream,
                            E::FRAME_SIZE_ERROR,
                            "PRIORITY length not 5",
                        ),
                        skip: total,
                    });
                }
            },
            Kind::RstStream => Frame::RstStream(RstStream::decode(head, fixed(payload)?)),
            Kind::Settings => Frame::Settings(Settings::decode(head, payload, self.side)?),
            Kind::PushPromise => Frame::PushPromise(PushPromise::decode(head, payload)?),
            Kind::Ping => Frame::Ping(Ping::decode(head, fixed(payload)?)),
            Kind::GoAway => match GoAway::decode(payload) {
                Some(g) => Frame::GoAway(g),
                None => return conn(E::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes"),
            },
            Kind::WindowUpdate => match WindowUpdate::decode(head, fixed(payload)?) {
                Ok(w) => Frame::WindowUpdate(w),
                Err(error) => {
                    let skip = if error.is_connection_error() {
                        0
                    } else {
                        total
                    };
                    return Err(FrameError { error, skip });
                }
            },
            Kind::Continuation => Frame::Continuation(Continuation::decode(head, payload)),
            Kind::Unknown(_) => Frame::Unknown(Unknown { head, payload }),
        };
        let ends_block = match frame {
            Frame::Headers(h) => h.end_headers,
            Frame::PushPromise(p) => p.end_headers,
            Frame::Continuation(c) => c.end_headers,
            _ => true,
        };
        self.block = if ends_block { None } else { block };
        Ok(Some((frame, total)))
    }

    /// The rules the 9-byte header alone decides: which stream a type may use, fixed
    /// lengths, who may push. All are connection errors.
    fn check_head(&self, head: Head) -> Result<(), FrameError> {
        use ErrorCode as E;
        let err = |code, reason| Err(FrameError::from(H2Error::connection(code, reason)));
        let zero = head.stream.is_zero();
        match head.kind {
            // 6.1, 6.2, 6.3, 6.4, 6.6, 6.10: "If a ... frame is received whose Stream
            // Identifier field is 0x00, the recipient MUST respond with a connection
            // error of type PROTOCOL_ERROR."
            Kind::Data
            | Kind::Headers
            | Kind::Priority
            | Kind::RstStream
            | Kind::PushPromise
            | Kind::Continuation
                if zero =>
            {
                err(E::PROTOCOL_ERROR, "frame type needs a stream, got stream 0")
            }
            // 6.5, 6.7, 6.8: these concern the connection; a stream identifier other
            // than 0 is a connection PROTOCOL_ERROR.
            Kind::Settings | Kind::Ping | Kind::GoAway if !zero => {
                err(E::PROTOCOL_ERROR, "connection frame on a stream")
            }
            // 6.5: ACK with a payload, or a length not a multiple of 6: connection
            // FRAME_SIZE_ERROR.
            Kind::Settings if head.flags & flags::ACK != 0 && head.len != 0 => {
                err(E::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            }
            Kind::Settings if !(head.len as usize).is_multiple_of(SETTING_LEN) => {
                err(E::FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
            }
            // 6.7: "Receipt of a PING frame with a length field value other than 8 MUST
            // be treated as a connection error of type FRAME_SIZE_ERROR."
            Kind::Ping if head.len as usize != PING_LEN => {
                err(E::FRAME_SIZE_ERROR, "PING length not 8")
            }
            // 6.4: "A RST_STREAM frame with a length other than 4 octets MUST be
            // treated as a connection error of type FRAME_SIZE_ERROR."
            Kind::RstStream if head.len as usize != RST_STREAM_LEN => {
                err(E::FRAME_SIZE_ERROR, "RST_STREAM length not 4")
            }
            // 6.9: "A WINDOW_UPDATE frame with a length other than 4 octets MUST be
            // treated as a connection error of type FRAME_SIZE_ERROR."
            Kind::WindowUpdate if head.len as usize != WINDOW_UPDATE_LEN => {
                err(E::FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4")
            }
            // 4.2: too small for mandatory data, on stream 0: connection error.
            Kind::GoAway if (head.len as usize) < GOAWAY_MIN_LEN => {
                err(E::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            }
            // 8.4: "A client cannot push. Thus, servers MUST treat the receipt of a
            // PUSH_PROMISE frame as a connection error of type PROTOCOL_ERROR." 6.6: a
            // client that disabled push does the same.
            Kind::PushPromise if self.side == Side::Server => {
                err(E::PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            }
            Kind::PushPromise if !self.accept_push => {
                err(E::PROTOCOL_ERROR, "PUSH_PROMISE with push disabled")
            }
            _ => Ok(()),
        }
    }
}

/// A fixed-size payload (its length was checked from the header).
fn fixed<const N: usize>(payload: &[u8]) -> Result<&[u8; N], FrameError> {
    payload.try_into().map_err(|_| {
        FrameError::from(H2Error::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame length wrong for its type",
        ))
    })
}
