"""The keep-alive timeout on an idle HTTP/2 connection.

Usage: idle.py PORT SECONDS

One GET, then nothing: the server must send GOAWAY NO_ERROR (naming stream 1) and close
the connection after about SECONDS (lwsd's --keepalive-timeout), not before SECONDS/2
and not after SECONDS+3. Exits 0 on success.
"""
import socket
import sys
import time

import hpack
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, SettingsFrame

port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(secs + 5)
h = HeadersFrame(1, hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                            (":path", "/one.txt"), (":authority", "localhost")]))
h.flags.add("END_HEADERS")
h.flags.add("END_STREAM")
start = time.time()
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize() + h.serialize())
buf, goaway, closed_at = b"", None, None
while True:
    data = s.recv(65536)
    if not data:
        closed_at = time.time() - start
        break
    buf += data
    while len(buf) >= 9:
        f, n = Frame.parse_frame_header(memoryview(buf[:9]))
        if len(buf) < 9 + n:
            break
        f.parse_body(memoryview(buf[9:9 + n]))
        buf = buf[9 + n:]
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            s.sendall(ack.serialize())
        if isinstance(f, GoAwayFrame):
            goaway = (f.last_stream_id, f.error_code, time.time() - start)
print("goaway", goaway, "closed after %.2f s" % closed_at)
if goaway is None or goaway[:2] != (1, 0):
    sys.exit("expected GOAWAY NO_ERROR naming stream 1, got %r" % (goaway,))
if not secs / 2 <= goaway[2] <= secs + 3:
    sys.exit("GOAWAY after %.2f s, keep-alive timeout %s s" % (goaway[2], secs))
