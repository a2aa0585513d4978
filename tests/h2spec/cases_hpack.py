"""h2spec's `hpack` group: field blocks that break RFC 7541. A decoding error loses the
connection's compression context, so each must end the connection with
COMPRESSION_ERROR (RFC 9113 4.3)."""

from __future__ import annotations

from h2client import (
    CE,
    SETTINGS_HEADER_TABLE_SIZE,
    Conn,
    hpack_int,
    test,
    verify_connection_error,
)


def _broken(tid: str, rfc: str, desc: str, after: bytes = b"", before=None):
    """A valid request with `after` appended to its field block (or `before(c)` in front)."""

    def run(c: Conn):
        head = before(c) if before is not None else b""
        c.headers(1, head + c.encode(c.common_headers()) + after)
        verify_connection_error(c, CE)

    test(tid, rfc, desc)(run)


# Index 70: the static table has 61 entries and the dynamic table is empty here.
_broken("hpack/2.3.3/1", "RFC 7541 2.3.3",
        "Sends a indexed header field representation with invalid index", b"\xc6")
_broken("hpack/2.3.3/2", "RFC 7541 2.3.3",
        "Sends a literal header field representation with invalid index",
        b"\x7f\x07\x00")  # incremental indexing, name index 63 + 7 = 70, empty value
_broken("hpack/4.2/1", "RFC 7541 4.2",
        "Sends a dynamic table size update at the end of header block", b"\x21")
# x-test: test, Huffman-coded, with a whole octet of padding after the value.
_broken("hpack/5.2/1", "RFC 7541 5.2",
        "Sends a Huffman-encoded string literal representation with padding longer than 7 "
        "bits", bytes.fromhex("0085f2b24a84ff844950 9fff".replace(" ", "")))
# x-test: test, Huffman-coded, padded with zero bits instead of the EOS prefix.
_broken("hpack/5.2/2", "RFC 7541 5.2",
        "Sends a Huffman-encoded string literal representation padded by zero",
        bytes.fromhex("0085f2b24a84ff83495090"))
# x-test: tes<EOS>t, Huffman-coded.
_broken("hpack/5.2/3", "RFC 7541 5.2",
        "Sends a Huffman-encoded string literal representation containing the EOS symbol",
        bytes.fromhex("0085f2b24a84ff874951fffffffa7f"))
_broken("hpack/6.1/1", "RFC 7541 6.1",
        "Sends a indexed header field representation with index 0", b"\x80")
_broken("hpack/6.3/1", "RFC 7541 6.3",
        "Sends a dynamic table size update larger than the value of "
        "SETTINGS_HEADER_TABLE_SIZE",
        before=lambda c: hpack_int(c.settings.get(SETTINGS_HEADER_TABLE_SIZE, 4096) + 1,
                                   5, 0x20))
