#!/usr/bin/env python3
"""lwsd's lws-echo driven by the Python `websockets` library (sync client), without
compression: messages of every length class (RFC 6455 5.2) keep their type, fragmented
sends (5.4) come back whole, pings in flight together are each answered (5.5.2/5.5.3),
the closing handshake echoes the status code (5.5.1, 7.4), and the subprotocol
negotiation of 4.2.2 (a known protocol is chosen; only unknown ones -> 400).

Usage: echo.py PORT [wss]. Exit 0 when every check passes; an exception otherwise.
`wss`: over TLS (lwsd -s; its self-signed certificate is not verified).
Run by tests/ws.rs (python_websockets_echo_ping_fragments_close) and, with `wss`, by
tests/tls_serving.rs (python_websockets_echo_and_deflate_over_wss).
"""
import os
import ssl
import sys
import threading

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

PORT = int(sys.argv[1])
TLS = sys.argv[2:] == ["wss"]
URI = f"{'wss' if TLS else 'ws'}://127.0.0.1:{PORT}/"
SSL = ssl._create_unverified_context() if TLS else None
# Every call is bounded: a hung server fails the test.
TIMEOUT = 10


def client(**kw):
    kw.setdefault("compression", None)
    if TLS:
        kw["ssl"] = SSL
    return connect(URI, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                   ping_interval=None, max_size=32 << 20, **kw)


def check_echo():
    with client() as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        for n in (0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20):
            data = os.urandom(n)
            ws.send(data)
            got = ws.recv(timeout=TIMEOUT)
            assert isinstance(got, bytes) and got == data, f"binary {n}"
            text = ("κόσμε-" * (n // 11 + 1))[: n // 2]
            ws.send(text)
            got = ws.recv(timeout=TIMEOUT)
            assert isinstance(got, str) and got == text, f"text {n}"


def check_fragments():
    with client() as ws:
        # The library sends each item as one frame (5.4): first a Text frame, then
        # continuations, the last with FIN.
        parts = ["a", "", "κό", "σμε", "x" * 70000, "end"]
        ws.send(parts)
        assert ws.recv(timeout=TIMEOUT) == "".join(parts)
        bparts = [os.urandom(n) for n in (1, 2001, 0, 65536, 3)]
        ws.send(bparts)
        assert ws.recv(timeout=TIMEOUT) == b"".join(bparts)
        # Many small fragments.
        many = [bytes([i % 256]) * (i % 7) for i in range(1000)]
        ws.send(many)
        assert ws.recv(timeout=TIMEOUT) == b"".join(many)


def check_pings():
    with client() as ws:
        # Several pings in flight at once, each with its own payload; the library
        # matches each pong to its ping by payload.
        waiters = [ws.ping(os.urandom(i * 10)) for i in range(1, 13)]
        for i, w in enumerate(waiters):
            assert w.wait(TIMEOUT), f"ping {i} not answered"
        # Pings between messages do not disturb them.
        ws.send("before")
        pong = ws.ping(b"mid")
        ws.send("after")
        assert ws.recv(timeout=TIMEOUT) == "before"
        assert ws.recv(timeout=TIMEOUT) == "after"
        assert pong.wait(TIMEOUT)


def check_close_codes():
    for code, reason in ((1000, ""), (1001, "going"), (3000, "lib"), (4999, "κόσμε")):
        with client() as ws:
            ws.send("x")
            assert ws.recv(timeout=TIMEOUT) == "x"
            ws.close(code, reason)
            rcvd = ws.protocol.close_rcvd
            assert rcvd is not None, f"no close frame received for {code}"
            assert rcvd.code == code, f"sent {code}, server answered {rcvd.code}"
            # The closing handshake completed (not 1006, abnormal).
            assert ws.protocol.close_code == code


def check_subprotocols():
    with client(subprotocols=["nope", "lws-echo"]) as ws:
        assert ws.subprotocol == "lws-echo"
        ws.send("proto")
        assert ws.recv(timeout=TIMEOUT) == "proto"
    try:
        client(subprotocols=["nope", "also-nope"])
    except InvalidStatus as e:
        assert e.response.status_code == 400
        body = e.response.body.decode()
        assert "nope" in body and "also-nope" in body, body
    else:
        raise AssertionError("unknown subprotocols were accepted")


def check_concurrent():
    # Eight connections echoing at the same time from threads.
    errors = []

    def run(i):
        try:
            with client() as ws:
                for j in range(50):
                    msg = f"{i}:{j}:" + "z" * (j * 97)
                    ws.send(msg)
                    assert ws.recv(timeout=TIMEOUT) == msg
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors


for check in (check_echo, check_fragments, check_pings, check_close_codes,
              check_subprotocols, check_concurrent):
    check()
    print("ok", check.__name__)
