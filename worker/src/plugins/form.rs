//! Incremental parsers for HTML form bodies: `application/x-www-form-urlencoded`
//! (WHATWG URL standard, "application/x-www-form-urlencoded parsing") and
//! `multipart/form-data` (RFC 7578 over RFC 2046 section 5.1.1). Bytes go in as they
//! arrive, split anywhere; fields come out at the end. Files are not stored: a file
//! part yields its name, filename, size and SHA-1.
//!
//! Every size is bounded: the caller bounds the whole body, [`MAX_FIELDS`] bounds the
//! field count, [`MAX_PART_HEADERS`] a part's header block. Peer bytes never panic.
//!
//! Hand-written: the crates for these (`form_urlencoded`, `multer`) are not incremental
//! over borrowed chunks (`multer` is tied to async streams), and both formats are short.

use sha1::{Digest, Sha1};

/// Most fields in one form: the demo forms have three; 64 leaves room for any real form
/// while bounding the work and the answer page.
pub const MAX_FIELDS: usize = 64;
/// Longest header block of one multipart part. Browsers send two short headers
/// (Content-Disposition, Content-Type); 4 KiB fits long file names many times over.
pub const MAX_PART_HEADERS: usize = 4096;
/// RFC 2046 5.1.1: a boundary is 1 to 70 characters.
pub const MAX_BOUNDARY: usize = 70;

/// Why a form body was refused (each a client error: 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    TooManyFields,
    /// A part's header block is over [`MAX_PART_HEADERS`].
    HeadersTooLong,
    /// The body ended before the closing boundary (RFC 2046 5.1.1 `close-delimiter`).
    Unterminated,
    /// Something after a boundary other than `--` or a line end.
    BadDelimiter,
    /// A part without `Content-Disposition: form-data; name=...` (RFC 7578 4.2).
    NoName,
    /// A header line without a colon.
    BadHeader,
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FormError::TooManyFields => "too many fields",
            FormError::HeadersTooLong => "a part's headers are too long",
            FormError::Unterminated => "the body ends before the closing boundary",
            FormError::BadDelimiter => "malformed boundary line",
            FormError::NoName => "a part has no Content-Disposition name",
            FormError::BadHeader => "malformed part header",
        })
    }
}

/// A received field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Vec<u8>,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(Vec<u8>),
    /// A file part: what the client called it, its declared type, its size and digest.
    File {
        filename: Vec<u8>,
        content_type: Vec<u8>,
        size: u64,
        sha1: [u8; 20],
    },
}

// ---------------------------------------------------------------------------------------
// application/x-www-form-urlencoded

/// Incremental urlencoded parser: `name=value` pairs split on `&`, `+` is a space, `%XX`
/// a byte; a `%` not followed by two hex digits stays as it is (WHATWG percent-decode).
#[derive(Debug, Default)]
pub struct UrlEncoded {
    fields: Vec<Field>,
    name: Vec<u8>,
    value: Vec<u8>,
    in_value: bool,
    /// After a `%`: the hex digit seen so far, if any (as it came).
    pct: Option<Option<u8>>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl UrlEncoded {
    pub fn new() -> UrlEncoded {
        UrlEncoded::default()
    }

    fn out(&mut self) -> &mut Vec<u8> {
        if self.in_value {
            &mut self.value
        } else {
            &mut self.name
        }
    }

    /// An unfinished `%` sequence is literal text, as it came.
    fn flush_pct(&mut self) {
        if let Some(first) = self.pct.take() {
            let out = self.out();
            out.push(b'%');
            out.extend(first);
        }
    }

    fn end_field(&mut self) -> Result<(), FormError> {
        self.flush_pct();
        if self.name.is_empty() && self.value.is_empty() && !self.in_value {
            // "a=1&&b=2": an empty sequence is skipped.
            return Ok(());
        }
        if self.fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        self.fields.push(Field {
            name: std::mem::take(&mut self.name),
            value: Value::Text(std::mem::take(&mut self.value)),
        });
        self.in_value = false;
        Ok(())
    }

    /// Parses the next piece of the body.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FormError> {
        for &b in data {
            if let Some(first) = self.pct {
                match (first, hex(b)) {
                    (None, Some(_)) => {
                        self.pct = Some(Some(b));
                        continue;
                    }
                    (Some(hi), Some(lo)) => {
                        self.pct = None;
                        let hi = hex(hi).unwrap_or(0);
                        self.out().push(hi << 4 | lo);
                        continue;
                    }
                    // Not hex: the '%' (and a first digit) were literal; `b` is handled
                    // on its own below.
                    _ => self.flush_pct(),
                }
            }
            match b {
                b'&' => self.end_field()?,
                b'=' if !self.in_value => self.in_value = true,
                b'+' => self.out().push(b' '),
                b'%' => self.pct = Some(None),
                _ => self.out().push(b),
            }
        }
        Ok(())
    }

    /// The body ended: the fields, in order.
    pub fn finish(mut self) -> Result<Vec<Field>, FormError> {
        self.end_field()?;
        Ok(self.fields)
    }
}

// ---------------------------------------------------------------------------------------
// multipart/form-data

/// The `boundary` parameter of a `multipart/form-data` Content-Type (RFC 7578 4.1, RFC
/// 2046 5.1.1: 1 to 70 characters, possibly a quoted-string). `None` if the type is not
/// multipart/form-data or the boundary is missing or invalid.
pub fn multipart_boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let mut parts = split_params(content_type);
    let media = parts.next()?;
    if !media
        .trim_ascii()
        .eq_ignore_ascii_case(b"multipart/form-data")
    {
        return None;
    }
    let b = parts.find_map(|p| param(p, b"boundary"))?;
    let ok = !b.is_empty()
        && b.len() <= MAX_BOUNDARY
        && b.last() != Some(&b' ')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c));
    ok.then_some(b)
}

/// Splits a header value on `;` outside quoted strings.
fn split_params(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &c) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                quoted = !quoted;
            } else if c == b';' && !quoted {
                rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        rest = None;
        Some(s)
    })
}

/// The value of parameter `name` in `p` (`name=value` or `name="quoted"`), unquoted.
fn param(p: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let p = p.trim_ascii();
    let eq = p.iter().position(|&c| c == b'=')?;
    let (k, v) = (p.get(..eq)?.trim_ascii(), p.get(eq + 1..)?.trim_ascii());
    if !k.eq_ignore_ascii_case(name) {
        return None;
    }
    match v.strip_prefix(b"\"") {
        Some(q) => {
            // RFC 9110 5.6.4 quoted-string, with quoted-pairs.
            let mut out = Vec::with_capacity(q.len());
            let mut it = q.iter();
            while let Some(&c) = it.next() {
                match c {
                    b'"' => return Some(out),
                    b'\\' => out.push(*it.next()?),
                    _ => out.push(c),
                }
            }
            None // unterminated
        }
        None => Some(v.to_vec()),
    }
}

/// Where the multipart parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary (RFC 2046: a preamble is ignored).
    Preamble,
    /// Just after a delimiter: `--` (the end), or padding and CRLF (a part follows).
    AfterDelimiter,
    /// Reading a part's header block.
    Headers,
    /// Reading a part's content.
    Body,
    /// After the closing delimiter (an epilogue is ignored).
    Done,
}

/// The part being read.
enum Part {
    Text(Vec<u8>),
    File {
        filename: Vec<u8>,
        content_type: Vec<u8>,
        size: u64,
        hash: Box<Sha1>,
    },
}

/// Incremental multipart/form-data parser.
pub struct Multipart {
    /// CRLF "--" boundary (RFC 2046 5.1.1 `delimiter`).
    delimiter: Vec<u8>,
    state: State,
    /// Unconsumed input: at most a delimiter's length in the body, a header block while
    /// reading headers.
    buf: Vec<u8>,
    fields: Vec<Field>,
    name: Vec<u8>,
    part: Option<Part>,
}

impl Multipart {
    /// A parser for `boundary` (from [`multipart_boundary`]).
    pub fn new(boundary: &[u8]) -> Multipart {
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary);
        Multipart {
            delimiter,
            state: State::Preamble,
            // The first boundary may open the body without a CRLF before it: pretend one.
            buf: b"\r\n".to_vec(),
            fields: Vec::new(),
            name: Vec::new(),
            part: None,
        }
    }

    /// Parses the next piece of the body.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FormError> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let r = self.run(&mut pos);
        self.buf.drain(..pos.min(self.buf.len()));
        r
    }

    /// Consumes what it can of `buf[*pos..]`.
    fn run(&mut self, pos: &mut usize) -> Result<(), FormError> {
        let dl = self.delimiter.len();
        loop {
            let rest = self.buf.get(*pos..).unwrap_or(&[]);
            match self.state {
                State::Preamble => match find(rest, &self.delimiter) {
                    Some(i) => {
                        *pos += i + dl;
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep only what may be the start of a delimiter.
                        *pos += rest.len().saturating_sub(dl - 1);
                        return Ok(());
                    }
                },
                State::AfterDelimiter => {
                    // "--" closes; else optional transport padding (LWSP) then CRLF.
                    if rest.len() < 2 {
                        return Ok(());
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Done;
                        *pos = self.buf.len();
                        return Ok(());
                    }
                    let pad = rest
                        .iter()
                        .take_while(|&&c| c == b' ' || c == b'\t')
                        .count();
                    if pad > MAX_PART_HEADERS {
                        return Err(FormError::BadDelimiter);
                    }
                    let after = rest.get(pad..).unwrap_or(&[]);
                    if after.len() < 2 {
                        return Ok(());
                    }
                    if !after.starts_with(b"\r\n") {
                        return Err(FormError::BadDelimiter);
                    }
                    // Keep the CRLF: the header block is then found as CRLF ... CRLFCRLF
                    // even when it is empty.
                    *pos += pad;
                    self.state = State::Headers;
                }
                // The block is CRLF, headers, CRLF CRLF; its terminator must start within
                // MAX_PART_HEADERS bytes (the same verdict however the input is split).
                State::Headers => match find(rest, b"\r\n\r\n") {
                    Some(i) if i > MAX_PART_HEADERS => return Err(FormError::HeadersTooLong),
                    Some(i) => {
                        let block = rest.get(2..i.max(2)).unwrap_or(&[]).to_vec();
                        *pos += i + 4;
                        self.start_part(&block)?;
                        self.state = State::Body;
                    }
                    None => {
                        if rest.len() >= MAX_PART_HEADERS + 4 {
                            return Err(FormError::HeadersTooLong);
                        }
                        return Ok(());
                    }
                },
                State::Body => match find(rest, &self.delimiter) {
                    Some(i) => {
                        let content = rest.get(..i).unwrap_or(&[]);
                        Self::content(&mut self.part, content);
                        *pos += i + dl;
                        self.end_part()?;
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let safe = rest.len().saturating_sub(dl - 1);
                        Self::content(&mut self.part, rest.get(..safe).unwrap_or(&[]));
                        *pos += safe;
                        return Ok(());
                    }
                },
                State::Done => {
                    *pos = self.buf.len();
                    return Ok(());
                }
            }
        }
    }

    fn start_part(&mut self, block: &[u8]) -> Result<(), FormError> {
        let mut name = None;
        let mut filename = None;
        let mut content_type = Vec::new();
        for line in block.split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let colon = line
                .iter()
                .position(|&c| c == b':')
                .ok_or(FormError::BadHeader)?;
            let (k, v) = (
                line.get(..colon).unwrap_or(&[]),
                line.get(colon + 1..).unwrap_or(&[]),
            );
            if k.trim_ascii().eq_ignore_ascii_case(b"content-disposition") {
                let mut ps = split_params(v);
                if !ps
                    .next()
                    .is_some_and(|d| d.trim_ascii().eq_ignore_ascii_case(b"form-data"))
                {
                    return Err(FormError::NoName);
                }
                for p in ps {
                    if let Some(n) = param(p, b"name") {
                        name = Some(n);
                    } else if let Some(f) = param(p, b"filename") {
                        filename = Some(f);
                    }
                }
            } else if k.trim_ascii().eq_ignore_ascii_case(b"content-type") {
                content_type = v.trim_ascii().to_vec();
            }
        }
        self.name = name.ok_or(FormError::NoName)?;
        self.part = Some(match filename {
            Some(filename) => Part::File {
                filename,
                content_type,
                size: 0,
                hash: Box::new(Sha1::new()),
            },
            None => Part::Text(Vec::new()),
        });
        Ok(())
    }

    fn content(part: &mut Option<Part>, data: &[u8]) {
        match part {
            Some(Part::Text(v)) => v.extend_from_slice(data),
            Some(Part::File { size, hash, .. }) => {
                *size += data.len() as u64;
                hash.update(data);
            }
            None => {}
        }
    }

    fn end_part(&mut self) -> Result<(), FormError> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        if self.fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let value = match part {
            Part::Text(v) => Value::Text(v),
            Part::File {
                filename,
                content_type,
                size,
                hash,
            } => Value::File {
                filename,
                content_type,
                size,
                sha1: hash.finalize().into(),
            },
        };
        self.fields.push(Field {
            name: std::mem::take(&mut self.name),
            value,
        });
        Ok(())
    }

    /// The body ended: the fields, or [`FormError::Unterminated`] without the closing
    /// delimiter.
    pub fn finish(self) -> Result<Vec<Field>, FormError> {
        if self.state != State::Done {
            return Err(FormError::Unterminated);
        }
        Ok(self.fields)
    }
}

/// First position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = hay.get(from..)?.iter().position(|&c| c == first) {
        let at = from + i;
        if hay.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(pieces: &[&[u8]]) -> Result<Vec<(String, String)>, FormError> {
        let mut p = UrlEncoded::new();
        for x in pieces {
            p.feed(x)?;
        }
        Ok(p.finish()?
            .into_iter()
            .map(|f| match f.value {
                Value::Text(v) => (
                    String::from_utf8(f.name).unwrap(),
                    String::from_utf8(v).unwrap(),
                ),
                Value::File { .. } => unreachable!(),
            })
            .collect())
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn urlencoded_decoding() {
        assert_eq!(
            url(&[b"text=Give+me+some+text&send=Send%20the%20form"]).unwrap(),
            pairs(&[("text", "Give me some text"), ("send", "Send the form")])
        );
        // '+' is a space, "%2B" a plus; names decode too; a bare name has "" as value.
        assert_eq!(
            url(&[b"a%2Bb=1+%2B+1&flag&=v&x=%3D%26"]).unwrap(),
            pairs(&[("a+b", "1 + 1"), ("flag", ""), ("", "v"), ("x", "=&")])
        );
        // Invalid escapes stay literal (WHATWG); a second '=' belongs to the value.
        assert_eq!(
            url(&[b"p=100%&q=%zz&r=%4&s=a=b&t=%"]).unwrap(),
            pairs(&[
                ("p", "100%"),
                ("q", "%zz"),
                ("r", "%4"),
                ("s", "a=b"),
                ("t", "%")
            ])
        );
        // Empty sequences are skipped; an empty body has no fields.
        assert_eq!(url(&[b"&&a=1&&"]).unwrap(), pairs(&[("a", "1")]));
        assert_eq!(url(&[b""]).unwrap(), pairs(&[]));
        // Bytes that are not UTF-8 come through as bytes.
        let mut p = UrlEncoded::new();
        p.feed(b"k=%FF%fe").unwrap();
        assert_eq!(p.finish().unwrap()[0].value, Value::Text(vec![0xff, 0xfe]));
    }

    #[test]
    fn urlencoded_split_everywhere() {
        let body: &[u8] = b"text=Give+me%20some%2btext&x=%zz%4&y=%41%42";
        let want = url(&[body]).unwrap();
        assert_eq!(want[0].1, "Give me some+text");
        assert_eq!(want[1].1, "%zz%4");
        assert_eq!(want[2].1, "AB");
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let got = url(&[&body[..i], &body[i..j], &body[j..]]).unwrap();
                assert_eq!(got, want, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn urlencoded_field_limit() {
        let ok = "a=1&".repeat(MAX_FIELDS);
        assert_eq!(url(&[ok.as_bytes()]).unwrap().len(), MAX_FIELDS);
        let over = format!("{ok}b=2");
        assert_eq!(url(&[over.as_bytes()]), Err(FormError::TooManyFields));
    }

    #[test]
    fn boundary_from_content_type() {
        let b = |s: &str| multipart_boundary(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            b("multipart/form-data; boundary=----WebKitFormBoundaryx7Y").as_deref(),
            Some("----WebKitFormBoundaryx7Y")
        );
        assert_eq!(
            b("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"").as_deref(),
            Some("a b:c")
        );
        // Missing, empty, too long, bad characters, wrong type.
        assert_eq!(b("multipart/form-data"), None);
        assert_eq!(b("multipart/form-data; charset=utf-8"), None);
        assert_eq!(b("multipart/form-data; boundary="), None);
        assert_eq!(b("multipart/form-data; boundary=\"\""), None);
        assert_eq!(b("multipart/form-data; boundary=\"abc"), None);
        let long = "x".repeat(MAX_BOUNDARY + 1);
        assert_eq!(b(&format!("multipart/form-data; boundary={long}")), None);
        let max = "x".repeat(MAX_BOUNDARY);
        assert_eq!(
            b(&format!("multipart/form-data; boundary={max}")).as_deref(),
            Some(max.as_str())
        );
        assert_eq!(b("multipart/form-data; boundary=a\u{7f}b"), None);
        // ';' is not a bchar (RFC 2046 5.1.1), even quoted.
        assert_eq!(b("multipart/form-data; boundary=\"a;b\""), None);
        assert_eq!(b("multipart/mixed; boundary=abc"), None);
        assert_eq!(b("application/x-www-form-urlencoded"), None);
    }

    const BOUNDARY: &str = "----lwsdB0undary";

    /// A browser-like body: a text field with CRLFs (and a fake boundary line) in its
    /// value, a file, an empty text field.
    fn sample() -> Vec<u8> {
        format!(
            "preamble to ignore\r\n\
             --{BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"text\"\r\n\
             \r\n\
             line one\r\nline two\r\n--not-the-boundary\r\n\r\n\
             --{BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".txt\"\r\n\
             Content-Type: text/plain\r\n\
             \r\n\
             hello file\r\n\
             --{BOUNDARY}  \r\n\
             content-disposition: form-data; name=empty\r\n\
             \r\n\
             \r\n\
             --{BOUNDARY}--\r\n\
             epilogue to ignore"
        )
        .into_bytes()
    }

    fn sample_fields() -> Vec<Field> {
        vec![
            Field {
                name: b"text".to_vec(),
                value: Value::Text(b"line one\r\nline two\r\n--not-the-boundary\r\n".to_vec()),
            },
            Field {
                name: b"file".to_vec(),
                value: Value::File {
                    filename: b"a \"q\".txt".to_vec(),
                    content_type: b"text/plain".to_vec(),
                    size: 10,
                    sha1: Sha1::digest(b"hello file").into(),
                },
            },
            Field {
                name: b"empty".to_vec(),
                value: Value::Text(Vec::new()),
            },
        ]
    }

    fn multipart(pieces: &[&[u8]]) -> Result<Vec<Field>, FormError> {
        let mut p = Multipart::new(BOUNDARY.as_bytes());
        for x in pieces {
            p.feed(x)?;
        }
        p.finish()
    }

    #[test]
    fn multipart_whole() {
        assert_eq!(multipart(&[&sample()]).unwrap(), sample_fields());
    }

    #[test]
    fn multipart_split_at_every_position() {
        let body = sample();
        let want = sample_fields();
        for i in 0..=body.len() {
            assert_eq!(
                multipart(&[&body[..i], &body[i..]]).as_ref(),
                Ok(&want),
                "split at {i}"
            );
        }
        // And byte by byte.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(multipart(&bytes).unwrap(), want);
        // Every pair of split points around the first delimiter (three pieces).
        let d = body
            .windows(BOUNDARY.len())
            .position(|w| w == BOUNDARY.as_bytes())
            .unwrap();
        for i in d.saturating_sub(4)..d + BOUNDARY.len() + 4 {
            for j in i..d + BOUNDARY.len() + 8 {
                let got = multipart(&[&body[..i], &body[i..j], &body[j..]]);
                assert_eq!(got.as_ref(), Ok(&want), "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn multipart_starting_with_the_boundary_and_no_parts() {
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--{BOUNDARY}--"
        );
        let f = multipart(&[body.as_bytes()]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, Value::Text(b"v".to_vec()));
        assert_eq!(
            multipart(&[format!("--{BOUNDARY}--").as_bytes()]).unwrap(),
            vec![]
        );
    }

    #[test]
    fn multipart_errors() {
        // Missing the closing delimiter (also: an empty body, or the wrong boundary).
        let body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n");
        assert_eq!(multipart(&[body.as_bytes()]), Err(FormError::Unterminated));
        assert_eq!(multipart(&[b""]), Err(FormError::Unterminated));
        assert_eq!(
            multipart(&[b"--other\r\n\r\nx\r\n--other--"]),
            Err(FormError::Unterminated)
        );
        // Junk after a boundary.
        let junk = format!("--{BOUNDARY}junk\r\n");
        assert_eq!(multipart(&[junk.as_bytes()]), Err(FormError::BadDelimiter));
        // A part without a name, or not form-data, or with a line without a colon.
        for h in [
            "Content-Type: text/plain",
            "Content-Disposition: attachment; name=a",
            "Content-Disposition: form-data; filename=a",
            "no colon here",
        ] {
            let body = format!("--{BOUNDARY}\r\n{h}\r\n\r\nv\r\n--{BOUNDARY}--");
            assert!(multipart(&[body.as_bytes()]).is_err(), "{h}");
        }
    }

    #[test]
    fn multipart_header_limit() {
        let pad = |n: usize| {
            let fixed = "Content-Disposition: form-data; name=a\r\nX: ".len();
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\nX: {}\r\n\r\nv\r\n--{BOUNDARY}--",
                "y".repeat(n - fixed)
            )
        };
        // A header block (between the delimiter line and the blank line) of exactly
        // MAX_PART_HEADERS - 2 bytes fits with its leading CRLF; one more is refused,
        // whole or fed in pieces of any size.
        let ok = pad(MAX_PART_HEADERS - 2);
        assert!(multipart(&[ok.as_bytes()]).is_ok());
        let over = pad(MAX_PART_HEADERS - 1);
        assert_eq!(
            multipart(&[over.as_bytes()]),
            Err(FormError::HeadersTooLong)
        );
        for n in [1, 7, 64, 4095, 4096, 4097] {
            let pieces: Vec<&[u8]> = over.as_bytes().chunks(n).collect();
            assert_eq!(
                multipart(&pieces),
                Err(FormError::HeadersTooLong),
                "pieces of {n}"
            );
            let pieces: Vec<&[u8]> = ok.as_bytes().chunks(n).collect();
            assert!(multipart(&pieces).is_ok(), "pieces of {n}");
        }
    }

    #[test]
    fn multipart_field_limit() {
        let part = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n");
        let ok = format!("{}--{BOUNDARY}--", part.repeat(MAX_FIELDS));
        assert_eq!(multipart(&[ok.as_bytes()]).unwrap().len(), MAX_FIELDS);
        let over = format!("{}--{BOUNDARY}--", part.repeat(MAX_FIELDS + 1));
        assert_eq!(multipart(&[over.as_bytes()]), Err(FormError::TooManyFields));
    }

    #[test]
    fn multipart_buffer_stays_small_in_a_big_file() {
        let mut p = Multipart::new(BOUNDARY.as_bytes());
        p.feed(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let chunk = vec![b'\r'; 1000];
        for _ in 0..100 {
            p.feed(&chunk).unwrap();
            assert!(p.buf.len() < BOUNDARY.len() + 4, "{}", p.buf.len());
        }
        p.feed(format!("\r\n--{BOUNDARY}--").as_bytes()).unwrap();
        let f = p.finish().unwrap();
        match &f[0].value {
            Value::File { size, .. } => assert_eq!(*size, 100_000),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn find_needle() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abd"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"aaa", b""), None);
    }
}
