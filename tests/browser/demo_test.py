#!/usr/bin/env python3
"""Headless-Chromium test of the lwsd demo page (test.html), over the DevTools protocol.

Starts a fresh headless Chromium, opens the demo in two pages A and B and checks what a
person would check by eye:

  * the dumb-increment counter on A rises (two reads 1 s apart, the second larger), and
    the page's Reset button brings it back down;
  * a stroke drawn with the mouse on B's mirror canvas (real Input.dispatchMouseEvent
    events, so the page's own pointer handlers and framing run) reaches A: A's count of
    received mirror messages goes up, the last message carries B's colour, and A's canvas
    has ink on the stroke; then a finger stroke (Input.dispatchTouchEvent) does too;
  * the server-status panel received a message; with --expect-different-workers, the
    `you.worker` shown on A and on B are both present and differ;
  * with --expect-echo, a message typed into A's echo box comes back;
  * with --expect-form, B's urlencoded form posted to /formtest gets a page showing the text;
  * with --expect-transport PROTO (e.g. h2), both pages and A's own resources (test.js,
    test.css, ...) came over PROTO (Resource Timing's nextHopProtocol);
  * with --metrics-url and --expect-h2-websockets, lwsd's own counters show that every
    WebSocket the pages opened went over HTTP/2 (RFC 8441, extended CONNECT on the
    page's connection): lwsd_h2_websockets_total is at least the number of WebSocket
    opens the pages saw, and lwsd_h2_connections_total stays within
    --max-h2-connections (the pages share one connection; 2 allows for one more that
    Chromium may open, e.g. a preconnect);
  * no uncaught JavaScript exception on either page.

Then it saves a full-page screenshot of A (--screenshot). Exit status 0 on success, 1 with
a message naming the failed check otherwise. Chromium is always killed, every wait is
bounded by a deadline.

Uses only the standard library and the `websockets` package (no Selenium/Playwright):
the DevTools protocol is JSON over one WebSocket, sessions are multiplexed with
`Target.attachToTarget(flatten=true)`.

Against lwsd:                  demo_test.py --base-url http://127.0.0.1:7681/
Against libwebsockets-test-server serving our page from a static server:
    libwebsockets-test-server -p 7681 &
    python3 -m http.server 8000 -d worker/assets &
    demo_test.py --base-url http://127.0.0.1:8000/ --path test.html --ws-url ws://127.0.0.1:7681
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

try:
    from websockets.asyncio.client import connect as ws_connect
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("demo_test.py needs the 'websockets' package (>= 13): pip install websockets")

# How long Chromium may take to write DevToolsActivePort: a cold start on a loaded
# 2-core machine takes 1-3 s; 20 s means "it is not going to start".
CHROME_START_TIMEOUT_S = 20.0
# One DevTools command; they answer in milliseconds, a screenshot in well under a second.
CDP_COMMAND_TIMEOUT_S = 15.0
# Page load plus the WebSocket handshakes of its four connections.
PAGE_READY_TIMEOUT_S = 15.0
# A relayed mirror message (B -> server -> A) arrives in milliseconds; a background tab's
# timers may be throttled to 1 s, so allow several seconds.
MIRROR_TIMEOUT_S = 8.0
# lwsd pushes status about once a second, lws on change; give both a few periods.
STATUS_TIMEOUT_S = 8.0
# Viewport of both pages: wide enough for the two-column layout of test.css.
VIEWPORT = (1280, 900)


class Failure(Exception):
    """A check failed; the message says which and what was seen."""


class Cdp:
    """A minimal DevTools-protocol client: one browser WebSocket, flat sessions."""

    def __init__(self, ws):
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._listeners: list = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self._ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    for listener in list(self._listeners):
                        listener(msg)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(Failure("DevTools connection closed"))

    def on_event(self, listener):
        self._listeners.append(listener)

    async def send(self, method: str, params: dict | None = None, session: str | None = None):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._ws.send(json.dumps(msg))
        try:
            reply = await asyncio.wait_for(fut, CDP_COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise Failure(f"DevTools command {method} got no answer in {CDP_COMMAND_TIMEOUT_S} s")
        if "error" in reply:
            raise Failure(f"DevTools command {method} failed: {reply['error']}")
        return reply.get("result", {})

    async def close(self):
        self._reader.cancel()
        await self._ws.close()


class Page:
    """One tab, driven through its flat session."""

    def __init__(self, cdp: Cdp, name: str, session: str, target: str):
        self.cdp, self.name, self.session, self.target = cdp, name, session, target
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []

    async def send(self, method, params=None):
        return await self.cdp.send(method, params, self.session)

    async def eval(self, expr: str):
        """Evaluates `expr` in the page and returns its JSON value."""
        res = await self.send(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in res:
            det = res["exceptionDetails"]
            text = det.get("exception", {}).get("description") or det.get("text")
            raise Failure(f"page {self.name}: evaluating {expr!r} threw: {text}")
        return res.get("result", {}).get("value")

    async def wait_for(self, expr: str, what: str, timeout: float, interval: float = 0.1):
        """Polls `expr` until it is truthy and returns it; fails naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await self.eval(expr)
            if last:
                return last
            await asyncio.sleep(interval)
        raise Failure(f"page {self.name}: {what} not seen within {timeout} s (last value: {last!r})")


def start_chromium(binary: str, profile: str, insecure: bool, extra: list[str]) -> subprocess.Popen:
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        # Two pages run side by side; neither may be throttled as a background tab.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
    ]
    if insecure:
        # For https:// runs against a self-signed certificate (lwsd -s, lws --ssl).
        args.append("--ignore-certificate-errors")
    args.extend(extra)
    args.append("about:blank")
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so its helpers die with it
    )


def stop_chromium(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def devtools_url(proc: subprocess.Popen, profile: str) -> str:
    """Reads the port and browser path Chromium writes to <profile>/DevToolsActivePort."""
    path = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + CHROME_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise Failure(f"chromium exited with status {proc.returncode} before DevTools was up:\n{err}")
        try:
            with open(path, encoding="ascii") as f:
                lines = f.read().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/"):
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise Failure(f"chromium did not write {path} within {CHROME_START_TIMEOUT_S} s")


async def open_page(cdp: Cdp, name: str, url: str) -> Page:
    target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
    session = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))[
        "sessionId"
    ]
    page = Page(cdp, name, session, target)

    def on_event(msg):
        if msg.get("sessionId") != session:
            return
        if msg["method"] == "Runtime.exceptionThrown":
            det = msg["params"]["exceptionDetails"]
            page.exceptions.append(det.get("exception", {}).get("description") or det.get("text", "?"))
        elif msg["method"] == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
            page.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"]))

    cdp.on_event(on_event)
    await page.send("Runtime.enable")
    await page.send("Page.enable")
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
    )
    nav = await page.send("Page.navigate", {"url": url})
    if nav.get("errorText"):
        raise Failure(f"page {name}: navigating to {url} failed: {nav['errorText']}")
    await page.wait_for(
        "document.readyState === 'complete' && typeof window.lwsdDemo === 'object'",
        f"the demo page loaded from {url} (window.lwsdDemo defined by test.js)",
        PAGE_READY_TIMEOUT_S,
    )
    return page


def page_url(base: str, path: str, ws_url: str | None) -> str:
    url = urllib.parse.urljoin(base, path)
    if ws_url:
        sep = "&" if "?" in url else "?"
        url += f"{sep}ws={urllib.parse.quote(ws_url, safe='')}"
    return url


async def check_counter(a: Page) -> str:
    await a.wait_for("lwsdDemo.links.counter.state === 'open'", "the counter connection open", PAGE_READY_TIMEOUT_S)
    await a.wait_for("lwsdDemo.counter.value !== null", "a first counter value", PAGE_READY_TIMEOUT_S)
    first = await a.eval("lwsdDemo.counter.value")
    await asyncio.sleep(1.0)
    second = await a.eval("lwsdDemo.counter.value")
    shown = await a.eval("document.getElementById('counter-value').textContent")
    if not isinstance(first, int) or not isinstance(second, int):
        raise Failure(f"counter: values are not integers: {first!r}, {second!r}")
    if second <= first:
        raise Failure(f"counter: did not rise in 1 s: {first} then {second}")
    if not shown.strip().isdigit():
        raise Failure(f"counter: the page shows {shown!r}, not a number")
    # The Reset button sends "reset\n"; the next values restart from 0.
    before = await a.eval("lwsdDemo.counter.value")
    await a.eval("document.getElementById('counter-reset').click(), true")
    await a.wait_for(
        f"lwsdDemo.counter.value !== null && lwsdDemo.counter.value < {before}",
        f"the counter below {before} after Reset",
        5.0,
    )
    return f"counter rose {first} -> {second} in 1 s, Reset brought it down from {before}"


async def check_mirror(a: Page, b: Page) -> str:
    for p in (a, b):
        await p.wait_for("lwsdDemo.links.mirror.state === 'open'", "the mirror connection open", PAGE_READY_TIMEOUT_S)
    colour = await b.eval(
        "(() => { const rs = [...document.querySelectorAll('input[name=colour]:not(:checked)')];"
        " rs[Math.floor(Math.random() * rs.length)].click(); return lwsdDemo.mirror.colour; })()"
    )
    if not colour:
        raise Failure("mirror: could not pick a colour on B")
    before_a = await a.eval("lwsdDemo.mirror.received")
    # Where the canvas is on B's screen, after scrolling it into view.
    rect = await b.eval(
        "(() => { const c = document.getElementById('mirror-canvas'); c.scrollIntoView({block: 'center'});"
        " const r = c.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height,"
        " lw: lwsdDemo.mirror.width, lh: lwsdDemo.mirror.height}; })()"
    )
    if not rect or rect["w"] < 10 or rect["h"] < 10:
        raise Failure(f"mirror: canvas on B has no usable size: {rect!r}")
    # Where to draw: two spots still blank on A (a server may replay earlier strokes to a
    # new client, lws' mirror does), a mouse stroke through the first and a finger stroke
    # through the second, so ink found there afterwards can only be this run's.
    await asyncio.sleep(0.5)  # let any replayed backlog arrive first
    for _ in range(20):
        my, ty_f = random.uniform(0.2, 0.45), random.uniform(0.6, 0.9)
        mid_x, mid_y = round(0.5 * rect["lw"]), round(my * rect["lh"])
        touch_x, touch_y = mid_x, round(ty_f * rect["lh"])
        if not await a.eval(
            f"lwsdDemo.mirror.inkAround({mid_x}, {mid_y}, 4) || lwsdDemo.mirror.inkAround({touch_x}, {touch_y}, 4)"
        ):
            break
    else:
        raise Failure("mirror: A's canvas has no blank spots left to draw on")
    # A diagonal stroke through (0.5, my) in ten mouse moves.
    pts = []
    for i in range(11):
        fx = 0.3 + 0.4 * i / 10
        fy = my - 0.1 + 0.2 * i / 10
        pts.append((rect["x"] + fx * rect["w"], rect["y"] + fy * rect["h"]))
    mouse = "Input.dispatchMouseEvent"
    await b.send(mouse, {"type": "mouseMoved", "x": pts[0][0], "y": pts[0][1]})
    await b.send(mouse, {"type": "mousePressed", "x": pts[0][0], "y": pts[0][1], "button": "left", "buttons": 1, "clickCount": 1})
    for x, y in pts[1:]:
        await b.send(mouse, {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1})
    await b.send(mouse, {"type": "mouseReleased", "x": pts[-1][0], "y": pts[-1][1], "button": "left", "buttons": 0, "clickCount": 1})
    sent = await b.wait_for("lwsdDemo.mirror.sent", "mirror messages sent by B after the stroke", MIRROR_TIMEOUT_S)
    await a.wait_for(
        f"lwsdDemo.mirror.received > {before_a} && lwsdDemo.mirror.last.includes({json.dumps(colour)})",
        f"a mirror message in B's colour {colour} arriving on A",
        MIRROR_TIMEOUT_S,
    )
    # The stroke's midpoint, in the canvas' logical coordinates, must be inked on A.
    inked = await a.wait_for(
        f"lwsdDemo.mirror.inkAround({mid_x}, {mid_y}, 3)",
        f"ink on A's canvas around ({mid_x}, {mid_y}) where B drew",
        MIRROR_TIMEOUT_S,
    )
    # A finger stroke (touch events; the page handles pointer events, so touch and pen
    # draw like the mouse), horizontal, through the second blank spot.
    await b.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 2})
    ty = rect["y"] + ty_f * rect["h"]
    tx = [rect["x"] + (0.2 + 0.06 * i) * rect["w"] for i in range(11)]
    touch = "Input.dispatchTouchEvent"
    await b.send(touch, {"type": "touchStart", "touchPoints": [{"x": tx[0], "y": ty}]})
    for x in tx[1:]:
        await b.send(touch, {"type": "touchMove", "touchPoints": [{"x": x, "y": ty}]})
    await b.send(touch, {"type": "touchEnd", "touchPoints": []})
    await a.wait_for(
        f"lwsdDemo.mirror.inkAround({touch_x}, {touch_y}, 3)",
        f"ink on A's canvas around ({touch_x}, {touch_y}) where B drew by touch",
        MIRROR_TIMEOUT_S,
    )
    received = await a.eval("lwsdDemo.mirror.received") - before_a
    return (
        f"mirror: B sent {await b.eval('lwsdDemo.mirror.sent')} message(s) in {colour} (mouse, then touch),"
        f" A received {received}, ink at ({mid_x},{mid_y}): {inked} and ({touch_x},{touch_y})"
    )


async def page_worker(p: Page):
    """The worker serving page `p`'s status connection (`you.worker`), once known."""
    await p.wait_for("lwsdDemo.status.messages > 0", "a server-status message", STATUS_TIMEOUT_S)
    return await p.eval("lwsdDemo.status.youWorker")


async def check_status(a: Page, b: Page, expect_different: bool) -> str:
    workers = []
    for p in (a, b):
        await p.wait_for("lwsdDemo.status.messages > 0", "a server-status message", STATUS_TIMEOUT_S)
        w = await p.eval("lwsdDemo.status.youWorker")
        shown = await p.eval("document.getElementById('served-by').hidden ? null : document.getElementById('you-worker').textContent")
        if w is not None and shown != str(w):
            raise Failure(f"status: page {p.name} knows you.worker={w} but shows {shown!r}")
        workers.append(w)
    if expect_different:
        if workers[0] is None or workers[1] is None:
            raise Failure(f"status: you.worker missing (A: {workers[0]!r}, B: {workers[1]!r})")
        if workers[0] == workers[1]:
            raise Failure(f"status: A and B are both served by worker {workers[0]}")
    proto = await a.eval("lwsdDemo.links.status.protocol")
    return f"status ({proto}): you.worker A={workers[0]!r} B={workers[1]!r}"


async def check_echo(a: Page) -> str:
    await a.wait_for("lwsdDemo.links.echo.state === 'open'", "the lws-echo connection open", PAGE_READY_TIMEOUT_S)
    text = f"echo check {time.time():.3f}"
    await a.eval(
        f"document.getElementById('echo-input').value = {json.dumps(text)};"
        " document.getElementById('echo-form').requestSubmit(), true"
    )
    await a.wait_for(
        f"[...document.querySelectorAll('#echo-log li.in .text')].some(e => e.textContent === {json.dumps(text)})",
        f"the echo of {text!r} in the echo panel",
        MIRROR_TIMEOUT_S,
    )
    return f"echo: {text!r} came back"


async def check_form(b: Page) -> str:
    """Submits the urlencoded form on B (the last check: B leaves the demo page)."""
    text = f"form check {random.randrange(10**9)}"
    await b.eval(
        f"document.getElementById('post-text-1').value = {json.dumps(text)};"
        " document.querySelector('form.post-form button[type=submit]').click(), true"
    )
    deadline = time.monotonic() + PAGE_READY_TIMEOUT_S
    seen = None
    while time.monotonic() < deadline:
        try:  # the page is navigating: evaluation fails until the answer has loaded
            seen = await b.eval(
                "location.pathname.endsWith('/formtest') && document.readyState === 'complete'"
                " ? document.body.innerText : null"
            )
        except Failure:
            seen = None
        if seen and text in seen:
            return f"form: POST /formtest answered with a page showing {text!r}"
        await asyncio.sleep(0.1)
    raise Failure(f"form: no /formtest answer showing {text!r} within {PAGE_READY_TIMEOUT_S} s (last: {seen!r:.300})")


async def check_transport(a: Page, b: Page, want: str) -> str:
    """Both pages, and A's same-origin resources, came over `want` (e.g. h2)."""
    for p in (a, b):
        got = await p.eval("lwsdDemo.transport")
        if got != want:
            raise Failure(f"page {p.name} loaded over {got!r}, expected {want!r}")
    # A's resources were fetched fresh (a new profile); a cached one has no protocol.
    res = await a.eval(
        "performance.getEntriesByType('resource').filter(r => r.name.startsWith(location.origin))"
        ".map(r => [r.name, r.nextHopProtocol])"
    )
    fetched = [(n, proto) for n, proto in res if proto]
    wrong = [(n, proto) for n, proto in fetched if proto != want]
    if not fetched or wrong:
        raise Failure(f"page A's resources: expected all over {want!r}, got {res!r}")
    return f"pages A and B and A's {len(fetched)} resources came over {want}"


def scrape_sum(metrics_url: str, name: str) -> float:
    """Sum over all series (workers) of counter `name` on lwsd's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if key.split("{", 1)[0] == name:
            total += float(value)
    return total


def h2_counters(metrics_url: str) -> tuple[float, float]:
    """lwsd's (RFC 8441 WebSockets, HTTP/2 connections) so far."""
    return (
        scrape_sum(metrics_url, "lwsd_h2_websockets_total"),
        scrape_sum(metrics_url, "lwsd_h2_connections_total"),
    )


async def check_h2_websockets(metrics_url: str, before: tuple[float, float], opened: int, max_conns: int) -> str:
    """Every WebSocket the pages opened was an RFC 8441 stream, on few connections:
    lwsd's counters, less what they were before the pages opened (`before`)."""
    if opened < 8:
        raise Failure(f"the pages opened only {opened} WebSockets (4 per demo page expected)")
    # Workers push their counters every 250 ms; give them a few periods.
    deadline = time.monotonic() + 5.0
    while True:
        ws, conns = (now - then for now, then in zip(h2_counters(metrics_url), before))
        if ws >= opened and 1 <= conns <= max_conns:
            return (
                f"lwsd counted {ws:.0f} RFC 8441 WebSockets (the pages opened {opened})"
                f" on {conns:.0f} HTTP/2 connection(s)"
            )
        if time.monotonic() > deadline:
            raise Failure(
                f"lwsd_h2_websockets_total rose by {ws} (want >= {opened}: the pages' WebSocket opens),"
                f" lwsd_h2_connections_total by {conns} (want 1..{max_conns})"
            )
        await asyncio.sleep(0.25)


async def run(args) -> list[str]:
    url = page_url(args.base_url, args.path, args.ws_url)
    profile = tempfile.mkdtemp(prefix="lwsd-demo-chromium-")
    ballast = []  # idle connections that shift the server's load balance (see below)
    if args.expect_h2_websockets and not args.metrics_url:
        raise Failure("--expect-h2-websockets needs --metrics-url")
    # The counters before Chromium makes any connection.
    h2_before = h2_counters(args.metrics_url) if args.expect_h2_websockets else (0.0, 0.0)
    proc = start_chromium(args.chromium, profile, args.insecure, args.chromium_arg)
    report = []

    def ok(line: str) -> None:
        """Reports a passed check at once, so a later failure shows what went before."""
        report.append(line)
        print(f"ok: {line}", flush=True)

    try:
        browser_ws = devtools_url(proc, profile)
        async with ws_connect(browser_ws, max_size=None, open_timeout=CDP_COMMAND_TIMEOUT_S) as ws:
            cdp = Cdp(ws)
            try:
                a = await open_page(cdp, "A", url)
                b = await open_page(cdp, "B", url)
                pages = [a, b]
                if args.expect_different_workers:
                    # The supervisor gives each connection to the least-loaded worker, so
                    # which worker a page's sockets land on is not fixed: open more pages
                    # (the earlier ones stay open and load their worker) until one is
                    # served by another worker than A, then test A against that one.
                    # A page opens its sockets in a fixed order, so with two workers each
                    # new page can land the same way: an extra idle connection between
                    # attempts shifts the balance by one.
                    for attempt in range(2, 10):
                        wa, wb = await page_worker(a), await page_worker(b)
                        if wa is not None and wb is not None and wa != wb:
                            break
                        u = urllib.parse.urlsplit(args.base_url)
                        ballast.append(socket.create_connection((u.hostname, u.port or 80), timeout=5))
                        b = await open_page(cdp, f"B{attempt}", url)
                        pages.append(b)
                transport = await a.eval("lwsdDemo.transport")
                ok(f"page {url} loaded over {transport}")
                if args.expect_transport:
                    ok(await check_transport(a, b, args.expect_transport))
                if args.expect_ws_scheme:
                    for p in (a, b):
                        base = await p.eval("lwsdDemo.wsBase")
                        if not base.startswith(args.expect_ws_scheme + "://"):
                            raise Failure(f"page {p.name}: WebSockets go to {base!r}, expected {args.expect_ws_scheme}://")
                    ok(f"the pages' WebSockets use {base}")
                ok(await check_counter(a))
                ok(await check_mirror(a, b))
                ok(await check_status(a, b, args.expect_different_workers))
                if args.expect_echo:
                    ok(await check_echo(a))
                # Counted before the form check, which takes B away from the demo.
                opened = 0
                for p in pages:
                    opened += await p.eval("Object.values(lwsdDemo.links).reduce((n, l) => n + l.opens, 0)")
                if args.expect_form:
                    ok(await check_form(b))
                if args.expect_h2_websockets:
                    ok(await check_h2_websockets(args.metrics_url, h2_before, opened, args.max_h2_connections))
                for p in (a, b):
                    if p.exceptions:
                        raise Failure(f"page {p.name}: uncaught JavaScript exception(s): {p.exceptions}")
                if args.screenshot:
                    await a.send("Page.bringToFront")
                    await a.eval("window.scrollTo(0, 0), true")
                    shot = await a.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
                    with open(args.screenshot, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                    ok(f"screenshot of A written to {args.screenshot}")
            finally:
                await cdp.close()
    finally:
        stop_chromium(proc)
        shutil.rmtree(profile, ignore_errors=True)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", required=True, help="where the server is, e.g. http://127.0.0.1:7681/")
    ap.add_argument("--path", default="", help="page path relative to --base-url (default: the base URL itself)")
    ap.add_argument("--ws-url", help="WebSocket origin for the page (passed as ?ws=), e.g. ws://127.0.0.1:7681")
    ap.add_argument("--screenshot", help="write a PNG of page A here")
    ap.add_argument("--expect-different-workers", action="store_true", help="A and B must show different you.worker")
    ap.add_argument("--expect-echo", action="store_true", help="also check the lws-echo panel (lwsd has it, lws' test server not)")
    ap.add_argument("--expect-form", action="store_true", help="also submit the urlencoded /formtest form on B")
    ap.add_argument("--expect-transport", help="require the page's transport, e.g. h2 or http/1.1")
    ap.add_argument("--insecure", action="store_true", help="accept self-signed certificates (https)")
    ap.add_argument("--expect-ws-scheme", help="require the pages' WebSocket URLs to use this scheme, e.g. wss")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="browser binary")
    ap.add_argument("--chromium-arg", action="append", default=[], help="one more Chromium flag (repeatable), e.g. --disable-http2")
    ap.add_argument("--metrics-url", help="lwsd's /metrics, e.g. http://127.0.0.1:9464/metrics")
    ap.add_argument(
        "--expect-h2-websockets",
        action="store_true",
        help="lwsd's metrics must count every WebSocket the pages opened as RFC 8441 (needs --metrics-url)",
    )
    ap.add_argument("--max-h2-connections", type=int, default=2, help="most HTTP/2 connections lwsd may count (default 2)")
    ap.add_argument("--timeout", type=float, default=90.0, help="overall limit in seconds")
    args = ap.parse_args()
    try:
        report = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except asyncio.TimeoutError:
        print(f"FAIL: the whole test took longer than {args.timeout} s", file=sys.stderr)
        return 1
    except OSError as e:  # connection refused and the like
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(f"PASS: {len(report)} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
