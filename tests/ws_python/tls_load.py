#!/usr/bin/env python3
"""TLS keep-alive load for the kill -9 test: N HTTPS connections (Python's `ssl`,
certificate not verified: lwsd -s), each doing GET / in a loop from its own thread.

Protocol on stdout/stdin (one line each):
- prints `port P` for each connection once its first GET succeeded, then `ready`;
- on `mark` prints `mark P COUNT` per connection (requests answered so far), then `end`;
- on `stop` stops the load and prints `ok P COUNT` or `failed P COUNT` per connection
  (failed: a request failed or the connection closed; COUNT: answered before that),
  then `end`, and exits.
A failed connection is not reopened: the test asks which connections a worker's death
took. Every request is bounded (10 s); the load stops by itself after 60 s.

Usage: tls_load.py PORT N. Run by tests/tls_serving.rs
(killed_worker_under_tls_load_loses_only_its_connections).
"""
import http.client
import ssl
import sys
import threading
import time

PORT, N = int(sys.argv[1]), int(sys.argv[2])
CTX = ssl._create_unverified_context()
stop = threading.Event()
lock = threading.Lock()
counts, failed, ports = [0] * N, [False] * N, [0] * N
ready = threading.Barrier(N + 1)


def run(i):
    conn = http.client.HTTPSConnection("127.0.0.1", PORT, timeout=10, context=CTX)
    conn.connect()
    ports[i] = conn.sock.getsockname()[1]
    first = True
    deadline = time.time() + 60
    while not stop.is_set() and time.time() < deadline:
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200 and len(body) > 0
        except Exception:
            ok = False
        if not ok:
            with lock:
                failed[i] = True
            break
        with lock:
            counts[i] += 1
        if first:
            first = False
            ready.wait(30)
    if first:
        ready.wait(30)
    conn.close()


threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(N)]
for t in threads:
    t.start()
ready.wait(30)
for p in ports:
    print("port", p)
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "mark":
        with lock:
            for p, c in zip(ports, counts):
                print("mark", p, c)
        print("end", flush=True)
    elif cmd == "stop":
        stop.set()
        for t in threads:
            t.join(15)
        with lock:
            for p, c, f in zip(ports, counts, failed):
                print("failed" if f else "ok", p, c)
        print("end", flush=True)
        break
