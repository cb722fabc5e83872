"""HTTP/1.1 chunked framing undone as reads arrive (providers/chunked.py), cut every way a
connection can cut it, and the framing a hostile server might send."""
from __future__ import annotations

import pytest
from urllib3.exceptions import ProtocolError

from providers.chunked import MAX_FRAMING_LINE_BYTES, ChunkedBody

PIECES = [b"data: first\n\n", "data: 流式\r\n\r\n".encode(), b"x" * 300]
FRAMED = (b"%x\r\n%s\r\n" % (len(PIECES[0]), PIECES[0])  # lower case
          + b'%04X;name="value";other\r\n%s\r\n' % (len(PIECES[1]), PIECES[1])
          + b"%X \t;ext\r\n%s\r\n" % (len(PIECES[2]), PIECES[2])
          + b"0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n")
BODY = b"".join(PIECES)


def undone(reads: list[bytes]) -> tuple[bytes, ChunkedBody]:
    body = ChunkedBody()
    data = b"".join(body.feed(read) for read in reads)
    return data, body


def test_the_framed_body_read_at_once():
    data, body = undone([FRAMED])
    assert data == BODY and body.ended and not body.excess


@pytest.mark.parametrize("cut", range(1, len(FRAMED)))
def test_every_cut_into_two_reads_gives_the_same_data(cut):
    data, body = undone([FRAMED[:cut], FRAMED[cut:]])
    assert data == BODY and body.ended


def test_one_byte_at_a_time_gives_the_same_data_and_each_piece_as_it_comes():
    body = ChunkedBody()
    out = [body.feed(FRAMED[i:i + 1]) for i in range(len(FRAMED))]
    assert b"".join(out) == BODY and body.ended
    # each data byte is handed on by the read that brought it
    assert sum(1 for piece in out if piece) == len(BODY)


def test_it_has_not_ended_until_the_trailer_section_has():
    data, body = undone([FRAMED[:-2]])
    assert data == BODY and not body.ended


def test_bytes_after_the_end_are_noticed():
    data, body = undone([FRAMED + b"HTTP/1.1 200 OK\r\n"])
    assert data == BODY and body.ended and body.excess


@pytest.mark.parametrize("size", [b"-1A", b"+1A", b"0x1A", b"1_A", b" 1A", b"", b"zz",
                                  b"1" * 17, b";ext"])
def test_a_size_that_is_not_hexadecimal_is_refused(size):
    with pytest.raises(ProtocolError, match="size is not a hexadecimal number"):
        ChunkedBody().feed(size + b"\r\n" + b"x" * 26 + b"\r\n")


def test_data_before_refused_framing_in_the_same_read_is_handed_on_first():
    body = ChunkedBody()
    assert body.feed(b"3\r\nabc\r\n-1\r\nx\r\n") == b"abc"
    assert "not a hexadecimal number" in str(body.failure)


def test_data_longer_than_its_size_is_refused_after_what_its_size_announced():
    body = ChunkedBody()
    assert body.feed(b"2\r\nabc\r\n") == b"ab"
    assert "longer than its size" in str(body.failure)


@pytest.mark.parametrize("framing", [b"A" * 10, b"1;" + b"e" * 10,
                                     b"0\r\n" + b"X-Trailer: x\r\n" * 10])
def test_framing_that_never_ends_is_refused_before_it_grows_past_the_limit(framing):
    body = ChunkedBody()
    repeat = MAX_FRAMING_LINE_BYTES // len(framing) + 2
    with pytest.raises(ProtocolError, match="too long"):
        for _ in range(repeat):
            assert body.feed(framing) == b""
