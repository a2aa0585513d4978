#!/usr/bin/env python3
"""A stand-in for lwsd's demo, for developing test.html and demo_test.py without lwsd.

Not a test of lwsd: it serves worker/assets/ over HTTP and the four demo protocols on the
same port (so the page's same-origin WebSocket URL is exercised, no ?ws=), sending the
status JSON in lwsd's format, with `you.worker` taken round-robin over --workers
pretend workers per status connection. That lets the `you.worker` display and
demo_test.py --expect-different-workers be checked both ways:

    mock_server.py --port 7690 --workers 2   # demo_test.py --expect-different-workers passes
    mock_server.py --port 7690 --workers 1   # ... and fails

With --tls CERT KEY it serves https and wss (for the page's wss: choice and
demo_test.py --insecure). No POST (/formtest): the websockets package serves GET only.
"""

import argparse
import asyncio
import itertools
import json
import mimetypes
import os
import ssl
import time

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "worker", "assets")
PROTOCOLS = ["dumb-increment-protocol", "lws-mirror-protocol", "lws-server-status", "lws-echo"]
# lws' dumb-increment timer period.
COUNTER_PERIOD_S = 0.05
STATUS_PERIOD_S = 1.0


def http(connection, request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    path = request.path.split("?", 1)[0]
    if path == "/":
        path = "/test.html"
    name = os.path.normpath(os.path.join(ASSETS, path.lstrip("/")))
    if not name.startswith(os.path.normpath(ASSETS) + os.sep) or not os.path.isfile(name):
        return connection.respond(404, "not found\n")
    with open(name, "rb") as f:
        body = f.read()
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return Response(200, "OK", headers, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7690)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve https/wss with this PEM pair")
    ap.add_argument("--seconds", type=float, default=600, help="exit after this long")
    args = ap.parse_args()
    started = time.monotonic()
    mirror = set()
    status_ids = itertools.count()

    async def handler(ws):
        try:
            await serve_one(ws)
        except ConnectionClosed:
            pass  # the browser went away; nothing to report

    async def serve_one(ws):
        proto = ws.subprotocol
        if proto == "dumb-increment-protocol":
            n = 0

            async def reader():
                nonlocal n
                async for msg in ws:
                    if msg == "reset\n":
                        n = 0

            task = asyncio.create_task(reader())
            try:
                while True:
                    await ws.send(str(n))
                    n += 1
                    await asyncio.sleep(COUNTER_PERIOD_S)
            except ConnectionClosed:
                pass
            finally:
                task.cancel()
        elif proto == "lws-mirror-protocol":
            mirror.add(ws)
            try:
                async for msg in ws:
                    broadcast(mirror, msg)
            finally:
                mirror.discard(ws)
        elif proto == "lws-server-status":
            me = next(status_ids) % args.workers
            try:
                while True:
                    doc = {
                        "server": "lwsd/0.1.0",
                        "uptime_s": int(time.monotonic() - started),
                        "workers": [
                            {"index": i, "pid": 1000 + i, "conns": 4, "ws_conns": 2, "requests": 99}
                            for i in range(args.workers)
                        ],
                        "you": {"worker": me},
                    }
                    await ws.send(json.dumps(doc))
                    await asyncio.sleep(STATUS_PERIOD_S)
            except ConnectionClosed:
                pass
        elif proto == "lws-echo":
            async for msg in ws:
                await ws.send(msg)
        else:
            await ws.close(1002, "no subprotocol")

    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*args.tls)

    async def run():
        async with serve(handler, "127.0.0.1", args.port, subprotocols=PROTOCOLS, process_request=http, ssl=tls):
            await asyncio.sleep(args.seconds)

    asyncio.run(run())


if __name__ == "__main__":
    main()
