"""h2spec's `http2` group: each MUST of RFC 7540 that a server can be tested for, with
the error it must answer a violation with. h2spec numbers sections by RFC 7540; the
RFC 9113 section is given first, the RFC 7540 one after it where it moved."""

from __future__ import annotations

from h2client import (
    CANCEL,
    CE,
    DATA,
    FCE,
    FSE,
    GOAWAY,
    H2SPEC_PING,
    HEADERS,
    PE,
    PING,
    PREFACE,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SC,
    SETTINGS,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    WINDOW_UPDATE,
    ZERO_PING,
    Conn,
    Fail,
    SettingsFrame,
    Skip,
    hpack_int,
    need_data,
    raw_frame,
    test,
    verify_connection_close,
    verify_connection_error,
    verify_data_length,
    verify_event_type,
    verify_headers_frame,
    verify_ping_ack,
    verify_ping_ack_or_close,
    verify_settings_ack,
    verify_stream_close,
    verify_stream_error,
)

REFUSED = 0x7
UNKNOWN_TYPE = 0x16  # the extension frame type h2spec uses


# --- 3.5 HTTP/2 Connection Preface ------------------------------------------------------


@test("http2/3.5/1", "RFC 9113 3.4 (RFC 7540 3.5)", "Sends client connection preface",
      handshake=False)
def _(c: Conn):
    c.send(PREFACE)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 65535))
    ev = c.wait_event()
    if not (isinstance(ev.frame, SettingsFrame) and not ev.has("ACK")):
        raise Fail("a SETTINGS frame (not an ACK) as the server's first frame", c.actual())


@test("http2/3.5/2", "RFC 9113 3.4 (RFC 7540 3.5)", "Sends invalid connection preface",
      handshake=False)
def _(c: Conn):
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    verify_connection_error(c, PE)


# --- 4. HTTP Frames ---------------------------------------------------------------------


@test("http2/4.1/1", "RFC 9113 4.1", "Sends a frame with unknown type")
def _(c: Conn):
    c.send(raw_frame(UNKNOWN_TYPE, 0, 0, bytes(8)))
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("http2/4.1/2", "RFC 9113 4.1", "Sends a frame with undefined flag")
def _(c: Conn):
    c.send(raw_frame(PING, 0x16, 0, bytes(8)))  # flags other than ACK: ignored
    verify_event_type(c, PING, "PING")


@test("http2/4.1/3", "RFC 9113 4.1", "Sends a frame with reserved field bit")
def _(c: Conn):
    c.send(raw_frame(PING, 0x16, 0x80000000, bytes(8)))  # the R bit set on stream 0
    verify_event_type(c, PING, "PING")


@test("http2/4.2/1", "RFC 9113 4.2", "Sends a DATA frame with 2^14 octets in length")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"x" * c.max_frame_size())
    verify_headers_frame(c, 1)


def _oversize(c: Conn) -> int:
    """One octet more than the server's SETTINGS_MAX_FRAME_SIZE, if a frame can be that
    long (h2spec sends a 2^24-byte frame to a server allowing 2^24-1: its 24-bit length
    field then reads 0, and the test means nothing)."""
    n = c.max_frame_size() + 1
    if n > 0xFFFFFF:
        raise Skip(f"the server accepts frames up to {n - 1} octets: none can be longer")
    return n


@test("http2/4.2/2", "RFC 9113 4.2",
      "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(c: Conn):
    n = _oversize(c)
    c.request(1, "POST", end_stream=False)
    c.send(raw_frame(DATA, 0x1, 1, b"x" * n))
    verify_stream_error(c, FSE)


@test("http2/4.2/3", "RFC 9113 4.2",
      "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(c: Conn):
    n = _oversize(c)
    # h2spec's block: five 4000-octet fields (about 17,500 octets Huffman-coded).
    block = c.encode(c.common_headers() + c.dummy_headers(5))
    if len(block) < n:  # a server allowing larger frames: one long literal field more
        pad = n - len(block)
        block += b"\x10\x07x-dummy" + hpack_int(pad, 7, 0) + b"x" * pad
    c.send(raw_frame(HEADERS, 0x5, 1, block))  # END_STREAM | END_HEADERS
    verify_connection_error(c, FSE)


@test("http2/4.3/1", "RFC 9113 4.3", "Sends invalid header block fragment")
def _(c: Conn):
    # A literal with incremental indexing, new name, and nothing after it.
    c.send(raw_frame(HEADERS, 0x5, 1, b"\x40"))
    verify_connection_error(c, CE)


@test("http2/4.3/2", "RFC 9113 4.3", "Sends a PRIORITY frame while sending the header blocks")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_stream=False, end_headers=False)
    c.priority(1)
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


@test("http2/4.3/3", "RFC 9113 4.3",
      "Sends a HEADERS frame to another stream while sending the header blocks")
def _(c: Conn):
    h = c.common_headers()
    c.headers(1, c.encode(h), end_stream=False, end_headers=False)
    c.headers(3, c.encode(h))
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


# --- 5.1 Stream States ------------------------------------------------------------------


@test("http2/5.1/1", "RFC 9113 5.1", "idle: Sends a DATA frame")
def _(c: Conn):
    c.data(1, b"test")
    verify_connection_error(c, PE)


@test("http2/5.1/2", "RFC 9113 5.1", "idle: Sends a RST_STREAM frame")
def _(c: Conn):
    c.rst_stream(1, CANCEL)
    verify_connection_error(c, PE)


@test("http2/5.1/3", "RFC 9113 5.1", "idle: Sends a WINDOW_UPDATE frame")
def _(c: Conn):
    c.window_update(1, 100)
    verify_connection_error(c, PE)


@test("http2/5.1/4", "RFC 9113 5.1", "idle: Sends a CONTINUATION frame")
def _(c: Conn):
    c.continuation(1, c.encode(c.common_headers()), True)
    verify_connection_error(c, PE)


@test("http2/5.1/5", "RFC 9113 5.1", "half closed (remote): Sends a DATA frame")
def _(c: Conn):
    c.request(1)
    c.data(1, b"test")
    verify_stream_error(c, SC)


@test("http2/5.1/6", "RFC 9113 5.1", "half closed (remote): Sends a HEADERS frame")
def _(c: Conn):
    c.request(1)
    c.request(1)
    verify_stream_error(c, SC)


@test("http2/5.1/7", "RFC 9113 5.1", "half closed (remote): Sends a CONTINUATION frame")
def _(c: Conn):
    block = c.encode(c.common_headers())
    c.headers(1, block)
    c.continuation(1, block, True)
    verify_stream_error(c, SC, PE)


@test("http2/5.1/8", "RFC 9113 5.1",
      "closed: Sends a DATA frame after sending RST_STREAM frame")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.rst_stream(1, CANCEL)
    c.data(1, b"test")
    verify_stream_error(c, SC)


@test("http2/5.1/9", "RFC 9113 5.1",
      "closed: Sends a HEADERS frame after sending RST_STREAM frame")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.rst_stream(1, CANCEL)
    c.request(1)
    verify_stream_error(c, SC)


@test("http2/5.1/10", "RFC 9113 5.1",
      "closed: Sends a CONTINUATION frame after sending RST_STREAM frame")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.rst_stream(1, CANCEL)
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_stream_error(c, SC, PE)


@test("http2/5.1/11", "RFC 9113 5.1", "closed: Sends a DATA frame")
def _(c: Conn):
    c.request(1)
    verify_stream_close(c)
    c.data(1, b"test")
    verify_stream_error(c, SC)


@test("http2/5.1/12", "RFC 9113 5.1", "closed: Sends a HEADERS frame")
def _(c: Conn):
    block = c.encode(c.common_headers())
    c.headers(1, block)
    verify_stream_close(c)
    c.headers(1, block)
    verify_connection_error(c, SC)


@test("http2/5.1/13", "RFC 9113 5.1", "closed: Sends a CONTINUATION frame")
def _(c: Conn):
    c.request(1)
    verify_stream_close(c)
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, SC, PE)


@test("http2/5.1.1/1", "RFC 9113 5.1.1", "Sends even-numbered stream identifier")
def _(c: Conn):
    c.request(2)
    verify_connection_error(c, PE)


@test("http2/5.1.1/2", "RFC 9113 5.1.1",
      "Sends stream identifier that is numerically smaller than previous")
def _(c: Conn):
    c.request(5)
    c.request(3)
    verify_connection_error(c, PE)


@test("http2/5.1.2/1", "RFC 9113 5.1.2",
      "Sends HEADERS frames that causes their advertised concurrent stream limit to be "
      "exceeded")
def _(c: Conn):
    limit = c.settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise Skip("the server sets no SETTINGS_MAX_CONCURRENT_STREAMS")
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 0))  # responses cannot finish
    block = c.encode(c.common_headers())
    c.send(b"".join(raw_frame(HEADERS, 0x5, 1 + 2 * i, block) for i in range(limit + 1)))
    verify_stream_error(c, PE, REFUSED)


# --- 5.3.1 Stream Dependencies ----------------------------------------------------------

PRIO_RFC = "RFC 7540 5.3.1; RFC 9113 5.3.2 deprecates the scheme"


@test("http2/5.3.1/1", PRIO_RFC, "Sends HEADERS frame that depends on itself")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), priority=(1, 255, False))
    verify_stream_error(c, PE)


@test("http2/5.3.1/2", PRIO_RFC, "Sends PRIORITY frame that depend on itself")
def _(c: Conn):
    c.priority(1, 1, 255)
    verify_stream_error(c, PE)


# --- 5.4.1 Connection Error Handling ----------------------------------------------------


@test("http2/5.4.1/1", "RFC 9113 5.4.1", "Sends an invalid PING frame for connection close")
def _(c: Conn):
    c.send(raw_frame(PING, 0, 3, bytes(8)))
    verify_connection_close(c)


@test("http2/5.4.1/2", "RFC 9113 5.4.1 (strict: SHOULD send GOAWAY)",
      "Sends an invalid PING frame to receive GOAWAY frame")
def _(c: Conn):
    c.send(raw_frame(PING, 0, 3, bytes(8)))
    ev, ok = c.wait_event_by_type(GOAWAY)
    if not ok or (ev.frame.error_code != PE and not c.cfg.loose):
        raise Fail("GOAWAY PROTOCOL_ERROR before the close", c.actual())


# --- 5.5 Extending HTTP/2 ---------------------------------------------------------------


@test("http2/5.5/1", "RFC 9113 5.5", "Sends an unknown extension frame")
def _(c: Conn):
    c.send(raw_frame(UNKNOWN_TYPE, 0, 0, bytes(8)))
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("http2/5.5/2", "RFC 9113 5.5",
      "Sends an unknown extension frame in the middle of a header block")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_headers=False)
    c.send(raw_frame(UNKNOWN_TYPE, 0, 0, bytes(8)))
    verify_connection_error(c, PE)


# --- 6.1 DATA ---------------------------------------------------------------------------


@test("http2/6.1/1", "RFC 9113 6.1", "Sends a DATA frame with 0x0 stream identifier")
def _(c: Conn):
    c.send(raw_frame(DATA, 0x1, 0, b"test"))
    verify_connection_error(c, PE)


@test("http2/6.1/2", "RFC 9113 6.1",
      'Sends a DATA frame on the stream that is not in "open" or "half-closed (local)" '
      "state")
def _(c: Conn):
    c.request(1, "POST")
    c.data(1, b"test")
    verify_stream_error(c, SC)


@test("http2/6.1/3", "RFC 9113 6.1", "Sends a DATA frame with invalid pad length")
def _(c: Conn):
    c.request(1, "POST", end_stream=False, extra=[("content-length", "4")])
    # Length 5: Pad Length 6, then "Test": the padding is longer than the payload.
    c.send(raw_frame(DATA, 0x9, 1, b"\x06Test"))
    verify_connection_error(c, PE)


# --- 6.2 HEADERS ------------------------------------------------------------------------


@test("http2/6.2/1", "RFC 9113 6.2",
      "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_stream=False, end_headers=False)
    c.priority(1)
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


@test("http2/6.2/2", "RFC 9113 6.2",
      "Sends a HEADERS frame to another stream while sending a HEADERS frame")
def _(c: Conn):
    h = c.common_headers()
    c.headers(1, c.encode(h), end_stream=False, end_headers=False)
    c.headers(3, c.encode(h))
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


@test("http2/6.2/3", "RFC 9113 6.2", "Sends a HEADERS frame with 0x0 stream identifier")
def _(c: Conn):
    c.send(raw_frame(HEADERS, 0x5, 0, c.encode(c.common_headers())))
    verify_connection_error(c, PE)


@test("http2/6.2/4", "RFC 9113 6.2", "Sends a HEADERS frame with invalid pad length")
def _(c: Conn):
    block = c.encode(c.common_headers())
    # PADDED | END_HEADERS | END_STREAM; Pad Length = the rest of the frame + 1.
    c.send(raw_frame(HEADERS, 0xD, 1, bytes([len(block) + 2]) + block))
    verify_stream_error(c, PE)


# --- 6.3 PRIORITY -----------------------------------------------------------------------


@test("http2/6.3/1", "RFC 9113 6.3", "Sends a PRIORITY frame with 0x0 stream identifier")
def _(c: Conn):
    c.priority(0)
    verify_connection_error(c, PE)


@test("http2/6.3/2", "RFC 9113 6.3", "Sends a PRIORITY frame with a length other than 5 octets")
def _(c: Conn):
    c.request(1)
    c.send(raw_frame(PRIORITY, 0, 1, b"\x80\x00\x00\x01"))
    verify_stream_error(c, FSE)


# --- 6.4 RST_STREAM ---------------------------------------------------------------------


@test("http2/6.4/1", "RFC 9113 6.4", "Sends a RST_STREAM frame with 0x0 stream identifier")
def _(c: Conn):
    c.rst_stream(0, CANCEL)
    verify_connection_error(c, PE)


@test("http2/6.4/2", "RFC 9113 6.4", "Sends a RST_STREAM frame on a idle stream")
def _(c: Conn):
    c.rst_stream(1, CANCEL)
    verify_connection_error(c, PE)


@test("http2/6.4/3", "RFC 9113 6.4",
      "Sends a RST_STREAM frame with a length other than 4 octets")
def _(c: Conn):
    c.request(1)
    c.send(raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00"))
    verify_stream_error(c, FSE)


# --- 6.5 SETTINGS -----------------------------------------------------------------------


@test("http2/6.5/1", "RFC 9113 6.5", "Sends a SETTINGS frame with ACK flag and payload")
def _(c: Conn):
    c.send(raw_frame(SETTINGS, 0x1, 0, b"\x00"))
    verify_connection_error(c, FSE)


@test("http2/6.5/2", "RFC 9113 6.5",
      "Sends a SETTINGS frame with a stream identifier other than 0x0")
def _(c: Conn):
    c.send(raw_frame(SETTINGS, 0, 1, b"\x00\x03\x00\x00\x00\x64"))
    verify_connection_error(c, PE)


@test("http2/6.5/3", "RFC 9113 6.5",
      "Sends a SETTINGS frame with a length other than a multiple of 6 octets")
def _(c: Conn):
    c.send(raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00"))
    verify_stream_error(c, PE, FSE)


@test("http2/6.5.2/1", "RFC 9113 6.5.2",
      "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1")
def _(c: Conn):
    c.settings_frame((SETTINGS_ENABLE_PUSH, 2))
    verify_connection_error(c, PE)


@test("http2/6.5.2/2", "RFC 9113 6.5.2",
      "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control "
      "window size")
def _(c: Conn):
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 2**31))
    verify_connection_error(c, FCE)


@test("http2/6.5.2/3", "RFC 9113 6.5.2",
      "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value")
def _(c: Conn):
    c.settings_frame((SETTINGS_MAX_FRAME_SIZE, 16383))
    verify_connection_error(c, PE)


@test("http2/6.5.2/4", "RFC 9113 6.5.2",
      "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame size")
def _(c: Conn):
    c.settings_frame((SETTINGS_MAX_FRAME_SIZE, 2**24))
    verify_connection_error(c, PE)


@test("http2/6.5.2/5", "RFC 9113 6.5.2", "Sends a SETTINGS frame with unknown identifier")
def _(c: Conn):
    c.settings_frame((0xFF, 1))
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("http2/6.5.3/1", "RFC 9113 6.5.3",
      "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE")
def _(c: Conn):
    need_data(c.cfg, 1)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 100), (SETTINGS_INITIAL_WINDOW_SIZE, 1))
    verify_settings_ack(c)
    c.request(1)
    verify_data_length(c, 1, 1)


@test("http2/6.5.3/2", "RFC 9113 6.5.3", "Sends a SETTINGS frame without ACK flag")
def _(c: Conn):
    c.settings_frame((SETTINGS_ENABLE_PUSH, 0))
    verify_settings_ack(c)


# --- 6.7 PING ---------------------------------------------------------------------------


@test("http2/6.7/1", "RFC 9113 6.7", "Sends a PING frame")
def _(c: Conn):
    c.ping(H2SPEC_PING)
    verify_ping_ack(c, H2SPEC_PING)


@test("http2/6.7/2", "RFC 9113 6.7", "Sends a PING frame with ACK")
def _(c: Conn):
    c.ping(b"invalid\x00", ack=True)  # must not be answered
    c.ping(H2SPEC_PING)
    verify_ping_ack(c, H2SPEC_PING)


@test("http2/6.7/3", "RFC 9113 6.7",
      "Sends a PING frame with a stream identifier field value other than 0x0")
def _(c: Conn):
    c.send(raw_frame(PING, 0, 1, bytes(8)))
    verify_connection_error(c, PE)


@test("http2/6.7/4", "RFC 9113 6.7",
      "Sends a PING frame with a length field value other than 8")
def _(c: Conn):
    c.send(raw_frame(PING, 0, 0, bytes(6)))
    verify_connection_error(c, FSE)


# --- 6.8 GOAWAY -------------------------------------------------------------------------


@test("http2/6.8/1", "RFC 9113 6.8",
      "Sends a GOAWAY frame with a stream identifier other than 0x0")
def _(c: Conn):
    c.send(raw_frame(GOAWAY, 0, 1, bytes(8)))
    verify_connection_error(c, PE)


# --- 6.9 WINDOW_UPDATE ------------------------------------------------------------------


@test("http2/6.9/1", "RFC 9113 6.9",
      "Sends a WINDOW_UPDATE frame with a flow control window increment of 0")
def _(c: Conn):
    c.window_update(0, 0)
    verify_connection_error(c, PE)


@test("http2/6.9/2", "RFC 9113 6.9",
      "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.window_update(1, 0)
    verify_stream_error(c, PE)


@test("http2/6.9/3", "RFC 9113 6.9",
      "Sends a WINDOW_UPDATE frame with a length other than 4 octets")
def _(c: Conn):
    c.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    verify_connection_error(c, FSE)


@test("http2/6.9.1/1", "RFC 9113 6.9.1",
      "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame")
def _(c: Conn):
    need_data(c.cfg, 1)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 1))
    verify_settings_ack(c)
    c.request(1)
    verify_data_length(c, 1, 1)


@test("http2/6.9.1/2", "RFC 9113 6.9.1",
      "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above "
      "2^31-1")
def _(c: Conn):
    c.window_update(0, 2**31 - 1)
    c.window_update(0, 2**31 - 1)
    ev, ok = c.wait_event_by_type(GOAWAY)
    if not ok or ev.frame.error_code != FCE:
        raise Fail("GOAWAY FLOW_CONTROL_ERROR", c.actual())


@test("http2/6.9.1/3", "RFC 9113 6.9.1",
      "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above "
      "2^31-1 on a stream")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.window_update(1, 2**31 - 1)
    c.window_update(1, 2**31 - 1)
    ev, ok = c.wait_event_by_type(RST_STREAM)
    if not ok or ev.frame.stream_id != 1 or ev.frame.error_code != FCE:
        raise Fail("RST_STREAM(stream 1, FLOW_CONTROL_ERROR)", c.actual())


@test("http2/6.9.2/1", "RFC 9113 6.9.2",
      "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame")
def _(c: Conn):
    need_data(c.cfg, 1)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 0))
    verify_settings_ack(c)
    c.request(1)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 1))
    verify_data_length(c, 1, 1)


@test("http2/6.9.2/2", "RFC 9113 6.9.2", "Sends a SETTINGS frame for window size to be negative")
def _(c: Conn):
    need_data(c.cfg, 5)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 3))
    verify_settings_ack(c)
    c.request(1)
    verify_event_type(c, DATA, "DATA")  # 3 bytes: the window is used up
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 2))  # window 2 - 3 = -1
    verify_settings_ack(c)
    c.window_update(1, 2)  # -1 + 2 = 1
    verify_data_length(c, 1, 1)


@test("http2/6.9.2/3", "RFC 9113 6.9.2",
      "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size "
      "value")
def _(c: Conn):
    c.send(raw_frame(SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"))
    verify_connection_error(c, FCE)


# --- 6.10 CONTINUATION ------------------------------------------------------------------


@test("http2/6.10/1", "RFC 9113 6.10",
      "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_headers=False)
    dummy = c.dummy_headers(1)
    c.continuation(1, c.encode(dummy), False)
    c.continuation(1, c.encode(dummy), True)
    verify_headers_frame(c, 1)


@test("http2/6.10/2", "RFC 9113 6.10",
      "Sends a CONTINUATION frame followed by any frame other than CONTINUATION")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers("POST")), end_stream=False, end_headers=False)
    c.continuation(1, c.encode(c.dummy_headers(1)), False)
    c.data(1, b"test")
    verify_connection_error(c, PE)


@test("http2/6.10/3", "RFC 9113 6.10", "Sends a CONTINUATION frame with 0x0 stream identifier")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_headers=False)
    c.continuation(0, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


@test("http2/6.10/4", "RFC 9113 6.10",
      "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag")
def _(c: Conn):
    c.request(1)
    c.continuation(1, c.encode(c.dummy_headers(1)), True)
    verify_connection_error(c, PE)


@test("http2/6.10/5", "RFC 9113 6.10",
      "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), end_headers=False)
    dummy = c.dummy_headers(1)
    c.continuation(1, c.encode(dummy), True)
    c.continuation(1, c.encode(dummy), True)
    verify_connection_error(c, PE)


@test("http2/6.10/6", "RFC 9113 6.10", "Sends a CONTINUATION frame preceded by a DATA frame")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers("POST")), end_stream=False, end_headers=False)
    c.data(1, b"test")
    dummy = c.dummy_headers(1)
    c.continuation(1, c.encode(dummy), False)
    c.continuation(0, c.encode(dummy), True)
    verify_connection_error(c, PE)


# --- 7. Error Codes ---------------------------------------------------------------------


@test("http2/7/1", "RFC 9113 7", "Sends a GOAWAY frame with unknown error code")
def _(c: Conn):
    c.goaway(0, 0xFF)
    c.ping(H2SPEC_PING)
    verify_ping_ack_or_close(c, H2SPEC_PING)


@test("http2/7/2", "RFC 9113 7", "Sends a RST_STREAM frame with unknown error code")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.rst_stream(1, 0xFF)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


# --- 8.1 HTTP Request/Response Exchange -------------------------------------------------


@test("http2/8.1/1", "RFC 9113 8.1", "Sends a second HEADERS frame without the END_STREAM flag")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test", end_stream=False)
    c.headers(1, c.encode([("x-test", "ok")]), end_stream=False)
    verify_stream_error(c, PE)


def _malformed(tid: str, rfc: str, desc: str, fields):
    """A request whose fields make it malformed: a stream error PROTOCOL_ERROR."""

    def run(c: Conn):
        c.headers(1, c.encode(fields(c)))
        verify_stream_error(c, PE)

    test(tid, rfc, desc)(run)


_malformed("http2/8.1.2/1", "RFC 9113 8.2.1 (RFC 7540 8.1.2)",
           "Sends a HEADERS frame that contains the header field name in uppercase letters",
           lambda c: c.common_headers() + [("X-TEST", "ok")])
_malformed("http2/8.1.2.1/1", "RFC 9113 8.3 (RFC 7540 8.1.2.1)",
           "Sends a HEADERS frame that contains a unknown pseudo-header field",
           lambda c: c.common_headers() + [(":test", "ok")])
_malformed("http2/8.1.2.1/2", "RFC 9113 8.3 (RFC 7540 8.1.2.1)",
           "Sends a HEADERS frame that contains the pseudo-header field defined for response",
           lambda c: c.common_headers() + [(":status", "200")])


@test("http2/8.1.2.1/3", "RFC 9113 8.3 (RFC 7540 8.1.2.1)",
      "Sends a HEADERS frame that contains a pseudo-header field as trailers")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test", end_stream=False)
    c.headers(1, c.encode([(":method", "POST")]), end_stream=False)
    verify_stream_error(c, PE)


_malformed("http2/8.1.2.1/4", "RFC 9113 8.3 (RFC 7540 8.1.2.1)",
           "Sends a HEADERS frame that contains a pseudo-header field that appears in a "
           "header block after a regular header field",
           lambda c: [("x-test", "ok")] + c.common_headers())
_malformed("http2/8.1.2.2/1", "RFC 9113 8.2.2 (RFC 7540 8.1.2.2)",
           "Sends a HEADERS frame that contains the connection-specific header field",
           lambda c: c.common_headers() + [("connection", "keep-alive")])
_malformed("http2/8.1.2.2/2", "RFC 9113 8.2.2 (RFC 7540 8.1.2.2)",
           'Sends a HEADERS frame that contains the TE header field with any value other '
           'than "trailers"',
           lambda c: c.common_headers() + [("trailers", "test"), ("te", "trailers, deflate")])


def _pseudo(c: Conn, drop: str | None = None, dup: str | None = None):
    fields = [f for f in c.common_headers() if f[0] != drop]
    if dup is not None:
        fields += [f for f in c.common_headers() if f[0] == dup]
    return fields


RFC_831 = "RFC 9113 8.3.1 (RFC 7540 8.1.2.3)"
_malformed("http2/8.1.2.3/1", RFC_831,
           'Sends a HEADERS frame with empty ":path" pseudo-header field',
           lambda c: [(n, "" if n == ":path" else v) for n, v in c.common_headers()])
_malformed("http2/8.1.2.3/2", RFC_831,
           'Sends a HEADERS frame that omits ":method" pseudo-header field',
           lambda c: _pseudo(c, drop=":method"))
_malformed("http2/8.1.2.3/3", RFC_831,
           'Sends a HEADERS frame that omits ":scheme" pseudo-header field',
           lambda c: _pseudo(c, drop=":scheme"))
_malformed("http2/8.1.2.3/4", RFC_831,
           'Sends a HEADERS frame that omits ":path" pseudo-header field',
           lambda c: _pseudo(c, drop=":path"))
_malformed("http2/8.1.2.3/5", RFC_831,
           'Sends a HEADERS frame with duplicated ":method" pseudo-header field',
           lambda c: _pseudo(c, dup=":method"))
_malformed("http2/8.1.2.3/6", RFC_831,
           'Sends a HEADERS frame with duplicated ":scheme" pseudo-header field',
           lambda c: _pseudo(c, dup=":scheme"))
_malformed("http2/8.1.2.3/7", RFC_831,
           'Sends a HEADERS frame with duplicated ":path" pseudo-header field',
           lambda c: _pseudo(c, dup=":path"))


@test("http2/8.1.2.6/1", "RFC 9113 8.1.1 (RFC 7540 8.1.2.6)",
      'Sends a HEADERS frame with the "content-length" header field which does not equal '
      "the DATA frame payload length")
def _(c: Conn):
    c.request(1, "POST", end_stream=False, extra=[("content-length", "1")])
    c.data(1, b"test")
    verify_stream_error(c, PE)


@test("http2/8.1.2.6/2", "RFC 9113 8.1.1 (RFC 7540 8.1.2.6)",
      'Sends a HEADERS frame with the "content-length" header field which does not equal '
      "the sum of the multiple DATA frames payload length")
def _(c: Conn):
    c.request(1, "POST", end_stream=False, extra=[("content-length", "1")])
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test")
    verify_stream_error(c, PE)


# --- 8.2 Server Push --------------------------------------------------------------------


@test("http2/8.2/1", "RFC 9113 8.4 (RFC 7540 8.2)", "Sends a PUSH_PROMISE frame")
def _(c: Conn):
    block = c.encode(c.common_headers())
    c.send(raw_frame(PUSH_PROMISE, 0x4, 1, (3).to_bytes(4, "big") + block))
    verify_connection_error(c, PE)
