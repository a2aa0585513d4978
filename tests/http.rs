//! HTTP/1.1 end to end: the real `lwsd` binary serving a document root, driven over raw
//! sockets: the hostile-request corpus, pipelining, keep-alive, HEAD, 100-continue,
//! chunked uploads, the header timeout, path escapes, and a 1 GiB sparse file streamed
//! with the server's memory staying flat.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// A document root with the files the corpus expects, and a secret beside it.
fn docroot() -> TempDir {
    let d = TempDir::new("www");
    let root = d.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>lwsd</h1>\n").unwrap();
    std::fs::write(root.join("small.txt"), "hello world\n").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub\n").unwrap();
    std::fs::write(d.path().join("secret.txt"), "TOP SECRET\n").unwrap();
    std::os::unix::fs::symlink(d.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    d
}

fn start(d: &TempDir, extra: &[&str]) -> Lwsd {
    let root = d.path().join("www");
    let mut args = vec!["-j", "1", "-r", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Lwsd::start(&args)
}

#[test]
fn hostile_request_corpus_gets_the_expected_status_and_the_server_keeps_serving() {
    let d = docroot();
    // A short body timeout: the stalled-body cases get their 408 in a second.
    let s = start(&d, &["--body-timeout", "1"]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus/http");
    let index = std::fs::read_to_string(format!("{dir}/expected.txt")).unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for line in index
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut it = line.split_whitespace();
        let (file, want) = (
            it.next().unwrap(),
            it.next().unwrap().parse::<u16>().unwrap(),
        );
        let raw = std::fs::read(format!("{dir}/{file}")).unwrap();
        let resp = s.request(&raw);
        let (got, head, body) = split_response(&resp);
        if got != want {
            failures.push(format!("{file}: want {want}, got {got}: {head:?}"));
        }
        assert!(
            !body.windows(10).any(|w| w == b"TOP SECRET"),
            "{file} leaked the secret"
        );
        n += 1;
    }
    assert!(n >= 40, "the corpus has {n} requests");
    assert!(
        failures.is_empty(),
        "{} of {n} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (st, _, body) = s.get("/small.txt");
    assert_eq!((st, body.as_slice()), (200, &b"hello world\n"[..]));
}

#[test]
fn path_escapes_are_refused() {
    let d = docroot();
    let s = start(&d, &[]);
    for p in [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/.%2e/secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/escape.txt",
        "/etc/passwd",
        "/etc/hostname",
        "/small.txt%00.html",
        "//../secret.txt",
    ] {
        let (st, head, body) = s.get(p);
        assert!((400..500).contains(&st), "{p}: status {st} {head}");
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP SECRET"),
            "{p} leaked"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("root:"),
            "{p} leaked /etc"
        );
    }
    // the server still serves what it should
    assert_eq!(s.get("/sub/").0, 200);
    assert_eq!(s.get("/sub").0, 301);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let d = docroot();
    let s = start(&d, &[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reqs = "GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n\
                HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\n\
                GET /missing HTTP/1.1\r\nHost: a\r\n\r\n\
                GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    c.write_all(reqs.as_bytes()).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404", "200"], "{text}");
    let first = text.find("hello world\n").unwrap();
    let last = text.rfind("<h1>lwsd</h1>").unwrap();
    assert!(first < last);
    // HEAD answered with the length but no body: exactly one copy of the index page
    assert_eq!(text.matches("<h1>lwsd</h1>").count(), 1);
}

#[test]
fn keep_alive_head_date_server_and_conditional_get() {
    let d = docroot();
    let s = start(&d, &[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut etag = String::new();
    for i in 0..3 {
        c.write_all(b"GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let head = read_head(&mut c);
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
        assert!(header(&head, "date").unwrap().ends_with(" GMT"));
        assert!(header(&head, "server").unwrap().starts_with("lwsd"));
        assert_eq!(
            header(&head, "content-type").unwrap(),
            "text/plain; charset=utf-8"
        );
        etag = header(&head, "etag").unwrap().to_string();
        let mut body = [0u8; 12];
        c.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"hello world\n");
    }
    c.write_all(
        format!("GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    c.write_all(b"GET /small.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=6-\r\n\r\n")
        .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "content-range").unwrap(), "bytes 6-11/12");
    let mut body = [0u8; 6];
    c.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"world\n");
    // HTTP/1.0 without keep-alive: the server closes after the answer
    let r = s.request(b"GET /small.txt HTTP/1.0\r\n\r\n");
    let (st, head, body) = split_response(&r);
    assert_eq!(
        (st, body.as_slice()),
        (200, &b"hello world\n"[..]),
        "{head}"
    );
}

#[test]
fn preconditions_give_412_and_a_stale_if_range_the_whole_file() {
    let d = docroot();
    // Last changed long ago (1,700,000,000 s after the epoch): its Last-Modified is a
    // strong validator (RFC 9110 8.8.2.2), so If-Range may use it.
    let f = std::fs::File::options()
        .write(true)
        .open(d.path().join("www/small.txt"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .unwrap();
    let s = start(&d, &[]);
    let (st, head, _) = s.get("/small.txt");
    assert_eq!(st, 200);
    let etag = header(&head, "etag").unwrap().to_string();
    let lm = header(&head, "last-modified").unwrap().to_string();
    assert_eq!(lm, "Tue, 14 Nov 2023 22:13:20 GMT");
    let old = "Sun, 06 Nov 1994 08:49:37 GMT";
    let ask = |fields: &str| {
        let r = s.request(
            format!("GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{fields}\r\n")
                .as_bytes(),
        );
        split_response(&r)
    };
    for (fields, want) in [
        (format!("If-Match: {etag}\r\n"), 200),
        ("If-Match: *\r\n".to_string(), 200),
        ("If-Match: \"other\"\r\n".to_string(), 412),
        (format!("If-Match: W/{etag}\r\n"), 412),
        (format!("If-Unmodified-Since: {old}\r\n"), 412),
        (format!("If-Unmodified-Since: {lm}\r\n"), 200),
        // RFC 9110 13.2.2: If-Unmodified-Since only without If-Match.
        (
            format!("If-Match: {etag}\r\nIf-Unmodified-Since: {old}\r\n"),
            200,
        ),
        // A failed precondition comes before If-None-Match's 304.
        (
            format!("If-Match: \"other\"\r\nIf-None-Match: {etag}\r\n"),
            412,
        ),
        (format!("If-None-Match: {etag}\r\n"), 304),
        // If-Range: a matching validator gives the range, a stale one the whole file.
        (format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"), 206),
        (
            "Range: bytes=0-4\r\nIf-Range: \"stale\"\r\n".to_string(),
            200,
        ),
        (format!("Range: bytes=0-4\r\nIf-Range: W/{etag}\r\n"), 200),
        (format!("Range: bytes=0-4\r\nIf-Range: {lm}\r\n"), 206),
        (format!("Range: bytes=0-4\r\nIf-Range: {old}\r\n"), 200),
    ] {
        let (st, head, body) = ask(&fields);
        assert_eq!(st, want, "{fields:?}: {head}");
        match want {
            200 => assert_eq!(body, b"hello world\n", "{fields:?}"),
            206 => assert_eq!(body, b"hello", "{fields:?}"),
            412 => {
                assert!(header(&head, "date").is_some(), "{head}");
                assert!(String::from_utf8_lossy(&body).contains("412"));
            }
            _ => {}
        }
    }
    // An If-Range date one second off Last-Modified is no exact match: whole file.
    let (st, _, body) = ask("Range: bytes=0-4\r\nIf-Range: Tue, 14 Nov 2023 22:13:21 GMT\r\n");
    assert_eq!((st, body.as_slice()), (200, &b"hello world\n"[..]));
}

#[test]
fn expect_continue_and_chunked_upload_to_a_static_file_get_405_and_keep_alive() {
    let d = docroot();
    let s = start(&d, &[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(
        b"POST /small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    c.write_all(b"hello").unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(header(&head, "allow").unwrap().contains("GET"));
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    // a chunked body is consumed too and the connection stays usable
    c.write_all(b"POST /small.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    c.write_all(b"GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut c).starts_with("HTTP/1.1 200"));
}

#[test]
fn request_limits_set_by_flags_are_honoured() {
    let d = docroot();
    let long_uri = format!("/{}", "a".repeat(150));
    let headers: String = (0..6).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cookie = format!("Cookie: {}\r\n", "c".repeat(300));
    let reqs = [
        format!("GET {long_uri} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        format!("GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n"),
        format!("GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{cookie}\r\n"),
        "POST /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
         Content-Length: 11\r\n\r\nhello world"
            .to_string(),
        "POST /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
            .to_string(),
    ];
    let statuses = |s: &Lwsd| -> Vec<u16> {
        reqs.iter()
            .map(|r| split_response(&s.request(r.as_bytes())).0)
            .collect()
    };
    // The defaults let every one through (404 for the long path, 405 for the POSTs).
    let s = start(&d, &[]);
    assert_eq!(statuses(&s), [404, 200, 200, 405, 405]);
    drop(s);
    let s = start(
        &d,
        &[
            "--max-request-line",
            "100",
            "--max-headers",
            "6",
            "--max-header-bytes",
            "256",
            "--max-body",
            "10",
        ],
    );
    assert_eq!(statuses(&s), [414, 431, 431, 413, 413]);
    // Just within each limit still passes.
    let line = format!("/{}", "a".repeat(100 - 15 - 1));
    let r = s
        .request(format!("GET {line} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(split_response(&r).0, 404);
    let r = s.request(
        b"POST /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhelloworld",
    );
    assert_eq!(split_response(&r).0, 405);
}

#[test]
fn a_slow_request_head_gets_408() {
    let d = docroot();
    let s = start(&d, &["--header-timeout", "1"]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /small.txt HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let t = Instant::now();
    let mut r = Vec::new();
    let _ = c.read_to_end(&mut r);
    assert_eq!(split_response(&r).0, 408, "{}", String::from_utf8_lossy(&r));
    assert!(t.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_slow_upload_that_keeps_coming_outlives_the_header_timeout() {
    // The head deadline (1 s) ends with the head; the body trickles in over ~3 s and is
    // answered, not cut off with 408 (nginx's client_body_timeout is between reads).
    let d = docroot();
    let s = start(&d, &["--header-timeout", "1", "--body-timeout", "2"]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!("text={}", "a".repeat(295));
    c.write_all(
        format!(
            "POST /formtest HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let t = Instant::now();
    for piece in body.as_bytes().chunks(25) {
        std::thread::sleep(Duration::from_millis(250));
        c.write_all(piece).unwrap();
    }
    assert!(t.elapsed() > Duration::from_millis(2500));
    let mut r = Vec::new();
    let _ = c.read_to_end(&mut r);
    let (st, head, page) = split_response(&r);
    assert_eq!(st, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&page).contains(&"a".repeat(295)),
        "the whole body was read"
    );
}

#[test]
fn a_stalled_request_body_gets_408_after_the_body_timeout() {
    let d = docroot();
    let s = start(&d, &["--body-timeout", "1"]);
    for target in ["/small.txt", "/formtest"] {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!(
                "POST {target} HTTP/1.1\r\nHost: a\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100\r\n\r\ntext=half"
            )
            .as_bytes(),
        )
        .unwrap();
        let t = Instant::now();
        let mut r = Vec::new();
        let _ = c.read_to_end(&mut r);
        let (st, head, _) = split_response(&r);
        assert_eq!(st, 408, "{target}: {head}");
        assert!(header(&head, "date").is_some(), "{head}");
        // Well before the 10 s header timeout: the body timer decided.
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{target}: {took:?}"
        );
    }
}

#[test]
fn a_1gib_sparse_file_streams_with_flat_server_memory() {
    let d = docroot();
    let big = d.path().join("www/big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let s = start(&d, &[]);
    let worker = s.worker_pids()[0];
    let rss_before = rss_bytes(worker);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_head(&mut c);
    assert_eq!(
        header(&head, "content-length").unwrap(),
        "1073741824",
        "{head}"
    );
    let mut buf = vec![0u8; 1 << 20];
    let (mut got, mut peak) = (0u64, 0u64);
    let mut nonzero = false;
    let t = Instant::now();
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        nonzero |= buf[..n].iter().any(|&b| b != 0);
        got += n as u64;
        if got % (64 << 20) < n as u64 {
            peak = peak.max(rss_bytes(worker));
        }
        assert!(t.elapsed() < Duration::from_secs(120), "download too slow");
    }
    assert_eq!(got, 1 << 30);
    assert!(!nonzero, "a sparse file reads as zeros");
    let growth = peak.saturating_sub(rss_before);
    assert!(
        growth < 32 << 20,
        "worker RSS grew by {growth} bytes while streaming 1 GiB"
    );
}

fn read_head(c: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
        assert!(head.len() < 65536);
    }
    String::from_utf8(head).unwrap()
}
