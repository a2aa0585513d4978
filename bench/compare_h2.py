#!/usr/bin/env python3
"""Side-by-side HTTP/2 benchmark (issue 11): lwsd -j 1 against h2o 2.2.5 (Debian's h2o,
`num-threads: 1`) and nginx 1.22 (one worker, HTTP/2 on), in one sitting, rounds
interleaved (every server once per row per round, the order turned each round), medians
with the spread, and each lwsd figure as a ratio to the references of the same round.

Figure: server CPU per request, utime+stime of every server process (lwsd's supervisor
and worker; nginx's master and worker; h2o, its neverbleed key process and its
backtrace helper) from
/proc/PID/stat before and after each run, divided by the requests h2load completed
(shared/anchors.md). Servers run on core 0 (`taskset -c 0`; lwsd's worker pins itself
to the first core of the set it was started with), the client on core 1.

Rows (`h2load -n {requests} -c 100 -m 10 -t 1`, a fresh server for each run):
  h2c-1b  h2c with prior knowledge, a 1-byte file
  h2c-7k  the same, the 7,205-byte test.html
  tls-1b  h2 over TLS (ALPN h2; TLS 1.3, ECDSA P-256 certificate made with openssl)
  tls-7k  the same, 7,205 bytes
The 100 connection set-ups (and, over TLS, 100 full handshakes) are in the figure:
~1-2 % of it at 1,000,000 requests. Zero errors are required: a run with any failed,
errored or timed-out request, a status other than 2xx, fewer successes than asked, or
another application protocol than h2 / h2c (h2load falls back to HTTP/1.1 over TLS
when the server's ALPN picks it) is reported with h2load's error lines, marked ⚠ in
the table, and the script exits 1.
Before the first round each server is probed (`h2load -n 10 -c 1`) on each transport:
a reference that fails the probe stops the script; lwsd failing it (HTTP/2 not there
yet: 505 to the h2c preface, ALPN without h2) leaves its column as "no h2 yet".

Idle memory (`--tests idle`): RSS of all the server's processes, on a fresh server,
before and after opening {idle} idle h2 connections (two client processes of half each;
the second half is also reported alone), over h2c and TLS. Client: this script's own
`hold` mode (asyncio; the connection preface, an empty SETTINGS, one GET /one with
END_STREAM, waits for its answer and ACKs the server's SETTINGS, then holds, answering
PINGs, until told to stop). RSS is user-space memory only: the kernel's socket buffers
are not in it and are the same for every server.

Server set-up:
  lwsd   `lwsd -p P -j 1 -r ROOT --metrics-addr off -d 1 --keepalive-timeout 600
         [-s -C CERT -K KEY]`
  h2o    `num-threads: 1`, `max-connections: 20000`, `http2-idle-timeout: 600`, a plain
         listener (h2c: prior knowledge and Upgrade) or a TLS one (`ocsp-update-interval: 0`),
         `file.dir: ROOT`; no access log.
  nginx  one worker, `listen 127.0.0.1:P http2` (1.22 predates `http2 on;`, added in
         1.25.1; on a plain listener this is h2c with prior knowledge only) or
         `listen 127.0.0.1:P ssl http2`, `keepalive_requests 1000000` (1.19.7+ counts
         h2 requests with it), `keepalive_timeout 600s`, sendfile on for h2c and off
         for TLS (no kTLS here), access log off, open_file_cache on.

`--profile ROW` (after the rounds) runs lwsd once more on that row with
`perf record -g -p WORKER_PID` and prints where the worker's time goes (by symbol and
by shared object; the perf data file is kept).

Usage: bench/compare_h2.py [--lwsd target/release/lwsd] [--rounds 3] [--requests 1000000]
       [--quick] [--only lwsd,h2o,nginx] [--rows h2c-1b,h2c-7k,tls-1b,tls-7k]
       [--tests load,idle] [--idle 2000] [--idle-rounds 1] [--server-cpu 0] [--client-cpu 1]
       [--profile tls-1b] [--json out.json]
Needs: h2load (nghttp2-client), h2o, nginx, openssl (Debian packages); perf for
--profile; lwsd built (`cargo build --release -p lwsd`).
"""

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from compare_http import LWS_RES
from compare_tls import make_certs
from procstat import CLK_TCK, Server, cpu_seconds, rss_bytes

FD_LIMIT = 20000
BIG = "test.html"  # 7,205 bytes
ONE = "one"  # 1 byte
ROWS = {  # row -> (tls, file)
    "h2c-1b": (False, ONE),
    "h2c-7k": (False, BIG),
    "tls-1b": (True, ONE),
    "tls-7k": (True, BIG),
}
SERVERS = ("lwsd", "h2o", "nginx")
REFS = ("h2o", "nginx")
PORTS = {"lwsd": 7881, "h2o": 7882, "nginx": 7883}
IDLE_PORTS = {"lwsd": 7884, "h2o": 7885, "nginx": 7886}
CONNS, STREAMS = 100, 10  # h2load -c, -m


# ---------------------------------------------------------------- servers

def nginx_conf(tmp, root, port, tls):
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    ssl_lines = ""
    if tls:
        ssl_lines = f"""
    ssl_certificate {tls[0]};
    ssl_certificate_key {tls[1]};
    ssl_protocols TLSv1.2 TLSv1.3;"""
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
master_process on;
worker_rlimit_nofile {FD_LIMIT};
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}.err crit;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile {'off' if tls else 'on'};
  tcp_nopush off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  types {{ text/html html; }}
  server {{
    listen 127.0.0.1:{port}{' ssl' if tls else ''} http2 backlog=4096;
    root {root};{ssl_lines}
  }}
}}
""")
    return ["nginx", "-c", conf]


def h2o_conf(tmp, root, port, tls):
    """One thread. h2o started as root runs as nobody (and forks its neverbleed key
    process before that, and a backtrace helper): no pid file in the root-owned tmp."""
    conf = os.path.join(tmp, f"h2o-{port}.conf")
    ssl_lines = ""
    if tls:
        ssl_lines = f"""
  ssl:
    certificate-file: {tls[0]}
    key-file: {tls[1]}
    ocsp-update-interval: 0"""
    with open(conf, "w") as f:
        f.write(f"""num-threads: 1
max-connections: {FD_LIMIT}
http2-idle-timeout: 600
error-log: {tmp}/h2o-{port}.err
listen:
  host: 127.0.0.1
  port: {port}{ssl_lines}
hosts:
  "localhost":
    paths:
      /:
        file.dir: {root}
""")
    return ["h2o", "-c", conf]


def lwsd_argv(a, port, root, tls):
    argv = [a.lwsd, "-p", str(port), "-j", "1", "-r", root, "--metrics-addr", "off", "-d", "1",
            "--keepalive-timeout", "600"]
    if tls:
        argv += ["-s", "-C", tls[0], "-K", tls[1]]
    return argv


def start(a, name, tmp, root, port, tls, fd_limit=None):
    """`name` on `port` (TLS with the (cert, key) pair `tls`), pinned to the server core."""
    argv = {"lwsd": lambda: lwsd_argv(a, port, root, tls),
            "h2o": lambda: h2o_conf(tmp, root, port, tls),
            "nginx": lambda: nginx_conf(tmp, root, port, tls)}[name]()
    return Server(name, ["taskset", "-c", str(a.server_cpu), *argv], port, fd_limit=fd_limit)


def worker_pid(srv):
    """lwsd's worker: the supervisor's (only, with -j 1) child."""
    pids = srv.pids()
    return pids[1] if len(pids) > 1 else pids[0]


# ---------------------------------------------------------------- h2load

def h2load_cmd(a, port, tls, f, n, conns=CONNS, streams=STREAMS):
    scheme = "https" if tls else "http"
    return ["taskset", "-c", str(a.client_cpu), "h2load", "-n", str(n), "-c", str(conns), "-m", str(streams),
            "-t", "1", f"{scheme}://127.0.0.1:{port}/{f}"]


def run_h2load(cmd, n):
    """Runs h2load (bounded: it must manage 5,000 requests a second at least); returns
    its output, or None and the reason when it did not finish."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(120, n / 5000))
        return r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return out + f"\n(killed: h2load still running after {e.timeout:.0f} s)"


NORMAL = re.compile(r"^(progress: |starting benchmark|spawning thread|finished in |traffic: |TLS Protocol: |"
                    r"Cipher: |Server Temp Key: |Application protocol: |\s+min\s+max|time for |time to 1st|"
                    r"req/s\s+:|$)")


def check_h2load(out, n, tls):
    """(succeeded, problems): problems lists what makes the run not clean, with h2load's
    error lines (everything it printed outside its usual report)."""
    problems = []
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if not m:
        return 0, ["no h2load summary"] + [l for l in out.splitlines() if not NORMAL.match(l)][-20:]
    total, _, done, ok, failed, errored, timeout = map(int, m.groups())
    if ok != n or failed or errored or timeout:
        problems.append(m.group(0))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not m or int(m.group(1)) != n:
        problems.append(m.group(0) if m else "no status codes line")
    proto = re.search(r"Application protocol: (\S+)", out)
    want = "h2" if tls else "h2c"
    if not proto or proto.group(1) != want:
        problems.append(f"application protocol {proto.group(1) if proto else 'none'}, not {want}")
    if problems:
        extra = [l for l in out.splitlines() if not NORMAL.match(l) and not l.startswith(("requests:", "status codes:"))]
        problems += extra[-20:]
    return ok, problems


def probe(a, name, tmp, root, tls, certs):
    """None when `name` serves h2 (h2c / ALPN h2) on this transport, else why not."""
    port = PORTS[name]
    try:
        srv = start(a, name, tmp, root, port, certs if tls else None)
    except (RuntimeError, OSError) as e:
        return f"does not start ({e})"
    try:
        out = run_h2load(h2load_cmd(a, port, tls, ONE, 10, 1, 1), 10)
    finally:
        srv.stop()
    ok, problems = check_h2load(out, 10, tls)
    if not problems:
        return None
    if not tls:
        problems.insert(0, f"answers the h2c preface with {first_answer(a, name, tmp, root)!r}")
    return "; ".join(problems[:3])


def first_answer(a, name, tmp, root):
    """The first line a fresh `name` sends back to the h2c connection preface (an h1
    server: its status line)."""
    srv = start(a, name, tmp, root, PORTS[name], None)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), 5) as s:
            s.sendall(PREFACE + frame(SETTINGS, 0, 0))
            got = b""
            while b"\n" not in got and len(got) < 200:
                chunk = s.recv(200)
                if not chunk:
                    break
                got += chunk
        return got.split(b"\r\n")[0].decode(errors="replace") if got else "nothing (closed)"
    except OSError as e:
        return f"nothing ({e})"
    finally:
        srv.stop()


def load_round(a, rnd, tmp, root, certs, servers, skip, results, cmds):
    order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
    for row in a.rows:
        tls, f = ROWS[row]
        for name in order:
            if (name, tls) in skip:
                continue
            port = PORTS[name]
            srv = start(a, name, tmp, root, port, certs if tls else None)
            try:
                cmd = h2load_cmd(a, port, tls, f, a.requests)
                pids = srv.pids()
                c0, t0 = cpu_seconds(pids), time.time()
                out = run_h2load(cmd, a.requests)
                c1, t1 = cpu_seconds(set(pids) | set(srv.pids())), time.time()
            finally:
                srv.stop()
            ok, problems = check_h2load(out, a.requests, tls)
            us = (c1 - c0) * 1e6 / ok if ok else float("nan")
            if tls:
                got = [re.search(rf"{k}: (.*)", out) for k in ("TLS Protocol", "Cipher", "Server Temp Key")]
                cmds.setdefault(f"negotiated|{name}", ", ".join(m.group(1).strip() if m else "?" for m in got))
            results.setdefault(f"{row}|{name}", []).append(
                {"round": rnd, "us": us, "cpu": c1 - c0, "units": ok, "rps": ok / (t1 - t0),
                 "ok": not problems, "problems": problems})
            cmds.setdefault("h2load " + ("tls" if tls else "h2c"),
                            " ".join(cmd).replace(str(port), "PORT").replace(f"/{f}", "/FILE"))
            print(f"{row:7} {name:6} {us:8.2f} us/req  {ok / (t1 - t0):9.0f} req/s  {ok} ok"
                  + ("" if not problems else "  ERRORS:\n    " + "\n    ".join(problems)), file=sys.stderr)


# ---------------------------------------------------------------- idle h2 connections

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(typ, flags, sid, payload=b""):
    """RFC 9113 4.1: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def request_block(tls, path, authority="localhost"):
    """HPACK (RFC 7541) without Huffman or indexing: :method GET (static 2), :scheme
    http/https (6/7), then :path and :authority as literals without indexing whose names
    are static entries 4 and 1 (6.2.2; lengths < 127 fit the 7-bit prefix)."""
    lit = lambda idx, v: bytes([idx, len(v)]) + v.encode()  # noqa: E731
    return bytes([0x82, 0x87 if tls else 0x86]) + lit(4, path) + lit(1, authority)


async def read_frame(r):
    head = await r.readexactly(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, await r.readexactly(length)


def status_of(flags, payload):
    """The :status of a response HEADERS block when it is a static-table index (0x88 =
    200 ... 0x8e = 500, RFC 7541 appendix A), else None."""
    i = 0
    if flags & PADDED:
        i += 1
    if flags & PRIORITY:
        i += 5
    code = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}
    return code.get(payload[i]) if i < len(payload) else None


async def hold_main(port, n, tls, rate, timeout):
    """Opens `n` h2 connections to 127.0.0.1:port, at most `rate` a second and 64 set-ups
    in flight: preface + SETTINGS + GET /one, answer read; prints `ready OK FAILED
    ERRORS`, then holds them until stdin closes (or `timeout` s), answering PINGs and
    SETTINGS; prints how many the server closed meanwhile."""
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # loopback benchmark: the script's own test cert
        ctx.set_alpn_protocols(["h2"])
    hello = PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(tls, f"/{ONE}"))
    gate = asyncio.Semaphore(64)
    held, errors, closed = [], {}, [0]

    def answer(w, typ, flags, payload):
        if typ == SETTINGS and not flags & ACK:
            w.write(frame(SETTINGS, ACK, 0))
        elif typ == PING and not flags & ACK:
            w.write(frame(PING, ACK, 0, payload))
        elif typ == GOAWAY:
            raise RuntimeError(f"GOAWAY code {int.from_bytes(payload[4:8], 'big')}")

    async def keep(r, w):
        try:
            while True:
                typ, flags, _, payload = await read_frame(r)
                answer(w, typ, flags, payload)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, RuntimeError):
            pass
        closed[0] += 1

    async def one():
        async with gate:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if tls else None), 30)
                if tls:
                    alpn = w.get_extra_info("ssl_object").selected_alpn_protocol()
                    if alpn != "h2":
                        raise RuntimeError(f"ALPN {alpn}, not h2")
                w.write(hello)
                status = None
                while True:
                    typ, flags, sid, payload = await asyncio.wait_for(read_frame(r), 30)
                    answer(w, typ, flags, payload)
                    if typ == RST_STREAM and sid == 1:
                        raise RuntimeError(f"RST_STREAM code {int.from_bytes(payload[:4], 'big')}")
                    if typ == HEADERS and sid == 1 and status is None:
                        status = status_of(flags, payload)
                        if status != 200:
                            raise RuntimeError(f"status {status} (first field byte {payload[:1].hex()})")
                    if typ in (HEADERS, DATA) and sid == 1 and flags & END_STREAM:
                        break
                held.append((w, asyncio.ensure_future(keep(r, w))))
                return True
            except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError) as e:
                k = type(e).__name__ + ": " + str(e)[:80]
                errors[k] = errors.get(k, 0) + 1
                return False

    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(one()))
        if i % 50 == 49:
            await asyncio.sleep(50 / rate)
    res = await asyncio.gather(*tasks)
    print(f"ready {sum(res)} {n - sum(res)} {json.dumps(errors)}", flush=True)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), timeout)
    print(f"closed-by-server {closed[0]}", flush=True)
    os._exit(0)  # the kernel closes the sockets


class Holder:
    """One `hold` client process, on the client core."""

    def __init__(self, a, port, n, tls):
        self.proc = subprocess.Popen(
            ["sh", "-c", f"ulimit -n {FD_LIMIT} && exec taskset -c {a.client_cpu} {sys.executable} "
                         f"{os.path.abspath(__file__)} hold {port} {n} {int(tls)} {a.ramp}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wait_ready(self, timeout):
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            raise RuntimeError(f"hold client not ready in {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"hold client: {line!r}")
        _, ok, failed, errs = line.split(" ", 3)
        return int(ok), int(failed), json.loads(errs)

    def finish(self):
        try:
            self.proc.stdin.close()
            out = self.proc.stdout.read()
            self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            out = ""
        m = re.search(r"closed-by-server (\d+)", out)
        return int(m.group(1)) if m else None


def idle_one(a, name, tmp, root, tls):
    srv = start(a, name, tmp, root, IDLE_PORTS[name], tls, fd_limit=FD_LIMIT)
    holders = []
    try:
        time.sleep(0.5)
        before = rss_bytes(srv.pids())
        rss, est, failed, errs = [], [], 0, {}
        for half in (a.idle // 2, a.idle - a.idle // 2):
            h = Holder(a, srv.port, half, bool(tls))
            holders.append(h)
            ok, bad, e = h.wait_ready(half / a.ramp + 120)
            est.append(ok)
            failed += bad
            for k, v in e.items():
                errs[k] = errs.get(k, 0) + v
            time.sleep(1.0)  # let the server settle
            rss.append(rss_bytes(srv.pids()))
        closed = [h.finish() for h in holders]
        total = sum(est)
        r = {"conns": total, "failed": failed, "errors": errs, "closed_by_server": closed,
             "rss_before": before, "rss_mid": rss[0], "rss_after": rss[1],
             "bytes_per_conn": (rss[1] - before) / total if total else float("nan"),
             "marginal_bytes_per_conn": (rss[1] - rss[0]) / est[1] if est[1] else float("nan"),
             "ok": failed == 0 and not any(closed),
             "problems": [f"{v} x {k}" for k, v in errs.items()] + ([f"closed by the server while held: {closed}"]
                                                                    if any(closed) else [])}
        print(f"idle {name:6} {'tls' if tls else 'h2c'} {total} conns ({failed} failed {errs}), RSS "
              f"{before / 1e6:.1f} -> {rss[0] / 1e6:.1f} -> {rss[1] / 1e6:.1f} MB: {r['bytes_per_conn']:.0f} B/conn, "
              f"second half {r['marginal_bytes_per_conn']:.0f} B/conn; closed by the server while held: {closed}",
              file=sys.stderr)
        return r
    finally:
        for h in holders:
            if h.proc.poll() is None:
                h.finish()
        srv.stop()


def idle_round(a, rnd, tmp, root, certs, servers, skip, results):
    order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
    for tls in (False, True):
        for name in order:
            if (name, tls) in skip:
                continue
            try:
                r = idle_one(a, name, tmp, root, certs if tls else None)
            except (RuntimeError, OSError) as e:
                print(f"# idle {name} {'tls' if tls else 'h2c'}: not run ({e})", file=sys.stderr)
                results.setdefault(f"idle-{'tls' if tls else 'h2c'}|{name}", []).append(
                    {"round": rnd, "ok": False, "problems": [str(e)]})
                continue
            r["round"] = rnd
            results.setdefault(f"idle-{'tls' if tls else 'h2c'}|{name}", []).append(r)


# ---------------------------------------------------------------- profile

def profile(a, tmp, root, certs, row):
    """lwsd on `row` once more, its worker under `perf record -g`; prints the top of
    the profile by symbol and by shared object."""
    if not shutil.which("perf"):
        print("# profile: perf is missing (apt-get install linux-perf)", file=sys.stderr)
        return
    tls, f = ROWS[row]
    data = os.path.abspath(a.profile_out or os.path.join(tempfile.gettempdir(), f"lwsd-h2-{row}.perf.data"))
    srv = start(a, "lwsd", tmp, root, PORTS["lwsd"], certs if tls else None)
    try:
        wpid = worker_pid(srv)
        perf = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p", str(wpid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        out = run_h2load(h2load_cmd(a, PORTS["lwsd"], tls, f, a.requests), a.requests)
        perf.send_signal(signal.SIGINT)
        try:
            perf.wait(timeout=60)
        except subprocess.TimeoutExpired:
            perf.kill()
    finally:
        srv.stop()
    ok, problems = check_h2load(out, a.requests, tls)
    print(f"\n### perf: lwsd worker on {row} ({ok} requests{', ERRORS' if problems else ''}), data in {data}\n")
    for sort, limit in (("dso", 0.5), ("sym", 0.7)):
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort", sort,
                              "--percent-limit", str(limit), "-g", "none"],
                             capture_output=True, text=True, timeout=600).stdout
        lines = [l for l in rep.splitlines() if l.strip() and not l.startswith("#")]
        print("```\n" + "\n".join(lines[:45]) + "\n```")


# ---------------------------------------------------------------- report

def med(runs, field="us"):
    v = [r[field] for r in runs if field in r and r[field] == r[field]]  # drop NaN
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def fmt(runs, field="us", digits=2):
    m, lo, hi = med(runs, field)
    if m is None:
        return "⚠ failed" if runs else "-"
    s = f"{m:,.{digits}f}"
    if len(runs) > 1:
        s += f" ({lo:,.{digits}f}–{hi:,.{digits}f})"
    if not all(r.get("ok", True) for r in runs):
        s += " ⚠"
    return s


def paired(xs, ys, field="us"):
    """x / y per round (both ran in that round, back to back): the median ratio and its
    spread, as text; None when no round has both."""
    by = {y["round"]: y[field] for y in ys or [] if y.get(field) and y[field] == y[field]}
    r = [x[field] / by[x["round"]] for x in xs or [] if x["round"] in by and x.get(field) == x.get(field)
         and field in x]
    if not r:
        return None
    s = f"{statistics.median(r):.2f}"
    return s + (f" ({min(r):.2f}–{max(r):.2f})" if len(r) > 1 else ""), statistics.median(r)


def report(a, servers, skip, results, cmds):
    def cell(name, key, field, digits, tls):
        if name not in servers:
            return "-"
        if (name, tls) in skip:
            return "no h2 yet" if name == "lwsd" else "n/a"
        return fmt(results.get(f"{key}|{name}", []), field, digits)

    def ratio(x, y, key, field):
        p = paired(results.get(f"{key}|{x}"), results.get(f"{key}|{y}"), field)
        return p[0] if p else "-"

    verdict = []
    if any(k.split("|")[0] in ROWS for k in results) or any(n for n, _ in skip):
        print(f"\n### HTTP/2: server CPU per request (µs), `h2load -n {a.requests:,} -c {CONNS} -m {STREAMS}`, "
              f"median of {a.rounds} round(s) (min–max); ratios: median of the per-round ratios (min–max)\n")
        tick = 1e6 / CLK_TCK / a.requests
        if tick > 0.02:
            print(f"(/proc counts CPU in {1000 / CLK_TCK:.0f} ms ticks: ±{tick:.2f} µs per request at this -n; "
                  "a smoke run, not a figure)\n")
        print("| row | lwsd -j 1 | h2o (1 thread) | nginx (1 worker) | lwsd / h2o | lwsd / nginx | h2o / nginx "
              "| req/s (lwsd, h2o, nginx) |")
        print("|---|---|---|---|---|---|---|---|")
        for row in a.rows:
            tls = ROWS[row][0]
            rps = ", ".join(f"{m:,.0f}" if (m := med(results.get(f"{row}|{n}", []), "rps")[0]) else "-"
                            for n in SERVERS)
            print(f"| {row} | " + " | ".join(cell(n, row, "us", 2, tls) for n in SERVERS) + " | "
                  + " | ".join(ratio(x, y, row, "us") for x, y in (("lwsd", "h2o"), ("lwsd", "nginx"),
                                                                     ("h2o", "nginx"))) + f" | {rps} |")
            p = paired(results.get(f"{row}|lwsd"), results.get(f"{row}|h2o"))
            if p:
                verdict.append(f"{row}: lwsd / h2o {p[1]:.2f} ({'ahead' if p[1] < 1 else 'NOT ahead'})")
    idle = [k for k in results if k.startswith("idle-")]
    if idle:
        print(f"\n### Idle h2 connections: server RSS per connection (bytes), {a.idle:,} on a fresh server; "
              f"in brackets the second {a.idle - a.idle // 2:,} alone\n")
        print("| transport | lwsd -j 1 | h2o (1 thread) | nginx (1 worker) | lwsd / h2o | lwsd / nginx |")
        print("|---|---|---|---|---|---|")
        for tls in (False, True):
            key = f"idle-{'tls' if tls else 'h2c'}"
            cells = []
            for n in SERVERS:
                c = cell(n, key, "bytes_per_conn", 0, tls)
                runs = results.get(f"{key}|{n}", [])
                if runs and med(runs, "marginal_bytes_per_conn")[0] is not None:
                    c += f" [{med(runs, 'marginal_bytes_per_conn')[0]:,.0f}]"
                cells.append(c)
            print(f"| {'TLS (ALPN h2)' if tls else 'h2c'} | " + " | ".join(cells) + " | "
                  + " | ".join(ratio("lwsd", y, key, "bytes_per_conn") for y in REFS) + " |")
            m = med(results.get(f"{key}|lwsd", []), "bytes_per_conn")[0]
            if m is not None:
                verdict.append(f"idle {'TLS' if tls else 'h2c'}: lwsd {m:,.0f} B "
                               f"({'within' if m <= 4096 else 'OVER'} 4 KiB)")
    if skip:
        print()
    for (n, tls), why in skip.items():
        print(f"- {n}, {'TLS' if tls else 'h2c'}: not run: {why}")
    if verdict:
        print("\nGoal (issue 11): " + "; ".join(verdict))
    neg = [f"{k.split('|')[1]}: {v}" for k, v in sorted(cmds.items()) if k.startswith("negotiated|")]
    if neg:
        print("\nTLS negotiated with h2load (OpenSSL's client): " + "; ".join(neg))
    print(f"\nCommands (servers on core {a.server_cpu}, clients on core {a.client_cpu}):")
    for k in sorted(cmds):
        if not k.startswith("negotiated|"):
            print(f"- `{cmds[k]}`")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        port, n, tls, rate = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", float(sys.argv[5])
        asyncio.run(hold_main(port, n, tls, rate, 900))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lwsd", default="target/release/lwsd")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the load rows")
    ap.add_argument("--requests", type=int, default=1000000, help="h2load -n per run")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20,000 requests, 1 round, 200 idle connections")
    ap.add_argument("--only", default=",".join(SERVERS), help="servers to run")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--tests", default="load,idle")
    ap.add_argument("--idle", type=int, default=2000, help="idle connections for the memory figure")
    ap.add_argument("--idle-rounds", type=int, default=1)
    ap.add_argument("--ramp", type=int, default=2000, help="idle connections opened per second")
    ap.add_argument("--server-cpu", type=int, default=0, help="core the servers run on")
    ap.add_argument("--client-cpu", type=int, default=1, help="core h2load and the idle client run on")
    ap.add_argument("--profile", choices=list(ROWS), help="profile lwsd's worker on this row with perf")
    ap.add_argument("--profile-out", help="perf data file (default /tmp/lwsd-h2-ROW.perf.data)")
    ap.add_argument("--json", help="write all figures here")
    a = ap.parse_args()
    if a.quick:
        a.requests, a.rounds, a.idle = 20000, 1, 200
    servers = [s for s in a.only.split(",") if s]
    a.rows = [r for r in a.rows.split(",") if r]
    tests = [t for t in a.tests.split(",") if t]
    for what, got, known in (("server", servers, SERVERS), ("row", a.rows, ROWS), ("test", tests, ("load", "idle"))):
        unknown = set(got) - set(known)
        if unknown:
            raise SystemExit(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    for tool in ("h2load", "openssl", "taskset", *(s for s in servers if s != "lwsd")):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing (scripts/install-deps.sh)")
    if "lwsd" in servers and not os.path.exists(a.lwsd):
        raise SystemExit(f"{a.lwsd} missing: cargo build --release -p lwsd")

    tmp = tempfile.mkdtemp(prefix="lwsd-h2bench-")
    os.chmod(tmp, 0o755)  # nginx's worker and h2o run as nobody and read the root
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    shutil.copy(os.path.join(LWS_RES, BIG), root)
    with open(os.path.join(root, ONE), "w") as f:
        f.write("x")
    certs = make_certs(tmp)["ecdsa"]
    results, cmds, skip = {}, {}, {}
    t0 = time.time()
    try:
        transports = sorted({ROWS[r][0] for r in a.rows} | ({False, True} if "idle" in tests else set()))
        for name in servers:
            for tls in transports:
                why = probe(a, name, tmp, root, tls, certs)
                if why is None:
                    continue
                if name != "lwsd":
                    raise SystemExit(f"{name} fails the h2 probe over {'TLS' if tls else 'h2c'}: {why}")
                skip[(name, tls)] = why
                print(f"# lwsd: no h2 yet over {'TLS' if tls else 'h2c'} ({why})", file=sys.stderr)
        for rnd in range(a.rounds):
            print(f"# round {rnd + 1} of {a.rounds}", file=sys.stderr)
            if "load" in tests:
                load_round(a, rnd, tmp, root, certs, servers, skip, results, cmds)
            if "idle" in tests and rnd < a.idle_rounds:
                idle_round(a, rnd, tmp, root, certs, servers, skip, results)
        print(f"# {time.time() - t0:.0f} s", file=sys.stderr)
        report(a, servers, skip, results, cmds)
        if a.profile:
            if ("lwsd", ROWS[a.profile][0]) in skip:
                print("# profile: lwsd has no h2 over this transport yet", file=sys.stderr)
            else:
                profile(a, tmp, root, certs, a.profile)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "commands": cmds, "not_run": {f"{n} {'tls' if t else 'h2c'}": w
                                                                         for (n, t), w in skip.items()}}, f, indent=2)
    bad = [(k, r.get("problems")) for k, runs in results.items() for r in runs if not r.get("ok", True)]
    if bad:
        print("\nFAILED: runs that were not clean (errors, or idle connections refused / closed):", file=sys.stderr)
        for k, p in bad:
            print(f"  {k}: " + "\n    ".join(p or ["connections failed or closed by the server"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
