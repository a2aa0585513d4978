#![allow(dead_code)]
//! Helpers for lwsd's end-to-end tests: start the real `lwsd` binary with arguments on
//! free ports, wait until it answers, find its worker processes (and which of them holds
//! a given client connection), read `/metrics`, speak minimal HTTP/1.1 over TCP or a
//! unix socket, and stop it. Every wait is bounded in time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a started server gets to answer its first request.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopped server gets to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Read/write timeout of the helper clients, so a hung server fails a test, not hangs it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The `lwsd` binary under test: the e2e tests are integration tests of the `lwsd`
/// package, so cargo builds it and names it here.
pub fn lwsd_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lwsd"))
}

/// A TCP port nobody listens on right now, on IPv4 and IPv6 (a dual-stack bind on
/// `[::]` checks both; without IPv6, the IPv4 wildcard).
pub fn free_port() -> u16 {
    TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind("0.0.0.0:0"))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// `child`'s exit status once it has exited, or `None` after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if t.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts of [`Lwsd::start`] whose lwsd exits before answering (a port taken meanwhile).
pub const START_ATTEMPTS: usize = 3;

/// A running lwsd started by a test; killed (with its workers) when dropped.
pub struct Lwsd {
    pub child: Child,
    /// The TCP port it listens on (`-p`).
    pub port: u16,
    /// The metrics endpoint's port, if enabled.
    pub metrics_port: Option<u16>,
}

impl Lwsd {
    /// Starts lwsd with `-p <free port> --metrics-addr 127.0.0.1:<free port>` followed by
    /// `args` (which may add `-i`, `-U`, `-j`, ... but not `-p`/`--metrics-addr`), and
    /// waits until a GET / on 127.0.0.1 (or the `-i` address) gets a response.
    /// Output goes to the test's stderr when `LWSD_TEST_VERBOSE` is set.
    ///
    /// A port found free can be taken again before lwsd binds it (tests run in parallel,
    /// and their clients' ephemeral ports come from the same range): an lwsd that exits
    /// before answering is started again on other ports, at most [`START_ATTEMPTS`] times.
    pub fn start(args: &[&str]) -> Lwsd {
        let host = args
            .iter()
            .position(|a| *a == "-i" || *a == "--interface")
            .and_then(|i| args.get(i + 1))
            .map_or("127.0.0.1".to_owned(), |s| s.to_string());
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let metrics_port = free_port();
            let mut l = Lwsd::start_raw(
                &[
                    &["-p", &port.to_string()],
                    &["--metrics-addr", &format!("127.0.0.1:{metrics_port}")],
                    args,
                ]
                .concat(),
                port,
                Some(metrics_port),
            )
            .expect("spawn lwsd");
            if l.wait_ready(&host) {
                return l;
            }
        }
        panic!("lwsd exited before answering, {START_ATTEMPTS} times (args {args:?})");
    }

    /// Spawns lwsd with exactly `args`, without waiting (for tests of startup errors);
    /// plus `--event-loop $LWSD_TEST_EVENT_LOOP` when that is set and `args` name no
    /// event loop (to run the end-to-end tests on either backend), nor the ring handoff
    /// (`--fd-handoff ring`, which only io_uring workers take: those runs stay on it).
    pub fn start_raw(args: &[&str], port: u16, metrics_port: Option<u16>) -> io::Result<Lwsd> {
        let mut cmd = Command::new(lwsd_bin());
        cmd.args(args).stdin(Stdio::null());
        let pins_ring = args.windows(2).any(|w| w == ["--fd-handoff", "ring"]);
        if let Some(ev) = std::env::var_os("LWSD_TEST_EVENT_LOOP")
            && !args.contains(&"--event-loop")
            && !pins_ring
        {
            cmd.arg("--event-loop").arg(ev);
        }
        if std::env::var_os("LWSD_TEST_VERBOSE").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Ok(Lwsd {
            child: cmd.spawn()?,
            port,
            metrics_port,
        })
    }

    /// Takes over an lwsd a test spawned itself (with limits, a shell, its stderr piped),
    /// listening on 127.0.0.1:`port`, and waits until a GET / answers there. Panics if
    /// it exits first or does not answer in time.
    pub fn adopt(child: Child, port: u16, metrics_port: Option<u16>) -> Lwsd {
        let mut l = Lwsd {
            child,
            port,
            metrics_port,
        };
        assert!(l.wait_ready("127.0.0.1"), "lwsd exited before answering");
        l
    }

    /// True once a GET / answers; false if lwsd exits first (panics on a timeout).
    fn wait_ready(&mut self, host: &str) -> bool {
        let ip: std::net::IpAddr = host.parse().unwrap_or([127, 0, 0, 1].into());
        let addr = SocketAddr::new(ip, self.port);
        let t = Instant::now();
        while t.elapsed() < START_TIMEOUT {
            if http_get_tcp(addr, "/").is_ok() {
                return true;
            }
            if self.child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("lwsd did not answer on {addr} within {START_TIMEOUT:?}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker processes (direct children of the supervisor).
    pub fn worker_pids(&self) -> Vec<u32> {
        children(self.pid())
    }

    /// Waits until there are `n` workers and all differ from `old` (those that existed
    /// before a kill); returns them, or `None` after `timeout`.
    pub fn wait_workers(&self, n: usize, not: &[u32], timeout: Duration) -> Option<Vec<u32>> {
        let t = Instant::now();
        loop {
            let w = self.worker_pids();
            if w.len() == n && w.iter().all(|p| !not.contains(p)) {
                return Some(w);
            }
            if t.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let port = self.metrics_port.expect("metrics enabled");
        let (status, body) =
            http_get_tcp(SocketAddr::from(([127, 0, 0, 1], port)), "/metrics").expect("scrape");
        assert_eq!(status, 200);
        String::from_utf8(body).expect("metrics are UTF-8")
    }

    /// Sends `sig` to the supervisor.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig);
    }

    /// Waits (bounded) for the supervisor to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// SIGTERM, then the exit status (panics if it does not exit in [`STOP_TIMEOUT`]).
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(STOP_TIMEOUT)
            .expect("lwsd did not exit after SIGTERM")
    }
}

impl Drop for Lwsd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The supervisor first: killed workers first, it would start new ones in the
            // moment before its own end, and those would outlive the test (a worker
            // also exits on its own once its control socket is gone).
            let workers = self.worker_pids();
            let _ = self.child.kill();
            let _ = self.child.wait();
            for w in workers {
                signal(w, libc::SIGKILL);
            }
        }
    }
}

/// Sends a signal to a process (errors, e.g. it is already gone, are ignored).
pub fn signal(pid: u32, sig: libc::c_int) {
    let (Ok(pid), Ok(sig)) = (i32::try_from(pid), nix::sys::signal::Signal::try_from(sig)) else {
        return;
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The value of environment variable `name` of process `pid` (e.g. a worker's
/// `LWSD_WORKER_INDEX`).
pub fn process_env(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Collects every line `r` yields (a child's stderr) on a thread of its own: the lines
/// so far, and the thread (joined once the child is gone, for the rest).
pub fn collect_lines(
    r: impl Read + Send + 'static,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::thread::JoinHandle<()>,
) {
    let log = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
    let sink = log.clone();
    let t = std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    (log, t)
}

/// The value of one series in a Prometheus text exposition, e.g.
/// `metric(&text, "lwsd_worker_restarts_total{worker=\"1\"}")`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Which of `pids` holds the server side of the TCP connection between `server_port`
/// and the client's `client_port` (on loopback), by matching the socket inode from
/// /proc/net/tcp{,6} against each process's open fds.
pub fn pid_holding_tcp(server_port: u16, client_port: u16, pids: &[u32]) -> Option<u32> {
    // The kernel lists a ring's fixed files only when it gets the ring's lock at once; a
    // busy worker holds it for short spells, so look a few times.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(p) = pid_holding_tcp_once(server_port, client_port, pids) {
            return Some(p);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pid_holding_tcp_once(server_port: u16, client_port: u16, pids: &[u32]) -> Option<u32> {
    let socks = server_sockets(server_port, client_port);
    pids.iter()
        .copied()
        .find(|&pid| socks.iter().any(|s| holds(pid, s).is_some()))
}

/// A row of /proc/net/tcp or tcp6.
pub struct TcpRow {
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's TCP state number (0x0A: LISTEN).
    pub state: u8,
    pub inode: u64,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6.
pub fn tcp_sockets() -> Vec<TcpRow> {
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut rows = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() <= 9 {
                continue;
            }
            if let (Some(local_port), Some(remote_port), Ok(state), Ok(inode)) = (
                port(c[1]),
                port(c[2]),
                u8::from_str_radix(c[3], 16),
                c[9].parse(),
            ) {
                rows.push(TcpRow {
                    local_port,
                    remote_port,
                    state,
                    inode,
                });
            }
        }
    }
    rows
}

/// The server side of the connection from `client_port` to `server_port`, as the
/// `socket:[inode]` name a process's fd links show.
pub fn server_sockets(server_port: u16, client_port: u16) -> Vec<String> {
    tcp_sockets()
        .into_iter()
        .filter(|r| r.local_port == server_port && r.remote_port == client_port)
        .map(|r| format!("socket:[{}]", r.inode))
        .collect()
}

/// How a process holds a socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// As one of its fds.
    Fd,
    /// In one of its io_urings' fixed-file tables (a connection handed over by MSG_RING).
    Ring,
}

/// Whether process `pid` holds the socket named `sock` (`socket:[inode]`), and how.
pub fn holds(pid: u32, sock: &str) -> Option<Held> {
    let mut ring = false;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(l) = std::fs::read_link(e.path()) else {
            continue;
        };
        if l.as_os_str() == sock {
            return Some(Held::Fd);
        }
        // The ring's fdinfo lists its fixed files as "<slot>: socket:[<inode>]".
        ring |= l.as_os_str() == "anon_inode:[io_uring]"
            && std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .is_ok_and(|info| {
                info.lines()
                    .any(|line| line.trim_end().ends_with(&format!(": {sock}")))
            });
    }
    ring.then_some(Held::Ring)
}

/// One `GET path` with `Connection: close` on a new TCP connection: (status, body).
pub fn http_get_tcp(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut c = HttpConn::new(s);
    c.get(path, false)
}

/// One `GET path` with `Connection: close` over a unix socket: (status, body).
pub fn http_get_unix(path: &Path, target: &str) -> io::Result<(u16, Vec<u8>)> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut c = HttpConn::new(s);
    c.get(target, false)
}

/// A minimal HTTP/1.1 client connection for keep-alive request loops (responses with
/// `Content-Length`, or read to EOF when the server closes).
pub struct HttpConn<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> HttpConn<S> {
    pub fn new(s: S) -> Self {
        HttpConn {
            r: BufReader::new(s),
        }
    }

    pub fn stream(&self) -> &S {
        self.r.get_ref()
    }

    /// Sends `GET path` (keep-alive unless `keep_alive` is false) and reads the
    /// response: (status, body). An error or EOF before a full response is an error.
    pub fn get(&mut self, path: &str, keep_alive: bool) -> io::Result<(u16, Vec<u8>)> {
        let conn = if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: lwsd-test\r\n{conn}\r\n");
        self.r.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = None;
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = Vec::new();
        match len {
            Some(n) => {
                body.resize(n, 0);
                self.r.read_exact(&mut body)?;
            }
            None => {
                self.r.read_to_end(&mut body)?;
            }
        }
        Ok((status, body))
    }
}

/// CPU time (user + system) a process has used so far, from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI lwsd targets.
    Some(Duration::from_millis(ticks * 10))
}

// ---- raw-socket helpers used by the HTTP tests ----

impl Lwsd {
    /// One request on a new connection; one response (see [`request`]).
    pub fn request(&self, raw: &[u8]) -> Vec<u8> {
        request(self.port, raw)
    }

    /// GET `path` with Connection: close; (status, head text, body).
    pub fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let r = self.request(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        split_response(&r)
    }
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

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Sends `raw` on a new connection and reads one response: up to its Content-Length
/// when it has one (the connection may stay open), else to EOF (10 s bound). Interim
/// 1xx responses are skipped.
pub fn request(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before taking every byte (a 4xx mid-request).
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        while out.starts_with(b"HTTP/1.1 1") {
            match out.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(p) => drop(out.drain(..p + 4)),
                None => break,
            }
        }
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_string();
            let len = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| out.len() >= end + 4 + len || head.starts_with("HTTP/1.1 304"))
            {
                break;
            }
        }
    }
    out
}

/// Splits one response into (status, head text, body bytes).
pub fn split_response(r: &[u8]) -> (u16, String, Vec<u8>) {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(r.len());
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

/// The local (client) port of process `pid`'s TCP connection to `server_port`, found by
/// matching its fds' socket inodes against /proc/net/tcp{,6} (for a client program such
/// as `openssl s_client`, whose port the test does not choose). `None` while it has no
/// established connection there.
pub fn client_port_of(pid: u32, server_port: u16) -> Option<u16> {
    let mine: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    // State 1: ESTABLISHED.
    tcp_sockets()
        .into_iter()
        .find(|r| {
            r.remote_port == server_port
                && r.state == 1
                && mine.contains(&format!("socket:[{}]", r.inode))
        })
        .map(|r| r.local_port)
}
