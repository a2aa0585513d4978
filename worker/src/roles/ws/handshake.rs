//! The opening handshake (RFC 6455 section 4): the server's checks of the client's
//! Upgrade request and its 101 answer (4.2), the client's request (4.1) and its checks
//! of the server's answer (4.1, "the client MUST validate the server's response").
//!
//! Headers come in as `(name, value)` byte-slice pairs, so this module does not depend
//! on the HTTP/1.1 parser's types; names compare case-insensitively (RFC 9110 5.1),
//! list-valued headers are split on commas with optional whitespace (RFC 9110 5.6.1),
//! and a header may appear several times (the lists concatenate).
//!
//! Hand-written: the handshake is a few string checks around one SHA-1, and the
//! crates that do it (tungstenite) bring their own HTTP types.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest, Sha1};

use super::UsageError;

/// Section 1.3: the GUID appended to the client's key before hashing.
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest error body naming the unknown subprotocols a client asked for: the request
/// head is already bounded by the HTTP parser, this keeps the answer small too.
pub const MAX_ERROR_BODY: usize = 256;

/// Section 4.2.2 step 5.4: base64(SHA-1(key ++ GUID)), always 28 ASCII bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    let digest = h.finalize();
    let mut out = [0u8; 28];
    // 20 bytes encode to exactly 28 base64 characters with padding.
    let _ = B64.encode_slice(digest, &mut out);
    out
}

/// A `Sec-WebSocket-Key` for a client from 16 random bytes (section 4.1 step 7).
pub fn client_key(nonce: [u8; 16]) -> String {
    B64.encode(nonce)
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// The comma-separated elements of a list header, trimmed, empty ones skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty())
}

fn has_token(v: &[u8], tok: &str) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(tok.as_bytes()))
}

/// What the server agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept<'h, 'p> {
    /// The subprotocol chosen: the first of the client's list (in its order) that is
    /// enabled, or the default protocol when the client named none.
    pub protocol: Option<&'p str>,
    /// Whether the response names `protocol` (only when the client asked for one:
    /// section 4.2.2 step 5.5 answers with one of the values the client sent).
    pub echo_protocol: bool,
    /// `Sec-WebSocket-Accept`.
    pub accept_key: [u8; 28],
    /// Every `Sec-WebSocket-Extensions` value the client sent, raw, in order, for the
    /// permessage-deflate negotiation.
    pub extensions_offer: Vec<&'h [u8]>,
}

impl Accept<'_, '_> {
    pub fn accept_key_str(&self) -> &str {
        std::str::from_utf8(&self.accept_key).unwrap_or_default()
    }

    /// The protocol to name in the 101 response.
    pub fn response_protocol(&self) -> Option<&str> {
        if self.echo_protocol {
            self.protocol
        } else {
            None
        }
    }
}

/// Why a handshake was refused: the HTTP status to answer with, and a reason for the
/// body and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    pub status: u16,
    pub why: Cow<'static, str>,
}

impl HandshakeError {
    fn bad(why: &'static str) -> HandshakeError {
        HandshakeError {
            status: 400,
            why: Cow::Borrowed(why),
        }
    }

    /// The header fields of the error response besides the server's own (Date, Server,
    /// framing): the content type of [`HandshakeError::why`] as body, and for a 426
    /// `Sec-WebSocket-Version: 13` (section 4.4).
    pub fn headers(&self) -> &'static [(&'static [u8], &'static [u8])] {
        const TEXT: (&[u8], &[u8]) = (b"Content-Type", b"text/plain; charset=utf-8");
        if self.status == 426 {
            &[TEXT, (b"Sec-WebSocket-Version", b"13")]
        } else {
            &[TEXT]
        }
    }

    /// The whole HTTP/1.1 error response, without Date and Server (a server writes its
    /// head with [`HandshakeError::headers`] instead); a 426 carries
    /// `Sec-WebSocket-Version: 13` (section 4.4). The connection closes after it.
    pub fn response(&self) -> Vec<u8> {
        let reason = match self.status {
            400 => "Bad Request",
            426 => "Upgrade Required",
            _ => "Error",
        };
        let mut r = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason,
            self.why.len()
        );
        if self.status == 426 {
            r.push_str("Sec-WebSocket-Version: 13\r\n");
        }
        r.push_str("\r\n");
        r.push_str(&self.why);
        r.into_bytes()
    }
}

/// Check a client's opening handshake (section 4.2.1) and choose a subprotocol.
///
/// `http_minor` is the minor version of an HTTP/1.x request (4.1: "HTTP/1.1 or
/// higher"). `enabled_protocols` are the subprotocols served here; a client naming
/// none gets `default_protocol`. Errors: 400 for a malformed upgrade, 426 (with
/// `Sec-WebSocket-Version: 13`) for a missing or other version (4.4), 400 naming them
/// when the client offers only unknown subprotocols.
pub fn server_accept<'h, 'p, I>(
    method: &[u8],
    http_minor: u8,
    headers: I,
    enabled_protocols: &[&'p str],
    default_protocol: Option<&'p str>,
) -> Result<Accept<'h, 'p>, HandshakeError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    // 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if method != b"GET" {
        return Err(HandshakeError::bad("WebSocket upgrade needs GET"));
    }
    if http_minor < 1 {
        return Err(HandshakeError::bad("WebSocket upgrade needs HTTP/1.1"));
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut version: Option<bool> = None;
    let mut key: Option<&[u8]> = None;
    let mut keys = 0u32;
    let mut asked = false;
    let mut chosen: Option<&'p str> = None;
    let mut unknown = String::new();
    let mut extensions_offer = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"upgrade") {
            // 4.2.1 item 3: an Upgrade header containing "websocket" (case-insensitive).
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            // 4.2.1 item 4: a Connection header including the "Upgrade" token.
            connection |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
            // 4.2.1 item 6: version 13 (every occurrence).
            let ok = trim(value) == b"13";
            version = Some(version.unwrap_or(true) && ok);
        } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            keys += 1;
            key = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            // 4.2.2 step 5.5 / 11.3.4: the client's preference order, exact match.
            for t in tokens(value) {
                asked = true;
                if chosen.is_some() {
                    break;
                }
                match enabled_protocols.iter().find(|p| p.as_bytes() == t) {
                    Some(p) => chosen = Some(p),
                    None => {
                        if unknown.len() + t.len() + 2 <= MAX_ERROR_BODY - 40 {
                            if !unknown.is_empty() {
                                unknown.push_str(", ");
                            }
                            unknown.push_str(&String::from_utf8_lossy(t));
                        }
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"sec-websocket-extensions") {
            extensions_offer.push(value);
        }
    }
    if !upgrade {
        return Err(HandshakeError::bad("no Upgrade: websocket"));
    }
    if !connection {
        return Err(HandshakeError::bad("no Connection: Upgrade"));
    }
    if version != Some(true) {
        return Err(HandshakeError {
            status: 426,
            why: Cow::Borrowed("Sec-WebSocket-Version 13 required"),
        });
    }
    // 4.2.1 item 5: a Sec-WebSocket-Key that base64-decodes to 16 bytes.
    let key = match (key, keys) {
        (Some(k), 1) if k.len() == 24 => k,
        _ => return Err(HandshakeError::bad("bad Sec-WebSocket-Key")),
    };
    let mut raw = [0u8; 18];
    match B64.decode_slice(key, &mut raw) {
        Ok(16) => {}
        _ => return Err(HandshakeError::bad("bad Sec-WebSocket-Key")),
    }
    let (protocol, echo_protocol) = match (asked, chosen) {
        (true, Some(p)) => (Some(p), true),
        (true, None) => {
            return Err(HandshakeError {
                status: 400,
                why: Cow::Owned(format!("no supported protocol in: {unknown}")),
            });
        }
        (false, _) => (default_protocol, false),
    };
    Ok(Accept {
        protocol,
        echo_protocol,
        accept_key: accept_key(key),
        extensions_offer,
    })
}

/// A WebSocket over an HTTP/2 stream (RFC 8441 section 5): the extended CONNECT's
/// regular fields (lowercase names). There is no Upgrade, Connection or
/// Sec-WebSocket-Key ("not used", 5); the version (13), the subprotocol choice and the
/// extension offer work as in RFC 6455 4.2.1. The answer is a 200 with the chosen
/// subprotocol; errors are the same as [`server_accept`]'s.
pub fn server_accept_h2<'h, 'p, I>(
    headers: I,
    enabled_protocols: &[&'p str],
    default_protocol: Option<&'p str>,
) -> Result<Accept<'h, 'p>, HandshakeError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    let mut version: Option<bool> = None;
    let mut asked = false;
    let mut chosen: Option<&'p str> = None;
    let mut unknown = String::new();
    let mut extensions_offer = Vec::new();
    for (name, value) in headers {
        if name == b"sec-websocket-version" {
            let ok = trim(value) == b"13";
            version = Some(version.unwrap_or(true) && ok);
        } else if name == b"sec-websocket-protocol" {
            for t in tokens(value) {
                asked = true;
                if chosen.is_some() {
                    break;
                }
                match enabled_protocols.iter().find(|p| p.as_bytes() == t) {
                    Some(p) => chosen = Some(p),
                    None if unknown.len() + t.len() + 2 <= MAX_ERROR_BODY - 40 => {
                        if !unknown.is_empty() {
                            unknown.push_str(", ");
                        }
                        unknown.push_str(&String::from_utf8_lossy(t));
                    }
                    None => {}
                }
            }
        } else if name == b"sec-websocket-extensions" {
            extensions_offer.push(value);
        }
    }
    if version != Some(true) {
        return Err(HandshakeError {
            status: 426,
            why: Cow::Borrowed("Sec-WebSocket-Version 13 required"),
        });
    }
    let (protocol, echo_protocol) = match (asked, chosen) {
        (true, Some(p)) => (Some(p), true),
        (true, None) => {
            return Err(HandshakeError {
                status: 400,
                why: Cow::Owned(format!("no supported protocol in: {unknown}")),
            });
        }
        (false, _) => (default_protocol, false),
    };
    Ok(Accept {
        protocol,
        echo_protocol,
        accept_key: [0; 28],
        extensions_offer,
    })
}

/// The 101 response head (section 4.2.2 step 5), with the subprotocol and the
/// extension answer (permessage-deflate's response value) when given.
pub fn server_response_head(
    accept_key: &[u8; 28],
    protocol: Option<&str>,
    extension_header: Option<&str>,
) -> Vec<u8> {
    let mut r = Vec::with_capacity(160);
    r.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    r.extend_from_slice(accept_key);
    r.extend_from_slice(b"\r\n");
    if let Some(p) = protocol {
        r.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        r.extend_from_slice(p.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    if let Some(e) = extension_header {
        r.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        r.extend_from_slice(e.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r
}

fn header_safe(v: &str) -> Result<&str, UsageError> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        Err(UsageError::InvalidHeaderValue)
    } else {
        Ok(v)
    }
}

/// The client's opening handshake (section 4.1): a GET with the upgrade headers, the
/// key from [`client_key`], the subprotocols in preference order and the extension
/// offer (e.g. permessage-deflate's). Values with CR, LF or NUL are refused.
pub fn client_request(
    host: &str,
    path: &str,
    origin: Option<&str>,
    protocols: &[&str],
    extensions: Option<&str>,
    key: &str,
) -> Result<Vec<u8>, UsageError> {
    let path = if path.is_empty() { "/" } else { path };
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
        header_safe(path)?,
        header_safe(host)?,
        header_safe(key)?
    );
    if let Some(o) = origin {
        r.push_str("Origin: ");
        r.push_str(header_safe(o)?);
        r.push_str("\r\n");
    }
    if !protocols.is_empty() {
        r.push_str("Sec-WebSocket-Protocol: ");
        for (i, p) in protocols.iter().enumerate() {
            if i > 0 {
                r.push_str(", ");
            }
            r.push_str(header_safe(p)?);
        }
        r.push_str("\r\n");
    }
    if let Some(e) = extensions {
        r.push_str("Sec-WebSocket-Extensions: ");
        r.push_str(header_safe(e)?);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    Ok(r.into_bytes())
}

/// What the server's 101 response agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted<'h, 'o> {
    /// The subprotocol the server chose, from the offered list.
    pub protocol: Option<&'o str>,
    /// The server's `Sec-WebSocket-Extensions` values, raw. The caller must fail the
    /// connection if it names an extension it did not offer (section 4.1 item 5).
    pub extensions: Vec<&'h [u8]>,
}

/// Why the client rejects the server's response (section 4.1: "_Fail the WebSocket
/// Connection_").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHandshakeError {
    pub why: &'static str,
}

/// Validate the server's response to [`client_request`] (section 4.1, the numbered
/// checks after "the client MUST validate the server's response as follows").
pub fn client_validate<'h, 'o, I>(
    status: u16,
    headers: I,
    key: &str,
    offered_protocols: &[&'o str],
) -> Result<ClientAccepted<'h, 'o>, ClientHandshakeError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    let fail = |why| Err(ClientHandshakeError { why });
    // Item 1: status 101.
    if status != 101 {
        return fail("status is not 101");
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut accept: Option<&[u8]> = None;
    let mut protocol: Option<&[u8]> = None;
    let mut protocols = 0u32;
    let mut extensions = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
            if accept.is_some() {
                return fail("several Sec-WebSocket-Accept");
            }
            accept = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            protocols += 1;
            protocol = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-extensions") {
            extensions.push(value);
        }
    }
    // Items 2 and 3.
    if !upgrade {
        return fail("no Upgrade: websocket");
    }
    if !connection {
        return fail("no Connection: Upgrade");
    }
    // Item 4: the accept key matches ours.
    if accept != Some(&accept_key(key.as_bytes())[..]) {
        return fail("wrong Sec-WebSocket-Accept");
    }
    // Item 6: a subprotocol must be one we offered (exactly one value).
    let protocol = match (protocol, protocols) {
        (None, _) => None,
        (Some(p), 1) => match offered_protocols.iter().find(|o| o.as_bytes() == p) {
            Some(o) => Some(*o),
            None => return fail("server chose a protocol not offered"),
        },
        _ => return fail("several Sec-WebSocket-Protocol"),
    };
    Ok(ClientAccepted {
        protocol,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type H<'a> = Vec<(&'a [u8], &'a [u8])>;

    fn base() -> H<'static> {
        vec![
            (b"Host", b"server.example.com"),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"Origin", b"http://example.com"),
            (b"Sec-WebSocket-Version", b"13"),
        ]
    }

    fn without(h: &H<'static>, name: &str) -> H<'static> {
        h.iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()))
            .cloned()
            .collect()
    }

    #[test]
    fn rfc6455_1_3_accept_vector() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let a = server_accept(b"GET", 1, base(), &["chat"], None).unwrap();
        assert_eq!(a.accept_key_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(a.protocol, None);
        let head = server_response_head(&a.accept_key, a.response_protocol(), None);
        assert_eq!(
            head,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn tokens_lists_and_case() {
        let mut h = without(&without(&base(), "upgrade"), "connection");
        h.push((b"UPGRADE", b"foo/1, WebSocket"));
        h.push((b"connection", b"keep-alive"));
        h.push((b"Connection", b" keep-alive ,  UPGRADE "));
        assert!(server_accept(b"GET", 1, h, &[], None).is_ok());
    }

    #[test]
    fn refusals() {
        let e = server_accept(b"POST", 1, base(), &[], None).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            server_accept(b"GET", 0, base(), &[], None)
                .unwrap_err()
                .status,
            400
        );
        for name in ["upgrade", "connection", "sec-websocket-key"] {
            let e = server_accept(b"GET", 1, without(&base(), name), &[], None).unwrap_err();
            assert_eq!(e.status, 400, "{name}");
        }
        // Version missing or not 13 -> 426 with the version header.
        let e = server_accept(
            b"GET",
            1,
            without(&base(), "sec-websocket-version"),
            &[],
            None,
        )
        .unwrap_err();
        assert_eq!(e.status, 426);
        let resp = String::from_utf8(e.response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(
            e.headers()
                .contains(&(&b"Sec-WebSocket-Version"[..], &b"13"[..]))
        );
        let bad = server_accept(b"POST", 1, base(), &[], None).unwrap_err();
        assert_eq!(bad.headers().len(), 1, "a 400 has only its Content-Type");
        let mut h = without(&base(), "sec-websocket-version");
        h.push((b"Sec-WebSocket-Version", b"8"));
        assert_eq!(
            server_accept(b"GET", 1, h, &[], None).unwrap_err().status,
            426
        );
        // Keys that do not decode to 16 bytes, or two keys.
        for k in [
            &b"dGhlIHNhbXBsZSBub25jZQ="[..],
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZ!==",
            b"dGhlIHNhbXBsZSBub25jZXh4",
            b"",
        ] {
            let mut h = without(&base(), "sec-websocket-key");
            h.push((b"Sec-WebSocket-Key", k));
            let e = server_accept(b"GET", 1, h, &[], None).unwrap_err();
            assert_eq!(e.status, 400, "{k:?}");
        }
        let mut h = base();
        h.push((b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(
            server_accept(b"GET", 1, h, &[], None).unwrap_err().status,
            400
        );
    }

    #[test]
    fn subprotocol_choice() {
        let enabled = ["lws-mirror-protocol", "dumb-increment-protocol"];
        // The client's order wins, across several header lines.
        let mut h = base();
        h.push((b"Sec-WebSocket-Protocol", b"nope"));
        h.push((
            b"Sec-WebSocket-Protocol",
            b"dumb-increment-protocol, lws-mirror-protocol",
        ));
        let a = server_accept(b"GET", 1, h, &enabled, None).unwrap();
        assert_eq!(a.protocol, Some("dumb-increment-protocol"));
        assert_eq!(a.response_protocol(), Some("dumb-increment-protocol"));
        let head = server_response_head(&a.accept_key, a.response_protocol(), Some("x"));
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains("\r\nSec-WebSocket-Protocol: dumb-increment-protocol\r\n"));
        assert!(head.contains("\r\nSec-WebSocket-Extensions: x\r\n"));
        // None asked: the default, not echoed.
        let a = server_accept(b"GET", 1, base(), &enabled, Some("lws-mirror-protocol")).unwrap();
        assert_eq!(a.protocol, Some("lws-mirror-protocol"));
        assert_eq!(a.response_protocol(), None);
        // Only unknown ones: 400 naming them.
        let mut h = base();
        h.push((b"Sec-WebSocket-Protocol", b"foo, bar"));
        let e = server_accept(b"GET", 1, h, &enabled, Some("lws-mirror-protocol")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.why.contains("foo, bar"), "{}", e.why);
        // A huge list of unknown names keeps the body bounded.
        let long = "x,".repeat(5000);
        let mut h = base();
        h.push((b"Sec-WebSocket-Protocol", long.as_bytes()));
        let e = server_accept(b"GET", 1, h, &enabled, None).unwrap_err();
        assert!(e.why.len() <= MAX_ERROR_BODY);
        // Extension offers are passed on raw.
        let mut h = base();
        h.push((b"Sec-WebSocket-Extensions", b"permessage-deflate"));
        h.push((b"sec-websocket-extensions", b"x-foo; a=1"));
        let a = server_accept(b"GET", 1, h, &enabled, None).unwrap();
        assert_eq!(
            a.extensions_offer,
            vec![&b"permessage-deflate"[..], &b"x-foo; a=1"[..]]
        );
    }

    #[test]
    fn client_round_trip() {
        let key = client_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        let req = client_request(
            "localhost:7681",
            "/",
            Some("http://localhost"),
            &["a", "b"],
            Some("permessage-deflate"),
            &key,
        )
        .unwrap();
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET / HTTP/1.1\r\nHost: localhost:7681\r\n"));
        assert!(req.contains("\r\nSec-WebSocket-Protocol: a, b\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        // Parse it back with the server checks.
        let mut hs: Vec<(&[u8], &[u8])> = Vec::new();
        for line in req.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let (n, v) = line.split_once(':').unwrap();
            hs.push((n.as_bytes(), v.trim().as_bytes()));
        }
        let a = server_accept(b"GET", 1, hs, &["b"], None).unwrap();
        assert_eq!(a.protocol, Some("b"));
        let resp: H<'_> = vec![
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", &a.accept_key),
            (b"Sec-WebSocket-Protocol", b"b"),
        ];
        let c = client_validate(101, resp.clone(), &key, &["a", "b"]).unwrap();
        assert_eq!(c.protocol, Some("b"));
        assert!(client_validate(200, resp.clone(), &key, &["a", "b"]).is_err());
        assert!(client_validate(101, resp.clone(), &key, &["a"]).is_err());
        assert!(client_validate(101, resp.clone(), "AAAAAAAAAAAAAAAAAAAAAA==", &["b"]).is_err());
        assert!(client_validate(101, resp[1..].to_vec(), &key, &["b"]).is_err());
        assert_eq!(
            client_request("h\r\nX: y", "/", None, &[], None, &key),
            Err(UsageError::InvalidHeaderValue)
        );
    }
}
