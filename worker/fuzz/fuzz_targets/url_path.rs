//! Request path normalisation (`mount::file::path::normalize`, RFC 3986 2.1 and 5.2.4).
//!
//! Input: the raw request path. It must not panic, and on success the output keeps the
//! module's promises: root-relative (no leading `/`), no empty, `.` or `..` segment, no
//! NUL, `\` or control byte, valid UTF-8; and normalising it again (as `/` + output) gives
//! the same path when it holds no `%` or `?` (a decoded `%` would be decoded a second
//! time, a decoded `?` would end the path: `/%3F` names a file called `?`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lwsd_worker::mount::file::path::{MAX_PATH_LEN, PathError, normalize};

fuzz_target!(|raw: &[u8]| {
    let mut out = Vec::new();
    match normalize(raw, &mut out) {
        Ok(_) => {
            assert!(std::str::from_utf8(&out).is_ok(), "not UTF-8: {out:?}");
            assert!(
                !out.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\'),
                "forbidden byte: {out:?}"
            );
            if !out.is_empty() {
                for seg in out.split(|&b| b == b'/') {
                    assert!(
                        !matches!(seg, b"" | b"." | b".."),
                        "bad segment in {out:?}"
                    );
                }
            }
            if !out.iter().any(|&b| b == b'%' || b == b'?') {
                let mut again = Vec::new();
                let mut slashed = b"/".to_vec();
                slashed.extend_from_slice(&out);
                assert!(normalize(&slashed, &mut again).is_ok());
                assert_eq!(again, out, "not idempotent");
            }
        }
        Err(PathError::TooLong) => assert!(raw.len() > MAX_PATH_LEN),
        Err(_) => {}
    }
});
