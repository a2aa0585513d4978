//! lwsd where io_uring is forbidden (issue 12): started under a seccomp filter that
//! refuses `io_uring_setup` with EPERM, as Docker's and containerd's default profiles
//! do, with the default `--event-loop auto`. The supervisor and every worker log the
//! cause and fall back to epoll (no process holds an io_uring), and lwsd serves
//! HTTP/1.1, HTTP/2 (prior knowledge on plain TCP, ALPN over TLS), TLS and WebSockets,
//! then drains and exits 0 on SIGTERM.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{IO_TIMEOUT, Lwsd, collect_lines, http_get_tcp};

const FALLBACK_LINE: &str = "io_uring unavailable (Operation not permitted): using epoll";

/// Makes io_uring_setup(2) fail with EPERM in the spawned lwsd and its workers.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn deny_io_uring_setup(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq_else_allow = |k: u32, skip_to_allow: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: 0,
        jf: skip_to_allow,
        k,
    };
    // struct seccomp_data { int nr; __u32 arch; ... }: nr at 0, arch at 4.
    let prog = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jeq_else_allow(AUDIT_ARCH, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq_else_allow(libc::SYS_io_uring_setup as u32, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: the closure runs in the child between fork and exec, allocates nothing and
    // only makes two prctl(2) calls (async-signal-safe); the filter program it points
    // the kernel at is the closure's own copy, alive for both calls (the kernel copies
    // it in).
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// lwsd with two workers on a free port under the filter, its stderr collected.
fn start_denied(args: &[&str]) -> (Lwsd, Arc<Mutex<Vec<String>>>) {
    let port = support::free_port();
    let mut cmd = Command::new(support::lwsd_bin());
    cmd.args([
        "-p",
        &port.to_string(),
        "-i",
        "127.0.0.1",
        "--metrics-addr",
        "off",
        "-j",
        "2",
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    deny_io_uring_setup(&mut cmd);
    let mut child = cmd.spawn().expect("spawn lwsd");
    let (log, _) = collect_lines(child.stderr.take().unwrap());
    let l = Lwsd::adopt(child, port, None);
    // The supervisor and both workers each name the cause once.
    let t = Instant::now();
    loop {
        let n = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(FALLBACK_LINE))
            .count();
        if n == 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{n} fallback lines: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in std::iter::once(l.pid()).chain(l.worker_pids()) {
        let uring = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|p| p.to_string_lossy().contains("io_uring"))
            .count();
        assert_eq!(uring, 0, "process {pid} holds an io_uring");
    }
    (l, log)
}

/// `curl -s -w '%{http_code} %{http_version}'` with `flags`, at `url`.
fn curl(flags: &[&str], url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "10",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(flags)
        .arg(url)
        .output()
        .expect("curl (scripts/install-deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_io_uring_lwsd_serves_http1_h2c_and_websockets_on_epoll() {
    let (l, _log) = start_denied(&["--ws-default", "lws-echo"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], l.port));
    // HTTP/1.1, several times: both workers get connections.
    for _ in 0..4 {
        let (status, body) = http_get_tcp(addr, "/").expect("GET /");
        assert_eq!(status, 200);
        assert!(!body.is_empty());
    }
    let url = format!("http://127.0.0.1:{}/", l.port);
    assert_eq!(curl(&["--http2-prior-knowledge"], &url), "200 2");
    assert_eq!(curl(&["--http1.1"], &url), "200 1.1");
    // A WebSocket echo, small and large (the large one crosses many scratch reads and
    // partial writes).
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let (mut ws, resp) =
        tungstenite::client::client(format!("ws://127.0.0.1:{}/", l.port), s).expect("handshake");
    assert_eq!(resp.status(), 101);
    for n in [5usize, 1 << 20] {
        let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => assert!(t.as_str() == text, "echo of {n} differs"),
            m => panic!("echo of {n}: got {m:?}"),
        }
    }
    ws.close(None).unwrap();
    assert!(l.terminate().success());
}

#[test]
fn without_io_uring_lwsd_serves_tls_and_h2_over_alpn_on_epoll() {
    let (l, _log) = start_denied(&["-s"]);
    let url = format!("https://127.0.0.1:{}/", l.port);
    assert_eq!(curl(&["-k"], &url), "200 2");
    assert_eq!(curl(&["-k", "--http1.1"], &url), "200 1.1");
    assert!(l.terminate().success());
}
