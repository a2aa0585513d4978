//! Shared helpers for the end-to-end tests: start the real `lwsd` binary on free ports,
//! talk to it over raw sockets, find its workers, read its metrics, stop it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test (built by cargo for this package's integration tests).
pub const LWSD: &str = env!("CARGO_BIN_EXE_lwsd");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("lwsd-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running lwsd.
pub struct Lwsd {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
}

impl Lwsd {
    /// Starts lwsd on a free port (and a free metrics port) with extra `args`, and waits
    /// until it answers.
    pub fn start(args: &[&str]) -> Lwsd {
        let port = free_port();
        let metrics_port = free_port();
        let metrics = format!("127.0.0.1:{metrics_port}");
        let port_s = port.to_string();
        let mut cmd = Command::new(LWSD);
        cmd.args(["-p", &port_s, "-i", "127.0.0.1", "--metrics-addr", &metrics])
            .args(args)
            .stdin(Stdio::null());
        if std::env::var_os("LWSD_TEST_VERBOSE").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().expect("spawn lwsd");
        let l = Lwsd { child, port, metrics_port };
        l.wait_ready();
        l
    }

    fn wait_ready(&self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_ok() {
                    let mut b = [0u8; 12];
                    if s.read_exact(&mut b).is_ok() && b.starts_with(b"HTTP/1.1") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("lwsd did not answer on port {}", self.port);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker processes (children of the supervisor).
    pub fn worker_pids(&self) -> Vec<u32> {
        children(self.pid())
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(self.pid(), Signal::SIGTERM);
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "lwsd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request on a new connection; the whole response (read to EOF).
    pub fn request(&self, raw: &[u8]) -> Vec<u8> {
        request(self.port, raw)
    }

    /// GET `path` with Connection: close; (status, headers, body).
    pub fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let r = self.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        split_response(&r)
    }

    /// The metrics endpoint's text.
    pub fn metrics(&self) -> String {
        let r = request(self.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&split_response(&r).2).into_owned()
    }
}

impl Drop for Lwsd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            for w in self.worker_pids() {
                signal(w, Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub use nix::sys::signal::Signal;

pub fn signal(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Sends `raw` on a new connection and reads until EOF (10 s bound).
pub fn request(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Splits one response into (status, head text, body bytes).
pub fn split_response(r: &[u8]) -> (u16, String, Vec<u8>) {
    let end = r.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(r.len());
    let head = String::from_utf8_lossy(&r[..end]).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, r[end..].to_vec())
}

/// The value of header `name` (case-insensitive) in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
