//! HTTP serving: the worker's shared HTTP state and the carriers that turn a
//! connection's bytes into HTTP exchanges ([`crate::session::http`]).
//!
//! - [`h1`]: the HTTP/1.1 carrier ([`h1::H1Conn`]): parsing, keep-alive, pipelining,
//!   `100-continue`, timeouts, the upgrade to WebSocket, and the serialisation of the
//!   exchanges' protocol-neutral responses.

pub mod h1;
pub mod h2;

use bytes::{Bytes, BytesMut};

use crate::App;
use crate::roles::h1::{self as h1role, DateCache, ResponseHead};
use crate::service::{Role, RoleFactory};
use crate::vhost::Vhost;

pub use crate::session::http::DISCARD_MAX;
pub use h1::{H1Conn, OUT_HIGH_WATER, SEND_TIMEOUT_MS, STREAM_CHUNK};

/// A file body being sent piece by piece by a carrier (HTTP/1.1 as the connection
/// drains, HTTP/2 as flow-control credit comes), never read whole.
pub struct FileBody {
    pub file: std::rc::Rc<std::fs::File>,
    pub offset: u64,
    pub remaining: u64,
}

impl FileBody {
    /// Reads the next `want` bytes (at most what remains) with `pread`; `None` when the
    /// file shrank under us or failed (the announced length is then a lie).
    pub fn read_next(&mut self, want: usize) -> Option<Bytes> {
        use std::os::unix::fs::FileExt;
        let want = want.min(self.remaining as usize);
        // Zero-filled first so the read goes into an initialised slice (no unsafe); the
        // memset costs ~1 % of moving the bytes through loopback.
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match self
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)
            {
                Ok(0) => return None,
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        self.offset += want as u64;
        self.remaining -= want as u64;
        Some(buf.freeze())
    }
}

/// What carriers write response heads with: the Date cache, the Server value and a
/// scratch buffer heads are written into and split off as `Bytes` (one allocation
/// serves many heads).
pub struct HeadWriter {
    pub date: DateCache,
    pub server: Bytes,
    scratch: BytesMut,
}

impl HeadWriter {
    /// Room for a head in the scratch buffer.
    fn reserve(&mut self) {
        if self.scratch.capacity() - self.scratch.len() < 1024 {
            self.scratch.reserve(64 * 1024);
        }
    }

    /// A complete HTTP/1.1 response head (status line, Server, Date, framing,
    /// `headers`) as `Bytes` split off the scratch buffer, and the framing it chose.
    #[allow(clippy::too_many_arguments)]
    pub fn h1_head(
        &mut self,
        now_unix: u64,
        status: u16,
        version: h1role::Version,
        keep_alive: bool,
        body: h1role::ResponseBody,
        headers: &[(&[u8], &[u8])],
    ) -> (Bytes, h1role::Framing) {
        self.reserve();
        let date = *self.date.get(now_unix);
        let f = h1role::write_response_head(
            &mut self.scratch,
            &ResponseHead {
                status,
                reason: None,
                version,
                keep_alive,
                body,
                date: &date,
                server: &self.server,
                headers,
            },
        );
        (self.scratch.split().freeze(), f)
    }

    /// A chunk-size line for `len` bytes, split off the scratch buffer.
    pub fn chunk_header(&mut self, len: u64) -> Bytes {
        self.reserve();
        h1role::write_chunk_header(&mut self.scratch, len);
        self.scratch.split().freeze()
    }
}

/// Per-worker HTTP state shared by every connection.
pub struct HttpShared {
    pub limits: h1role::H1Limits,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub keepalive_ms: u64,
    /// How long a response may make no progress (`--send-timeout`).
    pub send_timeout_ms: u64,
    /// The HTTP/2 frame buffer, lent to a connection during a callback (frames are
    /// split off it as `Bytes`, so one allocation serves many connections).
    pub frames: BytesMut,
    /// Lent to a carrier's stream while a session runs (the session gets the rest of
    /// the worker's state): taken out and put back, a move of ~100 bytes.
    writer: Option<HeadWriter>,
}

impl HttpShared {
    pub fn new(cfg: &crate::config::WorkerConfig) -> HttpShared {
        HttpShared {
            limits: cfg.h1_limits.clone(),
            header_timeout_ms: cfg.header_timeout.as_millis() as u64,
            body_timeout_ms: cfg.body_timeout.as_millis() as u64,
            keepalive_ms: cfg.keepalive_timeout.as_millis() as u64,
            send_timeout_ms: cfg.send_timeout.as_millis() as u64,
            frames: BytesMut::new(),
            writer: Some(HeadWriter {
                date: DateCache::new(),
                server: Bytes::from(cfg.server_string.clone()),
                scratch: BytesMut::new(),
            }),
        }
    }

    /// The head writer (while no session has it).
    pub fn writer(&mut self) -> &mut HeadWriter {
        self.writer.as_mut().expect("head writer lent out")
    }

    /// Lends the head writer to a carrier's stream; [`put_writer`](Self::put_writer)
    /// gives it back.
    pub fn take_writer(&mut self) -> HeadWriter {
        self.writer.take().expect("head writer lent out")
    }

    pub fn put_writer(&mut self, w: HeadWriter) {
        self.writer = Some(w);
    }
}

/// Builds the worker's HTTP state from its config and returns the factory the loop uses
/// for every new connection.
pub fn role_factory(app: &mut App) -> std::io::Result<RoleFactory> {
    // The command line makes one vhost, on every listener.
    let vhost = Vhost::from_config(&app.config).map_err(std::io::Error::other)?;
    app.vhosts = vec![vhost];
    app.http = Some(HttpShared::new(&app.config));
    Ok(Box::new(|app: &mut App, listener| {
        let limits = app
            .http
            .as_ref()
            .map(|h| h.limits.clone())
            .unwrap_or_default();
        Box::new(H1Conn::new(limits, listener)) as Box<dyn Role>
    }))
}
