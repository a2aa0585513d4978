#!/usr/bin/env python3
"""HTTP/2 server conformance, scripted at the frame level.

A re-implementation of h2spec's test list (its `generic`, `http2` and `hpack` groups,
strict mode included) for machines where h2spec itself cannot be installed. Each test
has h2spec's id (`http2/6.5.3/2`), the RFC section it checks (h2spec numbers follow
RFC 7540; the RFC 9113 section is given where it moved) and a one-line description.
What each test sends and what it accepts as a pass follow h2spec:

  connection error  a GOAWAY with one of the expected codes, or the connection closed
                    (a GOAWAY with another code fails, unless --loose: h2spec itself
                    passes a wrong-code GOAWAY when the close follows it)
  stream error      a RST_STREAM or GOAWAY with one of the expected codes, or the
                    connection closed
  a response        the first HEADERS frame the server sends is on the request's stream

The server under test should answer `GET /` and `POST /` (or --path) with content:
the flow-control tests count the DATA bytes of that response.

Output: one line per test, `PASS|FAIL|SKIP id  [RFC section] description`, a reason
line under each FAIL/SKIP, then a summary line. Exit status 0 only if every test passed.
Only the frames this program sends are scripted; it never targets any host but the
one given (default 127.0.0.1).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ssl
import sys
import time

# Importing a group module registers its tests, in h2spec's order: generic, http2, hpack.
import cases_generic  # noqa: F401,I001
import cases_http2  # noqa: F401
import cases_hpack  # noqa: F401
from h2client import TESTS, Config, Conn, Fail, Skip, Test


def selected(only: list[str]) -> list[Test]:
    if not only:
        return list(TESTS)

    def match(tid: str, prefix: str) -> bool:
        prefix = prefix.rstrip("/")
        return tid == prefix or tid.startswith(prefix + "/") or tid.startswith(prefix + ".")

    return [t for t in TESTS if any(match(t.id, p) for p in only)]


def run_one(cfg: Config, t: Test) -> tuple[str, str]:
    try:
        c = Conn(cfg)
    except Fail as e:
        return "FAIL", str(e)
    except ssl.SSLError as e:
        return "FAIL", f"TLS handshake with {cfg.host}:{cfg.port} failed: {e}"
    except OSError as e:
        return "FAIL", f"cannot connect to {cfg.host}:{cfg.port}: {e}"
    try:
        if t.handshake:
            c.handshake()
        t.run(c)
        return "PASS", ""
    except Fail as e:
        return "FAIL", str(e)
    except Skip as e:
        return "SKIP", str(e)
    except Exception as e:  # a bug here, not the server's: say so
        return "FAIL", f"h2spec.py error: {type(e).__name__}: {e}"
    finally:
        c.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=False)
    ap.add_argument("--tls", action="store_true", help="TLS with ALPN h2, no cert check")
    ap.add_argument("--path", default="/")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="seconds to wait for each expected frame (h2spec's default: 2)")
    ap.add_argument("--only", action="append", default=[],
                    help="run the tests whose id starts with this (http2/6.5, "
                         "http2/6.5.3/2, hpack); repeatable")
    ap.add_argument("--jobs", type=int, default=16, help="tests run at once")
    ap.add_argument("--loose", action="store_true",
                    help="pass a GOAWAY with the wrong code when the close follows "
                         "(what h2spec itself accepts)")
    ap.add_argument("--list", action="store_true", help="print the test list and exit")
    args = ap.parse_args(argv)

    tests = selected(args.only)
    if args.list:
        for t in tests:
            print(f"{t.id}  [{t.rfc}] {t.desc}")
        return 0
    if args.port is None:
        ap.error("--port is required")
    if not tests:
        print(f"no test matches {args.only}", file=sys.stderr)
        return 2
    cfg = Config(args.host, args.port, args.tls, args.path, args.timeout, args.loose)
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda t: run_one(cfg, t), tests))
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for t, (status, reason) in zip(tests, results):
        counts[status] += 1
        print(f"{status} {t.id}  [{t.rfc}] {t.desc}")
        if reason:
            print(f"     {reason}")
    print(f"{len(tests)} tests: {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped")
    print(f"h2spec.py: {time.monotonic() - start:.1f} s against {cfg.host}:{cfg.port}"
          f"{' (TLS)' if cfg.tls else ' (h2c)'}", file=sys.stderr)
    return 0 if counts["PASS"] == len(tests) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
