//! A vhost: its mounts, and which one answers a request path (lwsws `vhosts[].mounts[]`).
//!
//! A worker holds a list of vhosts ([`crate::App::vhosts`]); a request goes to the one
//! serving its listener whose name its `Host` (or `:authority`) gives, else to the
//! listener's first ([`crate::App::vhost_for`]), as lws picks name-based vhosts on a
//! shared port. The command line makes one, on every listener, with one mount at `/`:
//! the document root given with `-r DIR`, or the embedded test-server demo when none is
//! given (and `/formtest` for the demo's form). Mountpoints are matched on whole path
//! segments, longest first, as lws does.

use crate::config::WorkerConfig;
use crate::mount::file::{FileMount, FileMountOptions};

/// What serves a mountpoint.
pub enum Origin {
    /// `file://` (or the embedded demo).
    File(Box<FileMount>),
    /// `callback://PROTOCOL`: the protocol's HTTP callbacks answer.
    Callback(String),
}

pub struct Mount {
    /// Without a trailing slash; "" for `/`.
    pub mountpoint: String,
    pub origin: Origin,
}

/// A mount of a vhost, as [`Vhost::resolve`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountId(usize);

/// Where a request goes.
pub enum Route<'a> {
    /// A file mount and the request path relative to it (starting with `/`).
    File(&'a mut FileMount, &'a [u8]),
    /// A protocol's HTTP callbacks (by protocol name) and the relative path.
    Callback(&'a str, &'a [u8]),
    /// No mount covers the path.
    NotFound,
}

pub struct Vhost {
    /// The host name it answers for (the request's `Host` / `:authority`, or the TLS
    /// server name, without the port).
    pub name: String,
    /// The listeners (by index) it serves; empty: all of them.
    pub listeners: Vec<u16>,
    mounts: Vec<Mount>,
}

/// Where the test-server demo's forms post to (`protocol-post-demo`).
pub const FORMTEST_MOUNT: &str = "/formtest";

/// Build time of the embedded demo files: their Last-Modified (a fixed value, so every
/// worker and every restart give the same validators).
const EMBEDDED_MTIME: u64 = 1_763_683_200; // 2025-11-21T00:00:00Z

impl Vhost {
    /// The default vhost of a command-line configuration.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Vhost, String> {
        let opts = FileMountOptions::default();
        let mount = match &cfg.resource_dir {
            Some(dir) => FileMount::new(dir, opts)
                .map_err(|e| format!("resource path (-r) {}: {e}", dir.display()))?,
            None => FileMount::embedded(
                crate::assets::DEMO_FILES,
                EMBEDDED_MTIME,
                FileMountOptions {
                    index: "test.html".into(),
                    ..opts
                },
            )
            .map_err(|e| format!("embedded demo: {e}"))?,
        };
        Ok(Vhost {
            name: "localhost".into(),
            listeners: Vec::new(),
            mounts: vec![
                Mount {
                    mountpoint: String::new(),
                    origin: Origin::File(Box::new(mount)),
                },
                // The demo's form POST handler, as libwebsockets-test-server mounts it.
                Mount {
                    mountpoint: FORMTEST_MOUNT.into(),
                    origin: Origin::Callback(crate::plugins::post_demo::NAME.into()),
                },
            ],
        })
    }

    /// Whether this vhost serves connections from listener `listener`.
    pub fn serves(&self, listener: u16) -> bool {
        self.listeners.is_empty() || self.listeners.contains(&listener)
    }

    /// Whether `authority` (a `Host` field or `:authority`: a name, an IPv4 address or a
    /// bracketed IPv6 one, optionally with a port) names this vhost. ASCII case is
    /// ignored (RFC 9110 4.2.3).
    pub fn named(&self, authority: &[u8]) -> bool {
        let host = match authority.first() {
            Some(b'[') => authority
                .iter()
                .position(|&b| b == b']')
                .map_or(authority, |e| &authority[..=e]),
            _ => authority
                .iter()
                .rposition(|&b| b == b':')
                .map_or(authority, |c| &authority[..c]),
        };
        host.eq_ignore_ascii_case(self.name.as_bytes())
    }

    /// The mount for `path` (the request-target's path, still percent-encoded).
    pub fn route<'a>(&'a mut self, path: &'a [u8]) -> Route<'a> {
        let m = self.resolve(path);
        self.target(m, path)
    }

    /// Which mount covers `path` (an index, so the answer can be kept while other state
    /// is borrowed, and the mounts are scanned once per request).
    pub fn resolve(&self, path: &[u8]) -> Option<MountId> {
        let mut best: Option<usize> = None;
        for (i, m) in self.mounts.iter().enumerate() {
            let mp = m.mountpoint.as_bytes();
            let covers = path.starts_with(mp)
                && (path.len() == mp.len() || path.get(mp.len()) == Some(&b'/') || mp.is_empty());
            if covers && best.is_none_or(|b| self.mounts[b].mountpoint.len() < mp.len()) {
                best = Some(i);
            }
        }
        best.map(MountId)
    }

    /// Whether `m` is a `callback://` mount.
    pub fn is_callback(&self, m: Option<MountId>) -> bool {
        m.is_some_and(|m| matches!(self.mounts[m.0].origin, Origin::Callback(_)))
    }

    /// The route for `path` through the mount [`resolve`](Self::resolve) found.
    pub fn target<'a>(&'a mut self, m: Option<MountId>, path: &'a [u8]) -> Route<'a> {
        let Some(MountId(i)) = m else {
            return Route::NotFound;
        };
        let m = &mut self.mounts[i];
        let rest = path.get(m.mountpoint.len()..).unwrap_or_default();
        let rest: &[u8] = if rest.is_empty() { b"/" } else { rest };
        match &mut m.origin {
            Origin::File(f) => Route::File(f, rest),
            Origin::Callback(p) => Route::Callback(p, rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::App;
    use crate::config::WorkerConfig;

    use super::Vhost;

    fn vhost(name: &str, listeners: &[u16]) -> Vhost {
        let mut v = Vhost::from_config(&WorkerConfig::default()).unwrap();
        v.name = name.into();
        v.listeners = listeners.to_vec();
        v
    }

    #[test]
    fn a_host_field_names_a_vhost_whatever_its_port_and_case() {
        let v = vhost("www.example.org", &[]);
        for a in [
            &b"www.example.org"[..],
            b"WWW.Example.ORG",
            b"www.example.org:8443",
        ] {
            assert!(v.named(a), "{}", String::from_utf8_lossy(a));
        }
        for a in [&b"example.org"[..], b"www.example.org.evil", b""] {
            assert!(!v.named(a), "{}", String::from_utf8_lossy(a));
        }
        let v6 = vhost("[::1]", &[]);
        assert!(v6.named(b"[::1]:7681"));
        assert!(v6.named(b"[::1]"));
        assert!(!v6.named(b"::1"));
    }

    #[test]
    fn the_vhost_is_picked_by_listener_then_name_else_the_listeners_first() {
        let mut app = App::new(WorkerConfig::default(), 0);
        assert_eq!(app.vhost_for(0, Some(b"x")), None, "no vhost at all");
        app.vhosts = vec![
            vhost("default", &[0]),
            vhost("a.example", &[0, 1]),
            vhost("b.example", &[1]),
        ];
        assert_eq!(app.vhost_for(0, Some(b"a.example")), Some(1));
        assert_eq!(
            app.vhost_for(0, Some(b"b.example")),
            Some(0),
            "b is not on 0"
        );
        assert_eq!(app.vhost_for(0, None), Some(0));
        assert_eq!(app.vhost_for(1, Some(b"b.example:80")), Some(2));
        assert_eq!(app.vhost_for(1, Some(b"unknown")), Some(1), "1's first");
        assert_eq!(app.vhost_for(2, Some(b"a.example")), None, "nobody on 2");
    }
}
