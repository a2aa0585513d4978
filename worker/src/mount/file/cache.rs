//! The open-file cache (nginx's `open_file_cache`, plus the content of small files).
//!
//! Keyed by the normalised request path (with its trailing `/` for directory indexes),
//! each entry holds a ready representation: content type, ETag, Last-Modified, and
//! either the bytes (files up to [`MAX_CACHED_FILE_SIZE`]) or the open descriptor
//! (bigger files, streamed by the caller with positional reads, so one descriptor
//! serves every concurrent response). A hit is a hash lookup and a few index writes to
//! move the entry to the front of the LRU list: no syscall, no allocation. An entry
//! older than [`REVALIDATE_SECS`] is checked again (open beneath the root + fstat,
//! compared by device, inode, mtime and size), so a changed or replaced file is served
//! fresh within a second, as nginx's `open_file_cache_valid` does.
//!
//! Bounded three ways (entries, bytes of content, open descriptors), least recently
//! used first out.

use std::collections::HashMap;
use std::fs::File;
use std::rc::Rc;

use bytes::Bytes;
use slab::Slab;

/// Files up to this size are kept in memory: the size of most HTML, CSS, JS and icons,
/// and small enough that 128 of them (8 MiB) cost less than a worker's connection
/// buffers under load.
pub const MAX_CACHED_FILE_SIZE: u64 = 64 * 1024;

/// Entries per mount and worker (nginx's usual `open_file_cache max=1000`). Bounds the
/// hash table and the LRU list.
pub const MAX_CACHE_ENTRIES: usize = 1024;

/// Bytes of cached content (plus keys) per mount and worker: a site's hot set of
/// small files, multiplied by the worker count in RAM.
pub const MAX_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Open descriptors kept for big files. Worker fds are mostly for connections and the
/// default soft RLIMIT_NOFILE is 1024, so the cache takes a small share.
pub const MAX_CACHED_FDS: usize = 64;

/// Seconds an entry is trusted without a stat (nginx's `open_file_cache_valid` is 60 s
/// by default; one second keeps edits visible at once, at one open+fstat per hot file
/// per second).
pub const REVALIDATE_SECS: u64 = 1;

/// The cache's limits; [`Default`] gives the constants above. Setting `max_entries`
/// to 0 disables the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub max_fds: usize,
    pub max_file_size: u64,
    pub revalidate_secs: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: MAX_CACHE_ENTRIES,
            max_bytes: MAX_CACHE_BYTES,
            max_fds: MAX_CACHED_FDS,
            max_file_size: MAX_CACHED_FILE_SIZE,
            revalidate_secs: REVALIDATE_SECS,
        }
    }
}

/// Where a representation's bytes come from.
#[derive(Debug, Clone)]
pub enum RepBody {
    Mem(Bytes),
    Fd(Rc<File>),
}

/// A representation ready to answer from: everything but the per-request parts.
#[derive(Debug, Clone)]
pub struct Rep {
    pub content_type: Bytes,
    pub etag: Bytes,
    pub last_modified: Bytes,
    /// Last-Modified as Unix seconds, for If-Modified-Since / If-Range.
    pub mtime: u64,
    /// Length in bytes (for `Mem`, the length of its Bytes).
    pub len: u64,
    pub body: RepBody,
}

/// What identifies a version of a file: a rename over it changes `ino`, an edit
/// `mtime`/`size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub size: u64,
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node {
    key: Box<[u8]>,
    fs_path: Box<[u8]>,
    rep: Rep,
    id: FileId,
    checked_at: u64,
    prev: usize,
    next: usize,
}

impl Node {
    fn cost(&self) -> usize {
        let content = match &self.rep.body {
            RepBody::Mem(b) => b.len(),
            RepBody::Fd(_) => 0,
        };
        content + 2 * self.key.len() + self.fs_path.len()
    }
    fn is_fd(&self) -> bool {
        matches!(self.rep.body, RepBody::Fd(_))
    }
}

/// The LRU cache. Entries are addressed by slab index between a lookup and the next
/// mutation.
#[derive(Debug)]
pub struct Cache {
    limits: CacheLimits,
    map: HashMap<Box<[u8]>, usize>,
    nodes: Slab<Node>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    bytes: usize,
    fds: usize,
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Self {
        Cache {
            limits,
            map: HashMap::new(),
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            fds: 0,
        }
    }

    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn fds(&self) -> usize {
        self.fds
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match self.nodes.get(i) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        match self.nodes.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        if let Some(n) = self.nodes.get_mut(i) {
            n.prev = NIL;
            n.next = old;
        }
        match self.nodes.get_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// Finds `key` and marks it most recently used.
    pub fn lookup(&mut self, key: &[u8]) -> Option<usize> {
        let i = *self.map.get(key)?;
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        Some(i)
    }

    /// Whether entry `i` may be used without a stat at `now`.
    pub fn fresh(&self, i: usize, now: u64) -> bool {
        self.nodes
            .get(i)
            .is_some_and(|n| now < n.checked_at.saturating_add(self.limits.revalidate_secs))
    }

    pub fn rep(&self, i: usize) -> Option<&Rep> {
        self.nodes.get(i).map(|n| &n.rep)
    }

    pub fn fs_path(&self, i: usize) -> Option<&[u8]> {
        self.nodes.get(i).map(|n| &*n.fs_path)
    }

    pub fn id(&self, i: usize) -> Option<FileId> {
        self.nodes.get(i).map(|n| n.id)
    }

    pub fn mark_checked(&mut self, i: usize, now: u64) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.checked_at = now;
        }
    }

    pub fn remove(&mut self, i: usize) {
        if !self.nodes.contains(i) {
            return;
        }
        self.unlink(i);
        let n = self.nodes.remove(i);
        self.map.remove(&n.key);
        self.bytes -= n.cost();
        self.fds -= usize::from(n.is_fd());
    }

    /// Whether a representation of this kind and size would be cached at all.
    pub fn admits(&self, rep: &Rep) -> bool {
        self.limits.max_entries > 0
            && match rep.body {
                RepBody::Mem(_) => rep.len <= self.limits.max_file_size,
                RepBody::Fd(_) => self.limits.max_fds > 0,
            }
    }

    /// Inserts (or replaces) `key`, evicting least recently used entries to stay within
    /// the limits. Does nothing when the entry alone would exceed them.
    pub fn insert(&mut self, key: &[u8], fs_path: &[u8], rep: Rep, id: FileId, now: u64) {
        if !self.admits(&rep) {
            return;
        }
        if let Some(&old) = self.map.get(key) {
            self.remove(old);
        }
        let node = Node {
            key: key.into(),
            fs_path: fs_path.into(),
            rep,
            id,
            checked_at: now,
            prev: NIL,
            next: NIL,
        };
        let cost = node.cost();
        if cost > self.limits.max_bytes {
            return;
        }
        let is_fd = node.is_fd();
        // Make room: any entry for the entry and byte limits, the least recently used
        // big file for the descriptor limit.
        while self.nodes.len() >= self.limits.max_entries
            || self.bytes + cost > self.limits.max_bytes
        {
            let t = self.tail;
            if t == NIL {
                break;
            }
            self.remove(t);
        }
        if is_fd && self.fds >= self.limits.max_fds {
            let mut t = self.tail;
            while let Some(n) = self.nodes.get(t) {
                if n.is_fd() {
                    break;
                }
                t = n.prev;
            }
            self.remove(t);
        }
        let i = self.nodes.insert(node);
        self.map.insert(key.into(), i);
        self.bytes += cost;
        self.fds += usize::from(is_fd);
        self.push_front(i);
    }
}
