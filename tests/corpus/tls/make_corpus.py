#!/usr/bin/env python3
"""Writes the hostile-handshake corpus run by tests/tls_hostile.rs: NAME.bin (the bytes a
client sends on a fresh TCP connection to `lwsd -s`, then it half-closes) and
NAME.expect (what must come back before the server closes):
  alert N        one fatal TLS alert record with description N, nothing else
  http 400       a plain-text HTTP 400 a person can read
  close          nothing at all: the server just closes
  server_hello   a TLS 1.2+ ServerHello, and the connection stays open (the handshake
                 goes on; the test then closes)
  flight then close   a ServerHello flight, then the server closes (after an alert
                 encrypted with the handshake keys, which the test cannot read)
The real ClientHello comes from Python's ssl (OpenSSL) via a MemoryBIO, for SNI
`localhost`; the old-version hellos are built by hand. Run from this folder; the output
is committed, so the corpus does not change with the local OpenSSL.
"""
import os
import ssl


def client_hello():
    ctx = ssl._create_unverified_context()
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(i, o, server_hostname="localhost")
    try:
        s.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return o.read()


def old_hello(record_minor, client_minor, exts=b""):
    """RFC 5246 7.4.1.2 ClientHello offering TLS_RSA_WITH_AES_128_CBC_SHA (and, for
    SSLv3's sake, nothing newer)."""
    body = bytes([3, client_minor]) + bytes(range(32)) + b"\x00" + b"\x00\x04\x00\x2f\x00\x0a"
    body += b"\x01\x00" + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return bytes([22, 3, record_minor]) + len(hs).to_bytes(2, "big") + hs


def sslv2_hello():
    """RFC 5246 appendix E.2: the SSL 2.0-format CLIENT-HELLO old clients sent."""
    body = b"\x01\x03\x01" + b"\x00\x03" + b"\x00\x00" + b"\x00\x10" + b"\x00\x00\x2f"
    body += bytes(range(16))
    return (0x8000 | len(body)).to_bytes(2, "big") + body


ch = client_hello()
assert ch[0] == 22 and ch[5] == 1, ch[:6]
cases = {
    "client_hello": (ch, None),  # the split test's input; not a corpus case by itself
    "garbage_before_client_hello": (b"\x00\x01\x02\x03garbage" + ch, "alert 50"),
    "text_before_client_hello": (b"hello\r\n" + ch, "alert 50"),
    "plain_http_get": (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "http 400"),
    "plain_http_post": (b"POST /formtest HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=b",
                        "http 400"),
    "truncated_record": (ch[: len(ch) // 2], "close"),
    "truncated_header": (ch[:3], "close"),
    "sslv3_hello": (old_hello(0, 0), "alert 70"),
    "tls10_hello": (old_hello(1, 1), "alert 70"),
    "tls11_hello": (old_hello(2, 2), "alert 70"),
    "sslv2_format_hello": (sslv2_hello(), "alert 70"),
    "application_data_first": (b"\x17\x03\x03\x00\x05hello", "alert 10"),
    "alert_first": (b"\x15\x03\x03\x00\x02\x02\x28", "close"),
    # RFC 8446 section 5: a ChangeCipherSpec before the ClientHello is unexpected.
    "change_cipher_spec_first": (b"\x14\x03\x03\x00\x01\x01" + b"\x00" * 8, "alert 10"),
    "client_hello_twice": (ch + ch, "flight then close"),
    "real_client_hello": (ch, "server_hello"),
}
for name, (data, expect) in cases.items():
    with open(f"{name}.bin", "wb") as f:
        f.write(data)
    if expect:
        with open(f"{name}.expect", "w") as f:
            f.write(expect + "\n")
print(len(cases), "files")
