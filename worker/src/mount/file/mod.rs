//! The file-serving mount: a request path in, a structured response out.
//!
//! [`FileMount::serve`] takes an already parsed GET/HEAD ([`FileRequest`]: path and the
//! conditional/range header values as raw bytes) and returns a [`FileResponse`]:
//! status, the header values the mount decides (Content-Type, Content-Length, ETag,
//! Last-Modified, Content-Range, Accept-Ranges, Location) and the body as bytes or an
//! open file for the caller to stream. The caller writes the head (it owns Date,
//! Server, Connection) in HTTP/1.1 or HTTP/2 form; nothing here knows which.
//!
//! What it implements, and where the rule comes from:
//! - path safety: percent-decoding and dot-segment removal (RFC 3986 2.1, 5.2.4;
//!   [`path`]), then an open that the kernel keeps beneath the root (`fs.rs`);
//! - directories: `dir/` serves the index file or 404 (no listings), `dir` is a 301 to
//!   `dir/` (RFC 9110 15.4.2);
//! - validators: ETag and Last-Modified; 412 by If-Match / If-Unmodified-Since and 304
//!   by If-None-Match / If-Modified-Since (RFC 9110 13.1.1-13.1.4), evaluated in the
//!   order of 13.2.2 ([`validators`], [`date`]);
//! - single byte ranges, 206/416, If-Range (RFC 9110 14, 13.1.5; [`range`]);
//! - an LRU cache of small files' content and big files' descriptors (`cache.rs`);
//! - MIME types by extension ([`crate::mount::mime`]) plus configured extras.
//!
//! Two sources share the response logic: a directory on disk, and an embedded table of
//! `(path, content)` compiled into the binary (the demo page), whose Last-Modified is
//! a fixed time and whose ETags hash the content.
//!
//! Hand-written: static file crates (tower-http's ServeDir, actix-files) are tied to
//! their runtime and allocate per request; this one must answer a cache hit from the
//! io_uring loop's thread with no syscall and no allocation.

pub use crate::roles::h1::date;
pub mod path;
pub mod range;
pub mod validators;

mod cache;
mod fs;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

pub use cache::{
    CacheLimits, MAX_CACHE_BYTES, MAX_CACHE_ENTRIES, MAX_CACHED_FDS, MAX_CACHED_FILE_SIZE,
    REVALIDATE_SECS,
};
pub use fs::ResolveMode;
pub use range::ContentRange;

use cache::{Cache, FileId, Rep, RepBody};
use fs::{OpenError, Root};
use range::RangeOutcome;

/// A GET or HEAD for the mount, already parsed by the h1 or h2 role. Header values are
/// the raw field values (`None` when absent). Only GET and HEAD reach a file mount;
/// other methods are the caller's 405.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRequest<'a> {
    /// HEAD: answer as GET but with [`FileBody::Empty`] (RFC 9110 9.3.2).
    pub head_only: bool,
    /// The path part of the request-target, raw (still percent-encoded), before `?`.
    pub path: &'a [u8],
    /// The query (after `?`, without it), kept on the directory redirect like nginx.
    pub query: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    /// Current time (Unix seconds): drives cache revalidation and If-Range's
    /// weak-date rule. The mount never reads a clock.
    pub now_unix: u64,
}

/// The body to send.
#[derive(Debug, Clone)]
pub enum FileBody {
    /// Nothing: HEAD, 304, 301, or an empty range.
    Empty,
    /// In memory (a cached small file, a slice of one, an error page).
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`: stream them with positional reads
    /// (the descriptor may be shared by other responses, so never use its cursor).
    File {
        file: Rc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

/// The mount's answer. The caller adds Date/Server/Connection and writes the head.
#[derive(Debug, Clone)]
pub struct FileResponse {
    /// 200, 206, 301, 304, 400, 403, 404, 412, 414, 416 or 500.
    pub status: u16,
    /// Content-Type; `None` for 301 and 304 (which have no content).
    pub content_type: Option<Bytes>,
    /// Content-Length: the body's length, or for HEAD the length GET would send.
    /// For 304 it is 0 and the caller must not send the field (RFC 9110 8.6: it would
    /// have to be the 200's length; omitting it is always right).
    pub content_length: u64,
    pub etag: Option<Bytes>,
    pub last_modified: Option<Bytes>,
    pub content_range: Option<ContentRange>,
    /// Send `Accept-Ranges: bytes` (RFC 9110 14.3).
    pub accept_ranges: bool,
    /// Location of a 301: a relative reference (`name/`, RFC 9110 10.2.2), so it is
    /// right whatever mountpoint the caller stripped.
    pub location: Option<Bytes>,
    pub body: FileBody,
}

/// Options of a mount (lwsws `mounts[]`: `default`, `extra-mimetypes`, `cache-*`).
#[derive(Debug, Clone)]
pub struct FileMountOptions {
    /// The file served for `dir/` (lwsws `default`).
    pub index: String,
    /// Extension (with or without the leading `.`) -> MIME type; they take precedence
    /// over the built-in table.
    pub extra_mimes: Vec<(String, String)>,
    pub cache: CacheLimits,
    /// Force a path resolution mode instead of probing openat2 (tests, or kernels
    /// whose openat2 is known broken).
    pub resolve_mode: Option<ResolveMode>,
}

impl Default for FileMountOptions {
    fn default() -> Self {
        FileMountOptions {
            index: "index.html".into(),
            extra_mimes: Vec::new(),
            cache: CacheLimits::default(),
            resolve_mode: None,
        }
    }
}

/// A mount could not be built; the message names the path or option at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMountError(pub String);

impl fmt::Display for FileMountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FileMountError {}

/// Configured extra MIME types, checked before the built-in table.
#[derive(Debug)]
struct Mimes {
    extra: Vec<(Box<[u8]>, Bytes)>,
}

impl Mimes {
    fn new(extra: &[(String, String)]) -> Result<Self, FileMountError> {
        let mut v = Vec::with_capacity(extra.len());
        for (ext, ty) in extra {
            let e = ext.strip_prefix('.').unwrap_or(ext);
            if e.is_empty()
                || e.bytes()
                    .any(|b| b == b'.' || b == b'/' || forbidden_byte(b))
            {
                return Err(FileMountError(format!(
                    "extra-mimetypes: bad extension {ext:?}"
                )));
            }
            // It becomes a header value: visible ASCII and spaces only (RFC 9110 5.5).
            if ty.is_empty() || ty.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
                return Err(FileMountError(format!(
                    "extra-mimetypes: bad type {ty:?} for {ext:?}"
                )));
            }
            v.push((e.as_bytes().into(), Bytes::copy_from_slice(ty.as_bytes())));
        }
        Ok(Mimes { extra: v })
    }

    fn for_path(&self, p: &[u8]) -> Bytes {
        let ext = crate::mount::mime::extension(p).unwrap_or_default();
        if let Some((_, t)) = self.extra.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)) {
            return t.clone();
        }
        Bytes::from_static(crate::mount::mime::mime_for(p).as_bytes())
    }
}

fn forbidden_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'\\'
}

/// Index names must be one plain path segment.
fn check_index(index: &str) -> Result<(), FileMountError> {
    let ok = !index.is_empty()
        && index != "."
        && index != ".."
        && !index.bytes().any(|b| b == b'/' || forbidden_byte(b));
    if ok {
        Ok(())
    } else {
        Err(FileMountError(format!("bad index file name {index:?}")))
    }
}

/// Files on disk beneath a root.
#[derive(Debug)]
struct DirSource {
    root: Root,
    index: Box<[u8]>,
    cache: Cache,
}

/// Files compiled into the binary.
#[derive(Debug)]
struct EmbeddedSource {
    /// Keyed like the cache: `path`, `dir/` or `/` for an index.
    files: HashMap<Box<[u8]>, Rep>,
    /// Every directory that has a file beneath it (root-relative, no trailing `/`).
    dirs: HashSet<Box<[u8]>>,
}

#[derive(Debug)]
enum Source {
    Dir(DirSource),
    Embedded(EmbeddedSource),
}

/// A file mount: a directory (or an embedded table) served by GET/HEAD, with its cache.
/// One per mount per worker; not shared between threads.
#[derive(Debug)]
pub struct FileMount {
    source: Source,
    mimes: Mimes,
    /// The normalised path of the request being served: reused, never reallocated
    /// after the first long path.
    scratch: Vec<u8>,
}

const TEXT_HTML: &[u8] = b"text/html; charset=utf-8";

macro_rules! page {
    ($code:literal, $reason:literal) => {
        concat!(
            "<!DOCTYPE html>\n<html><head><title>",
            $code,
            " ",
            $reason,
            "</title></head><body><h1>",
            $code,
            " ",
            $reason,
            "</h1></body></html>\n"
        )
        .as_bytes()
    };
}

/// The body of an error response.
fn error_page(status: u16) -> &'static [u8] {
    match status {
        400 => page!("400", "Bad Request"),
        403 => page!("403", "Forbidden"),
        404 => page!("404", "Not Found"),
        412 => page!("412", "Precondition Failed"),
        414 => page!("414", "URI Too Long"),
        416 => page!("416", "Range Not Satisfiable"),
        _ => page!("500", "Internal Server Error"),
    }
}

fn error_response(status: u16, head_only: bool) -> FileResponse {
    let page = error_page(status);
    FileResponse {
        status,
        content_type: Some(Bytes::from_static(TEXT_HTML)),
        content_length: page.len() as u64,
        etag: None,
        last_modified: None,
        content_range: None,
        accept_ranges: false,
        location: None,
        body: if head_only {
            FileBody::Empty
        } else {
            FileBody::Bytes(Bytes::from_static(page))
        },
    }
}

/// RFC 3986 pchar minus ':' (a first segment with ':' would read as a scheme, 4.2)
/// and minus '%' (escapes are re-made): the bytes a Location segment keeps as is.
fn location_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b)
}

/// 301 to `last-segment/` (plus the query), relative to the request's own URL.
fn redirect(rel: &[u8], req: &FileRequest<'_>) -> FileResponse {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let seg = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel.get(i + 1..).unwrap_or_default(),
        None => rel,
    };
    let mut loc = Vec::with_capacity(seg.len() * 3 + 2 + req.query.map_or(0, |q| q.len() + 1));
    for &b in seg {
        if location_safe(b) {
            loc.push(b);
        } else {
            loc.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    loc.push(b'/');
    // The query goes back verbatim if it is plain visible ASCII (RFC 3986 3.4);
    // anything else (from a lenient h2 peer) is dropped rather than echoed into a header.
    if let Some(q) = req
        .query
        .filter(|q| q.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'#'))
    {
        loc.push(b'?');
        loc.extend_from_slice(q);
    }
    FileResponse {
        status: 301,
        content_type: None,
        content_length: 0,
        etag: None,
        last_modified: None,
        content_range: None,
        accept_ranges: false,
        location: Some(Bytes::from(loc)),
        body: FileBody::Empty,
    }
}

/// Answers `req` from a representation: conditionals, then range, then body.
/// Preconditions are evaluated only here, where the answer without them would be 2xx
/// (RFC 9110 13.2.1): a 404 or 301 stays one whatever they say.
fn respond(rep: &Rep, req: &FileRequest<'_>) -> FileResponse {
    // RFC 9110 13.2.2 step 1: If-Match (strong comparison, `*` matches the existing
    // file); step 2, only without If-Match: If-Unmodified-Since. False is 412
    // (15.5.13): the client's copy is not the one it wants to act on.
    let precondition_ok = match (req.if_match, req.if_unmodified_since) {
        (Some(im), _) => validators::match_matches(im, &rep.etag),
        (None, Some(ius)) => validators::unmodified_since(ius, rep.mtime),
        (None, None) => true,
    };
    if !precondition_ok {
        let mut r = error_response(412, req.head_only);
        r.etag = Some(rep.etag.clone());
        r.last_modified = Some(rep.last_modified.clone());
        return r;
    }
    // Steps 3 and 4: If-None-Match, and only when it is absent, If-Modified-Since; a
    // match on GET/HEAD is 304 (15.4.5), with the validators.
    let not_modified = match (req.if_none_match, req.if_modified_since) {
        (Some(inm), _) => validators::none_match_matches(inm, &rep.etag),
        (None, Some(ims)) => validators::not_modified_since(ims, rep.mtime),
        (None, None) => false,
    };
    if not_modified {
        return FileResponse {
            status: 304,
            content_type: None,
            content_length: 0,
            etag: Some(rep.etag.clone()),
            last_modified: Some(rep.last_modified.clone()),
            content_range: None,
            accept_ranges: false,
            location: None,
            body: FileBody::Empty,
        };
    }
    // Step 5: Range, gated by If-Range (13.1.5: without Range, If-Range is ignored).
    let range = match req.range {
        Some(r)
            if req.if_range.is_none_or(|ir| {
                validators::if_range_matches(ir, &rep.etag, rep.mtime, req.now_unix)
            }) =>
        {
            range::parse_range(r, rep.len)
        }
        _ => RangeOutcome::Full,
    };
    let (status, start, len, content_range) = match range {
        RangeOutcome::Full => (200, 0, rep.len, None),
        RangeOutcome::Partial { start, len } => (
            206,
            start,
            len,
            Some(ContentRange::Bytes {
                first: start,
                last: start + len - 1,
                complete: rep.len,
            }),
        ),
        RangeOutcome::Unsatisfiable => {
            // RFC 9110 15.5.17: 416 with Content-Range: bytes */length.
            let mut r = error_response(416, req.head_only);
            r.content_range = Some(ContentRange::Unsatisfied { complete: rep.len });
            r.accept_ranges = true;
            return r;
        }
    };
    let body = if req.head_only {
        FileBody::Empty
    } else {
        match &rep.body {
            RepBody::Mem(b) => {
                // start + len <= rep.len == b.len() by construction (parse_range
                // clamps to len), so the range is in bounds and fits usize.
                let s = start as usize;
                FileBody::Bytes(b.slice(s..s + len as usize))
            }
            RepBody::Fd(f) => FileBody::File {
                file: Rc::clone(f),
                offset: start,
                len,
            },
        }
    };
    FileResponse {
        status,
        content_type: Some(rep.content_type.clone()),
        content_length: len,
        etag: Some(rep.etag.clone()),
        last_modified: Some(rep.last_modified.clone()),
        content_range,
        accept_ranges: true,
        location: None,
        body,
    }
}

fn file_id(m: &Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        size: m.size(),
    }
}

impl DirSource {
    /// Opens `fs_path` beneath the root and stats it.
    fn open(&self, fs_path: &[u8]) -> Result<(std::fs::File, Metadata), u16> {
        let f = self.root.open_file(fs_path).map_err(OpenError::status)?;
        let m = f.metadata().map_err(|_| 500u16)?;
        Ok((f, m))
    }

    /// Reads or keeps the file as a representation.
    fn build_rep(
        &self,
        file: std::fs::File,
        meta: &Metadata,
        fs_path: &[u8],
        mimes: &Mimes,
    ) -> Result<Rep, u16> {
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        let size = meta.size();
        let body = if size <= self.cache.limits().max_file_size {
            // Bounded by max_file_size; a file that grew since the fstat is cut
            // there, one that shrank is served at its new length.
            let mut v = Vec::with_capacity(size as usize);
            (&file).take(size).read_to_end(&mut v).map_err(|_| 500u16)?;
            RepBody::Mem(Bytes::from(v))
        } else {
            RepBody::Fd(Rc::new(file))
        };
        let len = match &body {
            RepBody::Mem(b) => b.len() as u64,
            RepBody::Fd(_) => size,
        };
        Ok(Rep {
            content_type: mimes.for_path(fs_path),
            etag: validators::file_etag(mtime, size),
            last_modified: Bytes::copy_from_slice(&date::fmt_http_date(mtime)),
            mtime,
            len,
            body,
        })
    }

    fn serve(
        &mut self,
        key: &[u8],
        rel: &[u8],
        trailing: bool,
        req: &FileRequest<'_>,
        mimes: &Mimes,
    ) -> FileResponse {
        let now = req.now_unix;
        if let Some(i) = self.cache.lookup(key) {
            if !self.cache.fresh(i, now) {
                // Revalidate: the same file (device, inode, mtime, size) still at the
                // same path, beneath the root.
                let same = match self.cache.fs_path(i).map(|p| self.open(p)) {
                    Some(Ok((_, m))) => self.cache.id(i) == Some(file_id(&m)),
                    _ => false,
                };
                if same {
                    self.cache.mark_checked(i, now);
                } else {
                    self.cache.remove(i);
                }
            }
            if let Some(rep) = self.cache.rep(i) {
                return respond(rep, req);
            }
        }

        let (mut file, mut meta) = match self.open(rel) {
            Ok(x) => x,
            Err(status) => return error_response(status, req.head_only),
        };
        let mut index_path = None;
        if meta.is_dir() {
            if !trailing {
                return redirect(rel, req);
            }
            let mut p = Vec::with_capacity(rel.len() + 1 + self.index.len());
            if !rel.is_empty() {
                p.extend_from_slice(rel);
                p.push(b'/');
            }
            p.extend_from_slice(&self.index);
            (file, meta) = match self.open(&p) {
                Ok(x) => x,
                Err(status) => return error_response(status, req.head_only),
            };
            if !meta.is_file() {
                return error_response(404, req.head_only);
            }
            index_path = Some(p);
        } else if !meta.is_file() || trailing {
            // FIFOs, sockets, devices; or `file/`, which names a directory.
            return error_response(404, req.head_only);
        }
        let fs_path = index_path.as_deref().unwrap_or(rel);
        let rep = match self.build_rep(file, &meta, fs_path, mimes) {
            Ok(r) => r,
            Err(status) => return error_response(status, req.head_only),
        };
        let resp = respond(&rep, req);
        self.cache.insert(key, fs_path, rep, file_id(&meta), now);
        resp
    }
}

impl EmbeddedSource {
    fn new(
        table: &'static [(&'static str, &'static [u8])],
        last_modified_unix: u64,
        index: &str,
        mimes: &Mimes,
    ) -> Result<Self, FileMountError> {
        let lm = Bytes::copy_from_slice(&date::fmt_http_date(last_modified_unix));
        let mut files = HashMap::new();
        let mut dirs = HashSet::new();
        let mut norm = Vec::new();
        for &(name, content) in table {
            let p = name.strip_prefix('/').unwrap_or(name);
            let mut raw = Vec::with_capacity(p.len() + 1);
            raw.push(b'/');
            raw.extend_from_slice(p.as_bytes());
            let ok = matches!(path::normalize(&raw, &mut norm), Ok(n) if !n.trailing_slash)
                && norm == p.as_bytes()
                && !p.contains('%');
            if !ok {
                return Err(FileMountError(format!("embedded file: bad path {name:?}")));
            }
            let rep = Rep {
                content_type: mimes.for_path(p.as_bytes()),
                etag: validators::content_etag(content),
                last_modified: lm.clone(),
                mtime: last_modified_unix,
                len: content.len() as u64,
                body: RepBody::Mem(Bytes::from_static(content)),
            };
            let (dir, file) = match p.rfind('/') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => ("", p),
            };
            if file == index {
                let mut k = dir.as_bytes().to_vec();
                k.push(b'/');
                files.insert(k.into_boxed_slice(), rep.clone());
            }
            if files.insert(p.as_bytes().into(), rep).is_some() {
                return Err(FileMountError(format!("embedded file: duplicate {name:?}")));
            }
            let mut d = dir;
            while !d.is_empty() {
                dirs.insert(d.as_bytes().into());
                d = d.rfind('/').map_or("", |i| &d[..i]);
            }
        }
        Ok(EmbeddedSource { files, dirs })
    }

    fn serve(&self, key: &[u8], rel: &[u8], trailing: bool, req: &FileRequest<'_>) -> FileResponse {
        if let Some(rep) = self.files.get(key) {
            return respond(rep, req);
        }
        if !trailing && self.dirs.contains(rel) {
            return redirect(rel, req);
        }
        error_response(404, req.head_only)
    }
}

impl FileMount {
    /// A mount serving the directory `root` (canonicalised now; an error names it when
    /// it does not exist or cannot be opened).
    pub fn new(root: impl AsRef<Path>, opts: FileMountOptions) -> Result<Self, FileMountError> {
        check_index(&opts.index)?;
        let mimes = Mimes::new(&opts.extra_mimes)?;
        let root = Root::open(root.as_ref(), opts.resolve_mode).map_err(FileMountError)?;
        Ok(FileMount {
            source: Source::Dir(DirSource {
                root,
                index: opts.index.as_bytes().into(),
                cache: Cache::new(opts.cache),
            }),
            mimes,
            scratch: Vec::with_capacity(256),
        })
    }

    /// A mount serving files compiled into the binary: `table` maps paths (with or
    /// without the leading `/`, already normalised) to contents. Every file's
    /// Last-Modified is `last_modified_unix` (the build time, say); ETags hash the
    /// content. Nothing is cached (everything already is in memory).
    pub fn embedded(
        table: &'static [(&'static str, &'static [u8])],
        last_modified_unix: u64,
        opts: FileMountOptions,
    ) -> Result<Self, FileMountError> {
        check_index(&opts.index)?;
        let mimes = Mimes::new(&opts.extra_mimes)?;
        let src = EmbeddedSource::new(table, last_modified_unix, &opts.index, &mimes)?;
        Ok(FileMount {
            source: Source::Embedded(src),
            mimes,
            scratch: Vec::with_capacity(256),
        })
    }

    /// The canonical document root (`None` for an embedded mount).
    pub fn root(&self) -> Option<&Path> {
        match &self.source {
            Source::Dir(d) => Some(d.root.canonical()),
            Source::Embedded(_) => None,
        }
    }

    /// Answers a GET or HEAD. Never panics on any request bytes.
    pub fn serve(&mut self, req: &FileRequest<'_>) -> FileResponse {
        let trailing = match path::normalize(req.path, &mut self.scratch) {
            Ok(n) => n.trailing_slash,
            Err(e) => return error_response(e.status(), req.head_only),
        };
        // The key is the path plus its trailing '/', so "/" and "/dir/" (indexes) and
        // "/dir" (redirect) stay distinct.
        let rel_len = self.scratch.len();
        if trailing {
            self.scratch.push(b'/');
        }
        let key = &self.scratch[..];
        let rel = key.get(..rel_len).unwrap_or_default();
        match &mut self.source {
            Source::Dir(d) => d.serve(key, rel, trailing, req, &self.mimes),
            Source::Embedded(e) => e.serve(key, rel, trailing, req),
        }
    }

    /// Entries, content bytes and descriptors held by the cache (0s when embedded).
    pub fn cache_usage(&self) -> (usize, usize, usize) {
        match &self.source {
            Source::Dir(d) => (d.cache.len(), d.cache.bytes(), d.cache.fds()),
            Source::Embedded(_) => (0, 0, 0),
        }
    }
}
