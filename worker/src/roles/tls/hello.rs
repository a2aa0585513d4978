//! A look at a connection's first record before rustls gets it, for the one hostile
//! handshake rustls reports misleadingly: a client that only speaks SSL 3.0, TLS 1.0 or
//! TLS 1.1.
//!
//! Such a client sends no `signature_algorithms` extension (it was added in TLS 1.2),
//! and rustls checks that extension before the version, so it answers
//! `handshake_failure` ("SignatureAlgorithmsExtensionRequired"). RFC 5246 appendix E.1
//! and RFC 8446 appendix D say a server that does not support the client's version
//! sends `protocol_version`, which is what an operator looking at the failure metrics,
//! and the client's own error message, should see. So a ClientHello whose
//! `legacy_version` is below TLS 1.2 and that has no `supported_versions` extension
//! (RFC 8446 section 4.2.1: the only way to offer TLS 1.3) is refused here with that
//! alert; an SSLv2-format hello likewise. Anything this parser does not fully
//! understand is left to rustls.

/// What the first record says about the client's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HelloCheck {
    /// The record is not complete yet: look again with more bytes.
    NeedMore,
    /// Only versions before TLS 1.2 (or SSLv2's hello format): refuse.
    TooOld,
    /// Anything else: rustls decides.
    Pass,
}

/// RFC 8446 section 4.2: `supported_versions`.
const EXT_SUPPORTED_VERSIONS: u16 = 43;

pub(crate) fn check_first_record(buf: &[u8]) -> HelloCheck {
    match buf {
        [] => HelloCheck::NeedMore,
        // SSLv2-compatible hello (RFC 5246 appendix E.2): a 2-byte length with the top
        // bit set, then message type 1, CLIENT-HELLO.
        [b0, ..] if b0 & 0x80 != 0 => match buf.get(2) {
            Some(1) => HelloCheck::TooOld,
            Some(_) => HelloCheck::Pass,
            None => HelloCheck::NeedMore,
        },
        [22, ..] => {
            let Some(hdr) = buf.get(..5) else {
                return HelloCheck::NeedMore;
            };
            let len = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
            // Longer than any record may be (RFC 8446 section 5.2): rustls refuses it
            // at once, with record_overflow, instead of this waiting for it.
            if len > (1 << 14) + 256 {
                return HelloCheck::Pass;
            }
            match buf.get(5..5 + len) {
                Some(body) => check_hello(body),
                None => HelloCheck::NeedMore,
            }
        }
        _ => HelloCheck::Pass,
    }
}

/// `body`: a handshake record's payload (RFC 8446 section 4.1.2, ClientHello).
fn check_hello(body: &[u8]) -> HelloCheck {
    let mut r = body;
    let (Some(&[1]), Some(_len)) = (take(&mut r, 1), take(&mut r, 3)) else {
        return HelloCheck::Pass;
    };
    let Some(&[major, minor]) = take(&mut r, 2) else {
        return HelloCheck::Pass;
    };
    if u16::from_be_bytes([major, minor]) >= 0x0303 {
        return HelloCheck::Pass;
    }
    // random, session id, cipher suites, compression methods
    if take(&mut r, 32).is_none()
        || vec8(&mut r).is_none()
        || vec16(&mut r).is_none()
        || vec8(&mut r).is_none()
    {
        return HelloCheck::Pass;
    }
    if r.is_empty() {
        return HelloCheck::TooOld; // no extensions at all
    }
    let Some(mut exts) = vec16(&mut r) else {
        return HelloCheck::Pass;
    };
    while !exts.is_empty() {
        let (Some(ty), Some(_)) = (take(&mut exts, 2), vec16(&mut exts)) else {
            return HelloCheck::Pass;
        };
        if u16::from_be_bytes([ty[0], ty[1]]) == EXT_SUPPORTED_VERSIONS {
            return HelloCheck::Pass;
        }
    }
    HelloCheck::TooOld
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = r.split_at_checked(n)?;
    *r = b;
    Some(a)
}

fn vec8<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::from(*take(r, 1)?.first()?);
    take(r, n)
}

fn vec16<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let l = take(r, 2)?;
    take(r, usize::from(u16::from_be_bytes([l[0], l[1]])))
}

/// The fatal `protocol_version` alert (70) in a plain-text record; record version TLS
/// 1.0, which every old client accepts.
pub(crate) const PROTOCOL_VERSION_ALERT: [u8; 7] = [21, 3, 1, 0, 2, 2, 70];
