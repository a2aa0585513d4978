#!/usr/bin/env python3
"""Regenerates the HTTP/1.1 request corpus (*.req + expected.txt) in this directory.

Each case: (file name, expected status, raw request bytes). The document root of the
end-to-end test holds /index.html and /small.txt ("hello world\n", 12 bytes).
Run: python3 gen.py  (from any directory)."""
import os

H = b"Host: localhost\r\n"
def get(target, extra=b"", ver=b"HTTP/1.1", method=b"GET", host=True):
    return method + b" " + target + b" " + ver + b"\r\n" + (H if host else b"") + extra + b"\r\n"
def post(extra, body=b""):
    return b"POST /small.txt HTTP/1.1\r\n" + H + extra + b"\r\n" + body

CASES = [
    # Valid requests: the answer comes from the file mount.
    ("001-get-index", 200, get(b"/index.html")),
    ("002-get-small", 200, get(b"/small.txt")),
    ("003-get-root-index", 200, get(b"/")),
    ("004-head-small", 200, get(b"/small.txt", method=b"HEAD")),
    ("005-get-missing", 404, get(b"/nope.html")),
    ("006-http10-no-host", 200, get(b"/small.txt", ver=b"HTTP/1.0", host=False)),
    ("007-absolute-form", 200, b"GET http://localhost/index.html HTTP/1.1\r\n" + H + b"\r\n"),
    ("008-range-206", 206, get(b"/small.txt", b"Range: bytes=0-4\r\n")),
    ("009-range-unsatisfiable", 416, get(b"/small.txt", b"Range: bytes=100-200\r\n")),
    ("010-leading-crlf", 200, b"\r\n" + get(b"/small.txt")),
    ("011-bare-lf", 200, b"GET /small.txt HTTP/1.1\nHost: localhost\n\n"),
    ("012-query-string", 200, get(b"/small.txt?x=1&y=%2f")),
    ("013-connection-close", 200, get(b"/small.txt", b"Connection: close\r\n")),
    ("014-dot-segment-inside-root", 200, get(b"/x/../small.txt")),
    ("015-unknown-method", 501, get(b"/small.txt", method=b"FOO")),
    ("016-lowercase-method", 501, get(b"/small.txt", method=b"get")),
    ("017-host-with-port", 200, b"GET /small.txt HTTP/1.1\r\nHost: localhost:7681\r\n\r\n"),
    # Preconditions (RFC 9110 13.1, evaluated in the order of 13.2.2).
    ("082-if-match-other", 412, get(b"/small.txt", b'If-Match: "not-the-etag"\r\n')),
    ("083-if-match-weak", 412, get(b"/small.txt", b'If-Match: W/"not-the-etag"\r\n')),
    ("084-if-match-star", 200, get(b"/small.txt", b"If-Match: *\r\n")),
    ("085-if-unmodified-since-old", 412, get(b"/small.txt", b"If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n")),
    ("086-if-unmodified-since-bad-date", 200, get(b"/small.txt", b"If-Unmodified-Since: yesterday\r\n")),
    ("087-if-match-before-if-none-match", 412, get(b"/small.txt", b'If-Match: "x"\r\nIf-None-Match: *\r\n')),
    ("088-if-range-stale", 200, get(b"/small.txt", b'Range: bytes=0-4\r\nIf-Range: "stale"\r\n')),
    ("089-if-range-old-date", 200, get(b"/small.txt", b"Range: bytes=0-4\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n")),
    # Request smuggling: message framing (RFC 9112 6.1, 6.3).
    ("020-cl-and-te", 400, post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("021-te-and-cl", 400, post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n")),
    ("022-dup-cl-differ", 400, post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
    ("023-cl-list-differ", 400, post(b"Content-Length: 5, 6\r\n", b"hello!")),
    # A list of agreeing values, or the line repeated, is refused too (RFC 9110 8.6 lets a
    # server merge or reject; merging invites smuggling past a proxy that picks one
    # element). The GET behind the body must not be answered.
    ("018-cl-list-same", 400, get(b"/small.txt", b"Content-Length: 0, 0\r\n")),
    ("019-cl-list-same-pipelined", 400, post(b"Content-Length: 1, 1\r\n", b"x" + get(b"/small.txt"))),
    ("048-cl-list-no-space", 400, post(b"Content-Length: 1,1\r\n", b"x" + get(b"/small.txt"))),
    ("049-cl-list-empty-element", 400, post(b"Content-Length: 1,\r\n", b"x" + get(b"/small.txt"))),
    ("067-dup-cl-same", 400, post(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"x" + get(b"/small.txt"))),
    ("024-cl-non-numeric", 400, post(b"Content-Length: abc\r\n")),
    ("025-cl-negative", 400, post(b"Content-Length: -1\r\n")),
    ("026-cl-plus-sign", 400, post(b"Content-Length: +5\r\n", b"hello")),
    ("027-cl-overflow", 400, post(b"Content-Length: 99999999999999999999999\r\n")),
    ("028-cl-too-large", 413, post(b"Content-Length: 16777217\r\n")),
    ("029-te-gzip", 501, post(b"Transfer-Encoding: gzip\r\n")),
    ("030-te-gzip-chunked", 501, post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
    ("031-te-chunked-not-last", 400, post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n")),
    ("032-te-chunked-twice", 400, post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("033-te-in-http10", 400, b"POST /small.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("034-te-space-before-colon", 400, post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")),
    ("035-te-obs-fold", 400, post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n")),
    ("036-te-xchunked", 501, post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n")),
    ("037-te-empty", 400, post(b"Transfer-Encoding: \r\n", b"0\r\n\r\n")),
    ("038-chunk-bad-hex", 400, post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n")),
    ("039-chunk-huge-size", 413, post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\nhello\r\n")),
    ("040-chunk-size-overflow", 400, post(b"Transfer-Encoding: chunked\r\n", b"10000000000000000\r\nhello\r\n")),
    ("041-chunk-negative", 400, post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n")),
    ("042-chunk-bare-lf", 400, post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\n0\n\n")),
    ("043-chunk-data-overrun", 400, post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloX\r\n0\r\n\r\n")),
    ("044-chunk-ext-nul", 400, post(b"Transfer-Encoding: chunked\r\n", b"5;a=\x00\r\nhello\r\n0\r\n\r\n")),
    ("045-chunk-over-body-limit", 413, post(b"Transfer-Encoding: chunked\r\n", b"1000001\r\nhello\r\n")),
    ("046-chunk-empty-size", 400, post(b"Transfer-Encoding: chunked\r\n", b";ext\r\nhello\r\n0\r\n\r\n")),
    # A body that stops halfway: 408 once it has been silent for --body-timeout (the
    # end-to-end run uses 1 s), however long the head deadline is.
    ("068-stalled-body", 408, post(b"Content-Length: 100\r\n", b"half a body")),
    ("069-stalled-chunked-body", 408, post(b"Transfer-Encoding: chunked\r\n", b"64\r\nhalf a chunk")),
    ("047-chunk-0x-prefix", 400, post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n")),
    # Request line.
    ("050-nul-in-target", 400, get(b"/sm\x00all.txt")),
    ("051-http20-version", 505, get(b"/small.txt", ver=b"HTTP/2.0")),
    ("052-http12-version", 505, get(b"/small.txt", ver=b"HTTP/1.2")),
    ("053-http3-version", 505, get(b"/small.txt", ver=b"HTTP/3.0")),
    ("054-http09-request", 400, b"GET /small.txt\r\n\r\n"),
    ("055-lowercase-version", 400, get(b"/small.txt", ver=b"http/1.1")),
    ("056-garbage-version", 400, get(b"/small.txt", ver=b"HTXP/1.1")),
    ("057-long-uri", 414, get(b"/" + b"a" * 9000)),
    ("058-invalid-method-token", 400, get(b"/small.txt", method=b"G(T")),
    ("059-double-space", 400, b"GET  /small.txt HTTP/1.1\r\n" + H + b"\r\n"),
    ("060-fragment-in-target", 400, get(b"/small.txt#frag")),
    ("061-asterisk-with-get", 400, get(b"*")),
    ("062-connect-origin-form", 400, get(b"/", method=b"CONNECT")),
    ("063-absolute-ftp-scheme", 400, b"GET ftp://localhost/small.txt HTTP/1.1\r\n" + H + b"\r\n"),
    ("064-relative-target", 400, get(b"small.txt")),
    ("065-cr-line-ends", 400, b"GET /small.txt HTTP/1.1\rHost: localhost\r\r"),
    ("066-binary-garbage", 400, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    # Headers.
    ("070-missing-host", 400, get(b"/small.txt", host=False)),
    ("071-duplicate-host", 400, get(b"/small.txt", b"Host: other\r\n")),
    ("072-host-with-slash", 400, b"GET /small.txt HTTP/1.1\r\nHost: localhost/evil\r\n\r\n"),
    ("073-too-many-headers", 431, get(b"/small.txt", b"".join(b"X-H%d: v\r\n" % i for i in range(100)))),
    ("074-header-too-large", 431, get(b"/small.txt", b"Cookie: " + b"c" * 17000 + b"\r\n")),
    ("075-space-before-colon", 400, b"GET /small.txt HTTP/1.1\r\nHost : localhost\r\n\r\n"),
    ("076-obs-fold", 400, get(b"/small.txt", b"X-A: b\r\n c\r\n")),
    ("077-nul-in-header", 400, get(b"/small.txt", b"X-A: a\x00b\r\n")),
    ("078-header-no-colon", 400, get(b"/small.txt", b"X-A b\r\n")),
    ("079-empty-header-name", 400, get(b"/small.txt", b": b\r\n")),
    ("080-ctl-in-header-value", 400, get(b"/small.txt", b"X-A: a\x01b\r\n")),
    ("081-leading-space-first-header", 400, b"GET /small.txt HTTP/1.1\r\n Host: localhost\r\n\r\n"),
    # Path traversal: decided by the file mount (RFC 3986 2.1, 6.2.2.3).
    ("090-dotdot-climb", 400, get(b"/../../etc/passwd")),
    ("091-pct-dotdot-slash", 400, get(b"/%2e%2e%2f%2e%2e%2fetc%2fpasswd")),
    ("092-pct-slash", 400, get(b"/..%2f..%2fetc%2fpasswd")),
    ("093-pct-backslash", 400, get(b"/..%5c..%5cetc%5cpasswd")),
    ("094-pct-nul", 400, get(b"/small.txt%00.html")),
    ("095-pct-dotdot-climb", 400, get(b"/%2e%2e/%2e%2e/etc/passwd")),
    ("096-bad-pct-escape", 400, get(b"/small%zz.txt")),
    ("097-overlong-utf8-dot", 400, get(b"/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd")),
    ("098-raw-backslash", 400, get(b"/..\\..\\etc\\passwd")),
]

here = os.path.dirname(os.path.abspath(__file__))
for f in os.listdir(here):
    if f.endswith(".req"):
        os.remove(os.path.join(here, f))
with open(os.path.join(here, "expected.txt"), "w") as idx:
    for name, status, raw in CASES:
        with open(os.path.join(here, name + ".req"), "wb") as f:
            f.write(raw)
        idx.write("%s.req %d\n" % (name, status))
print(len(CASES), "cases")
