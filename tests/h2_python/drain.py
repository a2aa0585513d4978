"""A graceful drain seen by an HTTP/2 client (RFC 9113 6.8), frame by frame.

Usage: drain.py PORT SUPERVISOR_PID

Opens stream 1 for /big.bin (4 MiB) and leaves its window shut after the first 65,535
bytes, so the answer is still in flight; sends SIGTERM to lwsd's supervisor; expects
GOAWAY NO_ERROR naming the largest stream id (2^31-1) and a PING; answers the PING;
expects a second GOAWAY NO_ERROR naming stream 1; then opens the windows: the whole
body must arrive with END_STREAM, and the server close the connection after it.
Exits 0 on success, else with the reason.
"""
import os
import signal
import socket
import sys
import time

import hpack
from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              SettingsFrame, WindowUpdateFrame)

port, sup = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
enc = hpack.Encoder()
req = HeadersFrame(1, enc.encode([(":method", "GET"), (":scheme", "http"),
                                  (":path", "/big.bin"), (":authority", "localhost")]))
req.flags.add("END_HEADERS")
req.flags.add("END_STREAM")
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize() + req.serialize())

buf = b""


def frames():
    global buf
    while True:
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9:9 + length]))
            buf = buf[9 + length:]
            yield f
        data = s.recv(65536)
        if not data:
            yield None
            return
        buf += data


goaways, body, ended, signalled, opened = [], 0, False, False, False
deadline = time.time() + 30
for f in frames():
    if time.time() > deadline:
        sys.exit("timed out: goaways %r body %d" % (goaways, body))
    if f is None:
        break
    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        s.sendall(ack.serialize())
    elif isinstance(f, PingFrame) and "ACK" not in f.flags:
        pong = PingFrame(0, f.opaque_data)
        pong.flags.add("ACK")
        s.sendall(pong.serialize())
    elif isinstance(f, GoAwayFrame):
        goaways.append((f.last_stream_id, f.error_code))
    elif isinstance(f, DataFrame):
        body += len(f.data)
        if "END_STREAM" in f.flags:
            ended = True
        if opened:
            s.sendall(WindowUpdateFrame(0, len(f.data) or 1).serialize()
                      + WindowUpdateFrame(1, len(f.data) or 1).serialize())
    if not signalled and body >= 65535:
        # The answer is in flight and stalled on the window: drain now.
        os.kill(sup, signal.SIGTERM)
        signalled = True
    if len(goaways) == 2 and not opened:
        opened = True
        s.sendall(WindowUpdateFrame(0, 8 << 20).serialize()
                  + WindowUpdateFrame(1, 8 << 20).serialize())

print("goaways", goaways, "body", body, "ended", ended)
if len(goaways) != 2:
    sys.exit("expected two GOAWAY frames, got %r" % goaways)
if goaways[0] != (2**31 - 1, 0):
    sys.exit("first GOAWAY should name 2^31-1 with NO_ERROR: %r" % (goaways[0],))
if goaways[1] != (1, 0):
    sys.exit("second GOAWAY should name stream 1 with NO_ERROR: %r" % (goaways[1],))
if body != 4 << 20 or not ended:
    sys.exit("the in-flight answer was cut: %d bytes, END_STREAM %s" % (body, ended))
