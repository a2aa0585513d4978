//! The supervisor end to end (DESIGN.md sections 1 and 8 "Faults"): the real `lwsd`
//! binary with two workers; every listener answers; SIGTERM drains and exits 0 and
//! removes the unix socket; a worker killed with SIGKILL under load loses only its own
//! connections and is back within a second, counted in /metrics; workers of a killed
//! supervisor drain and exit.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{
    Held, HttpConn, IO_TIMEOUT, Lwsd, holds, http_get_tcp, http_get_unix, metric, pid_holding_tcp,
    process_env, server_sockets, signal, tcp_sockets,
};

fn sock_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lwsd-sup-{}-{tag}.sock", std::process::id()))
}

/// Whether a worker has the server side of `client_port`'s connection as an fd (a
/// connection handed over by MSG_RING is in its ring's fixed-file table instead).
fn in_fd_table(server_port: u16, client_port: u16, workers: &[u32]) -> bool {
    let socks = server_sockets(server_port, client_port);
    assert_eq!(socks.len(), 1, "the connection's server side");
    workers
        .iter()
        .any(|&w| holds(w, &socks[0]) == Some(Held::Fd))
}

/// `lwsd -p PORT -i 127.0.0.1 --metrics-addr off ARGS`, stdout to /dev/null, for tests
/// that spawn it themselves (to read its stderr, or to change its environment).
fn lwsd_on(port: u16, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(support::lwsd_bin());
    cmd.args([
        "-p",
        &port.to_string(),
        "-i",
        "127.0.0.1",
        "--metrics-addr",
        "off",
    ])
    .args(args)
    .stdout(std::process::Stdio::null());
    cmd
}

#[test]
fn every_listener_answers_and_sigterm_cleans_up() {
    for mode in ["ring", "scm"] {
        every_listener_answers_and_sigterm_cleans_up_with(mode);
    }
}

fn every_listener_answers_and_sigterm_cleans_up_with(mode: &str) {
    let unix = sock_path(&format!("listeners-{mode}"));
    let l = Lwsd::start(&[
        "-j",
        "2",
        "-U",
        unix.to_str().unwrap(),
        "--fd-handoff",
        mode,
    ]);
    let v4 = SocketAddr::from(([127, 0, 0, 1], l.port));
    let v6: SocketAddr = format!("[::1]:{}", l.port).parse().unwrap();
    let handed_before = metric(&l.metrics(), "lwsd_handoffs_total").unwrap();
    assert_eq!(http_get_tcp(v4, "/").unwrap().0, 200);
    assert_eq!(http_get_tcp(v6, "/").unwrap().0, 200);
    assert_eq!(http_get_unix(&unix, "/").unwrap().0, 200);
    let workers = l.worker_pids();
    assert_eq!(workers.len(), 2, "-j 2 starts two workers");
    // Where the connections land: with ring handoff an IPv4 connection is in a worker's
    // io_uring and no fd of it; IPv6 ones always travel as fds (SCM_RIGHTS).
    for (addr, ring_path) in [(v4, mode == "ring"), (v6, false)] {
        let mut c = HttpConn::new(TcpStream::connect(addr).unwrap());
        assert_eq!(c.get("/", true).unwrap().0, 200);
        let client = c.stream().local_addr().unwrap().port();
        assert_eq!(
            in_fd_table(l.port, client, &workers),
            !ring_path,
            "{mode}: {addr} connection as an fd of a worker"
        );
        assert!(
            pid_holding_tcp(l.port, client, &workers).is_some(),
            "{mode}: {addr} owner"
        );
    }
    let m = l.metrics();
    assert_eq!(metric(&m, "lwsd_workers"), Some(2.0), "{m}");
    assert_eq!(
        metric(&m, "lwsd_handoffs_total"),
        Some(handed_before + 5.0),
        "{m}"
    );
    assert_eq!(metric(&m, "lwsd_handoff_failures_total"), Some(0.0), "{m}");

    let st = l.terminate();
    assert_eq!(st.code(), Some(0), "SIGTERM exits 0 ({st:?})");
    assert!(!unix.exists(), "unix socket removed at exit");
    for w in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{w}")).exists(),
            "worker {w} gone ({mode}): {:?}",
            std::fs::read_to_string(format!("/proc/{w}/status"))
                .unwrap_or_default()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    assert!(TcpStream::connect(v4).is_err(), "port closed after exit");
}

#[test]
fn stale_unix_socket_is_replaced_and_a_file_is_refused() {
    let p = sock_path("stale");
    drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
    let l = Lwsd::start(&["-j", "1", "-i", "127.0.0.1", "-U", p.to_str().unwrap()]);
    assert_eq!(http_get_unix(&p, "/").unwrap().0, 200);
    assert_eq!(l.terminate().code(), Some(0));

    std::fs::write(&p, b"x").unwrap();
    let port = support::free_port();
    let mut l = Lwsd::start_raw(
        &[
            "-p",
            &port.to_string(),
            "-U",
            p.to_str().unwrap(),
            "--metrics-addr",
            "off",
        ],
        port,
        None,
    )
    .unwrap();
    let st = l.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(st.code(), Some(1));
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"x",
        "a non-socket file is left alone"
    );
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn bad_flag_exits_2_and_busy_port_exits_1() {
    let mut l = Lwsd::start_raw(&["-j", "0"], 0, None).unwrap();
    assert_eq!(
        l.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(2)
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let args = [
        "-p",
        &port.to_string(),
        "-i",
        "127.0.0.1",
        "--metrics-addr",
        "off",
    ];
    let mut l = Lwsd::start_raw(&args, port, None).unwrap();
    assert_eq!(
        l.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(1)
    );
}

/// What one load thread saw.
#[derive(Default)]
struct Seen {
    /// Client ports of connections that failed mid-exchange, with when.
    failed: Vec<(u16, Instant)>,
    connect_errors: u64,
}

#[test]
fn killed_worker_loses_only_its_connections_and_comes_back() {
    const THREADS: usize = 6;
    // Bounded load: at most this long in total, whatever happens.
    const MAX_LOAD: Duration = Duration::from_secs(20);
    let l = Lwsd::start(&["-j", "2", "-i", "127.0.0.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], l.port));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<HashMap<usize, u16>>> = Arc::default();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, ok, current, seen) =
                (stop.clone(), ok.clone(), current.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_LOAD {
                    let s = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                        Ok(s) => s,
                        Err(_) => {
                            seen.lock().unwrap().connect_errors += 1;
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let port = s.local_addr().unwrap().port();
                    current.lock().unwrap().insert(t, port);
                    let mut c = HttpConn::new(s);
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_LOAD {
                        match c.get("/", true) {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((st, _)) => panic!("status {st}"),
                            Err(_) => {
                                seen.lock().unwrap().failed.push((port, Instant::now()));
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Every thread has its keep-alive connection and traffic flows.
    let t0 = Instant::now();
    while current.lock().unwrap().len() < THREADS || ok.load(Ordering::Relaxed) < 50 {
        assert!(t0.elapsed() < Duration::from_secs(10), "load did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let workers = l.worker_pids();
    assert_eq!(workers.len(), 2);
    // Which worker holds which client connection, before the kill.
    let owners: HashMap<u16, u32> = current
        .lock()
        .unwrap()
        .values()
        .map(|&p| {
            (
                p,
                pid_holding_tcp(l.port, p, &workers).expect("owner found"),
            )
        })
        .collect();
    let victim = workers[0];
    let victim_index = process_env(victim, "LWSD_WORKER_INDEX").expect("worker index");
    let victim_conns: HashSet<u16> = owners
        .iter()
        .filter(|&(_, &o)| o == victim)
        .map(|(&p, _)| p)
        .collect();
    assert!(
        !victim_conns.is_empty() && victim_conns.len() < THREADS,
        "least-loaded spreads connections over both workers: {owners:?}"
    );

    let ok_before = ok.load(Ordering::Relaxed);
    let killed_at = Instant::now();
    signal(victim, libc::SIGKILL);
    let back = l
        .wait_workers(2, &[victim], Duration::from_secs(1))
        .map(|_| killed_at.elapsed());
    // Keep the load on a while after the restart, then stop it.
    std::thread::sleep(Duration::from_millis(1500));
    let ok_mid = ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let ok_after = ok.load(Ordering::Relaxed);

    let back = back.expect("a new worker within 1 s of the kill");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.connect_errors, 0, "no connect ever fails");
    // Connections that existed before the kill fail only if the victim held them.
    // Connections opened after the kill can only fail if they were handed to the victim
    // in the instant between its death and the supervisor noticing (the kernel had
    // not yet torn down its control socket); those are the victim's too.
    let mut late = 0;
    for (port, when) in &seen.failed {
        if owners.contains_key(port) {
            assert!(
                victim_conns.contains(port),
                "connection {port} of a surviving worker failed"
            );
        } else {
            assert!(
                when.duration_since(killed_at) < Duration::from_millis(250),
                "a connection opened after the kill failed {:?} later",
                when.duration_since(killed_at)
            );
            late += 1;
        }
    }
    let failed_old: HashSet<u16> = seen
        .failed
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| owners.contains_key(p))
        .collect();
    assert_eq!(
        failed_old, victim_conns,
        "every connection of the killed worker fails (and is noticed)"
    );
    assert!(ok_after > ok_mid && ok_mid > ok_before, "load kept flowing");
    eprintln!(
        "kill -9 worker {victim_index}: back after {back:?}; {} of its connections failed, \
         {late} handed to it while dying; {} requests ok",
        victim_conns.len(),
        ok_after
    );

    let m = l.metrics();
    let series = format!("lwsd_worker_restarts_total{{worker=\"{victim_index}\"}}");
    assert_eq!(metric(&m, &series), Some(1.0), "{m}");
    assert_eq!(metric(&m, "lwsd_workers"), Some(2.0));
    let st = l.terminate();
    assert_eq!(st.code(), Some(0), "{st:?} signal {:?}", st.signal());
}

#[test]
fn the_peer_address_travels_with_the_fd() {
    for mode in ["ring", "scm"] {
        the_peer_address_travels_with_the_fd_with(mode);
    }
}

fn the_peer_address_travels_with_the_fd_with(mode: &str) {
    use std::io::{BufRead, BufReader, Write};
    let port = support::free_port();
    let mut child = lwsd_on(port, &["-j", "1", "-d", "31", "--fd-handoff", mode])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("connection from V4([127, 0, 0, 1]"))
    });
    let t = Instant::now();
    let local_port = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            break s.local_addr().unwrap().port();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "lwsd did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let t = Instant::now();
    while !lines.is_finished() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = lines
        .join()
        .unwrap()
        .expect("the worker logs the peer it was handed");
    assert!(line.contains(&format!("], {local_port})")), "{line}");
}

#[test]
fn each_worker_is_pinned_to_its_own_core() {
    let l = Lwsd::start(&["-j", "2"]);
    let w = l
        .wait_workers(2, &[], Duration::from_secs(10))
        .expect("two workers");
    let read = || -> Vec<String> {
        w.iter()
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Cpus_allowed_list:")
                            .map(|v| v.trim().to_string())
                    })
                    .unwrap_or_default()
            })
            .collect()
    };
    // A worker pins itself first thing, but the second may still be starting.
    let t = Instant::now();
    let mut cores = read();
    while cores.iter().any(|c| c.parse::<usize>().is_err()) && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
        cores = read();
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    for c in &cores {
        assert!(
            c.parse::<usize>().is_ok(),
            "a worker allows more than one core: {c}"
        );
    }
    if n >= 2 {
        assert_ne!(cores[0], cores[1], "both workers on core {}", cores[0]);
    }
}

/// After SIGTERM the port is free at once: a new lwsd on the same port starts. (Accepts
/// still in the io_uring hold the listener, and the kernel tears a ring down after its
/// process exits: the supervisor waits for their cancellation before exiting.)
#[test]
fn the_port_is_free_as_soon_as_lwsd_has_exited() {
    let port = support::free_port();
    for round in 0..12 {
        let mut l = Lwsd::start_raw(
            &["-p", &port.to_string(), "-j", "2", "--metrics-addr", "off"],
            port,
            None,
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t = Instant::now();
        loop {
            if let Some(st) = l.child.try_wait().unwrap() {
                panic!("round {round}: lwsd exited with {st:?} (port still bound?)");
            }
            if http_get_tcp(addr, "/").is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "round {round}: no answer"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Long enough for the supervisor's housekeeping ticks (they re-arm accepts).
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..20 {
            // keep-alive, closed by the client (as curl does)
            let mut c = HttpConn::new(TcpStream::connect(addr).unwrap());
            assert_eq!(c.get("/", true).unwrap().0, 200);
        }
        // A blocking wait, to look at the port the moment lwsd is gone (a polled wait
        // gives a slow teardown time to finish); a watchdog bounds it.
        let pid = l.pid();
        l.signal(libc::SIGTERM);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let done = done.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(10) {
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                signal(pid, libc::SIGKILL);
            })
        };
        let st = l.child.wait().unwrap();
        let still = listening(port);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watchdog.join().unwrap();
        assert_eq!(st.code(), Some(0), "round {round}: {st:?}");
        assert!(
            !still,
            "round {round}: port {port} still listening after exit"
        );
    }
}

/// Whether a socket listens on TCP `port` (v4 or v6).
fn listening(port: u16) -> bool {
    tcp_sockets()
        .iter()
        .any(|r| r.local_port == port && r.state == 0x0A)
}

/// lwsd raises its soft open-files limit to the hard one (the usual soft 1024 would cap a
/// worker at about a thousand connections), and the workers have it too.
#[test]
fn the_open_files_limit_is_raised_for_the_workers() {
    let port = support::free_port();
    let child = std::process::Command::new("sh")
        .args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""])
        .arg(support::lwsd_bin())
        .args(["-p", &port.to_string(), "-j", "1", "--metrics-addr", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let l = Lwsd::adopt(child, port, None);
    let limits = |pid: u32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[3].to_string(), f[4].to_string())
    };
    let workers = l.worker_pids();
    assert_eq!(workers.len(), 1);
    for pid in [l.pid(), workers[0]] {
        let (soft, hard) = limits(pid);
        assert_eq!(soft, hard, "pid {pid}: soft limit raised to the hard one");
    }
}

/// TCP_DEFER_ACCEPT (`--defer-accept`, default 1 s): a connection that has sent nothing
/// stays in the kernel and reaches no worker; once it speaks it is answered. With
/// `--defer-accept 0` the silent connection is accepted and sits in a worker at once.
#[test]
fn a_connection_reaches_a_worker_once_it_speaks() {
    use std::io::{Read, Write};
    for defer in ["1", "0"] {
        let l = Lwsd::start(&["-j", "1", "--defer-accept", defer]);
        let workers = l
            .wait_workers(1, &[], Duration::from_secs(10))
            .expect("one worker");
        let addr = SocketAddr::from(([127, 0, 0, 1], l.port));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let client_port = c.local_addr().unwrap().port();
        if defer == "0" {
            assert!(pid_holding_tcp(l.port, client_port, &workers).is_some());
        } else {
            // Well inside the 1 s after which the kernel would hand it over anyway.
            std::thread::sleep(Duration::from_millis(300));
            let socks = server_sockets(l.port, client_port);
            let held = workers
                .iter()
                .any(|&w| socks.iter().any(|s| holds(w, s).is_some()));
            assert!(!held, "a silent connection reached the worker");
        }
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "--defer-accept {defer}");
        l.terminate();
    }
}

/// Makes pidfd_getfd(2) fail with EPERM in the spawned lwsd and its workers, as a
/// locked-down container's seccomp policy would.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn deny_pidfd_getfd(cmd: &mut std::process::Command) {
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
        jeq_else_allow(libc::SYS_pidfd_getfd as u32, 1),
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

/// Where pidfd_getfd is refused, `--fd-handoff auto` falls back to SCM_RIGHTS (the
/// connection sits in the worker as an fd) and `--fd-handoff ring` refuses to start,
/// naming the cause.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn without_pidfd_getfd_auto_falls_back_to_scm_and_ring_refuses() {
    let spawn = |mode: &str, stderr: std::process::Stdio| {
        let port = support::free_port();
        let mut cmd = lwsd_on(port, &["-j", "1", "--fd-handoff", mode]);
        cmd.stderr(stderr);
        deny_pidfd_getfd(&mut cmd);
        (cmd.spawn().unwrap(), port)
    };
    let (mut child, _) = spawn("ring", std::process::Stdio::piped());
    let status =
        support::wait_child(&mut child, Duration::from_secs(10)).expect("ring mode started anyway");
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("--fd-handoff ring: pidfd_getfd"), "{err}");

    let (mut child, port) = spawn("auto", std::process::Stdio::null());
    let lwsd = child.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Instant::now();
    let c = loop {
        if let Ok(mut c) = TcpStream::connect(addr).map(HttpConn::new)
            && c.get("/", true).is_ok_and(|r| r.0 == 200)
        {
            break c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "auto mode did not serve"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let workers = support::children(lwsd);
    let client_port = c.stream().local_addr().unwrap().port();
    let in_fds = in_fd_table(port, client_port, &workers);
    let _ = child.kill();
    let _ = child.wait();
    assert!(in_fds, "the connection came by SCM_RIGHTS, as an fd");
}

/// A log pipe whose reader went away (a crashed log collector, `lwsd | head`) must not
/// take lwsd down: with every log level on and stderr a closed pipe, the supervisor and
/// its workers keep serving, and SIGTERM still stops them cleanly.
#[test]
fn a_broken_stderr_pipe_does_not_stop_lwsd() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let port = support::free_port();
    let mut child = lwsd_on(port, &["-j", "2", "-d", "31"])
        .stderr(writer)
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Instant::now();
    while http_get_tcp(addr, "/").is_err() {
        assert!(child.try_wait().unwrap().is_none(), "lwsd exited at start");
        assert!(t.elapsed() < Duration::from_secs(10), "no answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    // (With the old eprintln! logging, the first failed log write already ended it.)
    for _ in 0..20 {
        assert_eq!(http_get_tcp(addr, "/").unwrap().0, 200);
    }
    assert!(child.try_wait().unwrap().is_none(), "lwsd died");
    signal(child.id(), libc::SIGTERM);
    let status =
        support::wait_child(&mut child, support::STOP_TIMEOUT).expect("no exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

/// The supervisor killed with SIGKILL (the OOM killer, a careless `kill -9`): its
/// workers do not stay behind. Each sees its control socket go, drains as on a
/// shutdown (a WebSocket client gets a 1001 "going away" close, not a reset) and exits.
#[test]
fn workers_drain_and_exit_when_the_supervisor_is_killed() {
    use tungstenite::Message;
    use tungstenite::protocol::frame::coding::CloseCode;
    for mode in ["ring", "scm"] {
        let mut l = Lwsd::start(&["-j", "2", "--fd-handoff", mode]);
        let workers = l.worker_pids();
        assert_eq!(workers.len(), 2);
        let stream = TcpStream::connect(("127.0.0.1", l.port)).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{}/", l.port), stream)
            .expect("websocket handshake");
        ws.send(Message::text("hello")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("hello"), "{mode}: echo");
        l.signal(libc::SIGKILL);
        l.wait_exit(Duration::from_secs(5))
            .expect("supervisor gone");
        let close = loop {
            match ws.read() {
                Ok(Message::Close(c)) => break c,
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("{mode}: expected a close, got {other:?}"),
            }
        };
        assert_eq!(close.map(|c| c.code), Some(CloseCode::Away), "{mode}");
        // Our Close reply goes out with the next read, which then sees the end.
        assert!(ws.read().is_err(), "{mode}: the connection ends");
        let t = Instant::now();
        while workers.iter().any(|&w| alive(w)) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{mode}: workers still running after their supervisor died"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// The state letter of a process in /proc/<pid>/stat (R, S, T for stopped, Z, ...).
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

/// Signals an operator sends out of habit (nginx's SIGUSR1 log reopen and SIGUSR2
/// upgrade, SIGHUP reload; the job-control and timer signals whose default action ends
/// or stops a process) neither end nor stop lwsd: sent to the supervisor or to a
/// worker, everything keeps serving in the same processes, and the supervisor says
/// what it did with SIGUSR1 and SIGUSR2. Ctrl-C and Ctrl-\ reach a terminal's whole
/// process group: a worker ignores them (its supervisor drains it).
#[test]
fn operator_signals_neither_end_nor_stop_lwsd() {
    let port = support::free_port();
    let mut child = lwsd_on(port, &["-j", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (log, reader) = support::collect_lines(child.stderr.take().unwrap());
    let l = Lwsd::adopt(child, port, None);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let workers = l
        .wait_workers(2, &[], Duration::from_secs(10))
        .expect("two workers");
    let common = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGWINCH,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGALRM,
        libc::SIGPROF,
        libc::SIGPIPE,
        libc::SIGURG,
    ];
    let to_worker_only = [libc::SIGINT, libc::SIGQUIT];
    let targets = [(l.pid(), "supervisor"), (workers[1], "worker")];
    for (pid, who) in targets {
        let sigs = common.iter().chain(if who == "worker" {
            &to_worker_only[..]
        } else {
            &[]
        });
        for &sig in sigs {
            signal(pid, sig);
            // Time for a default action (termination, stop) to take effect.
            std::thread::sleep(Duration::from_millis(50));
            for p in std::iter::once(l.pid()).chain(workers.iter().copied()) {
                let st = proc_state(p);
                assert!(
                    matches!(st, Some('R' | 'S' | 'D')),
                    "signal {sig} to the {who}: process {p} is {st:?}"
                );
            }
            assert_eq!(l.worker_pids().len(), 2, "signal {sig} to the {who}");
            for _ in 0..4 {
                assert_eq!(
                    http_get_tcp(addr, "/").map(|r| r.0).ok(),
                    Some(200),
                    "signal {sig} to the {who}"
                );
            }
        }
    }
    let mut now = l.worker_pids();
    now.sort_unstable();
    let mut before = workers.clone();
    before.sort_unstable();
    assert_eq!(now, before, "no worker was restarted");
    let st = l.terminate();
    assert_eq!(st.code(), Some(0), "{st:?}");
    reader.join().unwrap();
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("SIGUSR1: no log files to reopen"), "{log}");
    assert!(
        log.contains("SIGUSR2: binary upgrade not supported"),
        "{log}"
    );
}
