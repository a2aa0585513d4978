//! Inputs for lwsd's criterion micro benchmarks (`benches/*.rs`), kept here so they are
//! unit-tested: a benchmark of a parser is only worth its figure if the input really is
//! what its name says (a 400-byte browser GET that parses as one head, 100 masked
//! frames that decode to 100 messages, ...). The tests below check exactly that, with
//! the same lwsd code the benchmarks time.
//!
//! Everything is deterministic (a fixed-seed splitmix64 stands in for the randomness of
//! masking keys and message contents), so two runs and two commits time the same bytes.
//!
//! See `bench/README.md` for how to run the benchmarks and compare two commits.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use lwsd_proto::{NewConn, PeerAddr};

/// splitmix64: a tiny deterministic generator for masking keys and message contents.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A GET as Chromium sends it for a page's script on a keep-alive connection: 9 header
/// fields, about 400 bytes (browsers send 300..600 without large cookies).
pub const BROWSER_GET: &[u8] = b"GET /static/app.js?v=3 HTTP/1.1\r\n\
Host: example.com:7681\r\n\
Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Accept: */*\r\n\
Referer: http://example.com:7681/\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cache-Control: no-cache\r\n\
Cookie: session=3f9a1c27b4e8d6055a7e09bc; theme=dark; lang=en\r\n\
\r\n";

/// Number of header fields in [`BROWSER_GET`].
pub const BROWSER_GET_HEADERS: usize = 9;

/// `n` small GETs back to back in one buffer, as `wrk`/`h2load` pipelining sends them
/// (each `GET /N HTTP/1.1` with a Host field, ~40 bytes).
pub fn pipelined_gets(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * 48);
    for i in 0..n {
        v.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    }
    v
}

/// A POST whose body of `chunks` x `chunk_len` bytes comes in chunked coding
/// (RFC 9112 7.1), ending with the last chunk and no trailers. Returns the whole
/// request and the body length.
pub fn chunked_post(chunks: usize, chunk_len: usize) -> (Vec<u8>, usize) {
    let mut v = Vec::with_capacity(128 + chunks * (chunk_len + 8));
    v.extend_from_slice(
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
Transfer-Encoding: chunked\r\n\r\n",
    );
    for c in 0..chunks {
        v.extend_from_slice(format!("{chunk_len:x}\r\n").as_bytes());
        v.extend((0..chunk_len).map(|i| b'a' + ((i + c) % 26) as u8));
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    (v, chunks * chunk_len)
}

/// `count` client-to-server text frames (FIN, masked as RFC 6455 5.3 requires of a
/// client, each with its own key) whose payloads are `len` bytes of chat-like ASCII.
/// `len` must be at most 125 so every header is 6 bytes.
pub fn masked_text_frames(count: usize, len: usize, seed: u64) -> Vec<u8> {
    assert!(len <= 125, "fixture builds 7-bit lengths only");
    let mut rng = SplitMix(seed);
    let text = b"{\"type\":\"chat\",\"room\":\"lobby\",\"from\":\"user-42\",\"text\":\"hello, everyone there\"}";
    let mut v = Vec::with_capacity(count * (6 + len));
    for i in 0..count {
        let key = (rng.next_u64() as u32).to_be_bytes();
        v.push(0x81);
        v.push(0x80 | len as u8);
        v.extend_from_slice(&key);
        let start = v.len();
        v.extend((0..len).map(|j| text[(i + j) % text.len()]));
        lwsd_worker::roles::ws::mask::apply_mask_naive(&mut v[start..], key, 0);
    }
    v
}

/// A JSON message of at most `max` bytes (and within 100 bytes of it): a batch of
/// market ticks whose numbers vary with `seq`, so consecutive messages are similar (as
/// a stream of one application's messages is) but never identical.
pub fn json_message(seq: u64, max: usize) -> Vec<u8> {
    let mut rng = SplitMix(seq.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let mut v = format!("{{\"seq\":{seq},\"channel\":\"ticker\",\"items\":[").into_bytes();
    let syms = [
        "BTC-USD", "ETH-USD", "SOL-USD", "ADA-EUR", "DOT-GBP", "XRP-USD",
    ];
    let mut first = true;
    loop {
        let r = rng.next_u64();
        let item = format!(
            "{}{{\"id\":{},\"sym\":\"{}\",\"px\":{}.{:02},\"qty\":{},\"side\":\"{}\",\"ts\":{}}}",
            if first { "" } else { "," },
            r % 1_000_000,
            syms[(r >> 20) as usize % syms.len()],
            1000 + (r >> 24) % 9000,
            (r >> 40) % 100,
            1 + (r >> 48) % 500,
            if r & 1 == 0 { "buy" } else { "sell" },
            1_700_000_000_000 + seq * 1000 + (r >> 54),
        );
        if v.len() + item.len() + 2 > max {
            break;
        }
        v.extend_from_slice(item.as_bytes());
        first = false;
    }
    v.extend_from_slice(b"]}");
    v
}

/// `len` bytes (cut at a character boundary, so possibly up to 3 fewer) of valid UTF-8.
/// `ascii`: JSON-like ASCII (most WebSocket text); else prose that mixes 1- to 4-byte
/// characters (Latin accents, CJK, emoji), the slow path of a validator.
pub fn utf8_text(len: usize, ascii: bool) -> Vec<u8> {
    let unit = if ascii {
        "{\"user\":\"alice\",\"msg\":\"the quick brown fox jumps over the lazy dog\"} "
    } else {
        "Grüße aus Köln — 東京は晴れ、気温二十度 🚀✨ naïve café, Ελληνικά, русский текст. "
    };
    let mut s = String::with_capacity(len + unit.len());
    while s.len() < len {
        s.push_str(unit);
    }
    let mut cut = len;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.into_bytes()
}

/// `n` accepted connections as the supervisor hands them over: TCP over IPv4 and IPv6
/// from varied peers, on two listeners.
pub fn new_conns(n: usize) -> Vec<NewConn> {
    let mut rng = SplitMix(7);
    (0..n)
        .map(|i| {
            let r = rng.next_u64();
            let port = 1024 + (r % 60_000) as u16;
            let peer = if i % 4 == 3 {
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&0x2001_0db8_0000_0000u64.to_be_bytes());
                a[8..].copy_from_slice(&r.to_be_bytes());
                PeerAddr::V6(a, port)
            } else {
                PeerAddr::V4(((r >> 32) as u32).to_be_bytes(), port)
            };
            NewConn {
                listener: (i % 2) as u16,
                peer,
            }
        })
        .collect()
}

/// A directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "lwsd-bench-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `content` to `name` inside the directory.
    pub fn write(&self, name: &str, content: &[u8]) -> std::io::Result<()> {
        std::fs::write(self.path.join(name), content)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A stylesheet of `len` bytes, the typical small static file of a page.
pub fn css_file(len: usize) -> Vec<u8> {
    let rule = b"body { margin: 0; font: 14px/1.4 sans-serif; color: #222; }\n";
    rule.iter().copied().cycle().take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwsd_worker::roles::h1::{Event as H1Event, H1Server};
    use lwsd_worker::roles::ws::deflate::{Pmd, PmdParams};
    use lwsd_worker::roles::ws::utf8::Utf8Validator;
    use lwsd_worker::roles::ws::{Event as WsEvent, Side, WsConfig, WsConn};

    #[test]
    fn browser_get_is_one_400_byte_head_with_9_headers() {
        let len = BROWSER_GET.len();
        assert!((380..=440).contains(&len), "{len} bytes");
        let mut s = H1Server::default();
        let f = s.feed(BROWSER_GET);
        assert_eq!(f.consumed, len);
        match f.event {
            H1Event::Head(h) => {
                assert_eq!(h.headers().count(), BROWSER_GET_HEADERS);
                assert_eq!(h.path(), b"/static/app.js");
                assert!(h.keep_alive);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn pipelined_gets_are_ten_heads() {
        let buf = pipelined_gets(10);
        let mut s = H1Server::default();
        let mut pos = 0;
        let mut heads = 0;
        while pos < buf.len() {
            let f = s.feed(&buf[pos..]);
            assert!(matches!(f.event, H1Event::Head(_)), "{:?}", f.event);
            pos += f.consumed;
            heads += 1;
        }
        assert_eq!(heads, 10);
        assert_eq!(s.requests(), 10);
    }

    #[test]
    fn chunked_post_delivers_its_body() {
        let (buf, body_len) = chunked_post(16, 1024);
        let mut s = H1Server::default();
        let mut pos = 0;
        let mut got = 0;
        let mut ended = false;
        while pos < buf.len() {
            let f = s.feed(&buf[pos..]);
            pos += f.consumed;
            match f.event {
                H1Event::Head(h) => assert!(h.body.has_body()),
                H1Event::Body(b) => got += b.len(),
                H1Event::BodyEnd => ended = true,
                e => panic!("{e:?}"),
            }
        }
        assert!(ended);
        assert_eq!(got, body_len);
        assert_eq!(body_len, 16 * 1024);
    }

    #[test]
    fn masked_frames_decode_to_100_text_messages() {
        let mut buf = masked_text_frames(100, 64, 1);
        assert_eq!(buf.len(), 100 * 70);
        let mut c = WsConn::server(WsConfig::default(), 0);
        let mut msgs = 0;
        let fed = c
            .feed(&mut buf, 0, |e| match e {
                WsEvent::Data(d) => {
                    assert!(d.first && d.last && !d.binary);
                    assert_eq!(d.payload.len(), 64);
                    // Unmasked: chat JSON again (masked bytes would not be ASCII).
                    assert!(d.payload.is_ascii());
                    msgs += 1;
                }
                e => panic!("{e:?}"),
            })
            .expect("valid frames");
        assert_eq!(fed.consumed, 100 * 70);
        assert_eq!(msgs, 100);
    }

    #[test]
    fn json_messages_are_2k_valid_and_distinct() {
        let a = json_message(1, 2048);
        let b = json_message(2, 2048);
        for m in [&a, &b] {
            assert!((1948..=2048).contains(&m.len()), "{}", m.len());
            assert!(m.starts_with(b"{\"seq\":") && m.ends_with(b"]}"));
        }
        assert_ne!(a, b);
        // They round-trip through permessage-deflate (client compresses, server
        // inflates), with context takeover, in order.
        let p = PmdParams::default();
        let (mut tx, mut rx) = (
            Pmd::with_level(Side::Client, &p, 1),
            Pmd::new(Side::Server, &p),
        );
        for m in [&a, &b] {
            let (mut z, mut out) = (Vec::new(), Vec::new());
            tx.compress(m, &mut z);
            assert!(z.len() < m.len() / 2, "{} of {}", z.len(), m.len());
            rx.decompress(&z, true, &mut out, 1 << 20)
                .expect("inflates");
            assert_eq!(&out, m);
        }
    }

    #[test]
    fn utf8_texts_are_valid_and_sized() {
        for ascii in [true, false] {
            let t = utf8_text(64 * 1024, ascii);
            assert!(t.len() > 64 * 1024 - 4 && t.len() <= 64 * 1024);
            assert_eq!(t.is_ascii(), ascii);
            let mut v = Utf8Validator::new();
            assert!(v.feed(&t).is_ok() && v.finish().is_ok());
        }
    }

    #[test]
    fn new_conns_encode_and_decode() {
        let conns = new_conns(64);
        assert!(conns.iter().any(|c| matches!(c.peer, PeerAddr::V6(..))));
        let mut buf = Vec::new();
        lwsd_proto::ToWorker::encode_new_conns(&conns, &mut buf).expect("64 fit");
        assert_eq!(
            lwsd_proto::ToWorker::decode(&buf),
            Ok(lwsd_proto::ToWorker::NewConns(conns))
        );
    }

    #[test]
    fn temp_dir_is_removed() {
        let p;
        {
            let d = TempDir::new("t").expect("tempdir");
            d.write("a.css", &css_file(1000)).expect("write");
            assert_eq!(
                std::fs::read(d.path().join("a.css")).expect("read").len(),
                1000
            );
            p = d.path().to_path_buf();
        }
        assert!(!p.exists());
    }
}
