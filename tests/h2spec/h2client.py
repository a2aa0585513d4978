"""The frame-level HTTP/2 client behind h2spec.py: connections that send scripted
frames and read the server's as events, h2spec's verifications, and the test registry
the group modules (cases_generic.py, cases_http2.py, cases_hpack.py) fill."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
# h2spec's --max-header-length default: the value length of each dummy header field.
DUMMY_LEN = 4000

# Frame types (RFC 9113 section 6) and error codes (section 7).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_HEADERS = 0x4

ERROR_NAMES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}
CODES = {name: code for code, name in ERROR_NAMES.items()}

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


def code_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"0x{code:x}")


def raw_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    """A frame built byte by byte: for the frames hyperframe refuses to serialize
    (stream 0 where a stream is required, bad lengths, zero increments)."""
    n = len(payload)
    return (
        bytes([(n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF, ftype, flags])
        + (stream & 0xFFFFFFFF).to_bytes(4, "big")
        + payload
    )


def hpack_int(value: int, prefix_bits: int, first_byte_flags: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with `first_byte_flags` in the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


class Fail(Exception):
    """The test failed: `expected` is what a conforming server does, `actual` what came."""

    def __init__(self, expected: str, actual: str):
        super().__init__(f"expected {expected}; got {actual}")


class Skip(Exception):
    pass


@dataclass
class Config:
    host: str
    port: int
    tls: bool
    path: str
    timeout: float
    loose: bool


@dataclass
class Event:
    """What one read from the connection gave: a frame, the close, a timeout, an error."""

    kind: str  # "frame" | "closed" | "timeout" | "error"
    frame: Frame | None = None
    text: str = ""
    status: str | None = None  # :status of a decoded response HEADERS

    @property
    def ftype(self) -> int | None:
        return self.frame.type if self.frame is not None else None

    def has(self, flag: str) -> bool:
        return self.frame is not None and flag in self.frame.flags

    def __str__(self) -> str:
        if self.kind != "frame":
            return self.text or self.kind
        f = self.frame
        sid = f.stream_id
        if isinstance(f, DataFrame):
            end = ", END_STREAM" if "END_STREAM" in f.flags else ""
            return f"DATA(stream {sid}, {len(f.data)} bytes{end})"
        if isinstance(f, HeadersFrame):
            end = ", END_STREAM" if "END_STREAM" in f.flags else ""
            st = f", :status {self.status}" if self.status else ""
            return f"HEADERS(stream {sid}{st}{end})"
        if isinstance(f, RstStreamFrame):
            return f"RST_STREAM(stream {sid}, {code_name(f.error_code)})"
        if isinstance(f, GoAwayFrame):
            dbg = f", {f.additional_data[:60]!r}" if f.additional_data else ""
            return f"GOAWAY(last {f.last_stream_id}, {code_name(f.error_code)}{dbg})"
        if isinstance(f, SettingsFrame):
            return "SETTINGS(ACK)" if "ACK" in f.flags else f"SETTINGS({f.settings})"
        if isinstance(f, PingFrame):
            ack = "ACK, " if "ACK" in f.flags else ""
            return f"PING({ack}{f.opaque_data!r})"
        if isinstance(f, WindowUpdateFrame):
            return f"WINDOW_UPDATE(stream {sid}, +{f.window_increment})"
        if isinstance(f, ContinuationFrame):
            return f"CONTINUATION(stream {sid})"
        if isinstance(f, PushPromiseFrame):
            return f"PUSH_PROMISE(stream {sid}, promised {f.promised_stream_id})"
        if isinstance(f, PriorityFrame):
            return f"PRIORITY(stream {sid})"
        return f"frame type 0x{f.type:x}(stream {sid})"


class Conn:
    """One client connection: sends scripted frames, reads the server's as events.

    Like h2spec's, it keeps a client-side window and answers DATA with WINDOW_UPDATE
    when a window runs out, so a response never stalls on the client."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if cfg.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname=cfg.host)
            alpn = sock.selected_alpn_protocol()
            if alpn != "h2":
                sock.close()
                raise Fail("ALPN h2 chosen", f"ALPN {alpn!r}")
        self.sock = sock
        self.buf = bytearray()
        self.closed = False
        self.settings: dict[int, int] = {}
        self.windows: dict[int, int] = {0: DEFAULT_WINDOW}
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.block = bytearray()  # a response field block being collected
        self.block_event: Event | None = None
        self.trace: list[Event] = []

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # --- sending -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        # Write errors are ignored, as h2spec does: the server may already have closed,
        # and what it sent before that is what the test reads next.
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def write(self, frame: Frame) -> None:
        self.send(frame.serialize())

    def encode(self, headers: list[tuple[str, str]]) -> bytes:
        return self.encoder.encode(headers, huffman=True)

    def common_headers(self, method: str = "GET") -> list[tuple[str, str]]:
        cfg = self.cfg
        default = cfg.port == (443 if cfg.tls else 80)
        authority = cfg.host if default else f"{cfg.host}:{cfg.port}"
        return [
            (":method", method),
            (":scheme", "https" if cfg.tls else "http"),
            (":path", cfg.path),
            (":authority", authority),
        ]

    @staticmethod
    def dummy_headers(n: int) -> list[tuple[str, str]]:
        return [(f"x-dummy{i}", "x" * DUMMY_LEN) for i in range(n)]

    def headers(
        self,
        stream: int,
        block: bytes,
        end_stream: bool = True,
        end_headers: bool = True,
        pad_length: int | None = None,
        priority: tuple[int, int, bool] | None = None,
    ) -> None:
        flags = set()
        if end_stream:
            flags.add("END_STREAM")
        if end_headers:
            flags.add("END_HEADERS")
        f = HeadersFrame(stream, data=block)
        if pad_length is not None:
            flags.add("PADDED")
            f.pad_length = pad_length
        if priority is not None:
            flags.add("PRIORITY")
            f.depends_on, f.stream_weight, f.exclusive = priority
        for flag in flags:
            f.flags.add(flag)
        self.write(f)

    def request(self, stream: int = 1, method: str = "GET", end_stream: bool = True,
                extra: list[tuple[str, str]] | None = None) -> None:
        self.headers(stream, self.encode(self.common_headers(method) + (extra or [])),
                     end_stream=end_stream)

    def data(self, stream: int, payload: bytes, end_stream: bool = True,
             pad: bytes | None = None) -> None:
        f = DataFrame(stream, data=payload)
        if end_stream:
            f.flags.add("END_STREAM")
        if pad is not None:
            f.flags.add("PADDED")
            f.pad_length = len(pad)
        self.write(f)

    def continuation(self, stream: int, block: bytes, end_headers: bool) -> None:
        self.send(raw_frame(CONTINUATION, END_HEADERS if end_headers else 0, stream, block))

    def priority(self, stream: int, depends_on: int = 0, weight: int = 255,
                 exclusive: bool = False) -> None:
        dep = (depends_on | (0x80000000 if exclusive else 0)).to_bytes(4, "big")
        self.send(raw_frame(PRIORITY, 0, stream, dep + bytes([weight])))

    def rst_stream(self, stream: int, code: int) -> None:
        self.send(raw_frame(RST_STREAM, 0, stream, code.to_bytes(4, "big")))

    def settings_frame(self, *pairs: tuple[int, int]) -> None:
        payload = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs)
        self.send(raw_frame(SETTINGS, 0, 0, payload))

    def settings_ack(self) -> None:
        self.write(SettingsFrame(0, flags=["ACK"]))

    def ping(self, payload: bytes, ack: bool = False) -> None:
        self.write(PingFrame(0, opaque_data=payload, flags=["ACK"] if ack else []))

    def goaway(self, last: int, code: int, debug: bytes = b"") -> None:
        self.write(GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=debug))

    def window_update(self, stream: int, increment: int) -> None:
        self.send(raw_frame(WINDOW_UPDATE, 0, stream, increment.to_bytes(4, "big")))

    # --- receiving ---------------------------------------------------------------

    def _fill(self, n: int, deadline: float) -> str | None:
        """Reads until the buffer holds n bytes; returns None, "closed" or "timeout"."""
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return "timeout"
            except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                    ssl.SSLZeroReturnError):
                return "closed"
            if not chunk:
                return "closed"
            self.buf += chunk
        return None

    def wait_event(self) -> Event:
        """The next event, waiting at most the configured timeout (h2spec's WaitEvent).
        Anything but a frame marks the connection closed, as in h2spec."""
        deadline = time.monotonic() + self.cfg.timeout
        try:
            why = self._fill(9, deadline)
            if why is None:
                length = int.from_bytes(self.buf[0:3], "big")
                why = self._fill(9 + length, deadline)
        except (OSError, ssl.SSLError) as e:
            self.closed = True
            return self._record(Event("error", text=f"read error: {e}"))
        if why is not None:
            self.closed = True
            ev = Event(why, text="connection closed" if why == "closed" else
                       f"timeout ({self.cfg.timeout:g} s without a frame)")
            return self._record(ev)
        head = memoryview(bytes(self.buf[:9]))
        body = memoryview(bytes(self.buf[9:9 + length]))
        del self.buf[:9 + length]
        try:
            frame, _ = Frame.parse_frame_header(head)
            frame.parse_body(body)
        except Exception as e:  # hyperframe's errors for a malformed server frame
            self.closed = True
            return self._record(Event("error", text=f"unparsable frame from server: {e}"))
        ev = Event("frame", frame)
        if isinstance(frame, DataFrame):
            self._consume_window(frame.stream_id, length)
        elif isinstance(frame, (HeadersFrame, ContinuationFrame)):
            self._collect_block(ev, frame)
        return self._record(ev)

    def _record(self, ev: Event) -> Event:
        self.trace.append(ev)
        return ev

    def _consume_window(self, stream: int, length: int) -> None:
        for sid in (stream, 0):
            w = self.windows.get(sid, DEFAULT_WINDOW) - length
            if w <= 0:
                inc = DEFAULT_WINDOW - w
                self.window_update(sid, inc)
                w += inc
            self.windows[sid] = w

    def _collect_block(self, ev: Event, frame: Frame) -> None:
        """Decodes response field blocks, only to show the :status in reasons."""
        if isinstance(frame, HeadersFrame):
            self.block = bytearray(frame.data)
            self.block_event = ev
        else:
            self.block += frame.data
        if "END_HEADERS" in frame.flags and self.block_event is not None:
            try:
                for name, value in self.decoder.decode(bytes(self.block)):
                    if name == ":status":
                        self.block_event.status = value
            except Exception:
                pass
            self.block_event = None

    def wait_event_by_type(self, ftype: int) -> tuple[Event | None, bool]:
        """h2spec's WaitEventByType: the first frame of that type, else the last event."""
        last = None
        while not self.closed:
            ev = self.wait_event()
            if ev.ftype == ftype:
                return ev, True
            last = ev
        return last, False

    def handshake(self) -> None:
        """Preface + SETTINGS(INITIAL_WINDOW_SIZE=65535); done when the server's SETTINGS
        has come (and been acknowledged) and our SETTINGS has been acknowledged."""
        self.send(PREFACE)
        self.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW))
        local = remote = False
        deadline = time.monotonic() + self.cfg.timeout
        while not (local and remote):
            if time.monotonic() > deadline:
                raise Fail("the handshake (server SETTINGS and SETTINGS ACK)", "timeout")
            ev = self.wait_event()
            if ev.kind != "frame":
                raise Fail("the handshake (server SETTINGS and SETTINGS ACK)", self.actual())
            if isinstance(ev.frame, SettingsFrame):
                if "ACK" in ev.frame.flags:
                    local = True
                else:
                    remote = True
                    self.settings.update(ev.frame.settings)
                    self.settings_ack()
        self.trace.clear()

    def max_frame_size(self) -> int:
        return self.settings.get(SETTINGS_MAX_FRAME_SIZE, DEFAULT_FRAME_SIZE)

    def actual(self, n: int = 4) -> str:
        """What the server sent since the handshake (the last n events), for reasons."""
        if not self.trace:
            return "nothing"
        shown = [str(e) for e in self.trace[-n:]]
        more = len(self.trace) - len(shown)
        return ("... " if more else "") + ", ".join(shown)


# --- verifications (h2spec's spec/verifier.go semantics) ----------------------------


def _codes_text(codes: tuple[int, ...]) -> str:
    return " or ".join(code_name(c) for c in codes)


def verify_connection_error(c: Conn, *codes: int) -> None:
    """A GOAWAY with one of `codes`, or the connection closed."""
    wrong = None
    while not c.closed:
        ev = c.wait_event()
        if ev.kind == "closed":
            if wrong is not None and not c.cfg.loose:
                break
            return
        if isinstance(ev.frame, GoAwayFrame):
            if ev.frame.error_code in codes:
                return
            wrong = ev
            if not c.cfg.loose:
                break
    raise Fail(f"GOAWAY {_codes_text(codes)} or the connection closed", c.actual())


def verify_stream_error(c: Conn, *codes: int) -> None:
    """A RST_STREAM or GOAWAY with one of `codes`, or the connection closed."""
    wrong = None
    while not c.closed:
        ev = c.wait_event()
        if ev.kind == "closed":
            if wrong is not None and not c.cfg.loose:
                break
            return
        if isinstance(ev.frame, (GoAwayFrame, RstStreamFrame)):
            if ev.frame.error_code in codes:
                return
            if isinstance(ev.frame, GoAwayFrame):
                wrong = ev
                if not c.cfg.loose:
                    break
    raise Fail(f"RST_STREAM or GOAWAY {_codes_text(codes)}, or the connection closed",
               c.actual())


def verify_connection_close(c: Conn) -> None:
    while not c.closed:
        if c.wait_event().kind == "closed":
            return
    raise Fail("the connection closed", c.actual())


def verify_stream_close(c: Conn) -> None:
    """The response ends: a DATA or HEADERS frame with END_STREAM (or RST_STREAM NO_ERROR)."""
    while not c.closed:
        ev = c.wait_event()
        if isinstance(ev.frame, (DataFrame, HeadersFrame)) and ev.has("END_STREAM"):
            return
        if isinstance(ev.frame, RstStreamFrame) and ev.frame.error_code == 0:
            return
    raise Fail("the response to end (END_STREAM)", c.actual())


def verify_headers_frame(c: Conn, stream: int) -> None:
    ev, ok = c.wait_event_by_type(HEADERS)
    if not ok or ev.frame.stream_id != stream:
        raise Fail(f"a HEADERS frame on stream {stream} (a response)", c.actual())


def verify_event_type(c: Conn, ftype: int, name: str) -> Event:
    ev, ok = c.wait_event_by_type(ftype)
    if not ok:
        raise Fail(f"a {name} frame", c.actual())
    return ev


def verify_settings_ack(c: Conn) -> None:
    ev, ok = c.wait_event_by_type(SETTINGS)
    if not ok or not ev.has("ACK"):
        raise Fail("SETTINGS with ACK", c.actual())


def verify_ping_ack(c: Conn, payload: bytes) -> None:
    ev, ok = c.wait_event_by_type(PING)
    if not ok or not ev.has("ACK") or ev.frame.opaque_data != payload:
        raise Fail(f"PING with ACK and payload {payload!r}", c.actual())


def verify_ping_ack_or_close(c: Conn, payload: bytes) -> None:
    while not c.closed:
        ev = c.wait_event()
        if ev.kind == "closed":
            return
        if isinstance(ev.frame, PingFrame) and ev.has("ACK") and ev.frame.opaque_data == payload:
            return
    raise Fail(f"PING with ACK and payload {payload!r}, or the connection closed", c.actual())


def verify_data_length(c: Conn, stream: int, length: int) -> None:
    """The first DATA frame the server sends is `length` bytes long (flow control)."""
    ev, ok = c.wait_event_by_type(DATA)
    if not ok or len(ev.frame.data) != length:
        raise Fail(f"DATA(stream {stream}, {length} bytes)", c.actual())


def server_data_length(cfg: Config) -> int:
    """The total DATA length of the response to GET path, on a connection of its own
    (h2spec skips the flow-control tests when it is too short)."""
    c = Conn(cfg)
    try:
        c.handshake()
        c.request(1)
        total = 0
        while not c.closed:
            ev = c.wait_event()
            if isinstance(ev.frame, DataFrame):
                total += len(ev.frame.data)
                if ev.has("END_STREAM"):
                    return total
            elif isinstance(ev.frame, HeadersFrame) and ev.has("END_STREAM"):
                return total
        raise Fail(f"a complete response to GET {cfg.path}", c.actual())
    finally:
        c.close()


def need_data(cfg: Config, at_least: int) -> None:
    n = server_data_length(cfg)
    if n < at_least:
        raise Skip(f"the response to GET {cfg.path} has {n} DATA bytes, the test needs "
                   f"{at_least}: serve content there")


# --- the test list -------------------------------------------------------------------


@dataclass
class Test:
    id: str
    rfc: str
    desc: str
    run: Callable[[Conn], None]
    handshake: bool = True


TESTS: list[Test] = []


def test(tid: str, rfc: str, desc: str, handshake: bool = True):
    def register(fn: Callable[[Conn], None]):
        TESTS.append(Test(tid, rfc, desc, fn, handshake))
        return fn

    return register


PE, FSE, FCE, SC, CE = (CODES["PROTOCOL_ERROR"], CODES["FRAME_SIZE_ERROR"],
                        CODES["FLOW_CONTROL_ERROR"], CODES["STREAM_CLOSED"],
                        CODES["COMPRESSION_ERROR"])
CANCEL = CODES["CANCEL"]
H2SPEC_PING = b"h2spec\x00\x00"
ZERO_PING = b"\x00" * 8
