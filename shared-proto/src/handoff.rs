//! The `MSG_RING` handoff token: what a worker learns about a connection the supervisor
//! sent straight into its io_uring fixed-file table.
//!
//! With `IORING_OP_MSG_RING` + `IORING_MSG_SEND_FD` (Linux 6.0) the supervisor moves an
//! accepted socket from its own ring's fixed-file table into a worker's, and the kernel
//! posts one completion on the worker's ring whose `res` is the slot the file landed in
//! and whose `user_data` is a 64-bit value the supervisor chose. That value is this
//! token, so the listener id and the peer address travel with the fd as they do in a
//! `NewConns` packet, without a packet:
//!
//! ```text
//!  63      56 55  54      48 47                    16 15          0
//! +----------+---+----------+------------------------+-------------+
//! |   TAG    | U | listener |  IPv4 address (BE)     |  port       |
//! +----------+---+----------+------------------------+-------------+
//! ```
//!
//! `U` = 1 marks a unix-socket peer (address bits zero). An IPv6 address does not fit in
//! 48 bits: IPv6 connections keep travelling in `NewConns` packets over SCM_RIGHTS, and
//! so do connections of listener 128 and above.
//!
//! `TAG` sits where the worker's own completion tokens keep their op kind, so a handoff
//! completion cannot be mistaken for one of the worker's ops.

use crate::PeerAddr;

/// Top byte of every handoff token (the worker's op kinds are 1..=7).
pub const TAG: u8 = 0x48;
/// Listeners whose connections can be handed over by token (ids 0..=127).
pub const MAX_LISTENERS: u16 = 128;

const UNIX_BIT: u64 = 1 << 55;

/// The token for a connection of `listener` from `peer`; `None` when it cannot be
/// expressed (an IPv6 or unknown peer, a listener id of 128 or more): send that one in
/// a `NewConns` packet.
pub fn encode(listener: u16, peer: &PeerAddr) -> Option<u64> {
    if listener >= MAX_LISTENERS {
        return None;
    }
    let head = (u64::from(TAG) << 56) | (u64::from(listener) << 48);
    match *peer {
        PeerAddr::V4(ip, port) => {
            Some(head | (u64::from(u32::from_be_bytes(ip)) << 16) | u64::from(port))
        }
        PeerAddr::Unix => Some(head | UNIX_BIT),
        PeerAddr::V6(..) | PeerAddr::Unknown => None,
    }
}

/// Decodes a token; `None` when `user_data` is not one (wrong tag, or a unix token with
/// address bits set).
pub fn decode(user_data: u64) -> Option<(u16, PeerAddr)> {
    if (user_data >> 56) as u8 != TAG {
        return None;
    }
    let listener = ((user_data >> 48) & 0x7f) as u16;
    let low = user_data & 0xffff_ffff_ffff;
    if user_data & UNIX_BIT != 0 {
        return (low == 0).then_some((listener, PeerAddr::Unix));
    }
    let ip = ((low >> 16) as u32).to_be_bytes();
    Some((listener, PeerAddr::V4(ip, low as u16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (l, p) in [
            (0, PeerAddr::V4([127, 0, 0, 1], 54321)),
            (127, PeerAddr::V4([255, 255, 255, 255], u16::MAX)),
            (5, PeerAddr::V4([0, 0, 0, 0], 0)),
            (0, PeerAddr::Unix),
            (127, PeerAddr::Unix),
        ] {
            let t = encode(l, &p).unwrap();
            assert_eq!((t >> 56) as u8, TAG);
            assert_eq!(decode(t), Some((l, p)));
        }
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        assert_eq!(encode(0, &PeerAddr::V6([0; 16], 1)), None);
        assert_eq!(encode(0, &PeerAddr::Unknown), None);
        assert_eq!(encode(128, &PeerAddr::Unix), None);
        assert_eq!(encode(u16::MAX, &PeerAddr::V4([1, 2, 3, 4], 5)), None);
    }

    #[test]
    fn foreign_values_are_not_tokens() {
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
        assert_eq!(decode(1 << 56), None); // a worker op kind
        // a unix token must not carry address bits
        assert_eq!(decode(encode(1, &PeerAddr::Unix).unwrap() | 1), None);
    }
}
