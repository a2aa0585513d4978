"""h2spec's `generic` group: a conforming server accepts every ordinary frame and
request form (RFC 9113 sections 3-8, RFC 7541 section 6). Each test sends something
valid and expects the server to go on: answer the request, or answer a PING."""

from __future__ import annotations

from h2client import (
    CANCEL,
    DATA,
    H2SPEC_PING,
    PREFACE,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    ZERO_PING,
    Conn,
    Fail,
    SettingsFrame,
    test,
    verify_event_type,
    verify_headers_frame,
    verify_ping_ack,
    verify_ping_ack_or_close,
    verify_settings_ack,
    verify_stream_close,
)

# --- 1. Starting HTTP/2 ---------------------------------------------------------------


@test("generic/1/1", "RFC 9113 3.4", "Sends a client connection preface", handshake=False)
def _(c: Conn):
    c.send(PREFACE)
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 65535))
    ev = c.wait_event()
    if not (isinstance(ev.frame, SettingsFrame) and not ev.has("ACK")):
        raise Fail("a SETTINGS frame (not an ACK) as the server's first frame", c.actual())


# --- 2. Streams and Multiplexing (RFC 9113 5.1) ----------------------------------------


@test("generic/2/1", "RFC 9113 5.1", "Sends a PRIORITY frame on idle stream")
def _(c: Conn):
    c.priority(1)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("generic/2/2", "RFC 9113 5.1",
      "Sends a WINDOW_UPDATE frame on half-closed (remote) stream")
def _(c: Conn):
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 0))  # hold the response open
    c.request(1)
    c.window_update(1, 1)
    verify_event_type(c, DATA, "DATA")


@test("generic/2/3", "RFC 9113 5.1", "Sends a PRIORITY frame on half-closed (remote) stream")
def _(c: Conn):
    c.settings_frame((SETTINGS_INITIAL_WINDOW_SIZE, 0))
    c.request(1)
    c.priority(1)
    c.window_update(1, 1)
    verify_event_type(c, DATA, "DATA")


@test("generic/2/4", "RFC 9113 5.1",
      "Sends a RST_STREAM frame on half-closed (remote) stream")
def _(c: Conn):
    c.request(1)
    c.rst_stream(1, CANCEL)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("generic/2/5", "RFC 9113 5.1", "Sends a PRIORITY frame on closed stream")
def _(c: Conn):
    c.request(1)
    verify_stream_close(c)
    c.priority(1)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


# --- 3. Frame Definitions (RFC 9113 6) -------------------------------------------------


@test("generic/3.1/1", "RFC 9113 6.1", "Sends a DATA frame")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test")
    verify_headers_frame(c, 1)


@test("generic/3.1/2", "RFC 9113 6.1", "Sends multiple DATA frames")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test", end_stream=False)
    c.data(1, b"test")
    verify_headers_frame(c, 1)


@test("generic/3.1/3", "RFC 9113 6.1", "Sends a DATA frame with padding")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test", pad=b"\x00" * 5)
    verify_headers_frame(c, 1)


@test("generic/3.2/1", "RFC 9113 6.2", "Sends a HEADERS frame")
def _(c: Conn):
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.2/2", "RFC 9113 6.2", "Sends a HEADERS frame with padding")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), pad_length=8)
    verify_headers_frame(c, 1)


@test("generic/3.2/3", "RFC 9113 6.2", "Sends a HEADERS frame with priority")
def _(c: Conn):
    c.headers(1, c.encode(c.common_headers()), priority=(0, 255, False))
    verify_headers_frame(c, 1)


@test("generic/3.3/1", "RFC 9113 6.3", "Sends a PRIORITY frame with priority 1")
def _(c: Conn):
    c.priority(1, 0, 0)
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.3/2", "RFC 9113 6.3", "Sends a PRIORITY frame with priority 256")
def _(c: Conn):
    c.priority(1, 0, 255)
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.3/3", "RFC 9113 6.3", "Sends a PRIORITY frame with stream dependency")
def _(c: Conn):
    c.priority(3, 1, 0)
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.3/4", "RFC 9113 6.3", "Sends a PRIORITY frame with exclusive")
def _(c: Conn):
    c.priority(1, 0, 0, exclusive=True)
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.3/5", "RFC 9113 6.3",
      "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower "
      "stream ID")
def _(c: Conn):
    c.priority(3, 0, 255)
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/3.4/1", "RFC 9113 6.4", "Sends a RST_STREAM frame")
def _(c: Conn):
    c.request(1, end_stream=False)
    c.rst_stream(1, CANCEL)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("generic/3.5/1", "RFC 9113 6.5", "Sends a SETTINGS frame")
def _(c: Conn):
    c.settings_frame(
        (SETTINGS_HEADER_TABLE_SIZE, 4096),
        (SETTINGS_ENABLE_PUSH, 1),
        (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
        (SETTINGS_INITIAL_WINDOW_SIZE, 65535),
        (SETTINGS_MAX_FRAME_SIZE, 16384),
        (SETTINGS_MAX_HEADER_LIST_SIZE, 100),
    )
    verify_settings_ack(c)


@test("generic/3.7/1", "RFC 9113 6.7", "Sends a PING frame")
def _(c: Conn):
    c.ping(H2SPEC_PING)
    verify_ping_ack(c, H2SPEC_PING)


@test("generic/3.8/1", "RFC 9113 6.8", "Sends a GOAWAY frame")
def _(c: Conn):
    c.goaway(0, 0, b"h2spec")
    c.ping(H2SPEC_PING)
    verify_ping_ack_or_close(c, H2SPEC_PING)


@test("generic/3.9/1", "RFC 9113 6.9", "Sends a WINDOW_UPDATE frame with stream ID 0")
def _(c: Conn):
    c.window_update(0, 1)
    c.ping(ZERO_PING)
    verify_ping_ack(c, ZERO_PING)


@test("generic/3.9/2", "RFC 9113 6.9", "Sends a WINDOW_UPDATE frame with stream ID 1")
def _(c: Conn):
    c.request(1)
    c.window_update(1, 1)
    verify_headers_frame(c, 1)


@test("generic/3.10/1", "RFC 9113 6.10", "Sends a CONTINUATION frame")
def _(c: Conn):
    block = c.encode(c.common_headers())
    c.headers(1, block[:5], end_headers=False)
    c.continuation(1, block[5:], True)
    verify_headers_frame(c, 1)


@test("generic/3.10/2", "RFC 9113 6.10", "Sends multiple CONTINUATION frames")
def _(c: Conn):
    block = c.encode(c.common_headers())
    c.headers(1, block[:5], end_headers=False)
    c.continuation(1, block[5:10], False)
    c.continuation(1, block[10:], True)
    verify_headers_frame(c, 1)


# --- 4. HTTP Message Exchanges (RFC 9113 8.1) ------------------------------------------


@test("generic/4/1", "RFC 9113 8.1", "Sends a GET request")
def _(c: Conn):
    c.request(1)
    verify_headers_frame(c, 1)


@test("generic/4/2", "RFC 9113 8.1", "Sends a HEAD request")
def _(c: Conn):
    c.request(1, "HEAD")
    verify_headers_frame(c, 1)


@test("generic/4/3", "RFC 9113 8.1", "Sends a POST request")
def _(c: Conn):
    c.request(1, "POST", end_stream=False)
    c.data(1, b"test")
    verify_headers_frame(c, 1)


@test("generic/4/4", "RFC 9113 8.1", "Sends a POST request with trailers")
def _(c: Conn):
    c.request(1, "POST", end_stream=False, extra=[("trailer", "x-test")])
    c.data(1, b"test", end_stream=False)
    c.headers(1, c.encode([("x-test", "ok")]))
    verify_headers_frame(c, 1)


# --- 5. HPACK (RFC 7541): each representation appended to a valid request -------------

# Each form carries user-agent (static index 58) or x-test with the value "h2spec".
# h2spec's own bytes for the "indexed name" forms use a new name (and its 5/12 repeats
# 5/13); these follow the descriptions, so every representation is sent once.
UA, XT = "2b", "782d74657374"  # user-agent's index past a 4-bit prefix's 15; "x-test"
H_XT, V, H_V = "85f2b24a84ff", "06683273706563", "849c48aca4"  # Huffman name; value; Huffman
HPACK_FORMS = [
    ("RFC 7541 6.1", "Sends a indexed header field representation", "ba"),
    ("RFC 7541 6.2.1",
     "Sends a literal header field with incremental indexing - indexed name", "7a" + V),
    ("RFC 7541 6.2.1",
     "Sends a literal header field with incremental indexing - indexed name (with Huffman "
     "coding)", "7a" + H_V),
    ("RFC 7541 6.2.1", "Sends a literal header field with incremental indexing - new name",
     "4006" + XT + V),
    ("RFC 7541 6.2.1",
     "Sends a literal header field with incremental indexing - new name (with Huffman "
     "coding)", "40" + H_XT + H_V),
    ("RFC 7541 6.2.2", "Sends a literal header field without indexing - indexed name",
     "0f" + UA + V),
    ("RFC 7541 6.2.2",
     "Sends a literal header field without indexing - indexed name (with Huffman coding)",
     "0f" + UA + H_V),
    ("RFC 7541 6.2.2", "Sends a literal header field without indexing - new name",
     "0006" + XT + V),
    ("RFC 7541 6.2.2",
     "Sends a literal header field without indexing - new name (huffman encoded)",
     "00" + H_XT + H_V),
    ("RFC 7541 6.2.3", "Sends a literal header field never indexed - indexed name",
     "1f" + UA + V),
    ("RFC 7541 6.2.3",
     "Sends a literal header field never indexed - indexed name (huffman encoded)",
     "1f" + UA + H_V),
    ("RFC 7541 6.2.3", "Sends a literal header field never indexed - new name",
     "1006" + XT + V),
    ("RFC 7541 6.2.3",
     "Sends a literal header field never indexed - new name (huffman encoded)",
     "10" + H_XT + H_V),
]


def _hpack_form(rep: bytes):
    def run(c: Conn):
        c.headers(1, c.encode(c.common_headers()) + rep)
        verify_headers_frame(c, 1)

    return run


for _n, (_rfc, _desc, _hex) in enumerate(HPACK_FORMS, start=1):
    test(f"generic/5/{_n}", _rfc, _desc)(_hpack_form(bytes.fromhex(_hex)))


@test("generic/5/14", "RFC 7541 6.3", "Sends a dynamic table size update")
def _(c: Conn):
    c.encoder.header_table_size = 128  # the next block starts with an update to 128
    c.headers(1, c.encode(c.common_headers()))
    verify_headers_frame(c, 1)


@test("generic/5/15", "RFC 7541 4.2", "Sends multiple dynamic table size update")
def _(c: Conn):
    # Two updates before the first field: 128, then 4096 (RFC 7541 4.2 allows two).
    c.headers(1, bytes.fromhex("3f613fe11f") + c.encode(c.common_headers()))
    verify_headers_frame(c, 1)
