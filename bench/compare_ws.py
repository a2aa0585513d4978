#!/usr/bin/env python3
"""Side-by-side WebSocket benchmark: lwsd (-j 1 and -j 2), Debian's
libwebsockets-test-server and the floor (bench/src/bin/floor.rs), in one sitting, with
lwsd-load as the client.

The floor (`lwsd-floor PORT FILE --defer-accept 1`, built with cargo when its binary is
missing) is a minimal single-threaded io_uring server that accepts in-process, answers
the upgrade with lwsd's own 101 head (echoing the first protocol offered) and then holds
the connection idle, discarding what it receives: the least that accepting and holding a
WebSocket costs, with the same TCP_DEFER_ACCEPT setting as lwsd's default. lwsd's figures
include its supervisor accepting each connection and handing it to a worker process. The
floor is no WebSocket implementation, so it runs the idle and setup tests only (fan-out
and capacity need the mirror protocol), and it never answers the client's Close: the
"no Close reply in time" error each of its connections ends with when lwsd-load stops
(after the figures are taken) is left out of its error counts.

For each server (started fresh for each measurement, with `ulimit -n 20000`):
  1. idle memory per connection: RSS of all the server's processes (supervisor and
     workers, found through /proc/PID/task/PID/children) before and after opening N
     idle lws-mirror-protocol connections (`lwsd-load ws --hold`; the mirror is silent
     while nobody sends); (after - before) / established, and the same over the second
     N/2 alone (fixed memory the first connections touch, such as the pages of lwsd's
     io_uring buffer ring, 64 x 8 KiB per worker unless load grew it, is not in that one). RSS is user-space memory
     only: the kernel's socket buffers and TCP state (several KiB per connection on
     both ends) are not in it and are the same for every server.
  2. set-up cost: server CPU (utime + stime of all its processes, /proc/PID/stat)
     per connection for 0 -> A and A -> B connections (two lwsd-load processes, both
     holding). Clock-tick resolution (10 ms) makes these +-10 ms per step. The step
     includes whatever the server spends just holding connections during the ramp, so
     the idle CPU with A and with B connections is measured after each step too.
  3. mirror fan-out: C clients, one sender at each of the given rates, for S seconds:
     deliveries per second, server CPU per delivered message (from the moment every
     client is connected to the end of the run), the server's CPU use, delivery
     latency. Why several rates: a server that writes to every ready client in each
     loop pass is busy all the time once a pass (C sends) outlasts the gap between two
     messages (for 1,000 clients, above ~250 msg/s here); from there on its CPU per
     delivery at a fixed rate is ~1 / (deliveries per second) whatever its efficiency,
     and efficiency shows as the rate it can sustain. So: a low rate (every message
     its own send per client), a middle one, and one above what any server here
     sustains (its CPU per delivery is the cost at saturation, the "warm" figure).
  4. capacity (`--tests capacity`, not in the default set): `--capacity` idle
     connections held at once, over as many client processes as the fd limit needs.

Then a markdown table with the ratios lwsd / libwebsockets and lwsd / floor (below 1:
lwsd uses less).

Usage: bench/compare_ws.py [--lwsd target/release/lwsd] [--load target/release/lwsd-load]
       [--floor target/release/lwsd-floor] [--jobs 1,2] [--handoffs auto,scm]
       [--only libwebsockets,floor,lwsd-j1,lwsd-j2] [--idle 10000]
       [--setup 5000,15000] [--fanout-clients 1000] [--fanout-rates 200,2000,20000] [--fanout-secs 10]
       [--tests idle,setup,fanout,capacity] [--capacity 51000]
Every run is bounded in time and count, and talks to 127.0.0.1 only.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from compare_http import ensure_floor
from procstat import Server, cpu_seconds, rss_bytes

FD_LIMIT = 20000
MIRROR = "lws-mirror-protocol"
# Connections per lwsd-load process in the capacity test (its fd limit is FD_LIMIT).
PER_CLIENT = 17000
# The floor only answers the upgrade and holds the connection: no mirror protocol.
FLOOR_TESTS = ("idle", "setup")
# The floor reads nothing after the 101, so when lwsd-load stops, each of its connections
# waits for a Close reply in vain and ends with this error: not counted for the floor.
FLOOR_CLOSE_ERROR = "close: no Close reply in time"


class Load:
    """One lwsd-load process; `wait_ready` blocks until its ready file appears."""

    def __init__(self, load, args, tmp, tag):
        self.ready = os.path.join(tmp, f"ready-{tag}")
        self.json = os.path.join(tmp, f"out-{tag}.json")
        for p in (self.ready, self.json):
            if os.path.exists(p):
                os.remove(p)
        self.proc = subprocess.Popen([load] + args + ["--ready-file", self.ready, "--json", self.json,
                                                      "--no-progress"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout):
        t = time.time()
        while time.time() - t < timeout:
            if os.path.exists(self.ready):
                with open(self.ready) as f:
                    line = f.read().strip()
                if line:
                    return int(line.split()[0])  # "<established> established, ..."
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"lwsd-load not ready in {timeout} s: {self.finish(5)[1]}")

    def finish(self, timeout, interrupt=False):
        if interrupt and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        fig = None
        if os.path.exists(self.json):
            with open(self.json) as f:
                fig = json.load(f)
        return fig, out


def errors_of(fig, srv=None):
    """The client's error count; for the floor, without the unanswered closes
    (FLOOR_CLOSE_ERROR), which every one of its connections ends with."""
    if not fig:
        return "?"
    n = fig["error_count"]
    if srv is not None and srv.name == "floor":
        n -= fig.get("errors", {}).get(FLOOR_CLOSE_ERROR, 0)
    return n


def hold(a, srv, n, tmp, tag, extra=()):
    """An lwsd-load opening `n` idle mirror connections at `a.ramp` and holding them."""
    return Load(a.load, ["ws", "--url", f"ws://127.0.0.1:{srv.port}/", "--protocol", MIRROR,
                         "-c", str(n), "--ramp-rate", f"{a.ramp}/s", "--hold",
                         "--duration", f"{int(n / a.ramp + 180)}s", *extra], tmp, tag)


def stop_all(loads):
    for ld in loads:
        if ld.proc.poll() is None:
            ld.finish(30, interrupt=True)


def idle_memory(a, start, tmp):
    """RSS per connection over all `a.idle` connections of a fresh server, and the
    marginal figure over the second half alone (opened by a second client once the first
    half is up): fixed memory first touched by the early connections (an io_uring
    buffer ring's pages, a slab's first growth) lands in the first figure only."""
    srv = start()
    loads = []
    try:
        before = rss_bytes(srv.pids())
        rss, est = [], []
        for i, n in enumerate((a.idle // 2, a.idle - a.idle // 2)):
            ld = hold(a, srv, n, tmp, f"idle{i}")
            loads.append(ld)
            est.append(ld.wait_ready(n / a.ramp + 60))
            time.sleep(1.0)  # let the server settle (lazy allocations, timers)
            rss.append(rss_bytes(srv.pids()))
        errs = [errors_of(ld.finish(30, interrupt=True)[0], srv) for ld in loads]
        total = sum(est)
        after = rss[-1]
        per = (after - before) / total if total else float("nan")
        marginal = (rss[1] - rss[0]) / est[1] if est[1] else float("nan")
        print(f"{srv.name:14} idle: {total} conns, RSS {before / 1e6:.1f} -> {rss[0] / 1e6:.1f} -> "
              f"{after / 1e6:.1f} MB, {per:.0f} B/conn, second half alone {marginal:.0f} B/conn, "
              f"client errors {errs}", file=sys.stderr)
        return {"conns": total, "rss_before": before, "rss_mid": rss[0], "rss_after": after,
                "bytes_per_conn": per, "marginal_bytes_per_conn": marginal, "errors": errs}
    finally:
        stop_all(loads)
        srv.stop()


def capacity(a, start, tmp):
    """Holds `a.capacity` idle connections at once, spread over client processes of at
    most PER_CLIENT connections each (each process has its own loopback source
    addresses: one address's ephemeral ports run out near 14,000 bound connections)."""
    srv = start()
    loads = []
    try:
        before = rss_bytes(srv.pids())
        left, i = a.capacity, 0
        t0 = time.time()
        while left > 0:
            n = min(PER_CLIENT, left)
            loads.append(hold(a, srv, n, tmp, f"cap{i}",
                              ("--src-ips", "3", "--src-offset", str(100 + 10 * i))))
            left -= n
            i += 1
        est = sum(ld.wait_ready(a.capacity / a.ramp + 60) for ld in loads)
        took = time.time() - t0
        time.sleep(1.0)
        after = rss_bytes(srv.pids())
        errs = [errors_of(ld.finish(30, interrupt=True)[0]) for ld in loads]
        per = (after - before) / est if est else float("nan")
        print(f"{srv.name:14} capacity: {est} of {a.capacity} held at once ({len(loads)} clients, "
              f"{took:.1f} s), RSS {before / 1e6:.1f} -> {after / 1e6:.1f} MB, {per:.0f} B/conn, "
              f"client errors {errs}", file=sys.stderr)
        return {"wanted": a.capacity, "held": est, "bytes_per_conn": per, "errors": errs}
    finally:
        stop_all(loads)
        srv.stop()


def setup_cost(a, start, tmp):
    first, total = a.setup
    srv = start()
    loads = []
    try:
        pids = srv.pids()
        c0 = cpu_seconds(pids)
        steps = []
        prev_est = 0
        c_prev = c0
        for i, n in enumerate((first, total - first)):
            ld = hold(a, srv, n, tmp, f"setup{i}")
            loads.append(ld)
            est = ld.wait_ready(n / a.ramp + 60)
            c = cpu_seconds(set(pids) | set(srv.pids()))
            # The server's CPU while merely holding them (timers, poll loops that scan
            # every connection): part of the step above too, for the ramp's duration.
            time.sleep(a.idle_window)
            c_idle = cpu_seconds(set(pids) | set(srv.pids()))
            steps.append({"from": prev_est, "to": prev_est + est, "cpu_s": c - c_prev,
                          "us_per_conn": (c - c_prev) * 1e6 / est if est else float("nan"),
                          "idle_cpu_ms_per_s": (c_idle - c) * 1e3 / a.idle_window})
            prev_est += est
            c_prev = c_idle
        errs = []
        for ld in loads:
            fig, _ = ld.finish(30, interrupt=True)
            errs.append(errors_of(fig, srv))
        for s in steps:
            s["errors"] = errs
            print(f"{srv.name:14} setup {s['from']}->{s['to']}: {s['cpu_s'] * 1e3:.0f} ms CPU, "
                  f"{s['us_per_conn']:.1f} us/conn, then idle {s['idle_cpu_ms_per_s']:.1f} ms CPU/s, "
                  f"client errors {errs}", file=sys.stderr)
        return steps
    finally:
        stop_all(loads)
        srv.stop()


def fanout(a, start, tmp):
    return {str(rate): fanout_at(a, start, tmp, rate) for rate in a.fanout_rates}


def fanout_at(a, start, tmp, rate):
    srv = start()
    try:
        ld = Load(a.load, ["fanout", "--url", f"ws://127.0.0.1:{srv.port}/", "--protocol", MIRROR,
                           "-c", str(a.fanout_clients), "--ramp-rate", f"{a.ramp}/s",
                           "--senders", "1", "--rate", f"{rate}/s",
                           "--size", str(a.fanout_size), "--duration", f"{a.fanout_secs}s"],
                  tmp, f"fanout{rate}")
        ld.wait_ready(a.fanout_clients / a.ramp + 60)
        pids = srv.pids()
        c0, t0 = cpu_seconds(pids), time.time()
        fig, out = ld.finish(a.fanout_secs + 60)
        c1, t1 = cpu_seconds(set(pids) | set(srv.pids())), time.time()
        if not fig:
            raise RuntimeError(f"lwsd-load fanout gave no figures: {out}")
        m = fig["messages"]
        got, want = m["received"], m.get("expected_deliveries", 0)
        r = {"deliveries": got, "expected": want, "per_s": m["received_per_s"],
             "cpu_s": c1 - c0, "cpu_use": (c1 - c0) / (t1 - t0), "us_per_delivery": (c1 - c0) * 1e6 / got if got else float("nan"),
             "p50_us": fig["latency"]["delivery"]["p50_us"], "p99_us": fig["latency"]["delivery"]["p99_us"],
             "unstamped": m.get("unstamped", 0), "errors": fig["error_count"]}
        print(f"{srv.name:14} fanout {rate}/s: {got} of {want} deliveries, {r['per_s']:.0f}/s, "
              f"server CPU {100 * r['cpu_use']:.0f} %, "
              f"{r['us_per_delivery']:.3f} us CPU/delivery, p50 {r['p50_us']} us p99 {r['p99_us']} us, "
              f"unstamped {r['unstamped']}, client errors {r['errors']}", file=sys.stderr)
        return r
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lwsd", default="target/release/lwsd")
    ap.add_argument("--load", default="target/release/lwsd-load")
    ap.add_argument("--floor", default="target/release/lwsd-floor",
                    help="the floor (built with cargo when missing)")
    ap.add_argument("--jobs", default="1,2", help="lwsd -j variants to run")
    ap.add_argument("--handoffs", default="auto",
                    help="lwsd --fd-handoff variants (auto,ring,scm), or epoll (--event-loop epoll); "
                         "non-auto ones are named lwsd-jN-MODE")
    ap.add_argument("--only", default="", help="comma list of: libwebsockets, floor, lwsd-j1, lwsd-j2")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory figure")
    ap.add_argument("--setup", default="5000,15000", help="A,B: set-up cost for 0->A and A->B")
    ap.add_argument("--idle-window", type=float, default=3.0,
                    help="seconds of idle CPU measured after each set-up step")
    ap.add_argument("--ramp", type=int, default=2000, help="connections opened per second")
    ap.add_argument("--fanout-clients", type=int, default=1000)
    ap.add_argument("--fanout-rates", default="200,2000,20000",
                    help="messages per second from the sender, one fan-out run per rate")
    ap.add_argument("--fanout-size", type=int, default=64)
    ap.add_argument("--fanout-secs", type=int, default=10)
    ap.add_argument("--capacity", type=int, default=51000,
                    help="idle connections held at once by the capacity test (not run by default; "
                         "lwsd needs -j 3 or more here: 20,000 fds or fixed files per process)")
    ap.add_argument("--tests", default="idle,setup,fanout", help="any of idle,setup,fanout,capacity")
    ap.add_argument("--json", help="write all figures here")
    a = ap.parse_args()
    a.setup = [int(x) for x in a.setup.split(",")]
    a.fanout_rates = [int(x) for x in a.fanout_rates.split(",") if x]
    if len(a.setup) != 2 or not 0 < a.setup[0] < a.setup[1]:
        raise SystemExit("--setup wants A,B with 0 < A < B")
    if not os.path.exists(a.load):
        raise SystemExit(f"{a.load} missing: cargo build --release -p lwsd-load")

    servers = []
    for hi, h in enumerate(filter(None, a.handoffs.split(","))):
        for j in filter(None, a.jobs.split(",")):
            port = 7830 + int(j) + 10 * hi
            name = f"lwsd-j{j}" if h == "auto" else f"lwsd-j{j}-{h}"
            # `epoll`: workers on the epoll backend (--event-loop epoll, SCM_RIGHTS handoff).
            mode = ["--event-loop", "epoll"] if h == "epoll" else ["--fd-handoff", h]
            servers.append((name, port, lambda j=j, port=port, mode=mode, name=name: Server(
                name, [a.lwsd, "-p", str(port), "-j", j, "--metrics-addr", "off", "-d", "1"] + mode, port,
                settle=0.5, fd_limit=FD_LIMIT)))
    servers.append(("libwebsockets", 7829, lambda: Server(
        "libwebsockets", ["libwebsockets-test-server", "-p", "7829"], 7829,
        settle=0.5, fd_limit=FD_LIMIT)))
    tmp = tempfile.mkdtemp(prefix="lwsd-wsbench-")
    # The floor serves one file to plain GETs; nothing here asks for it.
    floor_file = os.path.join(tmp, "floor-file")
    with open(floor_file, "w") as f:
        f.write("x")

    def start_floor():
        ensure_floor(a.floor)
        return Server("floor", [a.floor, "7828", floor_file, "--defer-accept", "1"], 7828,
                      settle=0.5, fd_limit=FD_LIMIT)

    servers.append(("floor", 7828, start_floor))
    only = set(filter(None, a.only.split(",")))
    if only:
        servers = [s for s in servers if s[0] in only]
    tests = a.tests.split(",")
    res = {}
    for name, _, start in servers:
        res[name] = {}
        for t in tests:
            if name == "floor" and t not in FLOOR_TESTS:
                print(f"# floor {t}: not run (the floor has no mirror protocol)", file=sys.stderr)
                continue
            try:
                fn = {"idle": idle_memory, "setup": setup_cost, "fanout": fanout, "capacity": capacity}[t]
                res[name][t] = fn(a, start, tmp)
            except (FileNotFoundError, RuntimeError, subprocess.SubprocessError) as e:
                print(f"# {name} {t}: not run ({e})", file=sys.stderr)

    names = [s[0] for s in servers]
    # Ratio columns: each lwsd variant against libwebsockets and against the floor.
    lwsds = [n for n in names if n.startswith("lwsd")]
    refs = [r for r in ("libwebsockets", "floor") if r in names]
    ratio_cols = [(o, r) for r in refs for o in lwsds]
    rows = []

    def get(n, t, f):
        try:
            v = res[n][t]
            return f(v)
        except (KeyError, IndexError, TypeError):
            return None

    rows.append((f"idle RSS per connection, {a.idle} on a fresh server (bytes)",
                 lambda n: get(n, "idle", lambda v: v["bytes_per_conn"]), "{:.0f}"))
    rows.append((f"idle RSS per connection, the second {a.idle - a.idle // 2} alone (bytes)",
                 lambda n: get(n, "idle", lambda v: v["marginal_bytes_per_conn"]), "{:.0f}"))
    rows.append((f"idle connections held at once (of {a.capacity})",
                 lambda n: get(n, "capacity", lambda v: v["held"]), "{:.0f}"))
    rows.append(("RSS per connection at that count (bytes)",
                 lambda n: get(n, "capacity", lambda v: v["bytes_per_conn"]), "{:.0f}"))
    rows.append((f"set-up CPU per connection 0->{a.setup[0]} (µs)",
                 lambda n: get(n, "setup", lambda v: v[0]["us_per_conn"]), "{:.1f}"))
    rows.append((f"set-up CPU per connection {a.setup[0]}->{a.setup[1]} (µs)",
                 lambda n: get(n, "setup", lambda v: v[1]["us_per_conn"]), "{:.1f}"))
    rows.append((f"idle CPU holding {a.setup[1]} connections (ms per s)",
                 lambda n: get(n, "setup", lambda v: v[1]["idle_cpu_ms_per_s"]), "{:.1f}"))
    for rate in a.fanout_rates:
        k = str(rate)
        at = f"{a.fanout_clients} clients, {rate} msg/s"
        rows.append((f"fan-out deliveries/s ({at})",
                     lambda n, k=k: get(n, "fanout", lambda v: v[k]["per_s"]), "{:.0f}"))
        rows.append((f"fan-out deliveries received / offered (%) ({at})",
                     lambda n, k=k: get(n, "fanout", lambda v: 100.0 * v[k]["deliveries"] / v[k]["expected"]
                                        if v[k]["expected"] else None), "{:.1f}"))
        rows.append((f"fan-out server CPU use (% of one core) ({at})",
                     lambda n, k=k: get(n, "fanout", lambda v: 100.0 * v[k]["cpu_use"]), "{:.0f}"))
        rows.append((f"fan-out server CPU per delivery (µs) ({at})",
                     lambda n, k=k: get(n, "fanout", lambda v: v[k]["us_per_delivery"]), "{:.3f}"))
        rows.append((f"fan-out delivery latency p99 (µs) ({at})",
                     lambda n, k=k: get(n, "fanout", lambda v: v[k]["p99_us"]), "{:.0f}"))

    head = "| measure | " + " | ".join(names) + "".join(f" | {o} / {r}" for o, r in ratio_cols) + " |"
    print()
    print(head)
    print("|---" * (1 + len(names) + len(ratio_cols)) + "|")
    for label, f, fmt in rows:
        vals = [f(n) for n in names]
        cells = [fmt.format(v) if v is not None else "-" for v in vals]
        ratios = []
        for o, r in ratio_cols:
            v, rv = f(o), f(r)
            ratios.append(f"{v / rv:.2f}" if v is not None and rv else "-")
        print(f"| {label} | " + " | ".join(cells) + "".join(f" | {x}" for x in ratios) + " |")
    print()
    print("RSS excludes kernel socket buffers and TCP state (the same for every server); "
          "CPU is utime+stime of all server processes from /proc, 10 ms resolution.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
