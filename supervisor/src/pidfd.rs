//! Taking a descriptor out of a worker process: pidfd_open(2) + pidfd_getfd(2).
//!
//! The supervisor needs each worker's io_uring fd to send connections into that ring
//! with `IORING_OP_MSG_RING` (ring handoff, [`crate::ring`]). Linux refuses io_uring
//! fds in SCM_RIGHTS (since 6.7, to keep them out of the unix-socket garbage
//! collector), so the worker names the fd number in its Hello and the supervisor, its
//! parent, duplicates it from the worker's table. That needs ptrace-level access to the
//! child (granted to a parent of the same user unless Yama's ptrace_scope is 3 or a
//! seccomp policy blocks the calls): [`probe`] checks once at start, and `--fd-handoff
//! auto` falls back to SCM_RIGHTS packets when it fails.
//!
//! Neither call is wrapped by nix, hence the raw syscalls (the only `unsafe` here).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

/// Duplicates fd number `fd` of process `pid` into this process (close-on-exec).
///
/// `pid` must be a child not yet reaped, so the number cannot name another process.
pub fn take_fd(pid: Pid, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and passes no memory; it returns
    // a new descriptor or -1 with errno.
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just installed `pfd` for us and nothing else refers to it.
    let pfd = unsafe { OwnedFd::from_raw_fd(pfd as RawFd) };
    // SAFETY: pidfd_getfd takes two descriptor numbers and a flags word and passes no
    // memory; it returns a new close-on-exec descriptor or -1 with errno.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, a descriptor the kernel just installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(got as RawFd) })
}

/// Whether [`take_fd`] works here (the syscalls exist and no policy blocks them):
/// takes a descriptor from this very process.
pub fn probe() -> io::Result<()> {
    let fd = nix::sys::eventfd::EventFd::new()?;
    take_fd(nix::unistd::getpid(), fd.as_raw_fd()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_descriptor_of_a_child() {
        // A child holding a pipe's read end; we take its copy and see it is the same pipe.
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Our own descriptor through the same path (a child's fd table is only ever
        // its own after exec; the probe path is what the supervisor relies on).
        let got = take_fd(nix::unistd::getpid(), r.as_raw_fd()).unwrap();
        nix::unistd::write(&w, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(nix::unistd::read(&got, &mut b).unwrap(), 1);
        assert_eq!(&b, b"x");
        let pid = Pid::from_raw(child.id() as i32);
        // fd 987 is not open in `sleep`: a clean error, not a wrong descriptor.
        assert_eq!(
            take_fd(pid, 987).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        // fd 0 of the child (its stdin) is taken.
        assert!(take_fd(pid, 0).is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(probe().is_ok());
    }
}
