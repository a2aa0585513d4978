//! Byte ranges (RFC 9110 14): parsing a `Range` header field against a length, and the
//! `Content-Range` value of the answer.
//!
//! Only single ranges are served as 206. A request for several ranges is answered with
//! the whole representation (200), which RFC 9110 14.2 allows ("A server MAY ignore the
//! Range header field"), and which avoids multipart/byteranges and the
//! many-small-ranges amplification attacks (RFC 9110 17.15). Hand-written: a dozen
//! lines of grammar, no allocation.

use std::fmt;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation (no usable Range: unknown unit, malformed,
    /// several ranges, or an empty representation and a suffix range).
    Full,
    /// One satisfiable range: `len` bytes from `start` (206).
    Partial { start: u64, len: u64 },
    /// No range of the set is satisfiable (416, RFC 9110 15.5.17).
    Unsatisfiable,
}

/// The value of a `Content-Range` header field (RFC 9110 14.4), kept structured so the
/// caller formats it straight into its header buffer (h1) or HPACK encoder (h2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/complete` (206).
    Bytes {
        first: u64,
        last: u64,
        complete: u64,
    },
    /// `bytes */complete` (416).
    Unsatisfied { complete: u64 },
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContentRange::Bytes {
                first,
                last,
                complete,
            } => write!(f, "bytes {first}-{last}/{complete}"),
            ContentRange::Unsatisfied { complete } => write!(f, "bytes */{complete}"),
        }
    }
}

/// Parses a run of DIGITs at the start of `s`, saturating at `u64::MAX` (a number too
/// big to represent is still a valid, just unsatisfiable or clamped, position).
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let (d, rest) = s.split_at(n);
    let v = d.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Some((v, rest))
}

/// One range-spec (RFC 9110 14.1.1), `None` if it is not one.
fn spec(s: &[u8], len: u64) -> Option<RangeOutcome> {
    if let Some(suffix) = s.strip_prefix(b"-") {
        // suffix-range = "-" suffix-length
        let (n, rest) = number(suffix)?;
        if !rest.is_empty() {
            return None;
        }
        // 14.1.1: satisfiable iff suffix-length > 0; shorter representations are sent
        // whole. With len == 0 there is nothing to describe in a Content-Range.
        return Some(if n == 0 {
            RangeOutcome::Unsatisfiable
        } else if len == 0 {
            RangeOutcome::Full
        } else {
            let n = n.min(len);
            RangeOutcome::Partial {
                start: len - n,
                len: n,
            }
        });
    }
    // int-range = first-pos "-" [ last-pos ]
    let (first, rest) = number(s)?;
    let rest = rest.strip_prefix(b"-")?;
    let last = if rest.is_empty() {
        None
    } else {
        let (l, r) = number(rest)?;
        if !r.is_empty() {
            return None;
        }
        Some(l)
    };
    if last.is_some_and(|l| l < first) {
        // 14.1.1: "invalid if the last-pos value is present and less than the
        // first-pos": the whole header is then invalid and ignored (14.2).
        return None;
    }
    if first >= len {
        // 14.1.1: an int-range is satisfiable iff first-pos < length.
        return Some(RangeOutcome::Unsatisfiable);
    }
    // A last-pos at or past the end means "to the end" (14.1.2).
    let last = last.map_or(len - 1, |l| l.min(len - 1));
    Some(RangeOutcome::Partial {
        start: first,
        len: last - first + 1,
    })
}

/// Evaluates a `Range` field value for a representation of `len` bytes
/// (RFC 9110 14.2). Invalid or unknown-unit values give [`RangeOutcome::Full`]
/// ("MUST ignore a Range header field ... that contains a range unit it does not
/// understand", MAY ignore an invalid ranges-specifier).
pub fn parse_range(value: &[u8], len: u64) -> RangeOutcome {
    let v = value.trim_ascii();
    // ranges-specifier = range-unit "=" range-set; range units are case-insensitive
    // (14.1).
    let Some((unit, set)) = v.split_at_checked(6) else {
        return RangeOutcome::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeOutcome::Full;
    }
    // range-set = 1#range-spec: a comma list; empty elements and OWS around commas
    // are allowed (RFC 9110 5.6.1.2).
    let mut found = None;
    for elem in set.split(|&b| b == b',') {
        let elem = elem.trim_ascii();
        if elem.is_empty() {
            continue;
        }
        let Some(o) = spec(elem, len) else {
            return RangeOutcome::Full;
        };
        if found.is_some() {
            // Several ranges: answered whole (see the module comment). Their syntax
            // was still checked so far, which changes nothing: both give Full.
            return RangeOutcome::Full;
        }
        found = Some(o);
    }
    found.unwrap_or(RangeOutcome::Full)
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    fn p(s: &str, len: u64) -> RangeOutcome {
        parse_range(s.as_bytes(), len)
    }

    #[test]
    fn rfc9110_14_1_2_examples() {
        // Representation of 10000 bytes.
        assert_eq!(p("bytes=0-499", 10000), Partial { start: 0, len: 500 });
        assert_eq!(
            p("bytes=500-999", 10000),
            Partial {
                start: 500,
                len: 500
            }
        );
        assert_eq!(
            p("bytes=-500", 10000),
            Partial {
                start: 9500,
                len: 500
            }
        );
        assert_eq!(
            p("bytes=9500-", 10000),
            Partial {
                start: 9500,
                len: 500
            }
        );
        assert_eq!(p("bytes=0-0", 10000), Partial { start: 0, len: 1 });
        assert_eq!(
            p("bytes=-1", 10000),
            Partial {
                start: 9999,
                len: 1
            }
        );
        // Several ranges: whole representation.
        assert_eq!(p("bytes=0-0,-1", 10000), Full);
        assert_eq!(p("bytes=500-600,601-999", 10000), Full);
    }

    #[test]
    fn clamping_and_unsatisfiable() {
        assert_eq!(p("bytes=0-99999", 100), Partial { start: 0, len: 100 });
        assert_eq!(p("bytes=-99999", 100), Partial { start: 0, len: 100 });
        assert_eq!(p("bytes=100-", 100), Unsatisfiable);
        assert_eq!(p("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Full);
        assert_eq!(
            p("bytes=99999999999999999999999-", 100),
            Unsatisfiable,
            "saturating parse"
        );
        assert_eq!(
            p("bytes=0-99999999999999999999999", 100),
            Partial { start: 0, len: 100 }
        );
        assert_eq!(
            p("bytes=-99999999999999999999999", 100),
            Partial { start: 0, len: 100 }
        );
    }

    #[test]
    fn syntax_variants() {
        assert_eq!(p("BYTES=1-2", 10), Partial { start: 1, len: 2 });
        assert_eq!(p(" bytes=1-2 ", 10), Partial { start: 1, len: 2 });
        assert_eq!(p("bytes=1-2, ", 10), Partial { start: 1, len: 2 });
        assert_eq!(p("bytes= ,1-2", 10), Partial { start: 1, len: 2 });
    }

    #[test]
    fn malformed_is_ignored() {
        for s in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=1",
            "bytes=5-1",
            "bytes=1--2",
            "bytes=--1",
            "bytes=1-2x",
            "bytes=1 -2",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=0-1,x",
            "bytes=x,0-1",
        ] {
            assert_eq!(p(s, 100), Full, "{s:?}");
        }
    }

    #[test]
    fn content_range_format() {
        let r = ContentRange::Bytes {
            first: 0,
            last: 499,
            complete: 1234,
        };
        assert_eq!(r.to_string(), "bytes 0-499/1234");
        assert_eq!(
            ContentRange::Unsatisfied { complete: 1234 }.to_string(),
            "bytes */1234"
        );
    }
}
