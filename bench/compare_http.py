#!/usr/bin/env python3
"""Side-by-side HTTP/1.1 benchmark: lwsd, the floor (bench/src/bin/floor.rs), nginx (one
worker; sendfile on and off) and Debian's libwebsockets-test-server, serving the same
files, in one sitting.

The figure that survives a noisy shared machine is server CPU time per request:
utime+stime of every server process (lwsd's supervisor and workers; nginx's master and
worker) read from /proc/PID/stat before and after each run, divided by the requests the
client completed. Requests per second are printed too, but compare on CPU/request, as
ratios against nginx and the floor measured in the same run (shared/anchors.md).

`lwsd-epoll` is lwsd with its workers on the epoll backend (`--event-loop epoll`).
`lwsd-nodefer` is lwsd with `--defer-accept 0` and `nginx-deferred` nginx (sendfile off)
with `listen ... deferred`: TCP_DEFER_ACCEPT on and off for both, since the option alone
moves the new-connection workload by several µs.

The floor (`lwsd-floor PORT FILE`: a minimal io_uring responder with lwsd's answer bytes)
serves one file, so one instance runs per file (small, 7k, 1-byte), each measured alone.

Workloads (all against 127.0.0.1, each bounded in time or count):
  keepalive-1b wrk -t1 -c100 -d{secs}s                       1-byte file (the anchors' row;
                                                             libwebsockets cannot serve it: n/a)
  keepalive   wrk -t1 -c100 -d{secs}s                        small file
  pipelined   h2load --h1 -n {n} -c 100 -m 10                small file
  close       wrk -t1 -c100 -d{secs}s -H 'Connection: close' small file (new connection per request)
  7k          wrk -t1 -c100 -d{secs}s                        7,205-byte file

Usage: bench/compare_http.py [--lwsd target/release/lwsd] [--floor target/release/lwsd-floor]
       [--workers 1] [--secs 6] [--only lwsd,floor,nginx-sendfile-off]
       [--workloads keepalive-1b,keepalive,pipelined] [--markdown]
Needs: wrk, h2load (nghttp2-client), nginx, libwebsockets-test-server (Debian packages);
the floor is built with cargo when its binary is missing.
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
ONE = "one"  # 1 byte, created in the root (the anchors' keep-alive workload)
WORKLOAD_FILE = {"keepalive-1b": ONE, "7k": BIG}  # every other workload: SMALL


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


def nginx_conf(root, port, sendfile, tmp, deferred=False):
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
  server {{ listen 127.0.0.1:{port} backlog=4096{' deferred' if deferred else ''}; root {root}; }}
}}
""")
    return ["nginx", "-c", conf]


class Floor:
    """One lwsd-floor per file (it serves a single file), looked up by the file a workload
    asks for; each instance's CPU is measured on its own."""

    def __init__(self, binary, root, base_port):
        self.srvs = {}
        try:
            for i, f in enumerate((SMALL, BIG, ONE)):
                port = base_port + i
                self.srvs[f] = Server(f"floor-{f}", [binary, str(port), os.path.join(root, f)], port)
        except Exception:
            self.stop()
            raise

    def url(self, f):
        return f"http://127.0.0.1:{self.srvs[f].port}/{f}"

    def pids(self, f):
        return self.srvs[f].pids()

    def stop(self):
        for s in self.srvs.values():
            s.stop()


class Single:
    """A server that serves every file from one port (lwsd, nginx, libwebsockets)."""

    def __init__(self, srv, files):
        self.srv, self.files = srv, files

    def url(self, f):
        return f"http://127.0.0.1:{self.srv.port}/{f}" if f in self.files else None

    def pids(self, _f):
        return self.srv.pids()

    def stop(self):
        self.srv.stop()


def ensure_floor(binary):
    """Builds the floor when its binary is missing (release profile, like lwsd's)."""
    if os.path.exists(binary):
        return
    print(f"# building {binary}", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-p", "lwsd-bench", "--bin", "lwsd-floor"],
                   check=True, timeout=1800)
    if not os.path.exists(binary):
        raise FileNotFoundError(binary)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lwsd", default="target/release/lwsd")
    ap.add_argument("--floor", default="target/release/lwsd-floor")
    ap.add_argument("--workers", type=int, default=1, help="lwsd -j (nginx runs 1 worker)")
    ap.add_argument("--secs", type=int, default=6)
    ap.add_argument("--requests", type=int, default=200000, help="h2load -n for the pipelined run")
    ap.add_argument("--only", default="", help="comma list of server names to run")
    ap.add_argument("--workloads", default="keepalive-1b,keepalive,pipelined,close,7k")
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
    with open(os.path.join(root, ONE), "w") as f:
        f.write("x")
    all_files = (SMALL, BIG, ONE)

    def start_floor():
        ensure_floor(a.floor)
        return Floor(a.floor, root, 7815)

    servers = [
        ("lwsd", lambda: Single(Server("lwsd", [a.lwsd, "-p", "7811", "-j", str(a.workers), "-r", root,
                                                "--metrics-addr", "off", "-d", "1"], 7811), all_files)),
        # lwsd without TCP_DEFER_ACCEPT, and nginx with it (`listen ... deferred`): what the
        # option alone buys on the new-connection workload, for either server.
        ("lwsd-nodefer", lambda: Single(Server("lwsd-nodefer", [a.lwsd, "-p", "7816", "-j", str(a.workers), "-r",
                                                                root, "--metrics-addr", "off", "-d", "1",
                                                                "--defer-accept", "0"], 7816), all_files)),
        # lwsd with its workers on the epoll backend (as where io_uring is forbidden).
        ("lwsd-epoll", lambda: Single(Server("lwsd-epoll", [a.lwsd, "-p", "7818", "-j", str(a.workers), "-r",
                                                            root, "--metrics-addr", "off", "-d", "1",
                                                            "--event-loop", "epoll"], 7818), all_files)),
        ("floor", start_floor),
        ("nginx-sendfile-on", lambda: Single(Server("nginx-sendfile-on", nginx_conf(root, 7812, True, tmp), 7812),
                                             all_files)),
        ("nginx-sendfile-off", lambda: Single(Server("nginx-sendfile-off", nginx_conf(root, 7813, False, tmp), 7813),
                                              all_files)),
        ("nginx-deferred", lambda: Single(Server("nginx-deferred", nginx_conf(root, 7817, False, tmp, True), 7817),
                                          all_files)),
        # It serves only its compiled-in directory: favicon.ico and test.html, not `one`.
        ("libwebsockets", lambda: Single(Server("libwebsockets", ["libwebsockets-test-server", "-p", "7814"], 7814),
                                         (SMALL, BIG))),
    ]
    only = set(filter(None, a.only.split(",")))
    unknown = only - {s[0] for s in servers}
    if unknown:
        raise SystemExit(f"unknown server(s) in --only: {', '.join(sorted(unknown))}")
    if only:
        servers = [s for s in servers if s[0] in only]
    workloads = a.workloads.split(",")
    unknown = set(workloads) - {"keepalive-1b", "keepalive", "pipelined", "close", "7k"}
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(sorted(unknown))}")
    results = {}  # (server, workload) -> (us_per_req, rps, reqs, errors); None: n/a
    for name, start in servers:
        try:
            srv = start()
        except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as e:
            print(f"# {name}: not run ({e})", file=sys.stderr)
            continue
        try:
            for w in workloads:
                f = WORKLOAD_FILE.get(w, SMALL)
                url = srv.url(f)
                if url is None:
                    results[(name, w)] = None
                    print(f"{name:20} {w:12} n/a (cannot serve {f})", file=sys.stderr)
                    continue
                if w == "pipelined":
                    cmd = ["h2load", "--h1", "-n", str(a.requests), "-c", "100", "-m", "10", "-t", "1", url]
                else:
                    cmd = ["wrk", "-t1", "-c100", f"-d{a.secs}s", url]
                    if w == "close":
                        cmd[3:3] = ["-H", "Connection: close"]
                pids = srv.pids(f)
                c0, t0 = cpu_seconds(pids), time.time()
                out = run_client(cmd)
                pids = set(pids) | set(srv.pids(f))
                c1, t1 = cpu_seconds(pids), time.time()
                reqs, errs = parse_h2load(out) if w == "pipelined" else parse_wrk(out)
                us = (c1 - c0) * 1e6 / reqs if reqs else float("nan")
                results[(name, w)] = (us, reqs / (t1 - t0), reqs, errs)
                print(f"{name:20} {w:12} {us:8.2f} us/req  {reqs / (t1 - t0):10.0f} req/s  "
                      f"{reqs} reqs  {errs} errors", file=sys.stderr)
        finally:
            srv.stop()

    names = [s[0] for s in servers]
    print()
    refs = ("nginx-sendfile-on", "nginx-sendfile-off", "floor")
    if a.markdown:
        print("| workload | " + " | ".join(names) +
              " | lwsd / nginx (sendfile on) | lwsd / nginx (sendfile off) | lwsd / floor |")
        print("|---" * (len(names) + 4) + "|")
    for w in workloads:
        row = []
        for n in names:
            if (n, w) not in results:
                row.append("-")  # not run
            elif results[(n, w)] is None:
                row.append("n/a")  # the server cannot serve this workload's file
            else:
                r = results[(n, w)]
                row.append(f"{r[0]:.2f} µs ({r[3]} err)")
        ratios = []
        for ref in refs:
            l, n = results.get(("lwsd", w)), results.get((ref, w))
            ratios.append(f"{l[0] / n[0]:.2f}" if l and n and n[0] else "-")
        if a.markdown:
            print(f"| {w} | " + " | ".join(row) + " | " + " | ".join(ratios) + " |")
        else:
            print(f"{w:12} " + "  ".join(f"{n}={v}" for n, v in zip(names, row)) +
                  "  " + "  ".join(f"lwsd/{r}={v}" for r, v in zip(refs, ratios)))
    shutil.rmtree(tmp, ignore_errors=True)
    bad = [k for k, v in results.items() if k[0] == "lwsd" and v and v[3] != 0]
    if bad:
        print(f"lwsd had errors in: {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
