//! `protocol-post-demo`: the form POST handler of the test-server demo, served on the
//! `/formtest` `callback://` mount (lws' `protocol_post_demo`).
//!
//! - `GET` (and `HEAD`): a small HTML page with the two forms (urlencoded, and
//!   multipart with a file).
//! - `POST` with `application/x-www-form-urlencoded` or `multipart/form-data` (RFC 7578;
//!   the boundary comes from Content-Type): the body is parsed as it arrives
//!   ([`super::form`]) and the answer is an HTML page listing every field, names and
//!   values HTML-escaped; a file is listed by filename, type, size and SHA-1 (nothing is
//!   stored). Values longer than [`MAX_SHOWN_VALUE`] are cut in the page.
//! - Refusals, each with an HTML page (RFC 9110 section 15.5): a body over `max-body`
//!   (pvo, default [`MAX_BODY`]) is 413 (at the head when Content-Length says so, else
//!   once the running total passes it: the rest is read and dropped, not parsed; the
//!   server's own `--max-body` bound applies first); multipart without a usable boundary
//!   or a malformed body is 400; another content type is 415; another method 405.
//! - A WebSocket client choosing this protocol is closed with 1008: it is HTTP only.

use std::fmt::Write as _;

use super::form::{Field, FormError, Multipart, UrlEncoded, Value, multipart_boundary};
use crate::api::{
    CbResult, Close, Conn, HttpAnswer, HttpRequest, HttpResponse, PluginInit, Protocol, Vhost,
};

/// The protocol name (the mount's `callback://protocol-post-demo`).
pub const NAME: &str = "protocol-post-demo";

/// Default largest request body parsed (pvo `max-body`): 1 MiB is plenty for a demo
/// form with a small file and bounds what one request can make the worker hash and hold
/// (text values are kept until the answer).
pub const MAX_BODY: u64 = 1 << 20;

/// Largest `max-body` accepted: 1 GiB; text values are held in memory until the answer.
pub const MAX_BODY_LIMIT: u64 = 1 << 30;

/// Longest value shown in the answer page (the rest is counted, not shown), so the page
/// stays small whatever was posted.
pub const MAX_SHOWN_VALUE: usize = 4096;

const HTML: &str = "text/html; charset=utf-8";

/// The pvo options this protocol reads.
const OPTIONS: &[&str] = &["max-body"];

/// The protocol instance (all other state is per request).
pub struct PostDemo {
    /// Largest body parsed (pvo `max-body`).
    max_body: u64,
}

impl PostDemo {
    /// Builds the instance from its pvos (`max-body`).
    pub fn from_init(init: &PluginInit<'_>) -> Result<PostDemo, String> {
        super::known_options(init.options, OPTIONS)?;
        let max_body = super::option_u64(init.options, "max-body", MAX_BODY, 1, MAX_BODY_LIMIT)?;
        Ok(PostDemo { max_body })
    }
}

/// One POST being read.
pub struct PostSession {
    parser: Parser,
    received: u64,
    max_body: u64,
    /// The refusal decided while reading (the body is then only counted).
    failed: Option<(u16, String)>,
}

enum Parser {
    UrlEncoded(UrlEncoded),
    Multipart(Box<Multipart>),
    Gone,
}

/// What a POST's Content-Type says to do.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyKind {
    UrlEncoded,
    Multipart(Vec<u8>),
}

/// Classifies a POST by its Content-Type: the parser, or the refusal (status, why).
pub fn body_kind(content_type: Option<&[u8]>) -> Result<BodyKind, (u16, &'static str)> {
    let Some(ct) = content_type else {
        return Err((415, "a form POST needs a Content-Type"));
    };
    let media = ct.split(|&c| c == b';').next().unwrap_or(&[]).trim_ascii();
    if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        Ok(BodyKind::UrlEncoded)
    } else if media.eq_ignore_ascii_case(b"multipart/form-data") {
        multipart_boundary(ct)
            .map(BodyKind::Multipart)
            .ok_or((400, "multipart/form-data without a valid boundary"))
    } else {
        Err((
            415,
            "only application/x-www-form-urlencoded and multipart/form-data are accepted",
        ))
    }
}

fn page(status: u16, body: String) -> HttpResponse {
    HttpResponse::new(status, HTML, body)
}

fn error_page(status: u16, why: &str) -> HttpResponse {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title></head>\
         <body><h1>{status}</h1><p>{}</p><p><a href=\"/formtest\">back to the forms</a></p></body></html>\n",
        escape(why.as_bytes())
    );
    page(status, s)
}

/// The GET page: both forms, posting back here.
pub fn form_page() -> HttpResponse {
    page(
        200,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>lwsd form test</title></head><body><h1>protocol-post-demo</h1>\n\
         <form action=\"/formtest\" method=\"post\">\
         <label>Some text <input type=\"text\" name=\"text\" value=\"Give me some text\"></label> \
         <button type=\"submit\" name=\"send\" value=\"Send the form\">Send</button></form>\n\
         <form action=\"/formtest\" method=\"post\" enctype=\"multipart/form-data\">\
         <label>Some text <input type=\"text\" name=\"text\" value=\"Give me some text\"></label> \
         <label>File <input type=\"file\" name=\"file\"></label> \
         <button type=\"submit\" name=\"send\" value=\"Send the form\">Send</button></form>\n\
         </body></html>\n"
            .to_owned(),
    )
}

/// The answer page listing `fields`.
pub fn fields_page(fields: &[Field]) -> HttpResponse {
    let mut s = String::with_capacity(512 + fields.len() * 128);
    s.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>lwsd form test: received</title></head><body><h1>Form received</h1>\n",
    );
    let _ = writeln!(
        s,
        "<table><thead><tr><th>name</th><th>value</th></tr></thead><tbody>"
    );
    for f in fields {
        let name = f.name.get(..MAX_SHOWN_VALUE).unwrap_or(&f.name);
        let _ = write!(s, "<tr><td class=\"name\">{}</td>", escape(name));
        match &f.value {
            Value::Text(v) => {
                let shown = v.get(..MAX_SHOWN_VALUE).unwrap_or(v);
                let _ = write!(s, "<td class=\"value\">{}", escape(shown));
                if shown.len() < v.len() {
                    let _ = write!(s, "… ({} bytes)", v.len());
                }
                s.push_str("</td></tr>\n");
            }
            Value::File {
                filename,
                content_type,
                size,
                sha1,
            } => {
                let _ = write!(
                    s,
                    "<td class=\"file\">file <span class=\"filename\">{}</span> ({}), \
                     <span class=\"size\">{size}</span> bytes, sha1 <code>",
                    escape(filename),
                    escape(content_type)
                );
                for b in sha1 {
                    let _ = write!(s, "{b:02x}");
                }
                s.push_str("</code></td></tr>\n");
            }
        }
    }
    let _ = write!(
        s,
        "</tbody></table>\n<p>{} field(s). <a href=\"/formtest\">again</a></p></body></html>\n",
        fields.len()
    );
    page(200, s)
}

/// `b` as HTML text: invalid UTF-8 becomes U+FFFD, and `& < > " '` are escaped.
pub fn escape(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl PostSession {
    fn new(kind: BodyKind, max_body: u64) -> PostSession {
        PostSession {
            parser: match kind {
                BodyKind::UrlEncoded => Parser::UrlEncoded(UrlEncoded::new()),
                BodyKind::Multipart(b) => Parser::Multipart(Box::new(Multipart::new(&b))),
            },
            received: 0,
            max_body,
            failed: None,
        }
    }

    /// Takes the next piece of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.received += chunk.len() as u64;
        if self.failed.is_some() {
            return;
        }
        if self.received > self.max_body {
            self.fail(413, format!("the body is over {} bytes", self.max_body));
            return;
        }
        let r = match &mut self.parser {
            Parser::UrlEncoded(p) => p.feed(chunk),
            Parser::Multipart(p) => p.feed(chunk),
            Parser::Gone => Ok(()),
        };
        if let Err(e) = r {
            self.fail(400, e.to_string());
        }
    }

    fn fail(&mut self, status: u16, why: String) {
        self.failed = Some((status, why));
        self.parser = Parser::Gone; // free what was parsed
    }

    /// The body is complete: the answer.
    pub fn finish(self) -> HttpResponse {
        if let Some((status, why)) = self.failed {
            return error_page(status, &why);
        }
        let fields: Result<Vec<Field>, FormError> = match self.parser {
            Parser::UrlEncoded(p) => p.finish(),
            Parser::Multipart(p) => p.finish(),
            Parser::Gone => Ok(Vec::new()),
        };
        match fields {
            Ok(f) => fields_page(&f),
            Err(e) => error_page(400, &e.to_string()),
        }
    }
}

impl Protocol for PostDemo {
    type Session = PostSession;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<PostSession, Close> {
        Err(Close::new(1008, "protocol-post-demo is HTTP only"))
    }

    fn http(&mut self, _vhost: &mut Vhost<'_>, req: &HttpRequest<'_>) -> HttpAnswer<PostSession> {
        match req.method {
            "GET" | "HEAD" => HttpAnswer::Respond(form_page()),
            "POST" => {
                if req.content_length.is_some_and(|n| n > self.max_body) {
                    return HttpAnswer::Respond(error_page(
                        413,
                        &format!("the body is over {} bytes", self.max_body),
                    ));
                }
                match body_kind(req.content_type) {
                    Ok(kind) => HttpAnswer::ReadBody(PostSession::new(kind, self.max_body)),
                    Err((status, why)) => HttpAnswer::Respond(error_page(status, why)),
                }
            }
            // RFC 9110 15.5.6: a 405 lists the methods the resource allows.
            _ => HttpAnswer::Respond(
                error_page(405, "use GET or POST")
                    .with_header("Allow", "GET, HEAD, POST")
                    .expect("a valid field"),
            ),
        }
    }

    fn http_body(
        &mut self,
        _vhost: &mut Vhost<'_>,
        session: &mut PostSession,
        chunk: &[u8],
    ) -> CbResult {
        session.feed(chunk);
        Ok(())
    }

    fn http_body_completion(
        &mut self,
        _vhost: &mut Vhost<'_>,
        session: PostSession,
    ) -> HttpAnswer<PostSession> {
        HttpAnswer::Respond(session.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &HttpResponse) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[test]
    fn content_types() {
        assert_eq!(
            body_kind(Some(b"application/x-www-form-urlencoded")),
            Ok(BodyKind::UrlEncoded)
        );
        assert_eq!(
            body_kind(Some(b"Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
            Ok(BodyKind::UrlEncoded)
        );
        assert_eq!(
            body_kind(Some(b"multipart/form-data; boundary=xyz")),
            Ok(BodyKind::Multipart(b"xyz".to_vec()))
        );
        // Missing boundary -> 400; other types and none -> 415.
        assert_eq!(body_kind(Some(b"multipart/form-data")).unwrap_err().0, 400);
        assert_eq!(
            body_kind(Some(b"multipart/form-data; boundary="))
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(body_kind(Some(b"text/plain")).unwrap_err().0, 415);
        assert_eq!(body_kind(None).unwrap_err().0, 415);
    }

    #[test]
    fn urlencoded_answer_escapes() {
        let mut s = PostSession::new(BodyKind::UrlEncoded, MAX_BODY);
        s.feed(b"text=%3Cb%3E%26%22x%27+y&na%3Cme=1");
        let r = s.finish();
        assert_eq!(r.status, 200);
        let t = text(&r);
        assert!(
            t.contains("<td class=\"value\">&lt;b&gt;&amp;&quot;x&#39; y</td>"),
            "{t}"
        );
        assert!(t.contains("<td class=\"name\">na&lt;me</td>"), "{t}");
        assert!(t.contains("2 field(s)"));
        assert!(!t.contains("<b>"));
    }

    #[test]
    fn multipart_answer_lists_the_file() {
        let mut s = PostSession::new(BodyKind::Multipart(b"BB".to_vec()), MAX_BODY);
        s.feed(
            b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"<x>.txt\"\r\n\
              Content-Type: text/plain\r\n\r\nabc\r\n--BB--\r\n",
        );
        let r = s.finish();
        let t = text(&r);
        assert_eq!(r.status, 200, "{t}");
        // sha1("abc"), FIPS 180 appendix A.
        assert!(
            t.contains("a9993e364706816aba3e25717850c26c9cd0d89d"),
            "{t}"
        );
        assert!(
            t.contains("<span class=\"filename\">&lt;x&gt;.txt</span> (text/plain)"),
            "{t}"
        );
        assert!(t.contains("<span class=\"size\">3</span> bytes"), "{t}");
    }

    #[test]
    fn body_limit_gives_413_and_stops_parsing() {
        let mut s = PostSession::new(BodyKind::UrlEncoded, MAX_BODY);
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            s.feed(&chunk);
        }
        assert!(s.failed.is_none(), "exactly MAX_BODY is accepted");
        s.feed(b"b");
        assert_eq!(s.failed.as_ref().map(|f| f.0), Some(413));
        assert!(matches!(s.parser, Parser::Gone));
        s.feed(&chunk);
        assert_eq!(s.finish().status, 413);
        // At most MAX_BODY is accepted whole.
        let mut s = PostSession::new(BodyKind::UrlEncoded, MAX_BODY);
        s.feed(b"v=");
        s.feed(&vec![b'a'; MAX_BODY as usize - 2]);
        let r = s.finish();
        assert_eq!(r.status, 200);
        assert!(text(&r).contains(&format!("… ({} bytes)", MAX_BODY - 2)));
        assert!(r.body.len() < MAX_SHOWN_VALUE + 1024);
    }

    #[test]
    fn max_body_is_a_pvo() {
        let opts = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let make = |o: &std::collections::BTreeMap<String, String>| {
            PostDemo::from_init(&PluginInit {
                options: o,
                worker: 0,
                workers: 1,
            })
        };
        assert_eq!(make(&opts(&[])).unwrap().max_body, MAX_BODY);
        let p = make(&opts(&[("max-body", "10")])).unwrap();
        assert_eq!(p.max_body, 10);
        let mut s = PostSession::new(BodyKind::UrlEncoded, p.max_body);
        s.feed(b"a=12345678");
        assert!(s.failed.is_none(), "exactly max-body is accepted");
        s.feed(b"9");
        assert_eq!(s.finish().status, 413);
        for bad in ["0", "x", "1073741825"] {
            let e = make(&opts(&[("max-body", bad)])).err().unwrap();
            assert!(e.contains("max-body"), "{e}");
        }
        assert!(
            make(&opts(&[("max-bdoy", "10")])).is_err(),
            "a typo is refused"
        );
    }

    #[test]
    fn malformed_multipart_is_400() {
        let mut s = PostSession::new(BodyKind::Multipart(b"BB".to_vec()), MAX_BODY);
        s.feed(b"--BB\r\nContent-Disposition: form-data; name=a\r\n\r\nv");
        let r = s.finish();
        assert_eq!(r.status, 400);
        assert!(text(&r).contains("closing boundary"));
    }

    #[test]
    fn escape_html() {
        assert_eq!(escape(b"a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(escape(&[0xff, b'x']), "\u{fffd}x");
    }
}
