"""One stream's rx flow control on an HTTP/2 connection (RFC 8441 WebSocket, lws-echo).

Usage: flow.py PORT

Opens a WebSocket on stream 1 (lws-echo) and sends 64 KiB messages as fast as the
stream window the server grants allows, never opening the window of stream 1's echoes.
The echoes cannot leave, so the stream's WebSocket session stops consuming (its output
is backed up; the echo protocol would also turn rx flow control off at 1 MiB queued):
the server must stop crediting stream 1 (no more WINDOW_UPDATE for it), so what the
client can send is bounded, while the connection stays alive: a PING is answered and a GET on stream 3 is
served. Then the client opens stream 1's window: echoes flow again, the server reads
again, and every message sent comes back. Exits 0 on success.
"""
import os
import socket
import struct
import sys
import time

import hpack
from hyperframe.frame import (DataFrame, Frame, HeadersFrame, PingFrame, SettingsFrame,
                              WindowUpdateFrame)

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(0.2)
enc, dec = hpack.Encoder(), hpack.Decoder()
MSG = 64 * 1024


def ws_frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | 127]) + struct.pack("!Q", n) if n > 65535
                            else bytes([0x80 | 126]) + struct.pack("!H", n))
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def headers(sid, fields, end=False):
    f = HeadersFrame(sid, enc.encode(fields))
    f.flags.add("END_HEADERS")
    if end:
        f.flags.add("END_STREAM")
    return f.serialize()


# A large connection window, stream windows left at 65,535: only stream 1 is held.
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize()
          + WindowUpdateFrame(0, 1 << 30).serialize()
          + headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                        (":path", "/"), (":authority", "localhost"),
                        ("sec-websocket-version", "13"), ("sec-websocket-protocol", "lws-echo")]))

buf = b""
state = {"window": 65535, "echoed": 0, "status": {}, "ping": False, "got3": 0, "end3": False}


def read_frames(budget=0.2):
    global buf
    end = time.time() + budget
    while time.time() < end:
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not data:
            sys.exit("connection closed by the server")
        buf += data
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9:9 + length]))
            buf = buf[9 + length:]
            handle(f)


def handle(f):
    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
        state["window"] = f.settings.get(4, state["window"])
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        s.sendall(ack.serialize())
    elif isinstance(f, WindowUpdateFrame) and f.stream_id == 1:
        state["window"] += f.window_increment
    elif isinstance(f, HeadersFrame):
        for k, v in dec.decode(f.data):
            if k == ":status":
                state["status"][f.stream_id] = v
    elif isinstance(f, PingFrame) and "ACK" in f.flags:
        state["ping"] = True
    elif isinstance(f, DataFrame) and f.stream_id == 1:
        state["echoed"] += len(f.data)
    elif isinstance(f, DataFrame) and f.stream_id == 3:
        state["got3"] += len(f.data)
        state["end3"] = "END_STREAM" in f.flags


read_frames(0.5)
if state["status"].get(1) != "200":
    sys.exit("WebSocket not accepted: %r" % state["status"])
msg = ws_frame(b"x" * MSG)
sent = 0
stalled_since = None
deadline = time.time() + 20
while time.time() < deadline:
    if state["window"] >= len(msg):
        for off in range(0, len(msg), 16384):
            s.sendall(DataFrame(1, msg[off:off + 16384]).serialize())
        state["window"] -= len(msg)
        sent += 1
        stalled_since = None
        read_frames(0.01)
        continue
    stalled_since = stalled_since or time.time()
    read_frames(0.2)
    if time.time() - stalled_since > 1.5:
        break
held = sent * MSG
print("sent %d KiB before the server stopped crediting stream 1; echoed %d KiB"
      % (held // 1024, state["echoed"] // 1024))
if held > 8 << 20:
    sys.exit("the server kept reading a paused stream: %d bytes" % held)
if sent < 4:
    sys.exit("too little went through before the pause: %d messages" % sent)

# The connection is alive: a PING and another stream.
s.sendall(PingFrame(0, b"12345678").serialize()
          + headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/one.txt"),
                        (":authority", "localhost")], end=True))
read_frames(1.0)
if not state["ping"]:
    sys.exit("PING not answered while stream 1 is paused")
if state["status"].get(3) != "200" or not state["end3"]:
    sys.exit("GET on stream 3 not served while stream 1 is paused: %r" % state["status"])

# Open stream 1's window: every echo comes back, and the server reads again.
total = sent * MSG  # payload bytes (each echo adds its WebSocket frame header)
deadline = time.time() + 20
while state["echoed"] < total and time.time() < deadline:
    s.sendall(WindowUpdateFrame(1, 1 << 20).serialize())
    read_frames(0.2)
print("echoed %d of %d bytes after opening the window" % (state["echoed"], total))
if state["echoed"] < total:
    sys.exit("echoes did not all come back")
