//! Request path -> root-relative file path: percent-decoding and dot-segment removal.
//!
//! This is the first of the two walls between a URL and the file system (the second is
//! the open beneath the root, in `fs.rs`). It decodes once (RFC 3986 2.1), refuses what
//! could change the path's structure after decoding, and removes `.`/`..` segments
//! (RFC 3986 5.2.4, with the difference nginx also makes: a `..` that would climb above
//! the root is an error, not silently dropped). Hand-written because it has to be
//! allocation-free on the hot path and stricter than a general URL library.
//!
//! The output is written into a caller-owned buffer: segments joined by `/`, no leading
//! `/`, never an empty, `.` or `..` segment, never a NUL, `\`, control byte, or invalid
//! UTF-8; empty for the root.

/// Longest request path accepted, raw (before decoding). Linux's PATH_MAX is 4096, so a
/// longer path cannot name a file; refusing early bounds the work and the buffer.
pub const MAX_PATH_LEN: usize = 4096;

/// Why a path was refused. Each maps to one HTTP status ([`PathError::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path, a bad percent escape, an encoded `/` or `\`, a NUL or
    /// control byte, or not UTF-8 after decoding (400).
    Malformed,
    /// A `..` that climbs above the root (400, like nginx).
    AboveRoot,
    /// Longer than [`MAX_PATH_LEN`] (414, RFC 9110 15.5.15).
    TooLong,
}

impl PathError {
    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            PathError::Malformed | PathError::AboveRoot => 400,
            PathError::TooLong => 414,
        }
    }
}

/// What [`normalize`] found besides the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    /// The path names a directory (it ended in `/`, `/.` or `/..`, RFC 3986 5.2.4), so a
    /// directory is answered with its index and a file with 404.
    pub trailing_slash: bool,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes never allowed in a path segment, raw or decoded: NUL ends a C path, `\` is a
/// separator on other systems and in some proxies' minds, controls (CTL, RFC 5234 B.1)
/// would be echoed into headers (`Location`) and logs.
#[inline]
fn forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'\\'
}

/// Percent-decodes one raw segment (no `/` in it) onto the end of `out`.
fn decode_segment(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            // RFC 3986 2.1: "%" HEXDIG HEXDIG; anything else is not a URI.
            let hi = raw.get(i + 1).copied().and_then(hex);
            let lo = raw.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::Malformed);
            };
            i += 3;
            let d = (hi << 4) | lo;
            // An encoded separator would become a segment boundary after decoding
            // (".%2e%2f.." tricks): refuse rather than guess which was meant.
            if d == b'/' {
                return Err(PathError::Malformed);
            }
            d
        } else {
            i += 1;
            b
        };
        if forbidden(byte) {
            return Err(PathError::Malformed);
        }
        out.push(byte);
    }
    Ok(())
}

/// Normalises the request path `raw` (the path part of the request-target, before any
/// `?`) into `out` (cleared first). On success `out` holds the root-relative path.
///
/// Rules: the path must start with `/` (origin-form, RFC 9112 3.2.1); each segment is
/// percent-decoded once (RFC 3986 2.1) so `%2e%2e` is `..` (RFC 3986 6.2.2.2); empty
/// segments (`//`) are merged; `.` is dropped and `..` removes the previous segment
/// (RFC 3986 5.2.4), or fails with [`PathError::AboveRoot`] at the root. A `?` ends the
/// path, in case a caller passes the whole target.
pub fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<Normalized, PathError> {
    out.clear();
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let raw = match raw.iter().position(|&b| b == b'?') {
        Some(q) => raw.get(..q).unwrap_or_default(),
        None => raw,
    };
    let Some((b'/', rest)) = raw.split_first() else {
        return Err(PathError::Malformed);
    };
    let mut trailing_slash = true;
    for seg in rest.split(|&b| b == b'/') {
        let before = out.len();
        if before != 0 {
            out.push(b'/');
        }
        let start = out.len();
        decode_segment(seg, out)?;
        match out.get(start..).unwrap_or_default() {
            b"" | b"." => {
                out.truncate(before);
                trailing_slash = true;
            }
            b".." => {
                out.truncate(before);
                if out.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let keep = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(keep);
                trailing_slash = true;
            }
            _ => trailing_slash = false,
        }
    }
    // File names are bytes on Linux, but URLs are UTF-8 (RFC 3987 3.1); refusing the
    // rest closes overlong encodings of '.' and '/' (%c0%ae, %c0%af) for any consumer
    // that might decode them leniently.
    if std::str::from_utf8(out).is_err() {
        out.clear();
        return Err(PathError::Malformed);
    }
    Ok(Normalized { trailing_slash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<(String, bool), PathError> {
        let mut out = Vec::new();
        let n = normalize(p.as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), n.trailing_slash))
    }

    fn ok(p: &str, want: &str, slash: bool) {
        assert_eq!(norm(p), Ok((want.to_string(), slash)), "{p}");
    }

    #[test]
    fn plain_paths() {
        ok("/", "", true);
        ok("/a", "a", false);
        ok("/a/b.html", "a/b.html", false);
        ok("/a/b/", "a/b", true);
        ok("/.hidden", ".hidden", false);
        ok("/...", "...", false);
        ok("/a..b", "a..b", false);
        ok("/a?x=/../..", "a", false);
        ok("/caf%C3%A9", "café", false);
        ok("/sp%20ace", "sp ace", false);
    }

    #[test]
    fn dot_segments_rfc3986_5_2_4() {
        // RFC 3986 5.2.4's examples, within the root.
        ok("/a/b/c/./../../g", "a/g", false);
        ok("/mid/content=5/../6", "mid/6", false);
        ok("/a/./b", "a/b", false);
        ok("/a/b/..", "a", true);
        ok("/a/b/.", "a/b", true);
        ok("/a/%2e%2E/b", "b", false);
        ok("/a/%2e/b", "a/b", false);
        ok("/a/.%2e", "", true);
        ok("//a///b//", "a/b", true);
    }

    #[test]
    fn above_root_refused() {
        for p in [
            "/..",
            "/../",
            "/../etc/passwd",
            "/a/../..",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/",
            "/%2e./x",
            "/.%2e/x",
            "//../x",
            "/./../x",
            "/a/b/../../../x",
        ] {
            assert_eq!(norm(p), Err(PathError::AboveRoot), "{p}");
        }
    }

    #[test]
    fn malformed_refused() {
        for p in [
            "",
            "a",
            "*",
            "http://host/x",
            "/..%2f",
            "/..%2fetc",
            "/a%2fb",
            "/a%2Fb",
            "/a\\b",
            "/..\\..\\x",
            "/%5c..",
            "/a%5Cb",
            "/a%00b",
            "/a%00",
            "/a\0b",
            "/%0a",
            "/a%7f",
            "/a\tb",
            "/%",
            "/%2",
            "/%g0",
            "/%0g",
            "/a%",
            // Overlong UTF-8 for '.' and '/' (CVE-2000-0884 style): not UTF-8, refused.
            "/%c0%ae%c0%ae/x",
            "/%c0%af",
            "/%e0%80%ae",
            "/%ff",
        ] {
            assert_eq!(norm(p), Err(PathError::Malformed), "{p:?}");
        }
    }

    #[test]
    fn too_long_limit() {
        let mut p = String::from("/");
        p.push_str(&"a".repeat(MAX_PATH_LEN - 1));
        assert!(norm(&p).is_ok());
        p.push('a');
        assert_eq!(norm(&p), Err(PathError::TooLong));
        assert_eq!(PathError::TooLong.status(), 414);
    }

    #[test]
    fn buffer_is_reused() {
        let mut out = Vec::with_capacity(64);
        let cap = out.capacity();
        normalize(b"/a/b/c", &mut out).unwrap();
        normalize(b"/d", &mut out).unwrap();
        assert_eq!(out, b"d");
        assert_eq!(out.capacity(), cap);
    }
}
