//! PRIORITY (RFC 9113 section 6.3) and the priority fields HEADERS may carry (6.2).
//! RFC 9113 deprecates this prioritisation scheme (section 5.3.2): the frames and
//! fields are parsed, so that they are checked and skipped correctly, and otherwise
//! ignored.
//!
//! ```text
//! PRIORITY Frame {
//!   Length (24) = 0x05, Type (8) = 0x02,
//!   Unused Flags (8),
//!   Reserved (1), Stream Identifier (31),
//!   Exclusive (1), Stream Dependency (31),
//!   Weight (8),
//! }
//! ```

use bytes::BufMut;

use super::head::{Head, Kind, StreamId};

/// Bytes of the priority fields (section 6.3: a PRIORITY payload is exactly this).
pub const PRIORITY_LEN: usize = 5;

/// The deprecated priority fields: Exclusive, Stream Dependency, Weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrioritySpec {
    pub exclusive: bool,
    pub dependency: StreamId,
    pub weight: u8,
}

impl PrioritySpec {
    pub(super) fn parse(b: &[u8; PRIORITY_LEN]) -> PrioritySpec {
        PrioritySpec {
            exclusive: b[0] & 0x80 != 0,
            dependency: StreamId::new(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            weight: b[4],
        }
    }

    pub fn to_bytes(&self) -> [u8; PRIORITY_LEN] {
        let d = (self.dependency.get() | (u32::from(self.exclusive) << 31)).to_be_bytes();
        [d[0], d[1], d[2], d[3], self.weight]
    }
}

/// A PRIORITY frame: accepted and ignored (section 5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub stream: StreamId,
    pub spec: PrioritySpec,
}

impl Priority {
    /// RFC 7540 5.3.1 made a stream depending on itself a stream error; RFC 9113 drops
    /// the scheme (5.3.2) and with it that rule. Kept as a query so the connection can
    /// still answer it the old way if a conformance suite asks for it.
    pub fn depends_on_self(&self) -> bool {
        self.spec.dependency == self.stream
    }

    pub fn head(&self) -> Head {
        Head::new(Kind::Priority, 0, self.stream, PRIORITY_LEN as u32)
    }

    pub fn encode(&self, dst: &mut impl BufMut) {
        self.head().encode(dst);
        dst.put_slice(&self.spec.to_bytes());
    }
}
