//! Running out of file descriptors (DESIGN.md section 8 "Faults"): under a low hard
//! open-files limit, clients past what the workers can hold get a 503 from the
//! supervisor instead of a reset, counted in `lwsd_connections_refused_total`, with a
//! log line a second at most; once they leave, lwsd serves as before. Both handoff modes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{IO_TIMEOUT, Lwsd, http_get_tcp, metric};

/// The hard (and soft) open-files limit lwsd runs under: lwsd raises its soft limit to
/// the hard one at start, so the hard one is what binds.
const NOFILE: u64 = 512;
/// Clients opened at once: well past what one worker holds under [`NOFILE`].
const CLIENTS: usize = 700;

#[test]
fn out_of_descriptors_clients_get_503_and_lwsd_recovers() {
    // This process holds CLIENTS sockets itself.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    for mode in ["ring", "scm"] {
        with_mode(mode);
    }
}

fn with_mode(mode: &str) {
    let port = support::free_port();
    let metrics_port = support::free_port();
    let mut cmd = std::process::Command::new(support::lwsd_bin());
    cmd.args(["-p", &port.to_string(), "-i", "127.0.0.1", "-j", "1"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--fd-handoff", mode])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: runs in the child between fork and exec; setrlimit(2) is
    // async-signal-safe and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().unwrap();
    let (log, reader) = support::collect_lines(child.stderr.take().unwrap());
    let l = Lwsd::adopt(child, port, Some(metrics_port));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Every client sends a keep-alive request and stays connected.
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        clients.push(s);
    }
    let (mut ok, mut refused, mut other) = (0, 0, Vec::new());
    for s in &mut clients {
        let mut head = [0u8; 12];
        match s.read_exact(&mut head) {
            Ok(()) if &head == b"HTTP/1.1 200" => ok += 1,
            Ok(()) if &head == b"HTTP/1.1 503" => refused += 1,
            r => other.push(format!("{r:?} {:?}", String::from_utf8_lossy(&head))),
        }
    }
    eprintln!("{mode}: {ok} served, {refused} refused with 503");
    assert!(
        other.is_empty(),
        "{mode}: {} neither 200 nor 503: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert!(
        ok > 100 && refused > 0,
        "{mode}: {ok} served, {refused} refused"
    );
    let t = Instant::now();
    let counted = loop {
        let m = l.metrics();
        let v = metric(
            &m,
            "lwsd_connections_refused_total{reason=\"workers_full\"}",
        );
        if v == Some(refused as f64) || t.elapsed() > Duration::from_secs(5) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(counted, Some(refused as f64), "{mode}: refusals counted");

    // The clients leave; the next ones are served.
    drop(clients);
    let t = Instant::now();
    loop {
        let served = (0..50).all(|_| http_get_tcp(addr, "/").is_ok_and(|r| r.0 == 200));
        if served {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{mode}: not serving again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(l.terminate().code(), Some(0));
    reader.join().unwrap();
    let log = log.lock().unwrap();
    let lines = log
        .iter()
        .filter(|l| l.contains("connection limit"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "{mode}: {lines} refusal lines:\n{}",
        log.join("\n")
    );
    assert!(
        !log.iter().any(|l| l.contains("more fds than allowed")),
        "{mode}: {}",
        log.join("\n")
    );
}
