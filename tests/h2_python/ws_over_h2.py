#!/usr/bin/env python3
"""WebSockets over HTTP/2 (RFC 8441) against lwsd, with the `h2` library as the HTTP/2
client and the WebSocket framing (RFC 6455) and permessage-deflate (RFC 7692) written
out below, so every byte on the streams is checked here.

On ONE HTTP/2 connection (h2c with prior knowledge, or TLS with ALPN h2):
  * the server's first SETTINGS carries SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441
    section 3) before any extended CONNECT is sent;
  * four extended CONNECT streams (`:method CONNECT`, `:protocol websocket`, RFC 8441
    section 4) open side by side: dumb-increment-protocol, two lws-mirror-protocol,
    and lws-echo offering permessage-deflate; each answered `:status 200` with the
    `sec-websocket-protocol` asked for;
  * an ordinary GET / beside them gets 200 and the same bytes as an HTTP/1.1 GET /;
  * dumb-increment counts up by one per message, and `reset\n` restarts it;
  * a message sent on one mirror stream arrives on the other (text and binary), and on
    the sender's own;
  * the echo stream's `sec-websocket-extensions` answer names permessage-deflate, and
    compressed messages (compressible text, 200 KiB of incompressible bytes spanning
    many DATA frames, a compressed message fragmented over three frames, an
    uncompressed one) come back intact, the compressible one compressed (RSV1);
    a ping gets its pong;
  * a close frame (1000) on each WebSocket stream is answered by the server's close
    frame (1000) and END_STREAM on that stream, never RST_STREAM; the client then
    ends its side;
  * the connection goes on afterwards: another GET / gets 200; no GOAWAY came.

Usage: ws_over_h2.py PORT h2c|tls. Exit 0 when every check passes, 1 naming the check
that failed. Run by tests/h2_serving.rs. Every wait is bounded.
"""
from __future__ import annotations

import http.client
import os
import random
import select
import socket
import ssl
import struct
import sys
import time
import zlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HOST = "127.0.0.1"
# One wait for the server (a message, a response head, a window update).
WAIT_S = 10.0
# The whole script.
DEADLINE = time.monotonic() + 90.0
TAIL = b"\x00\x00\xff\xff"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Failure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def ws_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame: masked, as RFC 6455 section 5.3 requires of a client."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


class Message:
    def __init__(self, opcode: int, payload: bytes, compressed: bool, frames: int):
        self.opcode, self.payload, self.compressed, self.frames = opcode, payload, compressed, frames

    def __repr__(self) -> str:
        return f"Message(op={self.opcode}, {len(self.payload)} bytes, compressed={self.compressed})"


class Stream:
    """One request stream; for a WebSocket, its bytes parsed into frames and messages."""

    def __init__(self, sid: int, name: str):
        self.sid, self.name = sid, name
        self.headers: dict[str, str] | None = None
        self.raw = bytearray()  # DATA not yet parsed as WebSocket frames
        self.body = bytearray()  # DATA of a plain request
        self.ended = False
        self.reset: int | None = None
        self.websocket = False
        self.messages: list[Message] = []
        self.controls: list[tuple[int, bytes]] = []
        self._frag: tuple[int, bool, list[bytes]] | None = None
        self.inflater = None  # set once permessage-deflate is agreed
        self.fresh_inflater_each_message = False

    def feed(self, data: bytes) -> None:
        if not self.websocket:
            self.body += data
            return
        self.raw += data
        while True:
            f = self._parse_frame()
            if f is None:
                return
            fin, rsv1, opcode, payload = f
            if opcode >= 0x8:
                check(fin and not rsv1, f"{self.name}: a fragmented or RSV1 control frame")
                self.controls.append((opcode, payload))
                continue
            if opcode != OP_CONT:
                check(self._frag is None, f"{self.name}: a new message inside a fragmented one")
                self._frag = (opcode, rsv1, [payload])
            else:
                check(self._frag is not None, f"{self.name}: a continuation with no message")
                check(not rsv1, f"{self.name}: RSV1 on a continuation frame (RFC 7692 6.1)")
                self._frag[2].append(payload)
            if fin:
                op, compressed, parts = self._frag
                self._frag = None
                data = b"".join(parts)
                if compressed:
                    check(self.inflater is not None, f"{self.name}: RSV1 without permessage-deflate")
                    if self.fresh_inflater_each_message:
                        self.inflater = zlib.decompressobj(wbits=-15)
                    data = self.inflater.decompress(data + TAIL)
                self.messages.append(Message(op, data, compressed, len(parts)))

    def _parse_frame(self):
        b = self.raw
        if len(b) < 2:
            return None
        fin, rsv1, opcode = bool(b[0] & 0x80), bool(b[0] & 0x40), b[0] & 0x0F
        check(not (b[0] & 0x30), f"{self.name}: RSV2/RSV3 set by the server")
        check(not (b[1] & 0x80), f"{self.name}: the server masked a frame (RFC 6455 5.1)")
        n, at = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = struct.unpack_from("!H", b, 2)[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = struct.unpack_from("!Q", b, 2)[0], 10
        if len(b) < at + n:
            return None
        payload = bytes(b[at : at + n])
        del b[: at + n]
        return fin, rsv1, opcode, payload


class H2:
    """One HTTP/2 connection to the server: sends, and reads into per-stream state."""

    def __init__(self, port: int, tls: bool):
        self.port, self.tls = port, tls
        sock = socket.create_connection((HOST, port), timeout=WAIT_S)
        if tls:
            ctx = ssl._create_unverified_context()
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            check(sock.selected_alpn_protocol() == "h2", f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.streams: dict[int, Stream] = {}
        self.server_settings: dict[int, int] | None = None
        self.goaway = None

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, timeout: float) -> None:
        """Reads what arrives within `timeout` and handles its events."""
        if not (self.tls and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return
        data = self.sock.recv(1 << 16)
        check(bool(data), "the server closed the connection")
        for ev in self.conn.receive_data(data):
            self.handle(ev)
        self.flush()

    def handle(self, ev) -> None:
        s = self.streams.get(getattr(ev, "stream_id", None) or -1)
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            if self.server_settings is None:
                self.server_settings = {int(k): v.new_value for k, v in ev.changed_settings.items()}
        elif isinstance(ev, h2.events.ResponseReceived):
            s.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            # Give the window back as the data is consumed (RFC 9113 6.9).
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s.feed(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            s.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if s is not None:
                s.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev
            raise Failure(f"the server sent GOAWAY: {ev.error_code!r} last stream {ev.last_stream_id} {ev.additional_data!r}")

    def wait(self, cond, what: str, timeout: float = WAIT_S):
        end = min(time.monotonic() + timeout, DEADLINE)
        while True:
            v = cond()
            if v:
                return v
            left = end - time.monotonic()
            if left <= 0:
                raise Failure(f"{what}: not seen within {timeout} s")
            self.pump(min(left, 0.2))

    def request(self, name: str, headers: list[tuple[str, str]], end_stream: bool) -> Stream:
        sid = self.conn.get_next_available_stream_id()
        s = Stream(sid, name)
        self.streams[sid] = s
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return s

    def get(self, path: str) -> Stream:
        return self.request(
            f"GET {path}",
            [(":method", "GET"), (":scheme", self.scheme()), (":path", path), (":authority", self.authority())],
            end_stream=True,
        )

    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def authority(self) -> str:
        return f"{HOST}:{self.port}"

    def websocket(self, name: str, protocol: str, extensions: str | None = None) -> Stream:
        """An extended CONNECT (RFC 8441 section 4) for a WebSocket with `protocol`."""
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", self.scheme()),
            (":path", "/"),
            (":authority", self.authority()),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", protocol),
            ("origin", f"{self.scheme()}://{self.authority()}"),
        ]
        if extensions:
            headers.append(("sec-websocket-extensions", extensions))
        s = self.request(name, headers, end_stream=False)
        s.websocket = True
        return s

    def send(self, s: Stream, data: bytes, end_stream: bool = False) -> None:
        """Sends `data` on `s` as DATA frames, within the server's flow-control windows."""
        view = memoryview(data)
        while view:
            n = min(self.conn.local_flow_control_window(s.sid), self.conn.max_outbound_frame_size, len(view))
            if n <= 0:
                self.wait(
                    lambda: self.conn.local_flow_control_window(s.sid) > 0,
                    f"{s.name}: a WINDOW_UPDATE opening the window to send more",
                )
                continue
            self.conn.send_data(s.sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
        if end_stream:
            self.conn.end_stream(s.sid)
            self.flush()

    def next_message(self, s: Stream, what: str) -> Message:
        self.wait(lambda: s.messages or s.reset is not None or s.ended, f"{s.name}: {what}")
        check(s.reset is None, f"{s.name}: RST_STREAM {s.reset} while waiting for {what}")
        check(bool(s.messages), f"{s.name}: END_STREAM while waiting for {what}")
        return s.messages.pop(0)


def http1_get(port: int, tls: bool, path: str) -> bytes:
    """The same resource over HTTP/1.1, for comparison."""
    if tls:
        c = http.client.HTTPSConnection(HOST, port, timeout=WAIT_S, context=ssl._create_unverified_context())
    else:
        c = http.client.HTTPConnection(HOST, port, timeout=WAIT_S)
    c.request("GET", path)
    r = c.getresponse()
    check(r.status == 200, f"HTTP/1.1 GET {path}: {r.status}")
    body = r.read()
    c.close()
    return body


def check_response(s: Stream, protocol: str) -> None:
    h = s.headers
    check(h.get(":status") == "200", f"{s.name}: extended CONNECT answered {h}")
    check(h.get("sec-websocket-protocol") == protocol, f"{s.name}: sec-websocket-protocol {h.get('sec-websocket-protocol')!r}, asked for {protocol}")
    check(not s.ended, f"{s.name}: END_STREAM with the response head")


def counter_checks(c: H2, s: Stream) -> str:
    values = []
    while len(values) < 8:
        m = c.next_message(s, "a counter message")
        check(m.opcode == OP_TEXT, f"counter: a non-text message {m!r}")
        values.append(int(m.payload.decode()))
    for a, b in zip(values, values[1:]):
        check(b == a + 1, f"counter: {values} does not count up by one")
    c.send(s, ws_frame(OP_TEXT, b"reset\n"))
    # Messages already under way may still come; a value below the last one shows the reset.
    last = values[-1]
    for _ in range(200):
        v = int(c.next_message(s, "a counter message after reset").payload.decode())
        if v < last:
            return f"counter counted {values[0]}..{values[-1]} by one, then reset to {v}"
        last = v
    raise Failure("counter: never went down after reset")


def mirror_checks(c: H2, m1: Stream, m2: Stream) -> str:
    def expect(s: Stream, opcode: int, payload: bytes, what: str) -> None:
        # A mirror stream may receive others' messages; skip until ours (bounded).
        for _ in range(50):
            m = c.next_message(s, what)
            if m.opcode == opcode and m.payload == payload:
                return
        raise Failure(f"{s.name}: {what} never arrived")

    text = f"mirror check {random.randrange(10**9)}: from mirror 1".encode()
    c.send(m1, ws_frame(OP_TEXT, text))
    expect(m2, OP_TEXT, text, "mirror 1's text message on mirror 2")
    expect(m1, OP_TEXT, text, "mirror 1's text message back on mirror 1")
    binary = os.urandom(3000)
    c.send(m2, ws_frame(OP_BINARY, binary))
    expect(m1, OP_BINARY, binary, "mirror 2's binary message on mirror 1")
    expect(m2, OP_BINARY, binary, "mirror 2's binary message back on mirror 2")
    return "mirror: text 1 -> 2 and binary 2 -> 1 relayed between the streams"


def parse_deflate(ext: str) -> dict[str, str | None]:
    offers = [o.strip() for o in ext.split(",")]
    check(len(offers) == 1, f"echo: more than one extension agreed: {ext!r}")
    parts = [p.strip() for p in offers[0].split(";")]
    check(parts[0] == "permessage-deflate", f"echo: extension {parts[0]!r}")
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip()] = v.strip().strip('"') or None
    return params


def echo_deflate_checks(c: H2, e: Stream) -> str:
    ext = e.headers.get("sec-websocket-extensions")
    check(ext is not None, f"echo: no sec-websocket-extensions in the answer {e.headers}")
    params = parse_deflate(ext)
    client_bits = int(params.get("client_max_window_bits") or 15)
    client_reset = "client_no_context_takeover" in params
    e.inflater = zlib.decompressobj(wbits=-15)
    e.fresh_inflater_each_message = "server_no_context_takeover" in params
    deflater = zlib.compressobj(wbits=-client_bits)

    def compress(data: bytes) -> bytes:
        nonlocal deflater
        if client_reset:
            deflater = zlib.compressobj(wbits=-client_bits)
        out = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
        check(out.endswith(TAIL), "zlib's sync flush tail")
        return out[: -len(TAIL)]

    def roundtrip(opcode: int, data: bytes, what: str, fragments: int = 1, compressed: bool = True) -> Message:
        wire = compress(data) if compressed else data
        if fragments == 1:
            c.send(e, ws_frame(opcode, wire, rsv1=compressed))
        else:
            step = -(-len(wire) // fragments)
            pieces = [wire[i : i + step] for i in range(0, len(wire), step)]
            for i, p in enumerate(pieces):
                c.send(e, ws_frame(opcode if i == 0 else OP_CONT, p, fin=i == len(pieces) - 1, rsv1=compressed and i == 0))
        m = c.next_message(e, f"the echo of {what}")
        check(m.opcode == opcode and m.payload == data, f"echo: {what} came back as {m!r}")
        return m

    text = (b"permessage-deflate over an HTTP/2 stream. " * 500)[:20000]
    m = roundtrip(OP_TEXT, text, "20 kB of compressible text")
    check(m.compressed, "echo: the server's echo of compressible text was not compressed (no RSV1)")
    roundtrip(OP_BINARY, os.urandom(200 * 1024), "200 KiB of incompressible bytes")
    roundtrip(OP_TEXT, b"fragmented and compressed " * 200, "a compressed message in three fragments", fragments=3)
    roundtrip(OP_TEXT, b"not compressed by the client", "an uncompressed message", compressed=False)
    ping = os.urandom(16)
    c.send(e, ws_frame(OP_PING, ping))
    c.wait(lambda: (OP_PONG, ping) in e.controls, "echo: the pong to our ping")
    return f"echo with {ext}: compressed round trips intact (server compressed: {m.compressed}), ping answered"


def close_checks(c: H2, s: Stream) -> None:
    c.send(s, ws_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    c.wait(lambda: any(op == OP_CLOSE for op, _ in s.controls) or s.reset is not None, f"{s.name}: the server's close frame")
    check(s.reset is None, f"{s.name}: RST_STREAM {s.reset} instead of a close frame")
    payload = next(p for op, p in s.controls if op == OP_CLOSE)
    check(len(payload) >= 2 and struct.unpack("!H", payload[:2])[0] == 1000, f"{s.name}: close frame {payload!r}, not 1000")
    c.wait(lambda: s.ended or s.reset is not None, f"{s.name}: END_STREAM after the close frames")
    check(s.reset is None, f"{s.name}: RST_STREAM {s.reset} instead of END_STREAM")
    check(not s.raw, f"{s.name}: {len(s.raw)} bytes after the close frame")
    c.send(s, b"", end_stream=True)


def run(port: int, tls: bool) -> list[str]:
    report = []
    c = H2(port, tls)
    c.wait(lambda: c.server_settings is not None, "the server's SETTINGS")
    ecp = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
    check(c.server_settings.get(int(ecp)) == 1, f"SETTINGS_ENABLE_CONNECT_PROTOCOL not 1 in {c.server_settings}")
    report.append(f"server SETTINGS {c.server_settings}")

    counter = c.websocket("counter", "dumb-increment-protocol")
    m1 = c.websocket("mirror 1", "lws-mirror-protocol")
    m2 = c.websocket("mirror 2", "lws-mirror-protocol")
    echo = c.websocket("echo", "lws-echo", "permessage-deflate; client_max_window_bits")
    page = c.get("/")
    for s, p in ((counter, "dumb-increment-protocol"), (m1, "lws-mirror-protocol"), (m2, "lws-mirror-protocol"), (echo, "lws-echo")):
        c.wait(lambda: s.headers is not None or s.reset is not None, f"{s.name}: the response head")
        check(s.reset is None, f"{s.name}: RST_STREAM {s.reset}")
        check_response(s, p)
    report.append(f"streams {[s.sid for s in (counter, m1, m2, echo)]} opened as WebSockets on one connection")

    c.wait(lambda: page.ended or page.reset is not None, "GET /: the whole answer")
    check(page.reset is None and page.headers.get(":status") == "200", f"GET /: {page.headers} reset {page.reset}")
    h1 = http1_get(port, tls, "/")
    check(bytes(page.body) == h1, f"GET / over h2 ({len(page.body)} bytes) differs from HTTP/1.1 ({len(h1)} bytes)")
    report.append(f"GET / beside them: 200, {len(h1)} bytes, the same as over HTTP/1.1")

    report.append(counter_checks(c, counter))
    report.append(mirror_checks(c, m1, m2))
    report.append(echo_deflate_checks(c, echo))
    for s in (counter, m1, m2, echo):
        close_checks(c, s)
    report.append("close 1000 answered by close 1000 and END_STREAM on every WebSocket stream")

    again = c.get("/")
    c.wait(lambda: again.ended or again.reset is not None, "GET / after the WebSockets closed")
    check(again.headers.get(":status") == "200" and bytes(again.body) == h1, f"GET / afterwards: {again.headers}")
    # Anything late (a RST_STREAM for a closed stream, a GOAWAY) would show here.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        c.pump(0.1)
    for s in c.streams.values():
        check(s.reset is None, f"{s.name}: RST_STREAM {s.reset} after it ended")
    report.append("the connection carried on: GET / after the closes got 200")
    c.conn.close_connection()
    c.flush()
    c.sock.close()
    return report


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("h2c", "tls"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        for line in run(int(sys.argv[1]), sys.argv[2] == "tls"):
            print(f"ok: {line}", flush=True)
    except (Failure, h2.exceptions.ProtocolError, OSError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
