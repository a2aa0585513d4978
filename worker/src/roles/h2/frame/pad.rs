//! Padding (RFC 9113 sections 6.1, 6.2, 6.6): a Pad Length byte in front and that many
//! bytes of padding at the end, when the PADDED flag is set.

use bytes::BufMut;

use super::head::{Head, flags};
use super::{ErrorCode, H2Error};

/// Splits a padded payload: returns the Pad Length (when PADDED is set) and the bytes
/// between the `fixed` bytes that follow the Pad Length (HEADERS' priority fields,
/// PUSH_PROMISE's promised stream) and the padding, those `fixed` bytes included at
/// the front. Errors are connection errors: every padded frame type either carries a
/// field block or is DATA, for which 6.1 asks for a connection error.
pub(super) fn strip(
    head: Head,
    payload: &[u8],
    fixed: usize,
) -> Result<(Option<u8>, &[u8]), H2Error> {
    if head.flags & flags::PADDED == 0 {
        if payload.len() < fixed {
            return Err(H2Error::connection(
                ErrorCode::FRAME_SIZE_ERROR,
                "frame too short for its fields",
            ));
        }
        return Ok((None, payload));
    }
    let Some((&pad, rest)) = payload.split_first() else {
        // 4.2: "too small to contain mandatory frame data".
        return Err(H2Error::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without a Pad Length",
        ));
    };
    if rest.len() < fixed {
        return Err(H2Error::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame too short for its fields",
        ));
    }
    // 6.1, 6.2, 6.6: "If the length of the padding is the length of the frame payload
    // or greater, the recipient MUST treat this as a connection error of type
    // PROTOCOL_ERROR." Padding content is not checked (a receiver "is not obligated to
    // verify padding").
    let body = rest.len() - fixed;
    if usize::from(pad) > body {
        return Err(H2Error::connection(
            ErrorCode::PROTOCOL_ERROR,
            "padding as long as the payload",
        ));
    }
    Ok((Some(pad), &rest[..rest.len() - usize::from(pad)]))
}

/// Appends `[Pad Length] fixed body [padding of zeros]`.
pub(super) fn encode_padded(pad: Option<u8>, fixed: &[u8], body: &[u8], dst: &mut impl BufMut) {
    if let Some(p) = pad {
        dst.put_u8(p);
    }
    dst.put_slice(fixed);
    dst.put_slice(body);
    if let Some(p) = pad {
        dst.put_bytes(0, usize::from(p));
    }
}

/// The payload length of `[Pad Length] fixed body [padding]`.
pub(super) fn padded_len(pad: Option<u8>, fixed: usize, body: usize) -> u32 {
    (fixed + body + pad.map_or(0, |p| 1 + usize::from(p))) as u32
}
