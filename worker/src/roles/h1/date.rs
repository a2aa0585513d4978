//! HTTP dates (RFC 9110 5.6.7): formatting IMF-fixdate, parsing all three formats.
//!
//! The `Date` header is formatted once per second ([`DateCache`]); `Last-Modified` once
//! per cached file; `If-Modified-Since` and `If-Range` are parsed per request, so all of
//! it is allocation-free. Hand-written because `httpdate` would be a dependency for
//! sixty lines, and `std::time` cannot format. Shared by the h1 role and the file mount
//! (and h2 later).
//!
//! Conversions use Howard Hinnant's days-from-civil algorithms (proleptic Gregorian).

/// `Sun, 06 Nov 1994 08:49:37 GMT` is 29 bytes.
pub const HTTP_DATE_LEN: usize = 29;

/// Latest time an IMF-fixdate can carry (9999-12-31T23:59:59Z): its year is 4DIGIT.
pub const MAX_HTTP_DATE: u64 = 253_402_300_799;

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const DAY_NAMES_LONG: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];

/// (year, month 1..=12, day 1..=31) from days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 from a civil date (month 1..=12).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn put2(out: &mut [u8], at: usize, v: u32) {
    if let Some(s) = out.get_mut(at..at + 2) {
        s[0] = b'0' + (v / 10 % 10) as u8;
        s[1] = b'0' + (v % 10) as u8;
    }
}

/// Formats `secs` (Unix time, clamped to [`MAX_HTTP_DATE`]) as an IMF-fixdate
/// (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn fmt_http_date(secs: u64) -> [u8; HTTP_DATE_LEN] {
    let secs = secs.min(MAX_HTTP_DATE);
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out, 5, d);
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y as u32;
    put2(&mut out, 12, y / 100);
    put2(&mut out, 14, y % 100);
    put2(&mut out, 17, sod / 3600);
    put2(&mut out, 20, sod / 60 % 60);
    put2(&mut out, 23, sod % 60);
    out
}

/// A cursor over the date bytes; every method fails (None) instead of panicking.
struct P<'a>(&'a [u8]);

impl P<'_> {
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(l)?;
        Some(())
    }
    fn digits(&mut self, n: usize) -> Option<u32> {
        let (d, rest) = self.0.split_at_checked(n)?;
        let mut v = 0u32;
        for &b in d {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        self.0 = rest;
        Some(v)
    }
    fn month(&mut self) -> Option<u32> {
        let (name, rest) = self.0.split_at_checked(3)?;
        let i = MONTHS.iter().position(|m| &m[..] == name)?;
        self.0 = rest;
        Some(i as u32 + 1)
    }
    /// `hh:mm:ss` as seconds of the day.
    fn time(&mut self) -> Option<u32> {
        let h = self.digits(2)?;
        self.lit(b":")?;
        let m = self.digits(2)?;
        self.lit(b":")?;
        let s = self.digits(2)?;
        // RFC 9110 5.6.7 allows second 60 (leap second); treat it as 59.
        (h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s.min(59))
    }
}

fn to_unix(y: i64, m: u32, d: u32, sod: u32) -> Option<u64> {
    let mdays = match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=mdays).contains(&d) || y < 1970 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + i64::from(sod)).ok()
}

/// Parses an HTTP-date in any of the three formats a recipient MUST accept
/// (RFC 9110 5.6.7): IMF-fixdate, obsolete RFC 850 and asctime. Returns Unix seconds;
/// `None` for anything else (the caller then ignores the header field, as RFC 9110
/// 13.1.3 requires for an invalid If-Modified-Since). Dates before 1970 are `None`.
/// The day name is checked for shape, not for agreeing with the date.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    let comma = s.iter().position(|&b| b == b',');
    match comma {
        Some(3) => {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            let mut p = P(s.get(3..)?);
            p.lit(b", ")?;
            let d = p.digits(2)?;
            p.lit(b" ")?;
            let m = p.month()?;
            p.lit(b" ")?;
            let y = p.digits(4)?;
            p.lit(b" ")?;
            let t = p.time()?;
            p.lit(b" GMT")?;
            p.0.is_empty().then_some(())?;
            DAYS.iter()
                .any(|n| &n[..] == s.get(..3).unwrap_or_default())
                .then_some(())?;
            to_unix(i64::from(y), m, d, t)
        }
        Some(n) => {
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            let name = s.get(..n)?;
            DAY_NAMES_LONG.contains(&name).then_some(())?;
            let mut p = P(s.get(n..)?);
            p.lit(b", ")?;
            let d = p.digits(2)?;
            p.lit(b"-")?;
            let m = p.month()?;
            p.lit(b"-")?;
            let yy = p.digits(2)?;
            p.lit(b" ")?;
            let t = p.time()?;
            p.lit(b" GMT")?;
            p.0.is_empty().then_some(())?;
            // RFC 9110 5.6.7: a two-digit year more than 50 years in the future is in
            // the past century. Relative to 2000-2049 that is: 00-49 -> 20xx, else 19xx.
            let y = if yy < 50 { 2000 + yy } else { 1900 + yy };
            to_unix(i64::from(y), m, d, t)
        }
        None => {
            // asctime: Sun Nov  6 08:49:37 1994
            let mut p = P(s.get(3..)?);
            DAYS.iter()
                .any(|n| &n[..] == s.get(..3).unwrap_or_default())
                .then_some(())?;
            p.lit(b" ")?;
            let m = p.month()?;
            p.lit(b" ")?;
            let d = if p.0.first() == Some(&b' ') {
                p.lit(b" ")?;
                p.digits(1)?
            } else {
                p.digits(2)?
            };
            p.lit(b" ")?;
            let t = p.time()?;
            p.lit(b" ")?;
            let y = p.digits(4)?;
            p.0.is_empty().then_some(())?;
            to_unix(i64::from(y), m, d, t)
        }
    }
}

/// The Date header value, re-formatted only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: u64,
    buf: [u8; HTTP_DATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            secs: 0,
            buf: fmt_http_date(0),
        }
    }
}

impl DateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// IMF-fixdate for `unix_secs` (the caller's clock, read once per loop pass).
    #[inline]
    pub fn get(&mut self, unix_secs: u64) -> &[u8; HTTP_DATE_LEN] {
        if unix_secs != self.secs {
            self.secs = unix_secs;
            self.buf = fmt_http_date(unix_secs);
        }
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reformats_on_second_change() {
        let mut c = DateCache::new();
        assert_eq!(c.get(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.get(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.get(784_111_778), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(c.get(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    const RFC_EXAMPLE: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn rfc9110_examples_all_three_formats() {
        assert_eq!(
            &fmt_http_date(RFC_EXAMPLE),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sun Nov  6 08:49:37 1994"),
            Some(RFC_EXAMPLE)
        );
    }

    #[test]
    fn epoch_leap_and_limits() {
        assert_eq!(&fmt_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &fmt_http_date(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            &fmt_http_date(u64::MAX),
            b"Fri, 31 Dec 9999 23:59:59 GMT",
            "clamped to MAX_HTTP_DATE"
        );
        assert_eq!(
            parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_HTTP_DATE)
        );
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(parse_http_date(b"Wed, 29 Feb 2001 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 31 Dec 1969 23:59:59 GMT"), None);
    }

    #[test]
    fn round_trip_many() {
        let mut t = 0u64;
        while t < 4_102_444_800 {
            let f = fmt_http_date(t);
            assert_eq!(
                parse_http_date(&f),
                Some(t),
                "{}",
                String::from_utf8_lossy(&f)
            );
            t += 86_399 * 7 + 12_345;
        }
    }

    #[test]
    fn rfc850_century() {
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_http_date(b"Saturday, 01-Jan-00 00:00:00 GMT"),
            Some(946_684_800)
        );
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 GMTx",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:60:00 GMT",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"Sun, 00 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Funday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov 6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:3",
            b"\xff\xfe, 06 Nov 1994 08:49:37 GMT",
            b",,,",
        ] {
            assert_eq!(parse_http_date(s), None, "{}", String::from_utf8_lossy(s));
        }
    }
}
