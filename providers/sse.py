"""Reading server-sent events from upstreams (our own event stream is encoded on the web side,
``streamdesk/web/sse.py``).

The decoder follows the WHATWG rules (HTML, "Parsing an event stream"). Its subtle parts:

* Lines end at CRLF, LF or CR, and a CRLF may arrive split across two reads. ``str.splitlines``
  is wrong here: it also breaks at U+2028, U+0085 and friends, which JSON leaves unescaped,
  so a model that writes U+2028 would cut its own event in half. We split *bytes* on the three
  SSE line endings only.
* We split before we decode, so a multi-byte UTF-8 character split across reads is whole
  by the time its line is decoded.
* A blank line dispatches; an event still open when the stream ends is discarded.
* Vendor bytes are hostile input: a line that never ends, or data lines that never reach a
  blank one, would grow without bound (and a line joined read by read costs ever more CPU).
  A line, or an event's data, past MAX_EVENT_BYTES ends the reply with an ``UpstreamError``;
  real services send events of a few hundred bytes.

``static/sse.js`` is the browser's mirror of this decoder; keep the two in step. The tests also
use it to read StreamDesk's own stream, exactly as a client would.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import UpstreamError

_BOM = b"\xef\xbb\xbf"

# What one line, or one event's data, may take: 1 MiB.
MAX_EVENT_BYTES = 1 << 20


class EventTooLarge(UpstreamError):
    default_message = (f"The model service sent an event larger than {MAX_EVENT_BYTES >> 20} "
                       "MiB; the reply was ended there.")


@dataclass(slots=True)  # not frozen, as providers.Chunk: one is made for every event
class Event:
    event: str = "message"
    data: str = ""
    id: str = ""  # the last event id seen so far, as the spec defines it
    retry: int | None = None

    def json(self):
        return json.loads(self.data)


class SSEDecoder:
    """Incremental decoder. Feed it each read's raw bytes with ``feed``. (``feed_line`` takes
    one line without its ending; never feed it ``requests``' ``iter_lines()``, which reads a
    CR at the end of one read and the LF at the start of the next as two line breaks.)"""

    def __init__(self) -> None:
        # An unfinished line carried over to the next read, in the reads that brought it:
        # joined only once its end comes, so a long line costs no more than its bytes.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._after_cr = False  # the last read ended in CR: a leading LF belongs to it
        self._at_start = True  # a BOM is stripped only at the start of the stream
        self._event_type = ""
        self._data: list[str] = []
        self._data_bytes = 0  # the size of the data lines in _data
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        """The events that ``data``, the next read, completes. Once per upstream read."""
        if not data:  # an empty read between the CR and the LF of one line break changes nothing
            return []
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
        last = data[-1:]
        self._after_cr = last == b"\r"
        ends_line = last == b"\n" or self._after_cr
        if not ends_line and b"\n" not in data and b"\r" not in data:  # the line goes on
            self._pending_bytes += len(data)
            if self._pending_bytes > MAX_EVENT_BYTES:
                raise EventTooLarge()
            self._pending.append(data)
            return []
        if self._pending:
            self._pending.append(data)
            data, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
        # bytes.splitlines breaks at CRLF, LF and CR only (str.splitlines would not do).
        lines = data.splitlines()
        if not ends_line:  # the last line goes on in the next read
            rest = lines.pop()
            self._pending, self._pending_bytes = [rest], len(rest)
        events = []
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_line(self, line: bytes) -> Event | None:
        if self._at_start:
            self._at_start = False
            if line.startswith(_BOM):
                line = line[len(_BOM):]
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" starts a comment, used for heartbeats
            return None
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data_bytes += len(value)
            if self._data_bytes > MAX_EVENT_BYTES:
                raise EventTooLarge()
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event_type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, event_type = self._data, self._event_type
        self._data, self._event_type, self._data_bytes = [], "", 0
        if not data:
            return None
        return Event(event_type or "message", "\n".join(data), self._last_id, self._retry)


def read_events(reads: Iterable[bytes]) -> Iterator[Event]:
    """The events of a stream given as its raw reads, however they were cut."""
    decoder = SSEDecoder()
    for data in reads:
        yield from decoder.feed(data)
