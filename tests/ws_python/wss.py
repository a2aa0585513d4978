#!/usr/bin/env python3
"""lwsd over TLS with Python's own clients: the `ssl` module (HTTPS with http.client)
and the `websockets` library over wss://, for every built-in WebSocket protocol.

The server runs with -C/-K (a certificate for `localhost`, CA:FALSE, self-signed), and
the client VERIFIES it: the certificate is this script's CA, the host name is checked,
and SNI is sent (a name, not an address). Checks:
- TLS 1.3 and TLS 1.2 (the client pinned to each) complete; ALPN `http/1.1` is
  selected when offered;
- HTTPS file serving on one kept-alive connection: GET (the demo page), HEAD (the same
  head, no body), Range (206 with Content-Range, the right bytes), If-None-Match with the
  ETag (304), a missing file (404);
- wss:// lws-echo without compression (messages up to 1 MiB, fragments, ping) and with
  permessage-deflate (negotiated, echoes compressed: RSV1 seen);
- dumb-increment-protocol: the counter rises, `reset\\n` restarts it;
- lws-mirror-protocol: a message from one client reaches both;
- lws-server-status: the JSON document arrives and names a worker.

Usage: wss.py PORT CERT_PEM. Exit 0 when every check passes.
Run by tests/tls_serving.rs (python_ssl_and_websockets_over_tls).
"""
import http.client
import json
import os
import ssl
import sys

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.sync.client import connect

PORT = int(sys.argv[1])
CERT = sys.argv[2]
HOST = "localhost"
TIMEOUT = 10


def context(version=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=CERT)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def check_versions_and_alpn():
    for version, name in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
                          (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        conn = http.client.HTTPSConnection(HOST, PORT, timeout=TIMEOUT,
                                           context=context(version))
        conn.connect()
        assert conn.sock.version() == name, conn.sock.version()
        assert conn.sock.selected_alpn_protocol() == "http/1.1", \
            conn.sock.selected_alpn_protocol()
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200 and b"lwsd test server" in r.read()
        conn.close()
        print("ok", name, "ALPN http/1.1")


def check_files():
    conn = http.client.HTTPSConnection(HOST, PORT, timeout=TIMEOUT, context=context())
    conn.request("GET", "/test.js")
    r = conn.getresponse()
    full = r.read()
    assert r.status == 200 and len(full) > 1000, (r.status, len(full))
    etag = r.getheader("ETag")
    assert etag and r.getheader("Last-Modified"), r.getheaders()
    sock = conn.sock
    conn.request("HEAD", "/test.js")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    assert int(r.getheader("Content-Length")) == len(full)
    assert r.getheader("ETag") == etag
    conn.request("GET", "/test.js", headers={"Range": "bytes=100-1099"})
    r = conn.getresponse()
    part = r.read()
    assert r.status == 206, r.status
    assert r.getheader("Content-Range") == f"bytes 100-1099/{len(full)}", r.getheaders()
    assert part == full[100:1100]
    conn.request("GET", "/test.js", headers={"Range": "bytes=-10"})
    r = conn.getresponse()
    assert r.status == 206 and r.read() == full[-10:]
    conn.request("GET", "/test.js", headers={"If-None-Match": etag})
    r = conn.getresponse()
    assert r.status == 304 and r.read() == b"", r.status
    conn.request("GET", "/test.js", headers={"Range": f"bytes={len(full)}-"})
    r = conn.getresponse()
    r.read()
    assert r.status == 416, r.status
    conn.request("GET", "/no-such-file")
    r = conn.getresponse()
    r.read()
    assert r.status == 404
    assert conn.sock is sock, "every request on the one kept-alive TLS connection"
    conn.close()
    print("ok https GET, HEAD, Range 206/416, If-None-Match 304, 404 on one connection")


def ws(protocol, compression=None, **kw):
    return connect(f"wss://{HOST}:{PORT}/", ssl=context(alpn=None), proxy=None,
                   subprotocols=[protocol], compression=compression,
                   open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None,
                   max_size=32 << 20, **kw)


compressed_frames = 0
_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    global compressed_frames
    if frame.rsv1:
        compressed_frames += 1
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode


def check_echo(compression):
    with ws("lws-echo", compression) as c:
        assert c.subprotocol == "lws-echo"
        exts = c.protocol.extensions
        if compression:
            assert len(exts) == 1 and isinstance(exts[0], PerMessageDeflate), exts
        else:
            assert not exts, exts
        before = compressed_frames
        for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            data = os.urandom(n)
            c.send(data)
            assert c.recv(timeout=TIMEOUT) == data, n
            text = ("κόσμε " * (n // 12 + 1))[: n // 2]
            c.send(text)
            assert c.recv(timeout=TIMEOUT) == text, n
        parts = ["a", "κό", "σμε", "x" * 70000, "end"]
        c.send(parts)
        assert c.recv(timeout=TIMEOUT) == "".join(parts)
        assert c.ping(b"tls").wait(TIMEOUT)
        got = compressed_frames - before
        if compression:
            assert got >= 5, got
        else:
            assert got == 0, got
    print(f"ok wss lws-echo compression={compression}: {got} compressed echoes")


def check_dumb_increment():
    with ws("dumb-increment-protocol") as c:
        nums = [int(c.recv(timeout=TIMEOUT)) for _ in range(5)]
        assert nums == list(range(nums[0], nums[0] + 5)), nums
        c.send("reset\n")
        # Numbers already in flight may still arrive; the count restarts at 0.
        for _ in range(50):
            n = int(c.recv(timeout=TIMEOUT))
            if n < nums[-1]:
                break
        else:
            raise AssertionError("reset had no effect")
        assert n <= 3, n
    print("ok wss dumb-increment-protocol", nums, "reset to", n)


def check_mirror():
    with ws("lws-mirror-protocol") as a, ws("lws-mirror-protocol") as b:
        # Both clients joined before the message: each gets it (the sender too).
        msg = "d #ff0000 10 20 30 40;"
        a.send(msg)
        assert a.recv(timeout=TIMEOUT) == msg
        assert b.recv(timeout=TIMEOUT) == msg
        b.send(b"\x00binary\xff")
        assert a.recv(timeout=TIMEOUT) == b"\x00binary\xff"
        assert b.recv(timeout=TIMEOUT) == b"\x00binary\xff"
    print("ok wss lws-mirror-protocol between two clients")


def check_server_status():
    with ws("lws-server-status") as c:
        doc = json.loads(c.recv(timeout=TIMEOUT))
        assert doc["server"].startswith("lwsd/"), doc
        assert doc["workers"] and "worker" in doc["you"], doc
        me = [w for w in doc["workers"] if w["index"] == doc["you"]["worker"]]
        assert me and me[0]["conns"] >= 1, doc
    print("ok wss lws-server-status", doc["you"])


check_versions_and_alpn()
check_files()
check_echo(None)
check_echo("deflate")
check_dumb_increment()
check_mirror()
check_server_status()
print("ok all")
