//! Parsing of the command line's values: target URLs (`ws://host:port/path`,
//! `http://...`), rates (`2000/s`, `10/ms`, `5/m`) and durations (`30s`, `500ms`, `2m`).
//!
//! Hand-written: the `url` crate would be one more dependency for the three schemes and
//! the authority/path split a load generator needs (RFC 3986 section 3 is followed for
//! that split; userinfo, query-only and fragment forms are refused or kept verbatim).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The scheme of a target URL. TLS schemes (`wss`, `https`) are refused: the load
/// generator drives plain TCP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ws,
    Http,
}

impl Scheme {
    fn default_port(self) -> u16 {
        80
    }
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// The host as written, without brackets for an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/` (RFC 3986 3.3/3.4; an empty path is `/`).
    pub path: String,
    /// The `Host` header value (RFC 9110 7.2): host, plus `:port` when it is not 80.
    pub host_header: String,
}

impl Target {
    /// Resolve to the first socket address of the host.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }
}

/// Parse `ws://host[:port][/path]` or `http://...` (RFC 3986 section 3: scheme,
/// authority, path-abempty, query; a fragment is dropped as it never goes on the wire).
pub fn parse_url(s: &str) -> Result<Target, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("{s}: not a URL (want ws://host:port/path)"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" => Scheme::Ws,
        "http" => Scheme::Http,
        "wss" | "https" => return Err(format!("{s}: TLS is not supported by lwsd-load")),
        other => return Err(format!("{s}: unknown scheme {other:?}")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!("{s}: userinfo is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s}: unterminated IPv6 literal"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{s}: junk after IPv6 literal"))?,
            ),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s}: no host"));
    }
    let port = match port {
        None => scheme.default_port(),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s}: bad port {p:?}"))?,
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{s}: control characters or spaces in the path"));
    }
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let host_header = if port == scheme.default_port() {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    Ok(Target {
        scheme,
        host: host.to_string(),
        port,
        path,
        host_header,
    })
}

/// Events per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
}

impl Rate {
    /// The time between two events, in nanoseconds (at least 1).
    pub fn interval_ns(self) -> u64 {
        ((1e9 / self.per_sec) as u64).max(1)
    }

    /// This rate split evenly over `n` parts (threads).
    pub fn split(self, n: usize) -> Rate {
        Rate {
            per_sec: self.per_sec / n.max(1) as f64,
        }
    }
}

/// Parse `N/s`, `N/ms`, `N/m`, `N/h` or a bare `N` (per second). N may be fractional
/// (`0.5/s`) and must be positive and finite.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "s"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s}: bad rate (want e.g. 2000/s)"))?;
    let per = match unit.trim() {
        "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("{s}: unknown rate unit {u:?}")),
    };
    let per_sec = n / per;
    if !(per_sec.is_finite() && per_sec > 0.0) {
        return Err(format!("{s}: the rate must be positive"));
    }
    Ok(Rate { per_sec })
}

/// Parse `30s`, `500ms`, `2m`, `1h`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s}: bad duration (want e.g. 30s)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("{s}: unknown duration unit {u:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s}: duration out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:7681/").unwrap();
        assert_eq!(t.scheme, Scheme::Ws);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 7681));
        assert_eq!(t.path, "/");
        assert_eq!(t.host_header, "127.0.0.1:7681");
        let t = parse_url("ws://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert_eq!(t.host_header, "localhost");
        let t = parse_url("http://[::1]:8080/a/b?c=d#frag").unwrap();
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(t.host, "::1");
        assert_eq!(t.path, "/a/b?c=d");
        assert_eq!(t.host_header, "[::1]:8080");
        let t = parse_url("HTTP://h?x").unwrap();
        assert_eq!(t.path, "/?x");
        for bad in [
            "127.0.0.1:7681",
            "wss://h/",
            "https://h/",
            "ftp://h/",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:99999/",
            "ws://h:x/",
            "ws://u@h/",
            "ws://[::1/",
            "ws://[::1]x/",
            "ws://h/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_loopback() {
        let a = parse_url("ws://127.0.0.1:7681/")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(a, "127.0.0.1:7681".parse().unwrap());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2000/s").unwrap().per_sec, 2000.0);
        assert_eq!(parse_rate("2000").unwrap().per_sec, 2000.0);
        assert_eq!(parse_rate("10/ms").unwrap().per_sec, 10_000.0);
        assert_eq!(parse_rate("120/m").unwrap().per_sec, 2.0);
        assert_eq!(parse_rate("0.5/s").unwrap().interval_ns(), 2_000_000_000);
        assert_eq!(parse_rate("1e12/s").unwrap().interval_ns(), 1);
        assert_eq!(parse_rate("100/s").unwrap().split(4).per_sec, 25.0);
        for bad in ["", "x/s", "0/s", "-1/s", "10/d", "inf/s", "NaN"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "s", "10d", "1..2s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
