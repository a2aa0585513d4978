//! SETTINGS (RFC 9113 section 6.5): configuration parameters, each a 16-bit identifier
//! and a 32-bit value; a SETTINGS frame with ACK acknowledges the peer's.
//!
//! ```text
//! SETTINGS Frame {
//!   Length (24), Type (8) = 0x04,
//!   Unused Flags (7), ACK Flag (1),
//!   Reserved (1), Stream Identifier (31) = 0,
//!   Setting (48) ...,
//! }
//! Setting {
//!   Identifier (16),
//!   Value (32),
//! }
//! ```
//!
//! The parser validates every parameter when the frame arrives (6.5.2), so a frame
//! handed on holds only valid values; [`Settings::iter`] then walks the borrowed
//! payload without allocating. [`SettingsValues`] holds one side's current values with
//! the RFC's initial ones.

use bytes::BufMut;

use super::head::{Head, Kind, StreamId, flags};
use super::{ErrorCode, H2Error, Side};

/// Bytes of one parameter (section 6.5.1).
pub const SETTING_LEN: usize = 6;

/// Smallest SETTINGS_MAX_FRAME_SIZE and its initial value: 2^14 (section 6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 1 << 14;
/// Largest SETTINGS_MAX_FRAME_SIZE: 2^24-1 (section 6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// Largest flow-control window, and so SETTINGS_INITIAL_WINDOW_SIZE: 2^31-1 (6.5.2, 6.9.1).
pub const MAX_WINDOW_SIZE: u32 = 0x7fff_ffff;
/// Initial SETTINGS_INITIAL_WINDOW_SIZE (and the connection window): 65535 (6.5.2, 6.9.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 65_535;
/// Initial SETTINGS_HEADER_TABLE_SIZE: 4096 (section 6.5.2).
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4_096;

/// Parameter identifiers (section 6.5.2, RFC 8441 section 3).
pub mod id {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// RFC 8441 section 3: the extended CONNECT method (WebSockets over h2 streams).
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    HeaderTableSize(u32),
    EnablePush(bool),
    MaxConcurrentStreams(u32),
    /// At most [`MAX_WINDOW_SIZE`].
    InitialWindowSize(u32),
    /// [`MIN_MAX_FRAME_SIZE`]..=[`MAX_MAX_FRAME_SIZE`].
    MaxFrameSize(u32),
    MaxHeaderListSize(u32),
    EnableConnectProtocol(bool),
    /// An identifier this endpoint does not know: "MUST ignore" (6.5.2). Kept so a
    /// frame re-encodes as it came.
    Unknown(u16, u32),
}

impl Setting {
    /// Decodes and validates one parameter (section 6.5.2) received by `side`.
    pub fn decode(b: &[u8; SETTING_LEN], side: Side) -> Result<Setting, H2Error> {
        let ident = u16::from_be_bytes([b[0], b[1]]);
        let v = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
        let boolean = |what| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(H2Error::connection(ErrorCode::PROTOCOL_ERROR, what)),
        };
        Ok(match ident {
            id::HEADER_TABLE_SIZE => Setting::HeaderTableSize(v),
            id::ENABLE_PUSH => {
                // 6.5.2: "Any value other than 0 or 1 MUST be treated as a connection
                // error of type PROTOCOL_ERROR"; "A client MUST treat receipt of a
                // SETTINGS frame with SETTINGS_ENABLE_PUSH set to 1 as a connection
                // error of type PROTOCOL_ERROR."
                let on = boolean("SETTINGS_ENABLE_PUSH not 0 or 1")?;
                if on && side == Side::Client {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "server sent SETTINGS_ENABLE_PUSH 1",
                    ));
                }
                Setting::EnablePush(on)
            }
            id::MAX_CONCURRENT_STREAMS => Setting::MaxConcurrentStreams(v),
            id::INITIAL_WINDOW_SIZE => {
                // 6.5.2: "Values above the maximum flow-control window size of 2^31-1
                // MUST be treated as a connection error of type FLOW_CONTROL_ERROR."
                if v > MAX_WINDOW_SIZE {
                    return Err(H2Error::connection(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
                    ));
                }
                Setting::InitialWindowSize(v)
            }
            id::MAX_FRAME_SIZE => {
                // 6.5.2: "Values outside this range MUST be treated as a connection
                // error of type PROTOCOL_ERROR."
                if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&v) {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE outside 2^14..=2^24-1",
                    ));
                }
                Setting::MaxFrameSize(v)
            }
            id::MAX_HEADER_LIST_SIZE => Setting::MaxHeaderListSize(v),
            // RFC 8441 section 3: "The value of the parameter MUST be 0 or 1."
            id::ENABLE_CONNECT_PROTOCOL => Setting::EnableConnectProtocol(boolean(
                "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1",
            )?),
            other => Setting::Unknown(other, v),
        })
    }

    pub fn id(&self) -> u16 {
        match *self {
            Setting::HeaderTableSize(_) => id::HEADER_TABLE_SIZE,
            Setting::EnablePush(_) => id::ENABLE_PUSH,
            Setting::MaxConcurrentStreams(_) => id::MAX_CONCURRENT_STREAMS,
            Setting::InitialWindowSize(_) => id::INITIAL_WINDOW_SIZE,
            Setting::MaxFrameSize(_) => id::MAX_FRAME_SIZE,
            Setting::MaxHeaderListSize(_) => id::MAX_HEADER_LIST_SIZE,
            Setting::EnableConnectProtocol(_) => id::ENABLE_CONNECT_PROTOCOL,
            Setting::Unknown(i, _) => i,
        }
    }

    pub fn value(&self) -> u32 {
        match *self {
            Setting::HeaderTableSize(v)
            | Setting::MaxConcurrentStreams(v)
            | Setting::InitialWindowSize(v)
            | Setting::MaxFrameSize(v)
            | Setting::MaxHeaderListSize(v)
            | Setting::Unknown(_, v) => v,
            Setting::EnablePush(b) | Setting::EnableConnectProtocol(b) => u32::from(b),
        }
    }

    pub fn to_bytes(&self) -> [u8; SETTING_LEN] {
        let i = self.id().to_be_bytes();
        let v = self.value().to_be_bytes();
        [i[0], i[1], v[0], v[1], v[2], v[3]]
    }
}

/// A SETTINGS frame whose parameters were validated by the parser; `raw` borrows the
/// payload (a multiple of [`SETTING_LEN`] bytes, empty for an ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    pub ack: bool,
    raw: &'a [u8],
    side: Side,
}

impl<'a> Settings<'a> {
    /// Checks a SETTINGS payload received by `side` (length rules are the parser's).
    pub(super) fn decode(
        head: Head,
        payload: &'a [u8],
        side: Side,
    ) -> Result<Settings<'a>, H2Error> {
        let s = Settings {
            ack: head.flags & flags::ACK != 0,
            raw: payload,
            side,
        };
        for chunk in payload.chunks_exact(SETTING_LEN) {
            if let Ok(b) = chunk.try_into() {
                Setting::decode(b, side)?;
            }
        }
        Ok(s)
    }

    /// The parameters in the order they came (6.5.3: "processed in the order in which
    /// they appear", so a later value for the same identifier wins).
    pub fn iter(&self) -> impl Iterator<Item = Setting> + 'a {
        let side = self.side;
        self.raw
            .chunks_exact(SETTING_LEN)
            .filter_map(move |c| Setting::decode(c.try_into().ok()?, side).ok())
    }

    pub fn len(&self) -> usize {
        self.raw.len() / SETTING_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Appends a SETTINGS frame carrying `settings`.
pub fn encode_settings(settings: &[Setting], dst: &mut impl BufMut) {
    let len = (settings.len() * SETTING_LEN) as u32;
    Head::new(Kind::Settings, 0, StreamId::ZERO, len).encode(dst);
    for s in settings {
        dst.put_slice(&s.to_bytes());
    }
}

/// Appends a SETTINGS frame with ACK and no payload (6.5.3).
pub fn encode_settings_ack(dst: &mut impl BufMut) {
    Head::new(Kind::Settings, flags::ACK, StreamId::ZERO, 0).encode(dst);
}

/// One endpoint's settings as currently in force, starting from the initial values of
/// section 6.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsValues {
    pub header_table_size: u32,
    pub enable_push: bool,
    /// `None`: unlimited (the initial value, 6.5.2).
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// `None`: unlimited (the initial value, 6.5.2).
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: bool,
}

impl Default for SettingsValues {
    fn default() -> SettingsValues {
        SettingsValues {
            header_table_size: DEFAULT_HEADER_TABLE_SIZE,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: DEFAULT_WINDOW_SIZE,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            max_header_list_size: None,
            enable_connect_protocol: false,
        }
    }
}

impl SettingsValues {
    /// Applies one validated parameter. The one rule that needs the previous value:
    /// RFC 8441 section 3, "A sender MUST NOT send a SETTINGS_ENABLE_CONNECT_PROTOCOL
    /// parameter with the value of 0 after previously sending a value of 1" (answered
    /// with a connection PROTOCOL_ERROR). A change of the initial window size must also
    /// adjust every stream's window (6.9.2): the connection compares the values before
    /// and after and calls [`crate::roles::h2::state::Window::adjust`].
    pub fn apply(&mut self, s: Setting) -> Result<(), H2Error> {
        match s {
            Setting::HeaderTableSize(v) => self.header_table_size = v,
            Setting::EnablePush(b) => self.enable_push = b,
            Setting::MaxConcurrentStreams(v) => self.max_concurrent_streams = Some(v),
            Setting::InitialWindowSize(v) => self.initial_window_size = v,
            Setting::MaxFrameSize(v) => self.max_frame_size = v,
            Setting::MaxHeaderListSize(v) => self.max_header_list_size = Some(v),
            Setting::EnableConnectProtocol(b) => {
                if self.enable_connect_protocol && !b {
                    return Err(H2Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_CONNECT_PROTOCOL went from 1 to 0",
                    ));
                }
                self.enable_connect_protocol = b;
            }
            Setting::Unknown(..) => {}
        }
        Ok(())
    }

    /// Applies a whole SETTINGS frame's parameters in order (6.5.3).
    pub fn apply_all(&mut self, s: &Settings<'_>) -> Result<(), H2Error> {
        s.iter().try_for_each(|p| self.apply(p))
    }
}
