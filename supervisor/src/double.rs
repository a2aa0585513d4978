//! TEMPORARY stand-in for `lwsd_worker::service::run_worker` until it is on main: a
//! blocking worker that takes fds from the control socket, answers every HTTP request
//! head with a tiny keep-alive 200, reports Stats every 250 ms, and exits on Shutdown.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use lwsd_proto::{FromWorker, ToWorker, WorkerStats};
use lwsd_worker::config::WorkerConfig;

pub fn run_worker(index: usize, ctl: OwnedFd, _cfg: WorkerConfig) -> io::Result<()> {
    let live = Arc::new(AtomicU32::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let reqs = Arc::new(AtomicU64::new(0));
    let ctl = Arc::new(ctl);
    let mut out = Vec::new();
    let _ = FromWorker::Hello {
        index: index as u16,
        pid: std::process::id(),
    }
    .encode(&mut out);
    lwsd_proto::send(ctl.as_fd(), &out, &[])?;
    {
        let (ctl, live, accepted, closed, reqs) = (
            ctl.clone(),
            live.clone(),
            accepted.clone(),
            closed.clone(),
            reqs.clone(),
        );
        std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                let s = WorkerStats {
                    live_conns: live.load(Ordering::Relaxed),
                    accepted_total: accepted.load(Ordering::Relaxed),
                    closed_total: closed.load(Ordering::Relaxed),
                    http_requests_total: [0, reqs.load(Ordering::Relaxed), 0, 0, 0],
                    ..WorkerStats::default()
                };
                let _ = FromWorker::Stats(s).encode(&mut out);
                if lwsd_proto::send(ctl.as_fd(), &out, &[]).is_err() {
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    let mut buf = vec![0u8; lwsd_proto::MAX_MSG_SIZE];
    loop {
        let mut fds = Vec::new();
        let Some(n) = lwsd_proto::recv(ctl.as_fd(), &mut buf, &mut fds)? else {
            return Ok(());
        };
        match ToWorker::decode(&buf[..n]) {
            Ok(ToWorker::NewConns(conns)) if conns.len() == fds.len() => {
                for fd in fds {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    live.fetch_add(1, Ordering::Relaxed);
                    let (live, closed, reqs) = (live.clone(), closed.clone(), reqs.clone());
                    std::thread::spawn(move || {
                        serve(std::net::TcpStream::from(fd), &reqs);
                        live.fetch_sub(1, Ordering::Relaxed);
                        closed.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
            Ok(ToWorker::Shutdown { .. }) => return Ok(()),
            _ => {}
        }
    }
}

fn serve(mut s: std::net::TcpStream, reqs: &AtomicU64) {
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let close = buf[..end]
                .windows(17)
                .any(|w| w.eq_ignore_ascii_case(b"connection: close"));
            reqs.fetch_add(1, Ordering::Relaxed);
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                .is_err()
                || close
            {
                return;
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
        if have == buf.len() {
            return;
        }
    }
}
