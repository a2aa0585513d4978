#!/usr/bin/env python3
"""Rebuilds worker/assets/favicon.ico from worker/assets/favicon.svg.

Renders the SVG at 16, 32 and 48 px in headless Chromium (transparent background) and
packs the three PNGs into one ICO file (ICONDIR + ICONDIRENTRY records, PNG payloads,
as browsers and Windows since Vista read them). Run after editing favicon.svg:

    python3 tests/browser/make_favicon.py
"""

import asyncio
import base64
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_test import Cdp, Failure, devtools_url, start_chromium, stop_chromium, ws_connect  # noqa: E402

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "worker", "assets")
SIZES = (16, 32, 48)


async def render(svg: str) -> dict[int, bytes]:
    profile = tempfile.mkdtemp(prefix="lwsd-favicon-")
    proc = start_chromium(shutil.which("chromium") or "chromium", profile, False)
    try:
        async with ws_connect(devtools_url(proc, profile), max_size=None) as ws:
            cdp = Cdp(ws)
            target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
            s = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            await cdp.send("Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 0, "g": 0, "b": 0, "a": 0}}, s)
            out = {}
            for size in SIZES:
                await cdp.send(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": size, "height": size, "deviceScaleFactor": 1, "mobile": False},
                    s,
                )
                html = (
                    "<!doctype html><style>html,body{margin:0;background:transparent}"
                    f"svg{{display:block;width:{size}px;height:{size}px}}</style>{svg}"
                )
                await cdp.send("Page.navigate", {"url": "data:text/html;base64," + base64.b64encode(html.encode()).decode()}, s)
                await asyncio.sleep(0.3)
                shot = await cdp.send(
                    "Page.captureScreenshot",
                    {"format": "png", "clip": {"x": 0, "y": 0, "width": size, "height": size, "scale": 1}},
                    s,
                )
                out[size] = base64.b64decode(shot["data"])
            await cdp.close()
            return out
    finally:
        stop_chromium(proc)
        shutil.rmtree(profile, ignore_errors=True)


def ico(pngs: dict[int, bytes]) -> bytes:
    head = struct.pack("<HHH", 0, 1, len(pngs))  # reserved, type 1 = icon, count
    offset = len(head) + 16 * len(pngs)
    entries, data = b"", b""
    for size, png in sorted(pngs.items()):
        # width, height (0 means 256), colours, reserved, planes, bpp, size, offset
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset)
        data += png
        offset += len(png)
    return head + entries + data


def main() -> int:
    with open(os.path.join(ASSETS, "favicon.svg"), encoding="utf-8") as f:
        svg = f.read()
    try:
        pngs = asyncio.run(render(svg))
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    path = os.path.join(ASSETS, "favicon.ico")
    with open(path, "wb") as f:
        f.write(ico(pngs))
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, sizes {SIZES})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
