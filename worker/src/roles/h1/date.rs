//! HTTP dates (RFC 9110 5.6.7): the IMF-fixdate form `Sun, 06 Nov 1994 08:49:37 GMT`.
//!
//! Hand-written because it is tiny and on the hot path: the Date header is formatted
//! once per second from a unix time the caller passes in (sans-IO: no clock here),
//! with Howard Hinnant's `civil_from_days` calendar arithmetic, no `fmt`, no
//! allocation. The parser accepts IMF-fixdate only; the obsolete RFC 850 and asctime
//! forms (which 5.6.7 says a recipient SHOULD accept) return `None`, and a
//! conditional request with such a date is then treated as unconditional, which is
//! always safe.

/// Length of an IMF-fixdate.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Latest time we format: 9999-12-31T23:59:59Z (the format has four year digits).
const MAX_SECS: u64 = 253_402_300_799;

const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 -> (year, month 1-12, day 1-31). Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1-12, day 1-31) -> days since 1970-01-01. Hinnant's inverse.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[inline]
fn two(out: &mut [u8], v: u32) {
    if let [a, b, ..] = out {
        *a = b'0' + (v / 10 % 10) as u8;
        *b = b'0' + (v % 10) as u8;
    }
}

/// Format `unix_secs` as IMF-fixdate (times after year 9999 are clamped).
pub fn format_imf_fixdate(unix_secs: u64, out: &mut [u8; IMF_FIXDATE_LEN]) {
    let secs = unix_secs.min(MAX_SECS);
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wd = ((days + 4) % 7) as usize;
    *out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[wd]);
    two(&mut out[5..7], d);
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y as u32;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    two(&mut out[17..19], rem / 3600);
    two(&mut out[20..22], rem / 60 % 60);
    two(&mut out[23..25], rem % 60);
}

/// The Date header value, re-formatted only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: u64,
    buf: [u8; IMF_FIXDATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut buf = [0u8; IMF_FIXDATE_LEN];
        format_imf_fixdate(0, &mut buf);
        DateCache { secs: 0, buf }
    }
}

impl DateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// IMF-fixdate for `unix_secs` (the caller's clock, read once per loop pass).
    #[inline]
    pub fn get(&mut self, unix_secs: u64) -> &[u8; IMF_FIXDATE_LEN] {
        if unix_secs != self.secs {
            self.secs = unix_secs;
            format_imf_fixdate(unix_secs, &mut self.buf);
        }
        &self.buf
    }
}

fn num(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// Parse an IMF-fixdate (RFC 9110 5.6.7) to unix seconds. Surrounding whitespace is
/// allowed (header values may carry it); the day name must be a valid name but is
/// not checked against the date (5.6.7 lets recipients be lenient there); dates before
/// 1970 return `None`. A leap second (`:60`) reads as `:59` of the same minute.
pub fn parse_http_date(v: &[u8]) -> Option<u64> {
    let v = super::parse::trim_ows(v);
    let b: &[u8; IMF_FIXDATE_LEN] = v.try_into().ok()?;
    if !DAYS.iter().any(|d| &b[..3] == *d)
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..] != b" GMT"
    {
        return None;
    }
    let day = num(&b[5..7])?;
    let month = MONTHS.iter().position(|m| &b[8..11] == *m)? as u32 + 1;
    let year = i64::from(num(&b[12..16])?);
    let (h, mi, s) = (num(&b[17..19])?, num(&b[20..22])?, num(&b[23..25])?);
    if year < 1970 || day == 0 || day > days_in_month(year, month) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s.min(59));
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: u64) -> String {
        let mut b = [0u8; IMF_FIXDATE_LEN];
        format_imf_fixdate(secs, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn rfc_vector() {
        // RFC 9110 5.6.7's example.
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }

    #[test]
    fn known_points() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(fmt(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn roundtrip_many() {
        let mut b = [0u8; IMF_FIXDATE_LEN];
        let mut t = 0u64;
        while t < MAX_SECS {
            format_imf_fixdate(t, &mut b);
            assert_eq!(parse_http_date(&b), Some(t), "{}", fmt(t));
            t += 86_400 * 13 + 3_601 * 7 + 17;
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            &b"Sun, 06 Nov 1994 08:49:37 UTC"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 29 Feb 1900 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
            b"Sun, 06 Nov 1994 08:60:37 GMT",
            b"Sun, 06 Nov 1994 08:49:61 GMT",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 0a Nov 1994 08:49:37 GMT",
            b"Sun, 06 nov 1994 08:49:37 GMT",
            b"",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_http_date(b" Sun, 06 Nov 1994 08:49:37 GMT "),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT"),
            parse_http_date(b"Sat, 31 Dec 2016 23:59:59 GMT")
        );
    }

    #[test]
    fn cache_reformats_on_second_change() {
        let mut c = DateCache::new();
        assert_eq!(c.get(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.get(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.get(784_111_778), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(c.get(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
