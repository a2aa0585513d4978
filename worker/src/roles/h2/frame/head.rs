//! The 9-byte frame header (RFC 9113 section 4.1) and stream identifiers (5.1.1).
//!
//! ```text
//! HTTP Frame {
//!   Length (24),
//!   Type (8),
//!   Flags (8),
//!   Reserved (1),
//!   Stream Identifier (31),
//!   Frame Payload (..),
//! }
//! ```

use bytes::BufMut;

/// Bytes of a frame header (section 4.1). Also the room to keep in front of a payload
/// so its header can be written there without copying it (see [`Head::write_before`]);
/// it fits inside `api::LWS_PRE` (14), so a WebSocket payload's room also fits an h2
/// frame header.
pub const HEADER_LEN: usize = 9;

/// The largest length the 24-bit Length field can carry (section 4.1).
pub const MAX_LENGTH: u32 = (1 << 24) - 1;

/// A stream identifier: 31 bits (section 5.1.1); 0 means the connection itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(u32);

impl StreamId {
    /// Stream 0: frames about the whole connection.
    pub const ZERO: StreamId = StreamId(0);
    /// The largest identifier (2^31-1).
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// The identifier in the low 31 bits of `v`; the reserved top bit is dropped, as a
    /// receiver must (section 4.1: "MUST be ignored when receiving").
    pub const fn new(v: u32) -> StreamId {
        StreamId(v & 0x7fff_ffff)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Client-initiated streams are odd, server-initiated ones even (section 5.1.1).
    pub const fn is_client_initiated(self) -> bool {
        self.0 & 1 == 1
    }
}

impl std::fmt::Debug for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

impl From<u32> for StreamId {
    fn from(v: u32) -> StreamId {
        StreamId::new(v)
    }
}

/// Frame types (section 6, registry in 11.2). Types outside the registry are kept as
/// [`Kind::Unknown`]: "Implementations MUST ignore and discard frames of unknown types"
/// (section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl Kind {
    pub const fn from_u8(v: u8) -> Kind {
        match v {
            0x0 => Kind::Data,
            0x1 => Kind::Headers,
            0x2 => Kind::Priority,
            0x3 => Kind::RstStream,
            0x4 => Kind::Settings,
            0x5 => Kind::PushPromise,
            0x6 => Kind::Ping,
            0x7 => Kind::GoAway,
            0x8 => Kind::WindowUpdate,
            0x9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }

    pub const fn to_u8(self) -> u8 {
        match self {
            Kind::Data => 0x0,
            Kind::Headers => 0x1,
            Kind::Priority => 0x2,
            Kind::RstStream => 0x3,
            Kind::Settings => 0x4,
            Kind::PushPromise => 0x5,
            Kind::Ping => 0x6,
            Kind::GoAway => 0x7,
            Kind::WindowUpdate => 0x8,
            Kind::Continuation => 0x9,
            Kind::Unknown(v) => v,
        }
    }

    /// The flags this type defines (section 6). Others "MUST be ignored on receipt and
    /// MUST be left unset (0x00) when sending" (section 4.1), so a decoded frame keeps
    /// only these; an unknown type keeps all eight, their meaning being unknown.
    pub const fn defined_flags(self) -> u8 {
        match self {
            Kind::Data => flags::END_STREAM | flags::PADDED,
            Kind::Headers => {
                flags::END_STREAM | flags::END_HEADERS | flags::PADDED | flags::PRIORITY
            }
            Kind::PushPromise => flags::END_HEADERS | flags::PADDED,
            Kind::Settings | Kind::Ping => flags::ACK,
            Kind::Continuation => flags::END_HEADERS,
            Kind::Priority | Kind::RstStream | Kind::GoAway | Kind::WindowUpdate => 0,
            Kind::Unknown(_) => 0xff,
        }
    }
}

/// Frame flags (section 6). Their meaning depends on the frame type.
pub mod flags {
    /// DATA, HEADERS: the last frame the sender sends on the stream (6.1, 6.2).
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement (6.5, 6.7).
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the field block ends here (6.2, 6.6, 6.10).
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a Pad Length byte and padding are present.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: the deprecated priority fields are present (6.2, 5.3.2).
    pub const PRIORITY: u8 = 0x20;
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length (24 bits; the header's 9 bytes not included).
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub stream: StreamId,
}

impl Head {
    pub const fn new(kind: Kind, flags: u8, stream: StreamId, len: u32) -> Head {
        Head {
            len,
            kind,
            flags,
            stream,
        }
    }

    /// Parses the first 9 bytes of `buf`, or `None` when there are fewer. The reserved
    /// bit is dropped (section 4.1); flags are returned as they came.
    #[inline]
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let b: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind::from_u8(b[3]),
            flags: b[4],
            stream: StreamId::new(u32::from_be_bytes([b[5], b[6], b[7], b[8]])),
        })
    }

    /// The 9 bytes of this header (reserved bit 0).
    ///
    /// # Panics
    /// When `len` does not fit 24 bits (a bug in the caller: frames are cut to the
    /// peer's SETTINGS_MAX_FRAME_SIZE, at most 2^24-1, before they are encoded).
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        assert!(self.len <= MAX_LENGTH, "h2 frame length over 2^24-1");
        let l = self.len.to_be_bytes();
        let s = self.stream.get().to_be_bytes();
        [
            l[1],
            l[2],
            l[3],
            self.kind.to_u8(),
            self.flags,
            s[0],
            s[1],
            s[2],
            s[3],
        ]
    }

    /// Appends the 9 header bytes to `dst`.
    #[inline]
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.to_bytes());
    }

    /// Writes this header into the [`HEADER_LEN`] bytes just before `buf[payload_at..]`
    /// (lws' `LWS_PRE` idea: the payload was written after some room, and its frame
    /// header goes into the end of that room, so the frame leaves as one buffer and the
    /// payload is never copied). `self.len` must be the payload's length. Returns where
    /// the frame starts: `payload_at - HEADER_LEN`.
    ///
    /// # Panics
    /// When `payload_at < HEADER_LEN` (no room: a bug in the caller) or the length does
    /// not fit 24 bits.
    #[inline]
    pub fn write_before(&self, buf: &mut [u8], payload_at: usize) -> usize {
        assert!(payload_at >= HEADER_LEN, "no room for the h2 frame header");
        let start = payload_at - HEADER_LEN;
        buf[start..payload_at].copy_from_slice(&self.to_bytes());
        start
    }
}
