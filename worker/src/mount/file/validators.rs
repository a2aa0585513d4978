//! Entity tags and the conditional-request checks of RFC 9110 13 that a static file
//! server needs: If-Match (strong comparison, `*`), If-Unmodified-Since, If-None-Match
//! (weak comparison, `*`), If-Modified-Since, If-Range.
//!
//! ETags are nginx's shape, `"<mtime hex>-<size hex>"`, for files (cheap, stable across
//! restarts and identical in every worker), and `"<fnv64 hex>-<size hex>"` of the
//! content for embedded files (whose mtime is a constant). Parsing is allocation-free.

use bytes::Bytes;

use super::date::parse_http_date;

/// Longest ETag we make: two quotes, 16 + 16 hex digits and a dash.
const MAX_ETAG_LEN: usize = 35;

fn etag_from(a: u64, b: u64) -> Bytes {
    use std::io::Write;
    let mut buf = [0u8; MAX_ETAG_LEN];
    let mut w = &mut buf[..];
    // Cannot fail: the buffer fits the longest output.
    let _ = write!(w, "\"{a:x}-{b:x}\"");
    let n = MAX_ETAG_LEN - w.len();
    Bytes::copy_from_slice(buf.get(..n).unwrap_or_default())
}

/// The ETag of a file (nginx style): modification time in seconds and size, in hex.
pub fn file_etag(mtime: u64, size: u64) -> Bytes {
    etag_from(mtime, size)
}

/// The ETag of content that has no meaningful mtime (embedded files): a 64-bit FNV-1a
/// of the bytes and the size. Not cryptographic; it only has to change when the
/// content does, across builds.
pub fn content_etag(content: &[u8]) -> Bytes {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in content {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    etag_from(h, content.len() as u64)
}

/// Splits a comma list of entity-tags (RFC 9110 8.8.3) and calls `f` with each tag's
/// opaque-tag (quotes included) and whether it was weak. Stops at the first malformed
/// element (the rest of a broken field is not trusted) or when `f` returns true.
fn any_tag(field: &[u8], mut f: impl FnMut(&[u8], bool) -> bool) -> bool {
    let mut s = field;
    loop {
        s = s.trim_ascii_start();
        while let Some(rest) = s.strip_prefix(b",") {
            s = rest.trim_ascii_start();
        }
        if s.is_empty() {
            return false;
        }
        let (weak, rest) = match s.strip_prefix(b"W/") {
            Some(r) => (true, r),
            None => (false, s),
        };
        if rest.first() != Some(&b'"') {
            return false;
        }
        let Some(close) = rest.iter().skip(1).position(|&b| b == b'"') else {
            return false;
        };
        let end = close + 2;
        let (tag, after) = rest.split_at_checked(end).unwrap_or((rest, b""));
        if f(tag, weak) {
            return true;
        }
        let after_t = after.trim_ascii_start();
        if !(after_t.is_empty() || after_t.starts_with(b",")) {
            return false;
        }
        s = after_t;
    }
}

/// If-Match (RFC 9110 13.1.1): true when the field is `*` (the file exists: the mount
/// only asks when it does) or lists `etag` by the strong comparison (8.8.3.2: both
/// tags strong and their opaque-tags equal). False means 412.
pub fn match_matches(field: &[u8], etag: &[u8]) -> bool {
    if field.trim_ascii() == b"*" {
        return true;
    }
    if etag.starts_with(b"W/") {
        return false;
    }
    any_tag(field, |tag, weak| !weak && tag == etag)
}

/// If-Unmodified-Since (RFC 9110 13.1.4): false (412) when the field is a valid date
/// and the file was modified after it. An invalid date (or a list of dates) is
/// ignored: true.
pub fn unmodified_since(field: &[u8], mtime: u64) -> bool {
    parse_http_date(field).is_none_or(|since| mtime <= since)
}

/// If-None-Match (RFC 9110 13.1.2): true when the field matches `etag` by the weak
/// comparison (8.8.3.2: opaque-tags equal, either or both may be weak), or is `*`.
pub fn none_match_matches(field: &[u8], etag: &[u8]) -> bool {
    if field.trim_ascii() == b"*" {
        return true;
    }
    let ours = etag.strip_prefix(b"W/").unwrap_or(etag);
    any_tag(field, |tag, _weak| tag == ours)
}

/// If-Modified-Since (RFC 9110 13.1.3): true when the field is a valid date and the
/// representation was not modified after it, i.e. the answer is 304. An invalid date
/// is ignored (false).
pub fn not_modified_since(field: &[u8], mtime: u64) -> bool {
    parse_http_date(field).is_some_and(|since| mtime <= since)
}

/// If-Range (RFC 9110 13.1.5): true when the range may be applied. An entity-tag must
/// match by the strong comparison (a weak tag never does); a date must equal
/// Last-Modified exactly and Last-Modified must be strong, which for a date means the
/// file was last changed at least a second before `now` (8.8.2.2). Anything else
/// sends the whole representation.
pub fn if_range_matches(field: &[u8], etag: &[u8], mtime: u64, now: u64) -> bool {
    let f = field.trim_ascii();
    if f.starts_with(b"\"") || f.starts_with(b"W/") {
        let mut n = 0;
        let mut matched = false;
        // Exactly one entity-tag (the field is not a list).
        any_tag(f, |tag, weak| {
            n += 1;
            matched = !weak && !etag.starts_with(b"W/") && tag == etag;
            false
        });
        return n == 1 && matched;
    }
    parse_http_date(f).is_some_and(|d| d == mtime && mtime < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_shapes() {
        assert_eq!(&file_etag(0x5f3a_1b2c, 0x1c)[..], b"\"5f3a1b2c-1c\"");
        assert_eq!(
            &file_etag(u64::MAX, u64::MAX)[..],
            b"\"ffffffffffffffff-ffffffffffffffff\""
        );
        assert_eq!(file_etag(u64::MAX, u64::MAX).len(), MAX_ETAG_LEN);
        assert_ne!(content_etag(b"a"), content_etag(b"b"));
        assert!(content_etag(b"").ends_with(b"-0\""));
    }

    #[test]
    fn if_none_match_weak_comparison() {
        let e = b"\"abc-1\"";
        assert!(none_match_matches(b"\"abc-1\"", e));
        assert!(none_match_matches(b"W/\"abc-1\"", e));
        assert!(none_match_matches(b"\"x\", W/\"abc-1\"", e));
        assert!(none_match_matches(b" \"x\" ,, \"abc-1\" ", e));
        assert!(none_match_matches(b"*", e));
        assert!(!none_match_matches(b"\"abc-2\"", e));
        assert!(!none_match_matches(b"abc-1", e));
        assert!(!none_match_matches(b"\"abc-1", e));
        assert!(!none_match_matches(b"", e));
        assert!(
            !none_match_matches(b"\"x\"junk, \"abc-1\"", e),
            "malformed list"
        );
        assert!(!none_match_matches(b"\"\"", e));
    }

    #[test]
    fn if_match_strong_comparison() {
        let e = b"\"abc-1\"";
        assert!(match_matches(b"\"abc-1\"", e));
        assert!(match_matches(b"\"x\", \"abc-1\"", e));
        assert!(match_matches(b" * ", e));
        assert!(
            !match_matches(b"W/\"abc-1\"", e),
            "a weak tag never matches"
        );
        assert!(!match_matches(b"\"abc-1\"", b"W/\"abc-1\""));
        assert!(!match_matches(b"\"abc-2\"", e));
        assert!(!match_matches(b"abc-1", e));
        assert!(!match_matches(b"", e));
        assert!(!match_matches(b"\"x\"junk, \"abc-1\"", e));
    }

    #[test]
    fn if_unmodified_since() {
        let t = 784_111_777;
        assert!(unmodified_since(b"Sun, 06 Nov 1994 08:49:37 GMT", t));
        assert!(unmodified_since(b"Sun, 06 Nov 1994 08:49:38 GMT", t));
        assert!(!unmodified_since(b"Sun, 06 Nov 1994 08:49:36 GMT", t));
        assert!(unmodified_since(b"garbage", t), "ignored");
        assert!(
            unmodified_since(
                b"Sun, 06 Nov 1994 08:49:36 GMT, Sun, 06 Nov 1994 08:49:36 GMT",
                t
            ),
            "a list is ignored"
        );
    }

    #[test]
    fn if_modified_since() {
        let t = 784_111_777;
        assert!(not_modified_since(b"Sun, 06 Nov 1994 08:49:37 GMT", t));
        assert!(not_modified_since(b"Sun, 06 Nov 1994 08:49:38 GMT", t));
        assert!(!not_modified_since(b"Sun, 06 Nov 1994 08:49:36 GMT", t));
        assert!(!not_modified_since(b"garbage", t));
    }

    #[test]
    fn if_range_strong() {
        let e = b"\"abc-1\"";
        let t = 784_111_777;
        assert!(if_range_matches(b"\"abc-1\"", e, t, t + 10));
        assert!(!if_range_matches(b"W/\"abc-1\"", e, t, t + 10));
        assert!(!if_range_matches(b"\"abc-2\"", e, t, t + 10));
        assert!(!if_range_matches(b"\"abc-1\", \"abc-1\"", e, t, t + 10));
        assert!(if_range_matches(
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            e,
            t,
            t + 10
        ));
        assert!(!if_range_matches(
            b"Sun, 06 Nov 1994 08:49:38 GMT",
            e,
            t,
            t + 10
        ));
        // Modified within the current second: the date is weak, no range.
        assert!(!if_range_matches(b"Sun, 06 Nov 1994 08:49:37 GMT", e, t, t));
        assert!(!if_range_matches(b"junk", e, t, t + 10));
    }
}
