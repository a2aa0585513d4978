//! TLS start-up through the real binary (issue 10): an unusable certificate or key
//! stops lwsd at start with exit 1 and a line naming the file; `-s` alone makes one
//! self-signed certificate that every worker (a killed and respawned one too) loads from
//! the supervisor's private directory, removed when lwsd exits.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{children, process_env, signal};

fn testdata(name: &str) -> String {
    format!(
        "{}/../worker/src/roles/tls/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn lwsd(args: &[&str]) -> Command {
    let mut cmd = Command::new(support::lwsd_bin());
    cmd.args([
        "-p",
        &support::free_port().to_string(),
        "-i",
        "127.0.0.1",
        "--metrics-addr",
        "off",
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    cmd
}

/// Runs lwsd expecting it to stop at start; returns its stderr.
fn start_fails(args: &[&str]) -> String {
    let mut child = lwsd(args).stderr(Stdio::piped()).spawn().unwrap();
    let st = support::wait_child(&mut child, Duration::from_secs(10)).expect("lwsd kept running");
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(children(child.id()).is_empty());
    err
}

#[test]
fn unusable_certificate_or_key_stops_the_start_naming_the_file() {
    let cert = testdata("ecdsa-p256.cert.pem");
    let key = testdata("ecdsa-p256.sec1.pem");
    let rsa_key = testdata("rsa2048.pkcs1.pem");
    let err = start_fails(&["-s", "-C", "/nonexistent/lwsd.pem", "-K", &key]);
    assert!(err.contains("/nonexistent/lwsd.pem: not found"), "{err}");
    let err = start_fails(&["-s", "-C", &cert, "-K", &rsa_key]);
    assert!(
        err.contains(&format!(
            "{rsa_key}: key does not match the certificate in {cert}"
        )),
        "{err}"
    );
    let err = start_fails(&["-s", "-C", &key, "-K", &cert]);
    assert!(err.contains("swapped -C and -K?"), "{err}");
    let err = start_fails(&["-s", "-A", "/nonexistent/ca.pem", "-v"]);
    assert!(err.contains("/nonexistent/ca.pem: not found"), "{err}");
}

#[test]
fn good_files_start() {
    let cert = testdata("rsa2048.cert.pem");
    let key = testdata("rsa2048.pkcs1.pem");
    let mut child = lwsd(&["-j", "1", "-s", "-C", &cert, "-K", &key])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while children(child.id()).is_empty() || t.elapsed() < Duration::from_millis(500) {
        assert!(child.try_wait().unwrap().is_none(), "lwsd stopped");
        assert!(t.elapsed() < Duration::from_secs(10), "no worker");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "a worker refused the files"
    );
    signal(child.id(), libc::SIGTERM);
    let st = support::wait_child(&mut child, support::STOP_TIMEOUT).expect("exit");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn self_signed_is_made_once_shared_and_removed() {
    let mut child = lwsd(&["-j", "2", "-s", "-d", "15"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sup = child.id();
    let t = Instant::now();
    let workers = loop {
        let w = children(sup);
        if w.len() == 2
            && w.iter()
                .all(|&p| process_env(p, "LWSD_WORKER_INDEX").is_some())
        {
            break w;
        }
        assert!(child.try_wait().unwrap().is_none(), "lwsd stopped");
        assert!(t.elapsed() < Duration::from_secs(10), "no workers");
        std::thread::sleep(Duration::from_millis(20));
    };
    let dirs: Vec<String> = workers
        .iter()
        .map(|&w| process_env(w, "LWSD_TLS_SELF_SIGNED").expect("the directory"))
        .collect();
    assert_eq!(dirs[0], dirs[1], "one certificate for every worker");
    let dir = std::path::PathBuf::from(&dirs[0]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();

    // A respawned worker gets the same one.
    signal(workers[0], libc::SIGKILL);
    let t = Instant::now();
    let fresh = loop {
        let w: Vec<u32> = children(sup)
            .into_iter()
            .filter(|p| !workers.contains(p))
            .collect();
        if let Some(&p) = w.first()
            && process_env(p, "LWSD_WORKER_INDEX").is_some()
        {
            break p;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no respawn");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        process_env(fresh, "LWSD_TLS_SELF_SIGNED").as_deref(),
        Some(dirs[0].as_str())
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "lwsd stopped");
    assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), cert);

    signal(sup, libc::SIGTERM);
    let st = support::wait_child(&mut child, support::STOP_TIMEOUT).expect("exit");
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(
        err.contains("self-signed certificate for localhost"),
        "{err}"
    );
    assert!(!dir.exists(), "removed at exit");
}
