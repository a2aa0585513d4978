//! MIME types by file extension for the file mount.
//!
//! The table is the common web set (what nginx's `mime.types` and libwebsockets'
//! `lws_get_mimetype()` agree on). Text types carry `; charset=utf-8` so a browser does
//! not guess the encoding (RFC 9110 8.3.1; RFC 6838 4.2.1 for the `charset` parameter).
//! Lookup is a `match` on the lower-cased extension copied into a stack buffer: no
//! allocation, no hashing. Hand-written because `mime_guess` would pull a 1,500-entry
//! table and a `String` per lookup for the ~30 types a web server actually serves;
//! extra types come from the config (`extra-mimetypes`) and are handled by the mount.

/// The type for an unknown extension (RFC 9110 8.3: a sender that does not know the
/// type may omit it; nginx's `default_type` is this, and it stops browsers rendering
/// arbitrary files as HTML).
pub const DEFAULT_MIME: &str = "application/octet-stream";

/// Longest extension in the table ("woff2", "webm", "json"): anything longer cannot
/// match, so it is rejected before copying.
const MAX_EXT_LEN: usize = 5;

/// The extension of a path or file name: the bytes after the last `.` of the last
/// segment, `None` when that segment has no `.` (or only a leading one, like
/// `.bashrc`, which is a hidden file's name, not an extension).
pub fn extension(path: &[u8]) -> Option<&[u8]> {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => path.get(slash + 1..)?,
        None => path,
    };
    let dot = name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    name.get(dot + 1..)
}

/// The MIME type for `ext_or_path`: either a bare extension (`"html"`, `"PNG"`) or a
/// path whose last segment's extension is used (`"/js/app.min.js"`). Case-insensitive.
/// Unknown or missing extensions give [`DEFAULT_MIME`].
pub fn mime_for(ext_or_path: &[u8]) -> &'static str {
    let is_bare_ext = !ext_or_path.iter().any(|&b| b == b'.' || b == b'/');
    let ext = if is_bare_ext {
        Some(ext_or_path)
    } else {
        extension(ext_or_path)
    };
    ext.and_then(known).unwrap_or(DEFAULT_MIME)
}

/// The type for a known extension, `None` otherwise.
pub fn known(ext: &[u8]) -> Option<&'static str> {
    if ext.is_empty() || ext.len() > MAX_EXT_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_EXT_LEN];
    let lower = buf.get_mut(..ext.len())?;
    for (d, s) in lower.iter_mut().zip(ext) {
        *d = s.to_ascii_lowercase();
    }
    Some(match &*lower {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        // RFC 9239 3: text/javascript is the one JavaScript type.
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"txt" => "text/plain; charset=utf-8",
        b"xml" => "text/xml; charset=utf-8",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"ico" => "image/x-icon",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        b"ogg" => "audio/ogg",
        b"wav" => "audio/wav",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"tar" => "application/x-tar",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        assert_eq!(mime_for(b"/index.html"), "text/html; charset=utf-8");
        assert_eq!(mime_for(b"a.HTM"), "text/html; charset=utf-8");
        assert_eq!(mime_for(b"app.min.js"), "text/javascript; charset=utf-8");
        assert_eq!(mime_for(b"m.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(mime_for(b"x.css"), "text/css; charset=utf-8");
        assert_eq!(mime_for(b"x.json"), "application/json");
        assert_eq!(mime_for(b"x.js.map"), "application/json");
        assert_eq!(mime_for(b"x.txt"), "text/plain; charset=utf-8");
        assert_eq!(mime_for(b"x.xml"), "text/xml; charset=utf-8");
        assert_eq!(mime_for(b"x.svg"), "image/svg+xml");
        assert_eq!(mime_for(b"x.png"), "image/png");
        assert_eq!(mime_for(b"x.JPG"), "image/jpeg");
        assert_eq!(mime_for(b"x.jpeg"), "image/jpeg");
        assert_eq!(mime_for(b"x.gif"), "image/gif");
        assert_eq!(mime_for(b"favicon.ico"), "image/x-icon");
        assert_eq!(mime_for(b"x.webp"), "image/webp");
        assert_eq!(mime_for(b"x.avif"), "image/avif");
        assert_eq!(mime_for(b"x.wasm"), "application/wasm");
        assert_eq!(mime_for(b"x.pdf"), "application/pdf");
        assert_eq!(mime_for(b"x.woff"), "font/woff");
        assert_eq!(mime_for(b"x.WOFF2"), "font/woff2");
        assert_eq!(mime_for(b"x.ttf"), "font/ttf");
        assert_eq!(mime_for(b"x.otf"), "font/otf");
        assert_eq!(mime_for(b"x.mp4"), "video/mp4");
        assert_eq!(mime_for(b"x.webm"), "video/webm");
        assert_eq!(mime_for(b"x.mp3"), "audio/mpeg");
        assert_eq!(mime_for(b"x.ogg"), "audio/ogg");
        assert_eq!(mime_for(b"x.wav"), "audio/wav");
        assert_eq!(mime_for(b"x.zip"), "application/zip");
        assert_eq!(mime_for(b"x.tar.gz"), "application/gzip");
        assert_eq!(mime_for(b"x.tar"), "application/x-tar");
    }

    #[test]
    fn bare_extensions() {
        assert_eq!(mime_for(b"html"), "text/html; charset=utf-8");
        assert_eq!(mime_for(b"PNG"), "image/png");
        assert_eq!(mime_for(b"unknown"), DEFAULT_MIME);
        assert_eq!(mime_for(b""), DEFAULT_MIME);
    }

    #[test]
    fn unknown_and_missing() {
        assert_eq!(mime_for(b"/README"), DEFAULT_MIME);
        assert_eq!(mime_for(b"/.bashrc"), DEFAULT_MIME);
        assert_eq!(mime_for(b"/dir.html/file"), DEFAULT_MIME);
        assert_eq!(mime_for(b"/x."), DEFAULT_MIME);
        assert_eq!(mime_for(b"/x.exe"), DEFAULT_MIME);
        // Longer than any known extension: rejected before the copy.
        assert_eq!(mime_for(b"/x.htmlx"), DEFAULT_MIME);
        assert_eq!(mime_for(b"/x.verylongextension"), DEFAULT_MIME);
        // A directory component named like a type does not leak into the file's type.
        assert_eq!(mime_for(b"/html"), DEFAULT_MIME);
    }

    #[test]
    fn extension_of() {
        assert_eq!(extension(b"/a/b.c.d"), Some(&b"d"[..]));
        assert_eq!(extension(b"/a.b/c"), None);
        assert_eq!(extension(b".hidden"), None);
        assert_eq!(extension(b".hidden.txt"), Some(&b"txt"[..]));
        assert_eq!(extension(b"x."), Some(&b""[..]));
    }
}
