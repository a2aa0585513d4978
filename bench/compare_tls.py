#!/usr/bin/env python3
"""Side-by-side TLS benchmark (issue 10): lwsd -s (rustls, ring) against nginx 1.22
(OpenSSL 3.0, one worker) and Debian's libwebsockets-test-server -s, in one sitting,
rounds interleaved (every server once per round, A B A B), medians with the spread.

Figure: server CPU per unit, utime+stime of every server process (lwsd's supervisor and
worker, nginx's master and worker) from /proc/PID/stat before and after each run,
divided by the units the client completed (shared/anchors.md).

Certificates: an RSA-2048 and an ECDSA P-256 self-signed certificate made with openssl
in a temp dir; lwsd and nginx get the same files.

Tests (all against 127.0.0.1 ports this script starts; each bounded in time or count):
  handshake  `openssl s_time -connect 127.0.0.1:P -new -time {secs}` (full handshakes)
             and `-reuse` (resumptions), TLS 1.3 and 1.2, RSA and ECDSA: server CPU per
             handshake. nginx: `ssl_session_cache off; ssl_session_tickets off` for the
             full rows, `ssl_session_cache off; ssl_session_tickets on` (stateless
             tickets sealed with the key nginx makes at start, shared by its one worker)
             for the resumed rows. lwsd as it ships (tickets always on: a full handshake
             there also seals and sends a ticket, which nginx's full rows do not).
             Resumption is checked: s_time prints `r` per resumed connection.
  keepalive  `wrk -t1 -c100 -d{secs}s https://127.0.0.1:P/FILE`, a 1-byte and the 7,205-byte
             file, ECDSA certificate (the 100 handshakes of the start are in the figure:
             ~1 % of it); the same over plain http for lwsd and nginx as a reference.
             nginx runs sendfile off for https (it cannot sendfile through OpenSSL without
             kTLS, which this kernel lacks: no `tls` in tcp_available_ulp) and on for
             plain http.
  idle       idle memory per `wss://` connection: RSS of all server processes of a fresh
             server before and after opening {idle} idle lws-mirror-protocol connections
             (two client processes of half each, the second half also reported alone);
             lwsd over plain ws:// as the reference. Client: this script's own `hold` mode
             (asyncio + Python's ssl, no certificate verification: loopback only).
  floor      `target/release/lwsd-tls-provider` (bench/src/bin/tls_provider.rs): rustls
             with lwsd's TlsSession in memory, no sockets: the least a handshake costs.

Usage: bench/compare_tls.py [--lwsd target/release/lwsd] [--rounds 3] [--secs 5]
       [--tests handshake,keepalive,idle,floor] [--idle 10000] [--idle-rounds 1]
       [--protocols 1.3,1.2] [--json out.json]
Needs: openssl, wrk, nginx, libwebsockets-test-server (Debian packages); lwsd and
lwsd-tls-provider built (`cargo build --release -p lwsd -p lwsd-bench --bin lwsd-tls-provider`).
"""

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from compare_http import LWS_RES, parse_wrk
from procstat import Server, cpu_seconds, rss_bytes

FD_LIMIT = 20000
MIRROR = "lws-mirror-protocol"
BIG = "test.html"  # 7,205 bytes
ONE = "one"  # 1 byte
CERTS = ("rsa", "ecdsa")
WRK_CONNS = 100  # wrk -c: one full handshake each at the start


def make_certs(tmp):
    """RSA-2048 and ECDSA P-256 self-signed certificates for localhost / 127.0.0.1."""
    out = {}
    for kind, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                         ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])):
        crt, key = os.path.join(tmp, f"{kind}.crt"), os.path.join(tmp, f"{kind}.key")
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o644)  # nginx's worker (nobody) does not read it, the master does
        out[kind] = (crt, key)
    return out


def nginx_conf(tmp, root, port, tls=None, tickets=False, sendfile=False):
    """One worker; `tls` = (cert, key) for an https listener: session cache off, tickets
    as asked (OpenSSL's stateless tickets, sealed with a key nginx makes at start)."""
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    ssl_lines = ""
    if tls:
        ssl_lines = f"""
    ssl_certificate {tls[0]};
    ssl_certificate_key {tls[1]};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets {'on' if tickets else 'off'};"""
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
  sendfile {'on' if sendfile else 'off'};
  tcp_nopush off;
  keepalive_requests 1000000;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  types {{ text/html html; }}
  server {{
    listen 127.0.0.1:{port}{' ssl' if tls else ''} backlog=4096;
    root {root};{ssl_lines}
  }}
}}
""")
    return ["nginx", "-c", conf]


def lwsd_argv(a, port, root=None, tls=None):
    argv = [a.lwsd, "-p", str(port), "-j", "1", "--metrics-addr", "off", "-d", "1"]
    if root:
        argv += ["-r", root]
    if tls:
        argv += ["-s", "-C", tls[0], "-K", tls[1]]
    return argv


def negotiated(port, proto):
    """What an OpenSSL client gets from the server: protocol, suite, key exchange."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", f"-tls{proto.replace('.', '_')}"],
                       input="", capture_output=True, text=True, timeout=10)
    got = {}
    for line in (r.stdout + r.stderr).splitlines():
        for k in ("Protocol version", "Ciphersuite", "Server Temp Key", "Peer signature type"):
            if line.startswith(k + ":"):
                got[k] = line.split(":", 1)[1].strip()
    return ", ".join(got.get(k, "?") for k in ("Protocol version", "Ciphersuite", "Server Temp Key"))


def s_time(port, proto, mode, secs):
    """`openssl s_time` for `secs`: (connections, resumed, output)."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", f"-{mode}", "-time", str(secs), "-www", f"/{ONE}",
           f"-tls{proto.replace('.', '_')}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) connections in [\d.]+s", out)
    conns = int(m.group(1)) if m else 0
    # One character per connection on the progress line(s): `r` when resumed.
    progress = "".join(line for line in out.splitlines() if re.fullmatch(r"[*r123]+", line.strip() or "-"))
    return conns, progress.count("r"), " ".join(cmd)


def measured(srv, fn):
    """Runs fn(); returns (server CPU seconds, fn's result)."""
    pids = srv.pids()
    c0 = cpu_seconds(pids)
    res = fn()
    c1 = cpu_seconds(set(pids) | set(srv.pids()))
    return c1 - c0, res


# ---------------------------------------------------------------- handshakes

def handshake_round(a, tmp, root, certs, results, cmds):
    for cert in CERTS:
        for proto in a.protocols:
            for mode in ("new", "reuse"):
                variants = [
                    ("lwsd", lambda: Server("lwsd", lwsd_argv(a, 7861, root, certs[cert]), 7861)),
                    ("nginx", lambda: Server("nginx", nginx_conf(tmp, root, 7862, certs[cert], tickets=mode == "reuse"),
                                             7862)),
                ]
                for name, start in variants:
                    key = f"handshake {mode} TLS {proto} {cert}|{name}"
                    srv = start()
                    try:
                        if key not in cmds:
                            cmds[key] = negotiated(srv.port, proto)
                        cpu, (conns, resumed, cmd) = measured(srv, lambda: s_time(srv.port, proto, mode, a.secs))
                    finally:
                        srv.stop()
                    us = cpu * 1e6 / conns if conns else float("nan")
                    ok = conns > 0 and (mode == "new" or resumed >= conns - 1)
                    results.setdefault(key, []).append({"us": us, "units": conns, "resumed": resumed, "ok": ok})
                    cmds.setdefault("s_time", cmd.replace(str(srv.port), "PORT"))
                    print(f"{key:42} {us:9.1f} us/handshake  {conns} conns, {resumed} resumed"
                          f"{'' if ok else '  (NOT ALL RESUMED)'}", file=sys.stderr)


# ---------------------------------------------------------------- keep-alive

def keepalive_round(a, tmp, root, certs, results, cmds):
    ec = certs["ecdsa"]
    variants = [
        ("lwsd https", "https", lambda: Server("lwsd", lwsd_argv(a, 7863, root, ec), 7863)),
        ("nginx https", "https", lambda: Server("nginx", nginx_conf(tmp, root, 7864, ec, tickets=True), 7864)),
        ("lwsd http", "http", lambda: Server("lwsd", lwsd_argv(a, 7865, root), 7865)),
        ("nginx http (sendfile on)", "http",
         lambda: Server("nginx", nginx_conf(tmp, root, 7866, sendfile=True), 7866)),
    ]
    for f in (ONE, BIG):
        for name, scheme, start in variants:
            key = f"keepalive {f}|{name}"
            srv = start()
            try:
                cmd = ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{a.secs}s", f"{scheme}://127.0.0.1:{srv.port}/{f}"]
                cpu, out = measured(srv, lambda: subprocess.run(cmd, capture_output=True, text=True,
                                                                 timeout=a.secs + 60).stdout)
            finally:
                srv.stop()
            reqs, errs = parse_wrk(out)
            us = cpu * 1e6 / reqs if reqs else float("nan")
            results.setdefault(key, []).append({"us": us, "cpu": cpu, "units": reqs, "errors": errs, "ok": errs == 0,
                                                "https": scheme == "https"})
            cmds.setdefault(f"wrk {scheme}", " ".join(cmd).replace(str(srv.port), "PORT"))
            print(f"{key:42} {us:9.2f} us/req  {reqs / a.secs:9.0f} req/s  {errs} errors", file=sys.stderr)


# ---------------------------------------------------------------- idle wss

async def hold_main(port, n, tls, rate, timeout):
    """Opens `n` WebSocket connections (lws-mirror-protocol) to 127.0.0.1:port, at most
    `rate` a second and 64 handshakes in flight, prints `ready OK FAILED`, then holds
    them until stdin closes (or `timeout` s), reading and discarding what arrives."""
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # loopback benchmark: the server's own test cert
        ctx.set_alpn_protocols(["http/1.1"])
    req = ("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: {MIRROR}\r\n\r\n").encode()
    gate = asyncio.Semaphore(64)
    held, errors, closed = [], {}, [0]

    async def drain(r):
        try:
            while await r.read(4096):
                pass
        except (OSError, ssl.SSLError):
            pass
        closed[0] += 1

    async def one():
        async with gate:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if tls else None), 30)
                w.write(req)
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
                if not head.startswith(b"HTTP/1.1 101"):
                    raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace"))
                held.append((w, asyncio.ensure_future(drain(r))))
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
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    await asyncio.wait_for(stdin_closed, timeout)
    print(f"closed-by-server {closed[0]}", flush=True)
    os._exit(0)  # the kernel closes the sockets; no per-task teardown of thousands


class Holder:
    """One `hold` client process."""

    def __init__(self, port, n, tls, rate):
        self.proc = subprocess.Popen(
            ["sh", "-c", f"ulimit -n {FD_LIMIT} && exec {sys.executable} {os.path.abspath(__file__)} hold "
                         f"{port} {n} {int(tls)} {rate}"],
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


def idle_one(a, name, start, tls):
    srv = start()
    holders = []
    try:
        time.sleep(0.5)
        before = rss_bytes(srv.pids())
        rss, est, failed, errs = [], [], 0, {}
        for half in (a.idle // 2, a.idle - a.idle // 2):
            h = Holder(srv.port, half, tls, a.ramp)
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
             "ok": failed == 0 and not any(closed)}
        print(f"idle {name:30} {total} conns ({failed} failed {errs}), RSS {before / 1e6:.1f} -> "
              f"{rss[0] / 1e6:.1f} -> {rss[1] / 1e6:.1f} MB: {r['bytes_per_conn']:.0f} B/conn, second half "
              f"{r['marginal_bytes_per_conn']:.0f} B/conn; closed by the server while held: {closed}",
              file=sys.stderr)
        return r
    finally:
        for h in holders:
            if h.proc.poll() is None:
                h.finish()
        srv.stop()


def idle_round(a, tmp, root, certs, results, cmds):
    ec = certs["ecdsa"]
    variants = [
        ("lwsd wss", True, lambda: Server("lwsd", lwsd_argv(a, 7867, tls=ec), 7867, fd_limit=FD_LIMIT)),
        ("libwebsockets wss", True,
         lambda: Server("libwebsockets", ["libwebsockets-test-server", "-p", "7868", "-s", "-C", ec[0], "-K", ec[1]],
                        7868, fd_limit=FD_LIMIT)),
        ("lwsd ws (plain reference)", False,
         lambda: Server("lwsd", lwsd_argv(a, 7869), 7869, fd_limit=FD_LIMIT)),
    ]
    for name, tls, start in variants:
        try:
            r = idle_one(a, name, start, tls)
        except (RuntimeError, OSError) as e:
            print(f"# idle {name}: not run ({e})", file=sys.stderr)
            continue
        results.setdefault(f"idle|{name}", []).append(r)


# ---------------------------------------------------------------- floor

def floor(a, results):
    """lwsd-tls-provider's *ring* lines (lwsd's provider, X25519 first)."""
    if not os.path.exists(a.provider):
        print(f"# floor: {a.provider} missing (cargo build --release -p lwsd-bench --bin lwsd-tls-provider)",
              file=sys.stderr)
        return
    out = subprocess.run([a.provider], capture_output=True, text=True, timeout=600).stdout
    for line in out.splitlines():
        if not line.startswith("ring "):
            continue
        m = re.match(r"ring\s+(.*?):\s+([\d.]+) µs", line)
        if m:
            what = " ".join(m.group(1).split())
            results.setdefault(f"floor|{what}", []).append({"us": float(m.group(2)), "ok": True})
            print(f"floor {what:40} {float(m.group(2)):9.1f} us", file=sys.stderr)


# ---------------------------------------------------------------- report

def med(runs, field="us"):
    v = [r[field] for r in runs if r.get(field) == r.get(field)]  # drop NaN
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def fmt(runs, field="us", digits=1):
    m, lo, hi = med(runs, field)
    if m is None:
        return "-"
    s = f"{m:,.{digits}f}"
    if len(runs) > 1:
        s += f" ({lo:,.{digits}f}–{hi:,.{digits}f})"
    if not all(r.get("ok", True) for r in runs):
        s += " ⚠"
    return s


def paired(xs, ys, field="us"):
    """lwsd / nginx per round (each round ran both back to back, so a busy spell of the
    machine hits both): the median ratio and its spread, as text."""
    r = [x[field] / y[field] for x, y in zip(xs or [], ys or [])
         if x.get(field) == x.get(field) and y.get(field) and y.get(field) == y.get(field)]
    if not r:
        return "-"
    s = f"{statistics.median(r):.2f}"
    return s + (f" ({min(r):.2f}–{max(r):.2f})" if len(r) > 1 else "")


def report(a, results, cmds):
    if any(k.startswith("handshake") for k in results):
        report_handshakes(a, results, cmds)
    if any(k.startswith("keepalive") for k in results):
        report_keepalive(results)
    report_rest(a, results, cmds)


def report_handshakes(a, results, cmds):
    print("\n### Handshakes: server CPU per handshake (µs), median of rounds (min–max); "
          "ratios: median of the per-round ratios (min–max)\n")
    print("| handshake | lwsd | nginx | lwsd / nginx (per round) | negotiated (both) |")
    print("|---|---|---|---|---|")
    for cert in CERTS:
        for proto in a.protocols:
            for mode in ("new", "reuse"):
                k = f"handshake {mode} TLS {proto} {cert}"
                lw, ng = results.get(f"{k}|lwsd"), results.get(f"{k}|nginx")
                if not lw and not ng:
                    continue
                ratio = paired(lw, ng)
                label = f"{'full' if mode == 'new' else 'resumed (ticket)'}, TLS {proto}, {cert.upper()}"
                nl, nn = cmds.get(k + "|lwsd", "?"), cmds.get(k + "|nginx", "?")
                print(f"| {label} | {fmt(lw or [])} | {fmt(ng or [])} | {ratio} | "
                      f"{nl if nl == nn else f'lwsd: {nl}; nginx: {nn}'} |")


def report_keepalive(results):
    print("\n### HTTPS keep-alive: server CPU per request (µs)\n")
    print("| file | lwsd https | nginx https | lwsd / nginx (https) | lwsd http | nginx http (sendfile on) "
          "| lwsd https / http |")
    print("|---|---|---|---|---|---|---|")
    for f in (ONE, BIG):
        get = {n: results.get(f"keepalive {f}|{n}", []) for n in
               ("lwsd https", "nginx https", "lwsd http", "nginx http (sendfile on)")}
        if not any(get.values()):
            continue

        def ratio(x, y):
            return paired(get[x], get[y])
        print(f"| {f} | " + " | ".join(fmt(get[n], digits=2) for n in
                                       ("lwsd https", "nginx https")) +
              f" | {ratio('lwsd https', 'nginx https')} | " +
              " | ".join(fmt(get[n], digits=2) for n in ("lwsd http", "nginx http (sendfile on)")) +
              f" | {ratio('lwsd https', 'lwsd http')} |")
        # wrk's 100 full handshakes (ECDSA, TLS 1.3) are in the https figures; taken out
        # with each server's full-handshake median of this sitting, they are:
        for srv in ("lwsd", "nginx"):
            hs = results.get(f"handshake new TLS 1.3 ecdsa|{srv}")
            if hs and get[f"{srv} https"]:
                h = med(hs)[0]
                for r in get[f"{srv} https"]:
                    r["us_no_hs"] = (r["cpu"] - WRK_CONNS * h * 1e-6) * 1e6 / r["units"] if r["units"] else float("nan")
        lw, ng = get["lwsd https"], get["nginx https"]
        if lw and ng and "us_no_hs" in lw[0] and "us_no_hs" in ng[0]:
            print(f"| {f}, without wrk's {WRK_CONNS} handshakes | {fmt(lw, 'us_no_hs', 2)} | {fmt(ng, 'us_no_hs', 2)} | "
                  f"{paired(lw, ng, 'us_no_hs')} | | | |")


def report_rest(a, results, cmds):
    idle = {k.split("|", 1)[1]: v for k, v in results.items() if k.startswith("idle|")}
    if idle:
        print(f"\n### Idle WebSocket memory: RSS per connection, {a.idle} on a fresh server (bytes)\n")
        print("| server | per connection | the second half alone | connections held (failed) |")
        print("|---|---|---|---|")
        for n, runs in idle.items():
            print(f"| {n} | {fmt(runs, 'bytes_per_conn', 0)} | {fmt(runs, 'marginal_bytes_per_conn', 0)} | "
                  f"{runs[-1]['conns']} ({runs[-1]['failed']}) |")
    fl = {k.split("|", 1)[1]: v for k, v in results.items() if k.startswith("floor|")}
    if fl:
        print("\n### Floor: rustls + lwsd's TlsSession in memory (lwsd-tls-provider, ring), µs\n")
        for n, runs in fl.items():
            print(f"- {n}: {fmt(runs)}")
    print("\nCommands:")
    for k in ("s_time", "wrk https", "wrk http"):
        if k in cmds:
            print(f"- `{cmds[k]}`")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        port, n, tls, rate = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", float(sys.argv[5])
        asyncio.run(hold_main(port, n, tls, rate, 600))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lwsd", default="target/release/lwsd")
    ap.add_argument("--provider", default="target/release/lwsd-tls-provider")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of handshake and keepalive")
    ap.add_argument("--secs", type=int, default=5, help="length of each s_time / wrk run")
    ap.add_argument("--protocols", default="1.3,1.2")
    ap.add_argument("--tests", default="handshake,keepalive,idle,floor")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory figure")
    ap.add_argument("--idle-rounds", type=int, default=1)
    ap.add_argument("--ramp", type=int, default=2000, help="idle connections opened per second")
    ap.add_argument("--json", help="write all figures here")
    a = ap.parse_args()
    a.protocols = [p for p in a.protocols.split(",") if p]
    tests = a.tests.split(",")
    unknown = set(tests) - {"handshake", "keepalive", "idle", "floor"}
    if unknown:
        raise SystemExit(f"unknown test(s): {', '.join(sorted(unknown))}")
    for tool in ("openssl", "wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing")
    if not os.path.exists(a.lwsd):
        raise SystemExit(f"{a.lwsd} missing: cargo build --release -p lwsd")

    tmp = tempfile.mkdtemp(prefix="lwsd-tlsbench-")
    os.chmod(tmp, 0o755)  # nginx's worker runs as nobody and reads the root
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    shutil.copy(os.path.join(LWS_RES, BIG), root)
    with open(os.path.join(root, ONE), "w") as f:
        f.write("x")
    certs = make_certs(tmp)
    results, cmds = {}, {}
    t0 = time.time()
    try:
        for r in range(a.rounds):
            print(f"# round {r + 1} of {a.rounds}", file=sys.stderr)
            if "handshake" in tests:
                handshake_round(a, tmp, root, certs, results, cmds)
            if "keepalive" in tests:
                keepalive_round(a, tmp, root, certs, results, cmds)
            if "idle" in tests and r < a.idle_rounds:
                idle_round(a, tmp, root, certs, results, cmds)
            if "floor" in tests:
                floor(a, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {time.time() - t0:.0f} s", file=sys.stderr)
    report(a, results, cmds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "negotiated": cmds}, f, indent=2)


if __name__ == "__main__":
    main()
