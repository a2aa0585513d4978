//! Completion tokens: what an io_uring `user_data` says about the op that completed.
//!
//! `user_data = op (8 bits) | generation (24 bits) | slot (32 bits)`. A connection slot
//! is reused after a close; its generation is bumped then, so a late completion for the
//! old connection carries a generation that no longer matches and is dropped.

/// The kinds of ops the loop submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Multishot recv on a connection (buffer from the provided ring).
    Recv = 1,
    /// Send / writev of a connection's queued output.
    Send = 2,
    /// Cancel of a connection's recv (close, or rx flow control off).
    Cancel = 3,
    /// Poll for readability on the supervisor control socket.
    Control = 4,
    /// Read of the ServiceHandle eventfd.
    Wake = 5,
    /// A `shutdown(SHUT_WR)` before a lingering close.
    Shutdown = 6,
    /// The close of a freed connection's fd (its completion is only posted on error).
    Close = 7,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Recv,
            2 => Op::Send,
            3 => Op::Cancel,
            4 => Op::Control,
            5 => Op::Wake,
            6 => Op::Shutdown,
            7 => Op::Close,
            _ => return None,
        })
    }
}

/// Generations wrap at 24 bits.
pub const GEN_MASK: u32 = 0x00ff_ffff;

/// Packs a token.
#[inline]
pub fn encode(op: Op, slot: u32, generation: u32) -> u64 {
    ((op as u64) << 56) | (((generation & GEN_MASK) as u64) << 32) | slot as u64
}

/// Unpacks a token; `None` for a value the loop never submitted.
#[inline]
pub fn decode(user_data: u64) -> Option<(Op, u32, u32)> {
    let op = Op::from_u8((user_data >> 56) as u8)?;
    Some((op, user_data as u32, ((user_data >> 32) as u32) & GEN_MASK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrap() {
        for op in [
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Control,
            Op::Wake,
            Op::Shutdown,
            Op::Close,
        ] {
            for (slot, generation) in [(0, 0), (u32::MAX, GEN_MASK), (17, 5)] {
                assert_eq!(
                    decode(encode(op, slot, generation)),
                    Some((op, slot, generation))
                );
            }
        }
        // a generation past 24 bits wraps instead of corrupting the op
        assert_eq!(
            decode(encode(Op::Send, 3, GEN_MASK + 2)),
            Some((Op::Send, 3, 1))
        );
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
        // A handoff completion (MSG_RING from the supervisor) is never one of our ops.
        let handoff = lwsd_proto::handoff::encode(3, &lwsd_proto::PeerAddr::Unix).unwrap();
        assert_eq!(decode(handoff), None);
    }
}
