//! Tests of the whole mount against a real directory made under the system temp dir.

use std::os::unix::fs::{FileExt, symlink};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

const NOW: u64 = 2_000_000_000;
const HELLO: &[u8] = b"hello world";

/// A directory removed on drop: `<tmp>/lwsd-file-<pid>-<n>/` with `root/` inside and
/// `outside.txt` next to it.
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tmp {
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
    fn file(&self, rel: &str, content: &[u8]) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn big_content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn site() -> Tmp {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lwsd-file-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Tmp(dir);
    std::fs::create_dir_all(t.root()).unwrap();
    std::fs::write(t.0.join("outside.txt"), b"OUTSIDE SECRET").unwrap();
    t.file("index.html", b"<h1>home</h1>");
    t.file("a.txt", HELLO);
    t.file(".hidden", b"dotfile");
    t.file("sub/index.html", b"<h1>sub</h1>");
    t.file("noindex/x.css", b"body{}");
    t.file("sp ace:x/index.html", b"odd");
    t.file(
        "big.bin",
        &big_content(MAX_CACHED_FILE_SIZE as usize + 1000),
    );
    let r = t.root();
    symlink("a.txt", r.join("link_in")).unwrap();
    symlink(r.join("a.txt"), r.join("link_abs_in")).unwrap();
    symlink("sub", r.join("dirlink_in")).unwrap();
    symlink("/etc/passwd", r.join("link_out")).unwrap();
    symlink("../outside.txt", r.join("link_out_rel")).unwrap();
    symlink("/etc", r.join("dirlink_out")).unwrap();
    symlink(&t.0, r.join("parent_link")).unwrap();
    t
}

fn mount_with(t: &Tmp, mode: Option<ResolveMode>, cache: CacheLimits) -> FileMount {
    FileMount::new(
        t.root(),
        FileMountOptions {
            extra_mimes: vec![(".bin".into(), "application/x-test".into())],
            cache,
            resolve_mode: mode,
            ..Default::default()
        },
    )
    .unwrap()
}

fn mount(t: &Tmp) -> FileMount {
    mount_with(t, None, CacheLimits::default())
}

fn get(path: &str) -> FileRequest<'_> {
    FileRequest {
        path: path.as_bytes(),
        now_unix: NOW,
        ..Default::default()
    }
}

fn body(r: &FileResponse) -> Vec<u8> {
    match &r.body {
        FileBody::Empty => Vec::new(),
        FileBody::Bytes(b) => b.to_vec(),
        FileBody::File { file, offset, len } => {
            let mut v = vec![0; *len as usize];
            file.read_exact_at(&mut v, *offset).unwrap();
            v
        }
    }
}

fn ct(r: &FileResponse) -> &[u8] {
    r.content_type.as_deref().unwrap_or_default()
}

fn all_modes() -> [Option<ResolveMode>; 3] {
    [
        None,
        Some(ResolveMode::Openat2),
        Some(ResolveMode::ProcCheck),
    ]
}

#[test]
fn traversal_attempts_never_leave_the_root() {
    let t = site();
    for mode in all_modes() {
        let mut m = mount_with(&t, mode, CacheLimits::default());
        for (path, want) in [
            ("/../outside.txt", 400),
            ("/..", 400),
            ("/sub/../../outside.txt", 400),
            ("/%2e%2e/outside.txt", 400),
            ("/%2E%2E/outside.txt", 400),
            ("/%2e./outside.txt", 400),
            ("/.%2e/outside.txt", 400),
            ("/..%2foutside.txt", 400),
            ("/sub/..%2f..%2foutside.txt", 400),
            ("/%2f..%2foutside.txt", 400),
            ("/%2F", 400),
            ("//../outside.txt", 400),
            ("/./../outside.txt", 400),
            ("/..\\outside.txt", 400),
            ("/\\..\\outside.txt", 400),
            ("/%5c../outside.txt", 400),
            ("/%5C..%5Coutside.txt", 400),
            ("/a.txt%00.html", 400),
            ("/a.txt%00", 400),
            ("/%c0%ae%c0%ae/outside.txt", 400),
            ("/%c0%af..%c0%afoutside.txt", 400),
            ("/%e0%80%ae%e0%80%ae/outside.txt", 400),
            ("/%", 400),
            ("/%zz", 400),
            ("outside.txt", 400),
            ("../outside.txt", 400),
            ("", 400),
            ("http://h/../outside.txt", 400),
            ("/link_out", 404),
            ("/link_out_rel", 404),
            ("/dirlink_out/passwd", 404),
            ("/dirlink_out/", 404),
            ("/parent_link/outside.txt", 404),
            ("/nonexistent", 404),
        ] {
            let r = m.serve(&get(path));
            assert_eq!(r.status, want, "{path:?} mode {mode:?}");
            assert!(!body(&r).windows(6).any(|w| w == b"SECRET"), "{path:?}");
            assert!(!body(&r).windows(5).any(|w| w == b"root:"), "{path:?}");
            assert_eq!(ct(&r), b"text/html; charset=utf-8");
            assert!(body(&r).starts_with(b"<!DOCTYPE html>"));
        }
    }
}

#[test]
fn symlinks_inside_root_are_followed() {
    let t = site();
    for mode in all_modes() {
        let mut m = mount_with(&t, mode, CacheLimits::default());
        for path in [
            "/link_in",
            "/link_abs_in",
            "/sub/../a.txt",
            "/./a.txt",
            "//a.txt",
        ] {
            let r = m.serve(&get(path));
            assert_eq!(
                (r.status, body(&r)),
                (200, HELLO.to_vec()),
                "{path} {mode:?}"
            );
        }
        // Out through an absolute link and back in: the file opened is inside.
        let r = m.serve(&get("/parent_link/root/a.txt"));
        assert_eq!((r.status, body(&r)), (200, HELLO.to_vec()), "{mode:?}");
        let r = m.serve(&get("/dirlink_in/"));
        assert_eq!(body(&r), b"<h1>sub</h1>");
    }
}

#[test]
fn dot_files_are_served() {
    let t = site();
    let r = mount(&t).serve(&get("/.hidden"));
    assert_eq!((r.status, body(&r)), (200, b"dotfile".to_vec()));
}

#[test]
fn index_and_directory_redirect() {
    let t = site();
    let mut m = mount(&t);
    let r = m.serve(&get("/"));
    assert_eq!((r.status, body(&r)), (200, b"<h1>home</h1>".to_vec()));
    assert_eq!(ct(&r), b"text/html; charset=utf-8");
    let r = m.serve(&get("/sub/"));
    assert_eq!((r.status, body(&r)), (200, b"<h1>sub</h1>".to_vec()));
    let r = m.serve(&get("/sub/."));
    assert_eq!(body(&r), b"<h1>sub</h1>");

    let r = m.serve(&get("/sub"));
    assert_eq!(r.status, 301);
    assert_eq!(r.location.as_deref(), Some(&b"sub/"[..]));
    assert_eq!(r.content_length, 0);
    assert!(matches!(r.body, FileBody::Empty));

    let r = m.serve(&FileRequest {
        query: Some(b"a=1&b=%20"),
        ..get("/x/../sub")
    });
    assert_eq!(r.location.as_deref(), Some(&b"sub/?a=1&b=%20"[..]));
    let r = m.serve(&FileRequest {
        query: Some(b"a=\r\nSet-Cookie: x"),
        ..get("/sub")
    });
    assert_eq!(
        r.location.as_deref(),
        Some(&b"sub/"[..]),
        "unsafe query dropped"
    );

    let r = m.serve(&get("/sp%20ace:x"));
    assert_eq!(r.status, 301);
    assert_eq!(r.location.as_deref(), Some(&b"sp%20ace%3Ax/"[..]));
    assert_eq!(body(&m.serve(&get("/sp%20ace:x/"))), b"odd");

    assert_eq!(m.serve(&get("/noindex/")).status, 404, "no listings");
    assert_eq!(m.serve(&get("/noindex")).status, 301);
    assert_eq!(m.serve(&get("/a.txt/")).status, 404);
    assert_eq!(m.serve(&get("/a.txt/.")).status, 404);
}

#[test]
fn custom_index_name() {
    let t = site();
    t.file("sub/default.htm", b"alt");
    let mut m = FileMount::new(
        t.root(),
        FileMountOptions {
            index: "default.htm".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(body(&m.serve(&get("/sub/"))), b"alt");
    assert_eq!(m.serve(&get("/")).status, 404);
}

#[test]
fn mime_types_and_extras() {
    let t = site();
    let mut m = mount(&t);
    assert_eq!(ct(&m.serve(&get("/a.txt"))), b"text/plain; charset=utf-8");
    assert_eq!(
        ct(&m.serve(&get("/noindex/x.css"))),
        b"text/css; charset=utf-8"
    );
    assert_eq!(ct(&m.serve(&get("/big.bin"))), b"application/x-test");
    assert_eq!(ct(&m.serve(&get("/.hidden"))), b"application/octet-stream");
    t.file("UP.PNG", b"png");
    assert_eq!(ct(&m.serve(&get("/UP.PNG"))), b"image/png");
}

#[test]
fn construction_errors_name_the_culprit() {
    let e = FileMount::new("/nonexistent/lwsd-root", FileMountOptions::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/lwsd-root"), "{e}");
    let t = site();
    let e = FileMount::new(t.root().join("a.txt"), FileMountOptions::default()).unwrap_err();
    assert!(e.to_string().contains("a.txt"), "{e}");
    for bad in ["", "..", "a/b", "x\0"] {
        let o = FileMountOptions {
            index: bad.into(),
            ..Default::default()
        };
        assert!(FileMount::new(t.root(), o).is_err(), "{bad:?}");
    }
    for (e, ty) in [
        (".x", "a\r\nb: c"),
        ("", "text/x"),
        ("a/b", "text/x"),
        (".x", ""),
    ] {
        let o = FileMountOptions {
            extra_mimes: vec![(e.into(), ty.into())],
            ..Default::default()
        };
        assert!(FileMount::new(t.root(), o).is_err(), "{e:?} {ty:?}");
    }
}

#[test]
fn non_regular_files_are_404_without_blocking() {
    let t = site();
    nix::unistd::mkfifo(&t.root().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut m = mount(&t);
    // Opening a FIFO for reading would block without O_NONBLOCK: this returns.
    assert_eq!(m.serve(&get("/fifo")).status, 404);
}

#[test]
fn etag_and_304() {
    let t = site();
    let mut m = mount(&t);
    let r = m.serve(&get("/a.txt"));
    assert_eq!(r.status, 200);
    let etag = r.etag.clone().unwrap();
    let lm = r.last_modified.clone().unwrap();
    let meta = std::fs::metadata(t.root().join("a.txt")).unwrap();
    let want = format!("\"{:x}-{:x}\"", meta.mtime(), meta.len());
    assert_eq!(&etag[..], want.as_bytes());
    assert_eq!(&lm[..], &date::fmt_http_date(meta.mtime() as u64)[..]);
    assert!(r.accept_ranges);

    let weak = [b"W/", &etag[..]].concat();
    let earlier = date::fmt_http_date(meta.mtime() as u64 - 1);
    for (inm, ims, want) in [
        (Some(&etag[..]), None, 304),
        (Some(&weak[..]), None, 304),
        (Some(&b"*"[..]), None, 304),
        (Some(&b"\"nope\", \"other\""[..]), None, 200),
        // If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.2.2).
        (Some(&b"\"nope\""[..]), Some(&lm[..]), 200),
        (Some(&etag[..]), Some(&earlier[..]), 304),
        (None, Some(&lm[..]), 304),
        (None, Some(&earlier[..]), 200),
        (None, Some(&b"not a date"[..]), 200),
    ] {
        let r = m.serve(&FileRequest {
            if_none_match: inm,
            if_modified_since: ims,
            ..get("/a.txt")
        });
        assert_eq!(r.status, want, "{inm:?} {ims:?}");
        if want == 304 {
            assert_eq!(r.etag.as_ref(), Some(&etag));
            assert_eq!(r.last_modified.as_ref(), Some(&lm));
            assert!(matches!(r.body, FileBody::Empty));
            assert_eq!(r.content_length, 0);
            assert!(r.content_type.is_none());
        } else {
            assert_eq!(body(&r), HELLO);
        }
    }
}

#[test]
fn if_match_and_if_unmodified_since_give_412_in_rfc_order() {
    let t = site();
    let mut m = mount(&t);
    let r = m.serve(&get("/a.txt"));
    let etag = r.etag.clone().unwrap();
    let lm = r.last_modified.clone().unwrap();
    let meta = std::fs::metadata(t.root().join("a.txt")).unwrap();
    let weak = [b"W/", &etag[..]].concat();
    let earlier = date::fmt_http_date(meta.mtime() as u64 - 1);
    let list = [b"\"nope\", ", &etag[..]].concat();
    type Case<'a> = (
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        u16,
    );
    // (If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, status)
    let cases: [Case<'_>; 14] = [
        (Some(&etag), None, None, None, 200),
        (Some(&list), None, None, None, 200),
        (Some(b"*"), None, None, None, 200),
        (Some(b"\"nope\""), None, None, None, 412),
        // RFC 9110 13.1.1: If-Match uses the strong comparison.
        (Some(&weak), None, None, None, 412),
        (None, Some(&lm), None, None, 200),
        (None, Some(&earlier), None, None, 412),
        (None, Some(b"not a date"), None, None, 200),
        // Step 2 only without If-Match: a matching If-Match overrides an old date.
        (Some(&etag), Some(&earlier), None, None, 200),
        // Steps 1-2 before 3-4: a failed precondition wins over a 304.
        (Some(b"\"nope\""), None, Some(&etag), None, 412),
        (None, Some(&earlier), None, Some(&lm), 412),
        // Passed preconditions, then If-None-Match / If-Modified-Since as before.
        (Some(&etag), None, Some(&etag), None, 304),
        (None, Some(&lm), None, Some(&lm), 304),
        (Some(b"*"), None, Some(b"\"nope\""), Some(&lm), 200),
    ];
    for (im, ius, inm, ims, want) in cases {
        let r = m.serve(&FileRequest {
            if_match: im,
            if_unmodified_since: ius,
            if_none_match: inm,
            if_modified_since: ims,
            ..get("/a.txt")
        });
        assert_eq!(r.status, want, "{im:?} {ius:?} {inm:?} {ims:?}");
        if want == 412 {
            assert!(!body(&r).is_empty());
            assert!(r.content_range.is_none());
        }
    }
    // A failed precondition also wins over a range (step 5 comes last), and HEAD gets no
    // body.
    let r = m.serve(&FileRequest {
        if_match: Some(b"\"nope\""),
        range: Some(b"bytes=0-1"),
        head_only: true,
        ..get("/a.txt")
    });
    assert_eq!(r.status, 412);
    assert!(matches!(r.body, FileBody::Empty));
    // RFC 9110 13.2.1: preconditions do not turn a 404 into a 412 (If-Match: * is false
    // without a representation, but the answer without it is not 2xx).
    let r = m.serve(&FileRequest {
        if_match: Some(b"*"),
        ..get("/missing.txt")
    });
    assert_eq!(r.status, 404);
}

#[test]
fn ranges() {
    let t = site();
    let mut m = mount(&t);
    let etag = m.serve(&get("/a.txt")).etag.unwrap();
    let lm = m.serve(&get("/a.txt")).last_modified.unwrap();
    let range = |m: &mut FileMount, r: &str, if_range: Option<&[u8]>| {
        m.serve(&FileRequest {
            range: Some(r.as_bytes()),
            if_range,
            ..get("/a.txt")
        })
    };
    let r = range(&mut m, "bytes=0-4", None);
    assert_eq!((r.status, body(&r)), (206, b"hello".to_vec()));
    assert_eq!(r.content_length, 5);
    assert_eq!(r.content_range.unwrap().to_string(), "bytes 0-4/11");
    let r = range(&mut m, "bytes=-5", None);
    assert_eq!((r.status, body(&r)), (206, b"world".to_vec()));
    let r = range(&mut m, "bytes=6-", None);
    assert_eq!((r.status, body(&r)), (206, b"world".to_vec()));
    assert_eq!(r.content_range.unwrap().to_string(), "bytes 6-10/11");
    let r = range(&mut m, "bytes=6-100", None);
    assert_eq!(body(&r), b"world");

    let r = range(&mut m, "bytes=11-", None);
    assert_eq!(r.status, 416);
    assert_eq!(r.content_range.unwrap().to_string(), "bytes */11");

    for ignored in ["bytes=5-1", "bytes=x", "lines=1-2", "bytes=0-1,3-4"] {
        let r = range(&mut m, ignored, None);
        assert_eq!((r.status, body(&r)), (200, HELLO.to_vec()), "{ignored}");
        assert!(r.content_range.is_none());
    }

    // If-Range: a matching validator gives the range, anything else the whole file.
    let r = range(&mut m, "bytes=0-4", Some(&etag));
    assert_eq!(r.status, 206);
    let r = range(&mut m, "bytes=0-4", Some(&lm));
    assert_eq!(r.status, 206);
    let r = range(&mut m, "bytes=0-4", Some(b"\"other\""));
    assert_eq!((r.status, body(&r)), (200, HELLO.to_vec()));
    let weak = [b"W/", &etag[..]].concat();
    assert_eq!(range(&mut m, "bytes=0-4", Some(&weak)).status, 200);
    assert_eq!(
        range(&mut m, "bytes=0-4", Some(b"Sun, 06 Nov 1994 08:49:37 GMT")).status,
        200
    );
    // If-Range without Range is ignored.
    let r = m.serve(&FileRequest {
        if_range: Some(b"\"other\""),
        ..get("/a.txt")
    });
    assert_eq!(r.status, 200);
    // A 304 wins over the range.
    let r = m.serve(&FileRequest {
        if_none_match: Some(&etag),
        range: Some(b"bytes=0-1"),
        ..get("/a.txt")
    });
    assert_eq!(r.status, 304);
}

#[test]
fn head_requests() {
    let t = site();
    let mut m = mount(&t);
    let head = |p| FileRequest {
        head_only: true,
        ..get(p)
    };
    let r = m.serve(&head("/a.txt"));
    assert_eq!((r.status, r.content_length), (200, 11));
    assert!(matches!(r.body, FileBody::Empty));
    assert!(r.etag.is_some());
    let r = m.serve(&FileRequest {
        range: Some(b"bytes=1-3"),
        ..head("/a.txt")
    });
    assert_eq!((r.status, r.content_length), (206, 3));
    assert!(matches!(r.body, FileBody::Empty));
    let r = m.serve(&head("/big.bin"));
    assert_eq!(r.content_length, MAX_CACHED_FILE_SIZE + 1000);
    assert!(matches!(r.body, FileBody::Empty));
    let r = m.serve(&head("/missing"));
    assert_eq!(r.status, 404);
    assert!(r.content_length > 0);
    assert!(matches!(r.body, FileBody::Empty));
    assert_eq!(m.serve(&head("/../x")).status, 400);
}

#[test]
fn long_path_is_414() {
    let t = site();
    let mut m = mount(&t);
    let p = format!("/{}", "a/".repeat(path::MAX_PATH_LEN));
    assert_eq!(m.serve(&get(&p)).status, 414);
    let p = format!("/{}", "a".repeat(300));
    assert_eq!(
        m.serve(&get(&p)).status,
        404,
        "NAME_MAX exceeded is just absent"
    );
}

fn mem_ptr(r: &FileResponse) -> *const u8 {
    match &r.body {
        FileBody::Bytes(b) => b.as_ptr(),
        other => panic!("not in memory: {other:?}"),
    }
}

#[test]
fn cache_hit_shares_bytes_and_revalidates_after_a_second() {
    let t = site();
    let mut m = mount(&t);
    let r1 = m.serve(&get("/a.txt"));
    let r2 = m.serve(&get("/a.txt"));
    assert_eq!(mem_ptr(&r1), mem_ptr(&r2), "same Bytes, no copy");
    assert_eq!(m.cache_usage().0, 1);

    // Change the file (different size, so the id changes even within one mtime second).
    t.file("a.txt", b"changed content");
    let r = m.serve(&get("/a.txt"));
    assert_eq!(body(&r), HELLO, "fresh for REVALIDATE_SECS: no stat");
    let later = FileRequest {
        now_unix: NOW + 2,
        ..get("/a.txt")
    };
    let r = m.serve(&later);
    assert_eq!(body(&r), b"changed content");
    let r2 = m.serve(&later);
    assert_eq!(mem_ptr(&r), mem_ptr(&r2));

    // Replaced by rename (new inode, same size and maybe same mtime): seen too.
    std::fs::write(t.0.join("tmp"), b"CHANGED CONTENT").unwrap();
    std::fs::rename(t.0.join("tmp"), t.root().join("a.txt")).unwrap();
    let r = m.serve(&FileRequest {
        now_unix: NOW + 4,
        ..get("/a.txt")
    });
    assert_eq!(body(&r), b"CHANGED CONTENT");

    // Unchanged after revalidation: the same Bytes again.
    let r2 = m.serve(&FileRequest {
        now_unix: NOW + 6,
        ..get("/a.txt")
    });
    assert_eq!(mem_ptr(&r), mem_ptr(&r2));

    // Deleted: 404 once stale, and the entry is gone.
    std::fs::remove_file(t.root().join("a.txt")).unwrap();
    let r = m.serve(&FileRequest {
        now_unix: NOW + 8,
        ..get("/a.txt")
    });
    assert_eq!(r.status, 404);
    assert_eq!(m.cache_usage().0, 0);
}

#[test]
fn cached_index_revalidates_the_index_file() {
    let t = site();
    let mut m = mount(&t);
    assert_eq!(body(&m.serve(&get("/sub/"))), b"<h1>sub</h1>");
    t.file("sub/index.html", b"<h1>sub v2</h1>");
    let r = m.serve(&FileRequest {
        now_unix: NOW + 2,
        ..get("/sub/")
    });
    assert_eq!(body(&r), b"<h1>sub v2</h1>");
}

#[test]
fn symlink_swapped_outside_is_refused_on_revalidation() {
    let t = site();
    for mode in all_modes() {
        let mut m = mount_with(&t, mode, CacheLimits::default());
        t.file("swap.txt", b"inside");
        assert_eq!(body(&m.serve(&get("/swap.txt"))), b"inside");
        std::fs::remove_file(t.root().join("swap.txt")).unwrap();
        symlink("../outside.txt", t.root().join("swap.txt")).unwrap();
        let r = m.serve(&FileRequest {
            now_unix: NOW + 2,
            ..get("/swap.txt")
        });
        assert_eq!(r.status, 404, "{mode:?}");
        std::fs::remove_file(t.root().join("swap.txt")).unwrap();
    }
}

#[test]
fn big_file_is_streamed_from_a_shared_descriptor() {
    let t = site();
    let mut m = mount(&t);
    let size = MAX_CACHED_FILE_SIZE + 1000;
    let want = big_content(size as usize);
    let r = m.serve(&get("/big.bin"));
    let FileBody::File { file, offset, len } = &r.body else {
        panic!("{:?}", r.body);
    };
    assert_eq!((*offset, *len, r.content_length), (0, size, size));
    assert_eq!(body(&r), want);
    let r2 = m.serve(&FileRequest {
        range: Some(b"bytes=60000-60099"),
        ..get("/big.bin")
    });
    let FileBody::File {
        file: f2,
        offset,
        len,
    } = &r2.body
    else {
        panic!();
    };
    assert!(Rc::ptr_eq(file, f2), "descriptor cached");
    assert_eq!((r2.status, *offset, *len), (206, 60000, 100));
    assert_eq!(body(&r2), &want[60000..60100]);
    assert_eq!(m.cache_usage().2, 1);

    // Exactly the size limit stays in memory.
    t.file("edge.bin", &big_content(MAX_CACHED_FILE_SIZE as usize));
    let r = m.serve(&get("/edge.bin"));
    assert!(matches!(r.body, FileBody::Bytes(_)));
    assert_eq!(r.content_length, MAX_CACHED_FILE_SIZE);
}

#[test]
fn cache_limits_are_enforced() {
    let t = site();
    for i in 0..6 {
        t.file(&format!("f{i}.txt"), &[b'x'; 100]);
        t.file(&format!("g{i}.bin"), &[b'y'; 300]);
    }
    // Entry limit: LRU order.
    let mut m = mount_with(
        &t,
        None,
        CacheLimits {
            max_entries: 2,
            ..Default::default()
        },
    );
    let f0 = m.serve(&get("/f0.txt"));
    m.serve(&get("/f1.txt"));
    let f0_again = m.serve(&get("/f0.txt"));
    assert_eq!(mem_ptr(&f0), mem_ptr(&f0_again));
    m.serve(&get("/f2.txt")); // evicts f1, the least recently used
    assert_eq!(m.cache_usage().0, 2);
    assert_eq!(mem_ptr(&f0), mem_ptr(&m.serve(&get("/f0.txt"))));

    // Byte limit.
    let mut m = mount_with(
        &t,
        None,
        CacheLimits {
            max_bytes: 300,
            ..Default::default()
        },
    );
    for i in 0..6 {
        m.serve(&get(&format!("/f{i}.txt")));
        assert!(m.cache_usage().1 <= 300);
    }
    // Each entry costs 100 bytes of content plus its keys: two fit.
    assert_eq!(m.cache_usage().0, 2);

    // Descriptor limit and file-size limit: files over 200 bytes are descriptors.
    let mut m = mount_with(
        &t,
        None,
        CacheLimits {
            max_fds: 2,
            max_file_size: 200,
            ..Default::default()
        },
    );
    m.serve(&get("/f0.txt"));
    for i in 0..6 {
        let r = m.serve(&get(&format!("/g{i}.bin")));
        assert!(matches!(r.body, FileBody::File { .. }));
        assert!(m.cache_usage().2 <= 2);
    }
    assert_eq!(m.cache_usage(), (3, m.cache_usage().1, 2), "f0 kept");

    // Disabled.
    let mut m = mount_with(
        &t,
        None,
        CacheLimits {
            max_entries: 0,
            ..Default::default()
        },
    );
    let a = m.serve(&get("/f0.txt"));
    let b = m.serve(&get("/f0.txt"));
    assert_ne!(mem_ptr(&a), mem_ptr(&b));
    assert_eq!(m.cache_usage(), (0, 0, 0));
}

static EMBED: &[(&str, &[u8])] = &[
    ("/index.html", b"<h1>demo</h1>"),
    ("/js/app.js", b"console.log(1)"),
    ("css/deep/x.css", b"p{}"),
    ("/css/deep/index.html", b"deep"),
];

#[test]
fn embedded_source() {
    let lm = 1_700_000_000;
    let mut m = FileMount::embedded(EMBED, lm, FileMountOptions::default()).unwrap();
    assert!(m.root().is_none());
    let r = m.serve(&get("/"));
    assert_eq!((r.status, body(&r)), (200, b"<h1>demo</h1>".to_vec()));
    assert_eq!(ct(&r), b"text/html; charset=utf-8");
    assert_eq!(
        r.last_modified.as_deref(),
        Some(&date::fmt_http_date(lm)[..])
    );
    assert_eq!(r.etag, Some(validators::content_etag(b"<h1>demo</h1>")));
    let r = m.serve(&get("/index.html"));
    assert_eq!(body(&r), b"<h1>demo</h1>");
    let r = m.serve(&get("/js/app.js"));
    assert_eq!(ct(&r), b"text/javascript; charset=utf-8");
    assert_eq!(m.serve(&get("/js")).location.as_deref(), Some(&b"js/"[..]));
    assert_eq!(m.serve(&get("/css")).status, 301);
    assert_eq!(m.serve(&get("/css/deep")).status, 301);
    assert_eq!(body(&m.serve(&get("/css/deep/"))), b"deep");
    assert_eq!(m.serve(&get("/js/")).status, 404);
    assert_eq!(m.serve(&get("/js/app.js/")).status, 404);
    assert_eq!(m.serve(&get("/nope")).status, 404);
    assert_eq!(m.serve(&get("/../index.html")).status, 400);
    assert_eq!(
        body(&m.serve(&get("/js/../%69ndex.html"))),
        b"<h1>demo</h1>"
    );

    let etag = validators::content_etag(b"console.log(1)");
    let r = m.serve(&FileRequest {
        if_none_match: Some(&etag),
        ..get("/js/app.js")
    });
    assert_eq!(r.status, 304);
    let r = m.serve(&FileRequest {
        range: Some(b"bytes=-3"),
        if_range: Some(&etag),
        ..get("/js/app.js")
    });
    assert_eq!((r.status, body(&r)), (206, b"(1)".to_vec()));
    let r = m.serve(&FileRequest {
        if_modified_since: Some(&date::fmt_http_date(lm)),
        ..get("/js/app.js")
    });
    assert_eq!(r.status, 304);
}

#[test]
fn embedded_bad_tables() {
    static DUP: &[(&str, &[u8])] = &[("/a", b""), ("a", b"")];
    static DOTS: &[(&str, &[u8])] = &[("/a/../b", b"")];
    static SLASH: &[(&str, &[u8])] = &[("/a/", b"")];
    static PCT: &[(&str, &[u8])] = &[("/a%20b", b"")];
    for t in [DUP, DOTS, SLASH, PCT] {
        assert!(
            FileMount::embedded(t, 0, FileMountOptions::default()).is_err(),
            "{t:?}"
        );
    }
}

/// Not a test but a measurement: `cargo test --release -p lwsd-worker bench_ -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn bench_hit_and_miss() {
    use std::time::Instant;
    let t = site();
    let report = |what: &str, n: u32, f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        let ns = start.elapsed().as_nanos() / u128::from(n);
        println!("{what}: {ns} ns/call");
    };
    let mut m = mount(&t);
    let req = get("/sub/index.html");
    m.serve(&req);
    report("hit, 12-byte file", 1_000_000, &mut || {
        std::hint::black_box(m.serve(std::hint::black_box(&req)));
    });
    let req304 = FileRequest {
        if_none_match: Some(b"\"x\", W/\"y\""),
        range: Some(b"bytes=1-3"),
        ..get("/sub/index.html")
    };
    report(
        "hit with If-None-Match miss + Range",
        1_000_000,
        &mut || {
            std::hint::black_box(m.serve(std::hint::black_box(&req304)));
        },
    );
    let mut now = NOW;
    report("hit, revalidated every call", 50_000, &mut || {
        now += 2;
        let r = FileRequest {
            now_unix: now,
            ..req
        };
        std::hint::black_box(m.serve(&r));
    });
    let mut nocache = mount_with(
        &t,
        None,
        CacheLimits {
            max_entries: 0,
            ..Default::default()
        },
    );
    report("miss (open+fstat+read+close)", 50_000, &mut || {
        std::hint::black_box(nocache.serve(&req));
    });
    let big = get("/big.bin");
    report("miss, big file (open+fstat)", 50_000, &mut || {
        std::hint::black_box(nocache.serve(&big));
    });
    report("404", 50_000, &mut || {
        std::hint::black_box(m.serve(&get("/missing")));
    });
}
