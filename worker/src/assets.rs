//! The embedded test-server demo: the static files lwsd serves when it runs with no
//! configuration, like Debian's `libwebsockets-test-server` (DESIGN.md section 6).
//!
//! The files live in `worker/assets/` and are compiled into the binary, so a bare `lwsd`
//! needs nothing on disk. `test.html` shows one panel per built-in protocol
//! (`dumb-increment-protocol`, `lws-mirror-protocol`, `lws-server-status`, `lws-echo`)
//! and the `/formtest` POST forms of `protocol-post-demo`; its script speaks the same wire
//! formats as libwebsockets' test page, so it also works against `libwebsockets-test-server`.
//! `tests/browser/demo_test.py` drives it in headless Chromium.
//!
//! A table of `include_bytes!` rather than a crate such as `rust-embed`: six small files,
//! no build script, no dependency, and the lookup is a scan of six string compares.

/// URL path → file contents. `/` is served as `/test.html` by the default mount (see
/// [`lookup`]). Every file `test.html` and `test.js` reference is here (a test checks it).
pub static DEMO_FILES: &[(&str, &[u8])] = &[
    ("/test.html", include_bytes!("../assets/test.html")),
    ("/test.js", include_bytes!("../assets/test.js")),
    ("/test.css", include_bytes!("../assets/test.css")),
    ("/lwsd-logo.svg", include_bytes!("../assets/lwsd-logo.svg")),
    ("/favicon.svg", include_bytes!("../assets/favicon.svg")),
    ("/favicon.ico", include_bytes!("../assets/favicon.ico")),
];

/// The page a request for `/` gets.
pub const DEMO_INDEX: &str = "/test.html";

/// The embedded file for a URL path (without query string), `/` meaning [`DEMO_INDEX`].
pub fn lookup(path: &str) -> Option<&'static [u8]> {
    let path = if path == "/" { DEMO_INDEX } else { path };
    DEMO_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, body)| *body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(lookup(path).expect(path)).expect("asset is UTF-8")
    }

    /// Values of `attr="..."` in an HTML document.
    fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!(" {attr}=\"");
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + needle.len()..];
            if let Some(end) = rest.find('"') {
                out.push(&rest[..end]);
                rest = &rest[end..];
            }
        }
        out
    }

    /// A reference from the page, as the URL path it resolves to from `/`, or `None` when
    /// it does not point at a file of ours (another origin, a fragment, inline data).
    fn local_path(reference: &str) -> Option<String> {
        let r = reference.split(['?', '#']).next().unwrap_or("");
        if r.is_empty() || r.contains(':') || r.starts_with("//") {
            return None;
        }
        Some(if r.starts_with('/') {
            r.to_string()
        } else {
            format!("/{r}")
        })
    }

    /// File names with an asset extension quoted in a script: '...', "..." or `...`.
    fn quoted_file_names(js: &str) -> Vec<String> {
        const EXTS: [&str; 6] = [".html", ".js", ".css", ".svg", ".ico", ".png"];
        js.split(['\'', '"', '`'])
            .filter(|s| {
                !s.contains(char::is_whitespace)
                    && EXTS.iter().any(|e| s.ends_with(e) && s.len() > e.len())
            })
            .filter_map(local_path)
            .collect()
    }

    fn references() -> Vec<String> {
        let html = text("/test.html");
        let mut refs: Vec<String> = ["src", "href"]
            .iter()
            .flat_map(|a| attr_values(html, a))
            .filter_map(local_path)
            .collect();
        refs.extend(quoted_file_names(text("/test.js")));
        refs
    }

    #[test]
    fn every_referenced_file_is_embedded() {
        let refs = references();
        // The page's own assets must be among them, or the scan above found nothing.
        for must in ["/test.js", "/test.css", "/lwsd-logo.svg", "/favicon.ico"] {
            assert!(
                refs.iter().any(|r| r == must),
                "{must} not found among references {refs:?}"
            );
        }
        for r in &refs {
            assert!(
                lookup(r).is_some(),
                "test.html/test.js reference {r}, which DEMO_FILES lacks"
            );
        }
    }

    #[test]
    fn every_embedded_file_is_used() {
        let refs = references();
        for (path, _) in DEMO_FILES {
            assert!(
                *path == DEMO_INDEX || refs.iter().any(|r| r == path),
                "{path} is embedded but nothing references it"
            );
        }
    }

    #[test]
    fn root_is_the_demo_page_and_unknown_paths_are_none() {
        assert_eq!(lookup("/"), lookup("/test.html"));
        assert!(text("/").contains("<title>lwsd test server</title>"));
        assert_eq!(lookup("/nope.html"), None);
        assert_eq!(lookup(""), None);
        assert_eq!(lookup("test.html"), None, "paths are absolute");
    }

    #[test]
    fn paths_are_unique_and_absolute() {
        for (i, (p, body)) in DEMO_FILES.iter().enumerate() {
            assert!(p.starts_with('/') && !p.contains(".."), "{p}");
            assert!(!body.is_empty(), "{p} is empty");
            assert!(DEMO_FILES[i + 1..].iter().all(|(q, _)| q != p), "{p} twice");
        }
    }

    #[test]
    fn page_names_the_protocols_it_speaks() {
        let js = text("/test.js");
        for proto in [
            "dumb-increment-protocol",
            "lws-mirror-protocol",
            "lws-server-status",
            "lws-echo",
        ] {
            assert!(
                js.contains(&format!("'{proto}'")),
                "test.js does not open {proto}"
            );
        }
        assert!(js.contains("'reset\\n'"), "dumb-increment reset command");
        let html = text("/test.html");
        assert_eq!(attr_values(html, "action"), ["/formtest", "/formtest"]);
        assert!(html.contains("enctype=\"multipart/form-data\""));
    }

    #[test]
    fn favicon_ico_is_a_valid_icon_of_pngs() {
        let ico = lookup("/favicon.ico").unwrap_or_default();
        // ICONDIR: reserved 0, type 1 (icon), image count.
        assert_eq!(ico.get(..4), Some(&[0u8, 0, 1, 0][..]));
        let count = ico
            .get(4..6)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        assert!(count >= 1);
        for i in 0..usize::from(count) {
            // ICONDIRENTRY (16 bytes): bytes 8..12 the image size, 12..16 its offset.
            let e = ico.get(6 + 16 * i..22 + 16 * i).expect("directory entry");
            let len = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as usize;
            let off = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as usize;
            let img = ico.get(off..off + len).expect("image inside the file");
            assert_eq!(
                img.get(..8),
                Some(&b"\x89PNG\r\n\x1a\n"[..]),
                "entry {i} is a PNG"
            );
        }
    }

    #[test]
    fn svgs_are_svg() {
        for p in ["/lwsd-logo.svg", "/favicon.svg"] {
            let t = text(p);
            assert!(
                t.trim_start().starts_with("<svg") && t.trim_end().ends_with("</svg>"),
                "{p}"
            );
            assert!(
                t.contains("<title"),
                "{p} has a title for assistive technology"
            );
        }
    }
}
