//! Close frames: status codes (RFC 6455 section 7.4) and the close body (section 5.5.1).
//!
//! A close frame's body, when present, is a 2-byte big-endian status code followed by a
//! UTF-8 reason. A 1-byte body is malformed; codes outside the ranges below are a
//! protocol error; a reason that is not UTF-8 is an invalid-payload error (1007), as
//! Autobahn 7.5.1 expects.

use super::WsError;

/// Status codes of section 7.4.1 (and the IANA registry of section 11.7).
pub mod code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: going away (server shutdown, page navigated away).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// 1006: closed abnormally, without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// 1007: data inconsistent with the message type (non UTF-8 text).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// 1012: service restart (IANA registry).
    pub const SERVICE_RESTART: u16 = 1012;
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: u16 = 1014;
    /// 1015: TLS handshake failure (never sent on the wire).
    pub const TLS_HANDSHAKE: u16 = 1015;
}

/// Whether `c` may appear in a close frame on the wire (section 7.4.1 and 7.4.2):
/// 1000-1003 and 1007-1011 are defined; 1012-1014 are registered with IANA and accepted;
/// 3000-3999 are for libraries and frameworks, 4000-4999 for private use. 1004 is
/// reserved, 1005/1006/1015 "MUST NOT be set as a status code in a Close control frame",
/// 0-999 are unused and 1016-2999 are reserved for future revisions.
#[inline]
pub fn is_valid_code(c: u16) -> bool {
    matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Validate a received close body (section 5.5.1): returns the code (None for an empty
/// body) and the reason bytes, which are valid UTF-8.
pub fn parse_close_body(body: &[u8]) -> Result<(Option<u16>, &[u8]), WsError> {
    match body {
        [] => Ok((None, body)),
        [_] => Err(WsError::CLOSE_BODY_ONE_BYTE),
        [hi, lo, reason @ ..] => {
            let c = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(c) {
                return Err(WsError::CLOSE_CODE);
            }
            // Section 5.5.1: the reason is UTF-8; section 8.1 makes invalid UTF-8 a 1007.
            if std::str::from_utf8(reason).is_err() {
                return Err(WsError::CLOSE_REASON_UTF8);
            }
            Ok((Some(c), reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of section 7.4, as Autobahn 7.7 (valid) and 7.9 (invalid) test it.
    #[test]
    fn rfc6455_7_4_code_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ];
        for c in valid {
            assert!(is_valid_code(c), "{c}");
            assert_eq!(parse_close_body(&c.to_be_bytes()), Ok((Some(c), &b""[..])));
        }
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in invalid {
            assert!(!is_valid_code(c), "{c}");
            assert_eq!(parse_close_body(&c.to_be_bytes()), Err(WsError::CLOSE_CODE));
        }
    }

    #[test]
    fn close_body_shapes() {
        assert_eq!(parse_close_body(b""), Ok((None, &b""[..])));
        assert_eq!(parse_close_body(&[0x03]), Err(WsError::CLOSE_BODY_ONE_BYTE));
        assert_eq!(
            parse_close_body(&[0x03, 0xe8, b'b', b'y', b'e']),
            Ok((Some(1000), &b"bye"[..]))
        );
        // Autobahn 7.5.1: a reason that is not UTF-8 -> 1007.
        let e = parse_close_body(&[0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0, 0x80]).unwrap_err();
        assert_eq!(e.code, code::INVALID_PAYLOAD);
    }
}
