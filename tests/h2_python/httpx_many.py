#!/usr/bin/env python3
"""Many concurrent HTTP/2 requests on one connection with `httpx` (its HTTP/2 is the
`h2` library, driven by httpcore's connection pool): 50 requests started at once with
asyncio.gather over the files of a document root, every answer HTTP/2, status 200 and
byte for byte the file; httpx's pool holds exactly one connection afterwards (all 50
were multiplexed on it). Then a second gather of 50 on the same connection.

Usage: httpx_many.py BASE_URL DOCROOT
  BASE_URL http://127.0.0.1:PORT (h2c with prior knowledge) or https://127.0.0.1:PORT
  (ALPN h2; the certificate is not verified); DOCROOT the directory the server serves.
Exit 0 when every check passes, 1 naming the first failure. Run by tests/h2_serving.rs.
"""
from __future__ import annotations

import asyncio
import os
import sys

import httpx

CONCURRENT = 50
TIMEOUT_S = 30.0


class Failure(Exception):
    pass


async def one(client: httpx.AsyncClient, path: str, want: bytes) -> None:
    r = await client.get(path)
    if r.http_version != "HTTP/2":
        raise Failure(f"GET {path}: answered over {r.http_version}")
    if r.status_code != 200:
        raise Failure(f"GET {path}: status {r.status_code}")
    if r.content != want:
        raise Failure(f"GET {path}: {len(r.content)} bytes, not the file's {len(want)}")


async def run(base: str, root: str) -> list[str]:
    files = sorted(f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f)))
    if not files:
        raise Failure(f"no files in {root}")
    content = {f: open(os.path.join(root, f), "rb").read() for f in files}
    paths = [files[i % len(files)] for i in range(CONCURRENT)]
    tls = base.startswith("https:")
    # http1=False: over plain TCP that is HTTP/2 with prior knowledge (h2c).
    async with httpx.AsyncClient(
        base_url=base, http1=tls, http2=True, verify=False, timeout=TIMEOUT_S
    ) as client:
        report = []
        for round_ in (1, 2):
            await asyncio.gather(*(one(client, f"/{p}", content[p]) for p in paths))
            # httpcore's pool (public `connections` property): one connection, HTTP/2.
            conns = client._transport._pool.connections
            if len(conns) != 1:
                raise Failure(f"round {round_}: httpx holds {len(conns)} connections, not 1: {conns}")
            report.append(f"round {round_}: {CONCURRENT} concurrent GETs of {len(files)} files, all HTTP/2 200 and intact, on {conns[0]!r}")
        return report


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        report = asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2]), 120))
    except (Failure, httpx.HTTPError, asyncio.TimeoutError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for line in report:
        print(f"ok: {line}")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
