#!/usr/bin/env python3
"""A real TLS client (Python's ssl, OpenSSL, through a MemoryBIO) whose ClientHello goes
to lwsd one byte per write, 2 ms apart; the rest of the handshake and a GET / over the
established session must then work. The certificate is not verified (lwsd -s).

Usage: tls_split_hello.py PORT. Exit 0 on success.
Run by tests/tls_hostile.rs (client_hello_split_byte_by_byte).
"""
import socket
import ssl
import sys
import time

PORT = int(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ctx = ssl._create_unverified_context()
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")

first = True
deadline = time.time() + 20
while True:
    assert time.time() < deadline, "handshake did not complete"
    try:
        tls.do_handshake()
        done = True
    except ssl.SSLWantReadError:
        done = False
    data = out.read()
    if data and first:
        assert data[0] == 22 and data[5] == 1, "a ClientHello"
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(0.002)
        print(f"sent the {len(data)}-byte ClientHello one byte at a time")
        first = False
    elif data:
        sock.sendall(data)
    if done:
        break
    got = sock.recv(65536)
    assert got, "the server closed during the handshake"
    inc.write(got)

print("handshake done:", tls.version(), tls.cipher()[0])
tls.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
sock.sendall(out.read())
answer = b""
while True:
    try:
        chunk = tls.read(65536)
        if not chunk:
            break
        answer += chunk
    except ssl.SSLWantReadError:
        got = sock.recv(65536)
        if not got:
            break
        inc.write(got)
    except ssl.SSLZeroReturnError:
        break
assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
assert b"lwsd test server" in answer
print("ok GET / over the split-hello session")
