"""HTTP/1.1's chunked transfer coding, undone as a streamed body's bytes arrive (read by
``http.body_reads``). Kept apart from the reading so that every way reads can cut the framing
is tested without a socket."""
from __future__ import annotations

from urllib3.exceptions import ProtocolError


class ChunkedBody:
    """HTTP/1.1's chunked transfer coding (RFC 9112, section 7.1) undone as bytes arrive:
    ``feed`` returns the data that a read carried, however the reads cut the framing. Chunk
    extensions and trailer fields are read and dropped. A size that is not hexadecimal, or a
    size line, chunk end or trailer section longer than anything a server sends, is a
    ProtocolError: vendor bytes are hostile input, and nothing here grows with them."""

    __slots__ = ("_pending", "_left", "_state", "_trailer", "ended", "excess", "failure")

    def __init__(self) -> None:
        self._pending = b""  # framing cut by a read: part of a size line, chunk end or trailer
        self._left = 0  # bytes of the current chunk's data still to come
        self._state = _SIZE
        self._trailer = 0  # bytes of trailer fields read so far
        self.ended = False  # the last chunk and the trailer section have been read
        self.excess = False  # bytes came after the end of the body
        # Framing refused in a read that also carried data: that data is returned first,
        # and the reader raises this after passing it on.
        self.failure: ProtocolError | None = None

    def feed(self, data: bytes) -> bytes:
        pieces: list[bytes] = []
        try:
            self._undo(data, pieces)
        except ProtocolError as error:
            if not pieces:
                raise
            self.failure = error
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _undo(self, data: bytes, pieces: list[bytes]) -> None:
        if self._pending:
            data, self._pending = self._pending + data, b""
        at, end = 0, len(data)
        state, left = self._state, self._left
        while at < end:
            if state is _DATA:
                piece = data[at:at + left]
                pieces.append(piece)
                at += len(piece)
                left -= len(piece)
                if not left:
                    state = _DATA_END
                continue
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                if end - at > MAX_FRAMING_LINE_BYTES:
                    raise ProtocolError("A chunk's framing line is too long")
                self._pending = data[at:]
                break
            line = data[at:line_end]
            at = line_end + 2
            if state is _SIZE:
                left = _chunk_size(line)
                state = _DATA if left else _TRAILER
            elif state is _DATA_END:
                if line:
                    raise ProtocolError("A chunk's data is longer than its size")
                state = _SIZE
            else:  # _TRAILER: fields up to an empty line
                self._trailer += len(line) + 2
                if self._trailer > MAX_FRAMING_LINE_BYTES:
                    raise ProtocolError("The trailer section is too long")
                if not line:
                    self.ended, self.excess = True, at < end
                    break
        self._state, self._left = state, left


# What a chunk size line, or a whole trailer section, may take: urllib3's own limit.
MAX_FRAMING_LINE_BYTES = 65_536
_SIZE, _DATA, _DATA_END, _TRAILER = "size", "data", "data end", "trailer"


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    # int() would also take a sign, spaces, underscores and "0x".
    if not digits or len(digits) > 16 or digits.strip(_HEX_DIGITS):
        raise ProtocolError("A chunk's size is not a hexadecimal number")
    return int(digits, 16)


_HEX_DIGITS = b"0123456789abcdefABCDEF"
