//! Opening a root-relative path so that the file really is beneath the root.
//!
//! The second wall after [`super::path::normalize`]: even with a clean path, a symlink
//! inside the document root may point anywhere. The kernel checks it for us:
//! `openat2(root_fd, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` (Linux 5.6,
//! openat2(2)) resolves symlinks but fails with EXDEV if any step leaves the root, in
//! one syscall, race-free (no check-then-open window). RESOLVE_BENEATH also refuses
//! absolute symlinks even when they point inside the root; for those (EXDEV) and for
//! kernels or seccomp profiles without openat2 (ENOSYS/EPERM at start-up) the fallback
//! opens with plain `openat` and then checks the opened descriptor's real path
//! (`/proc/self/fd/N`, the path of the object actually opened, so still race-free)
//! against the canonical root. Either way a file outside the root is never returned.
//!
//! Files are opened O_NONBLOCK so a FIFO in the root cannot block the worker's thread
//! (regular files ignore the flag), O_NOCTTY for device nodes, O_CLOEXEC for the CGI
//! children to come. Only regular files and directories are served (the caller checks
//! the type with one fstat).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::Mode;

/// How paths are resolved beneath the root (chosen at start-up, see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMode {
    /// `openat2` with RESOLVE_BENEATH, `/proc` check only for absolute symlinks.
    Openat2,
    /// `openat` then a `/proc/self/fd` check of every opened file.
    ProcCheck,
}

/// Why an open failed, as the status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Missing, not a directory on the way, a symlink loop, or outside the root: 404
    /// (an escape attempt learns nothing more than a missing file would tell).
    NotFound,
    /// The server may not read it (EACCES): 403.
    Forbidden,
    /// Anything else (EMFILE, EIO, no /proc): 500.
    Internal,
}

impl OpenError {
    pub fn status(self) -> u16 {
        match self {
            OpenError::NotFound => 404,
            OpenError::Forbidden => 403,
            OpenError::Internal => 500,
        }
    }

    fn from_errno(e: Errno) -> Self {
        match e {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV | Errno::ENAMETOOLONG => {
                OpenError::NotFound
            }
            Errno::EACCES | Errno::EPERM => OpenError::Forbidden,
            _ => OpenError::Internal,
        }
    }
}

/// The document root: an O_PATH descriptor every open is relative to, and its
/// canonical path for the `/proc` check.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    canon: PathBuf,
    mode: ResolveMode,
}

fn file_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

fn how() -> OpenHow {
    OpenHow::new()
        .flags(file_flags())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// "." for the root itself, else the path: what the open calls are given.
fn rel_or_dot(rel: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(if rel.is_empty() {
        b"."
    } else {
        rel
    }))
}

impl Root {
    /// Opens `dir` (canonicalised) as a root. `force` pins the resolve mode (tests);
    /// otherwise openat2 is probed and the `/proc` fallback checked to work.
    pub fn open(dir: &Path, force: Option<ResolveMode>) -> Result<Root, String> {
        let canon = std::fs::canonicalize(dir)
            .map_err(|e| format!("document root {}: {e}", dir.display()))?;
        let fd = nix::fcntl::open(
            &canon,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("document root {}: {e}", canon.display()))?;
        let mode = match force {
            Some(m) => m,
            None => match openat2(fd.as_fd(), ".", how()) {
                Ok(_) => ResolveMode::Openat2,
                Err(_) => ResolveMode::ProcCheck,
            },
        };
        let root = Root { fd, canon, mode };
        // The fallback (always needed for absolute symlinks) must work, or files
        // behind such links could not be checked: refuse to start instead.
        root.proc_path(root.fd.as_fd()).map_err(|_| {
            format!(
                "document root {}: cannot read /proc/self/fd to check opened paths",
                root.canon.display()
            )
        })?;
        Ok(root)
    }

    pub fn canonical(&self) -> &Path {
        &self.canon
    }

    fn proc_path(&self, fd: impl AsFd) -> std::io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
    }

    /// Opens `rel` (a [`super::path::normalize`]d, root-relative path; empty for the
    /// root) for reading, guaranteeing the opened object is beneath the root.
    pub fn open_file(&self, rel: &[u8]) -> Result<File, OpenError> {
        let p = rel_or_dot(rel);
        if self.mode == ResolveMode::Openat2 {
            match openat2(self.fd.as_fd(), p, how()) {
                Ok(fd) => return Ok(File::from(fd)),
                // EXDEV: left the root, or an absolute symlink; the checked open below
                // tells which. Everything else is final.
                Err(Errno::EXDEV) => {}
                Err(e) => return Err(OpenError::from_errno(e)),
            }
        }
        let fd = openat(self.fd.as_fd(), p, file_flags(), Mode::empty())
            .map_err(OpenError::from_errno)?;
        let real = self.proc_path(&fd).map_err(|_| OpenError::Internal)?;
        // Path::starts_with compares whole components: /srv/www2 is not in /srv/www.
        if real.starts_with(&self.canon) {
            Ok(File::from(fd))
        } else {
            Err(OpenError::NotFound)
        }
    }
}
