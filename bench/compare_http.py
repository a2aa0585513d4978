#!/usr/bin/env python3
"""Side-by-side HTTP/1.1 benchmark: lwsd, nginx (one worker; sendfile on and off) and
Debian's libwebsockets-test-server, serving the same files, in one sitting.

The figure that survives a noisy shared machine is server CPU time per request:
utime+stime of every server process (lwsd's supervisor and workers; nginx's master and
worker) read from /proc/PID/stat before and after each run, divided by the requests the
client completed. Requests per second are printed too, but compare on CPU/request, as
ratios against nginx measured in the same run (shared/anchors.md).

Workloads (all against 127.0.0.1, each bounded in time or count):
  keepalive   wrk -t1 -c100 -d{secs}s                        small file
  pipelined   h2load --h1 -n {n} -c 100 -m 10                small file
  close       wrk -t1 -c100 -d{secs}s -H 'Connection: close' small file (new connection per request)
  7k          wrk -t1 -c100 -d{secs}s                        7,205-byte file

Usage: bench/compare_http.py [--lwsd target/release/lwsd] [--workers 1] [--secs 6]
       [--only lwsd,nginx-sendfile-off] [--workloads keepalive,pipelined] [--markdown]
Needs: wrk, h2load (nghttp2-client), nginx, libwebsockets-test-server (Debian packages).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from procstat import Server, cpu_seconds

LWS_RES = "/usr/share/libwebsockets-test-server"
SMALL = "favicon.ico"  # 1,406 bytes: served by all three (lws serves only its own dir)
BIG = "test.html"  # 7,205 bytes


def run_client(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return r.stdout + r.stderr


def parse_wrk(out):
    m = re.search(r"(\d+) requests in", out)
    reqs = int(m.group(1)) if m else 0
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs += int(m.group(1))
    return reqs, errs


def parse_h2load(out):
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m:
        return 0, -1
    ok, failed, errored = map(int, m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    bad = int(m.group(3)) + int(m.group(4)) if m else 0
    return ok, failed + errored + bad


def nginx_conf(root, port, sendfile, tmp):
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
master_process on;
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
  types {{ text/html html; image/x-icon ico; }}
  server {{ listen 127.0.0.1:{port} backlog=4096; root {root}; }}
}}
""")
    return ["nginx", "-c", conf]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lwsd", default="target/release/lwsd")
    ap.add_argument("--workers", type=int, default=1, help="lwsd -j (nginx runs 1 worker)")
    ap.add_argument("--secs", type=int, default=6)
    ap.add_argument("--requests", type=int, default=200000, help="h2load -n for the pipelined run")
    ap.add_argument("--only", default="", help="comma list of server names to run")
    ap.add_argument("--workloads", default="keepalive,pipelined,close,7k")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    a = ap.parse_args()

    for tool in ("wrk", "h2load"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install wrk nghttp2-client)")
    tmp = tempfile.mkdtemp(prefix="lwsd-bench-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody and must read the root
    root = os.path.join(tmp, "www")
    os.makedirs(root)
    for f in (SMALL, BIG):
        shutil.copy(os.path.join(LWS_RES, f), root)

    servers = [
        ("lwsd", lambda: Server("lwsd", [a.lwsd, "-p", "7811", "-j", str(a.workers), "-r", root,
                                         "--metrics-addr", "off", "-d", "1"], 7811)),
        ("nginx-sendfile-on", lambda: Server("nginx-sendfile-on", nginx_conf(root, 7812, True, tmp), 7812)),
        ("nginx-sendfile-off", lambda: Server("nginx-sendfile-off", nginx_conf(root, 7813, False, tmp), 7813)),
        ("libwebsockets", lambda: Server("libwebsockets", ["libwebsockets-test-server", "-p", "7814"], 7814)),
    ]
    only = set(filter(None, a.only.split(",")))
    if only:
        servers = [s for s in servers if s[0] in only]
    workloads = a.workloads.split(",")
    results = {}  # (server, workload) -> (us_per_req, rps, reqs, errors)
    for name, start in servers:
        try:
            srv = start()
        except (FileNotFoundError, RuntimeError) as e:
            print(f"# {name}: not run ({e})", file=sys.stderr)
            continue
        try:
            for w in workloads:
                url = f"http://127.0.0.1:{srv.port}/{BIG if w == '7k' else SMALL}"
                if w == "pipelined":
                    cmd = ["h2load", "--h1", "-n", str(a.requests), "-c", "100", "-m", "10", "-t", "1", url]
                else:
                    cmd = ["wrk", "-t1", "-c100", f"-d{a.secs}s", url]
                    if w == "close":
                        cmd[3:3] = ["-H", "Connection: close"]
                pids = srv.pids()
                c0, t0 = cpu_seconds(pids), time.time()
                out = run_client(cmd)
                pids = set(pids) | set(srv.pids())
                c1, t1 = cpu_seconds(pids), time.time()
                reqs, errs = parse_h2load(out) if w == "pipelined" else parse_wrk(out)
                us = (c1 - c0) * 1e6 / reqs if reqs else float("nan")
                results[(name, w)] = (us, reqs / (t1 - t0), reqs, errs)
                print(f"{name:20} {w:10} {us:8.2f} us/req  {reqs / (t1 - t0):10.0f} req/s  "
                      f"{reqs} reqs  {errs} errors", file=sys.stderr)
        finally:
            srv.stop()

    names = [s[0] for s in servers]
    print()
    if a.markdown:
        print("| workload | " + " | ".join(names) + " | lwsd / nginx (sendfile on) | lwsd / nginx (sendfile off) |")
        print("|---" * (len(names) + 3) + "|")
    for w in workloads:
        row = []
        for n in names:
            r = results.get((n, w))
            row.append(f"{r[0]:.2f} µs ({r[3]} err)" if r else "-")
        ratios = []
        for ref in ("nginx-sendfile-on", "nginx-sendfile-off"):
            l, n = results.get(("lwsd", w)), results.get((ref, w))
            ratios.append(f"{l[0] / n[0]:.2f}" if l and n and n[0] else "-")
        if a.markdown:
            print(f"| {w} | " + " | ".join(row) + " | " + " | ".join(ratios) + " |")
        else:
            print(f"{w:10} " + "  ".join(f"{n}={v}" for n, v in zip(names, row)) + f"  ratios={ratios}")
    shutil.rmtree(tmp, ignore_errors=True)
    bad = [k for k, v in results.items() if k[0] == "lwsd" and v[3] != 0]
    if bad:
        print(f"lwsd had errors in: {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
