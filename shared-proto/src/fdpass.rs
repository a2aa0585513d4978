//! One control packet plus file descriptors over a unix socket, with `SCM_RIGHTS`
//! (unix(7) "Ancillary messages", cmsg(3)).
//!
//! [`send`] and [`recv`] are the blocking-or-not (as the socket is) building blocks used
//! by workers and by tests; the supervisor's hot path submits the same packet layout as
//! an io_uring `SendMsg`.
//!
//! Receiving: the control buffer has room for exactly [`MAX_FDS_PER_MSG`] descriptors.
//! A peer that sends more makes the kernel set `MSG_CTRUNC` (it closes the ones that
//! did not fit); a packet larger than the caller's buffer sets `MSG_TRUNC`. Both are
//! errors, and the descriptors that did arrive are closed before returning, so a bad
//! peer cannot leak fds into this process. The kernel also sets `MSG_CTRUNC` when the
//! receiver is out of descriptors (EMFILE, scm_detach_fds): it installs those that
//! fit, in order, and closes the rest. Then fewer than [`MAX_FDS_PER_MSG`] arrived, and
//! that is no error: the packet comes back with the fds that made it, fewer than it
//! announces, and the caller accounts for the rest (see [`recv`]). Descriptors are received with
//! `MSG_CMSG_CLOEXEC` so they never leak into a child process either.
//!
//! The control buffer is parsed here rather than through nix's iterator because nix
//! refuses to iterate a truncated buffer, and the fds in it must still be closed.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, recvmsg, sendmsg};

use crate::msg::MAX_FDS_PER_MSG;

/// `CMSG_ALIGN`: the kernel aligns control messages to `sizeof(long)`.
const fn cmsg_align(n: usize) -> usize {
    (n + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// Size of the kernel's `struct cmsghdr` (`size_t cmsg_len; int level; int type;`).
const CMSG_HDR: usize = cmsg_align(size_of::<usize>() + 2 * size_of::<i32>());

/// `CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))`: room for one `SCM_RIGHTS` message with
/// the most fds a packet may carry, and not one more (so more is `MSG_CTRUNC`).
pub const CMSG_BUF_LEN: usize = CMSG_HDR + cmsg_align(MAX_FDS_PER_MSG * size_of::<RawFd>());

/// Sends `msg` as one packet with `fds` in `SCM_RIGHTS` (none when empty).
///
/// Uses `MSG_NOSIGNAL`: a vanished peer is an `EPIPE` error, not a SIGPIPE. A full
/// non-blocking socket gives `ErrorKind::WouldBlock`. At most [`MAX_FDS_PER_MSG`] fds.
pub fn send(sock: BorrowedFd<'_>, msg: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} fds in one packet, limit {MAX_FDS_PER_MSG}", fds.len()),
        ));
    }
    let mut raw = [-1 as RawFd; MAX_FDS_PER_MSG];
    for (r, fd) in raw.iter_mut().zip(fds) {
        *r = fd.as_raw_fd();
    }
    let rights = [ControlMessage::ScmRights(&raw[..fds.len()])];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let iov = [IoSlice::new(msg)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == msg.len() => return Ok(()),
            // SOCK_SEQPACKET sends whole packets; a short count means a stream socket
            // was passed, which this protocol cannot use.
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short send of a control packet: {n} of {} bytes",
                    msg.len()
                )));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one packet into `buf` and appends the fds that came with it to `fds`.
///
/// Returns `Ok(None)` at end of stream (the peer closed; lwsd never sends an empty
/// packet), `Ok(Some(len))` for a packet. A non-blocking socket with nothing queued
/// gives `ErrorKind::WouldBlock`. A packet longer than `buf` or carrying more than
/// [`MAX_FDS_PER_MSG`] fds is an `InvalidData` error, after closing every fd received
/// with it; `fds` is unchanged on any error. When this process ran out of descriptors
/// (EMFILE) while the kernel installed them, the packet is returned with the fds that
/// were installed (the first ones; the kernel closed the others): the caller compares
/// their count with what the packet announces.
pub fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<usize>> {
    let mut cmsg = [0u8; CMSG_BUF_LEN];
    let (len, flags) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(r) => break (r.bytes, r.flags),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let start = fds.len();
    take_rights(&cmsg, fds);
    // Out of descriptors, not too many: the kernel stopped installing before our
    // buffer was full (it fills it completely when a packet carries too many).
    let out_of_fds = flags.contains(MsgFlags::MSG_CTRUNC)
        && !flags.contains(MsgFlags::MSG_TRUNC)
        && fds.len() - start < MAX_FDS_PER_MSG;
    if flags.intersects(MsgFlags::MSG_CTRUNC | MsgFlags::MSG_TRUNC) && !out_of_fds {
        // Dropping the OwnedFds closes them.
        fds.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            if flags.contains(MsgFlags::MSG_CTRUNC) {
                "control packet carried more fds than allowed"
            } else {
                "control packet larger than the receive buffer"
            },
        ));
    }
    if len == 0 {
        fds.truncate(start);
        return Ok(None);
    }
    Ok(Some(len))
}

/// Walks the control buffer (zeroed before the call, so the end of the kernel's data is
/// the first header with a zero length) and takes ownership of every `SCM_RIGHTS` fd.
fn take_rights(cmsg: &[u8], fds: &mut Vec<OwnedFd>) {
    let mut off = 0;
    while let Some(hdr) = cmsg.get(off..off + CMSG_HDR) {
        let (len_b, rest) = hdr.split_at(size_of::<usize>());
        let cmsg_len = usize::from_ne_bytes(len_b.try_into().unwrap_or([0; size_of::<usize>()]));
        if cmsg_len < CMSG_HDR {
            break;
        }
        let level = i32::from_ne_bytes(rest[..4].try_into().unwrap_or([0; 4]));
        let ty = i32::from_ne_bytes(rest[4..8].try_into().unwrap_or([0; 4]));
        let end = (off + cmsg_len).min(cmsg.len());
        let data = cmsg.get(off + CMSG_HDR..end).unwrap_or(&[]);
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            for chunk in data.chunks_exact(size_of::<RawFd>()) {
                let fd = RawFd::from_ne_bytes(chunk.try_into().unwrap_or([0xff; 4]));
                if fd >= 0 {
                    fds.push(own_received_fd(fd));
                }
            }
        }
        off += cmsg_align(cmsg_len);
    }
}

/// Takes ownership of a descriptor the kernel installed in this process for us.
#[allow(unsafe_code)]
fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` comes from an SCM_RIGHTS control message that recvmsg(2) just filled:
    // the kernel installed a new descriptor with this number in our fd table for this
    // call alone, so nothing else in the process owns it; we take that ownership once
    // (each number appears once in the message).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn pair(flags: SockFlag) -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | flags,
        )
        .unwrap()
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// The tests count this process's open fds, and libtest runs them on parallel
    /// threads: each holds this lock so no other test opens or closes fds meanwhile.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn pipe_fds_travel_and_work() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), b"hello", &[r1.as_fd(), w2.as_fd()]).unwrap();
        drop(r1);
        drop(w2);
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv(b.as_fd(), &mut buf, &mut fds).unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        // Received fds are close-on-exec.
        for fd in &fds {
            let fl = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert_ne!(fl & libc::FD_CLOEXEC, 0);
        }
        let mut it = fds.into_iter();
        let mut r1 = std::fs::File::from(it.next().unwrap());
        let mut w2 = std::fs::File::from(it.next().unwrap());
        std::fs::File::from(w1)
            .write_all(b"through pipe 1")
            .unwrap();
        let mut s = String::new();
        r1.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through pipe 1");
        w2.write_all(b"through pipe 2").unwrap();
        drop(w2);
        let mut s = String::new();
        std::fs::File::from(r2).read_to_string(&mut s).unwrap();
        assert_eq!(s, "through pipe 2");
    }

    #[test]
    fn max_fds_in_one_packet() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        let (r, _w) = nix::unistd::pipe().unwrap();
        let many: Vec<BorrowedFd<'_>> = (0..MAX_FDS_PER_MSG).map(|_| r.as_fd()).collect();
        send(a.as_fd(), b"x", &many).unwrap();
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv(b.as_fd(), &mut buf, &mut fds).unwrap(), Some(1));
        assert_eq!(fds.len(), MAX_FDS_PER_MSG);
        let too_many: Vec<BorrowedFd<'_>> = (0..=MAX_FDS_PER_MSG).map(|_| r.as_fd()).collect();
        let e = send(a.as_fd(), b"x", &too_many).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn too_many_fds_are_closed_and_rejected() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        let (r, _w) = nix::unistd::pipe().unwrap();
        // A peer not using `send` can put more fds in a packet than we accept.
        let raw = vec![r.as_raw_fd(); MAX_FDS_PER_MSG + 10];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"y")],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let before = open_fds();
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        let e = recv(b.as_fd(), &mut buf, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(fds.is_empty());
        assert_eq!(open_fds(), before, "received fds leaked");
    }

    /// A receiver out of descriptors (EMFILE) gets the packet with the fds that fit, not
    /// an error saying the peer sent too many.
    #[test]
    fn out_of_descriptors_keeps_the_packet_and_the_fds_that_fit() {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        let (r, _w) = nix::unistd::pipe().unwrap();
        let ten = [r.as_fd(); 10];
        send(a.as_fd(), b"z", &ten).unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // A limit that leaves exactly three descriptor numbers free, not ten.
        let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .collect();
        let mut limit = 0;
        let mut free = 0;
        while free < 3 {
            if !open.contains(&limit) {
                free += 1;
            }
            limit += 1;
        }
        setrlimit(Resource::RLIMIT_NOFILE, limit, hard).unwrap();
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        let got = recv(b.as_fd(), &mut buf, &mut fds);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
        assert_eq!(got.unwrap(), Some(1));
        assert_eq!(&buf[..1], b"z");
        assert!(
            !fds.is_empty() && fds.len() < 10,
            "{} of 10 fds arrived",
            fds.len()
        );
    }

    #[test]
    fn oversized_packet_is_rejected_and_fds_closed() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        let (r, _w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &[7u8; 100], &[r.as_fd()]).unwrap();
        let before = open_fds();
        let mut buf = [0u8; 10];
        let mut fds = Vec::new();
        let e = recv(b.as_fd(), &mut buf, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(fds.is_empty());
        assert_eq!(open_fds(), before);
    }

    #[test]
    fn eof_and_would_block() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::SOCK_NONBLOCK);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        let e = recv(b.as_fd(), &mut buf, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        send(a.as_fd(), b"last", &[]).unwrap();
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf, &mut fds).unwrap(), Some(4));
        assert_eq!(recv(b.as_fd(), &mut buf, &mut fds).unwrap(), None);
        assert!(fds.is_empty());
    }

    #[test]
    fn send_to_closed_peer_is_epipe_not_sigpipe() {
        let _serial = serial();
        let (a, b) = pair(SockFlag::empty());
        drop(b);
        let e = send(a.as_fd(), b"x", &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn full_nonblocking_socket_would_block() {
        let _serial = serial();
        let (a, _b) = pair(SockFlag::SOCK_NONBLOCK);
        let msg = [0u8; 1024];
        let mut sent = 0;
        let err = loop {
            match send(a.as_fd(), &msg, &[]) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1_000_000, "socket never filled");
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
