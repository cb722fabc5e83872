"""A reply being written by this worker, as its followers see it: its text so far, the events
not yet saved, and a way to wait for the next ones.

The worker that generates a reply keeps only the events since its last progress save, and
the saved ones that a follower here has not read yet (at most ``KEEP_UNREAD_SAVED_EVENTS``);
older ones are read back from the database (``stream_index.replay``), so a follower that reads
slowly never makes the worker hold the whole reply twice. When the reply ends and is saved,
nothing of it stays here.

A piece of text is held once, as UTF-8 in its field's buffer (``written``); its event is the
field's name in the log and where its bytes lie in ``spans``, and a follower gets it back as a
``Delta``. Held as a ``Delta`` and a string of its own (and the string again in a list of the
reply's pieces), each unsaved piece was ~120 bytes (docs/benchmarks.md).
"""
from __future__ import annotations

import os
import socket
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import NamedTuple

from gevent.hub import Waiter

from ..store import Progress
from .events import HEARTBEAT, Delta, Done, Event, Heartbeat, Meta
from .stream_index import StreamIndex

_worker_id: str | None = None
# Saved events still held for a follower behind them: 12 s of a reply at 20 pieces a second,
# ~50 KB. A follower further behind reads the saved ones back from the database.
KEEP_UNREAD_SAVED_EVENTS = 256


def worker_id() -> str:
    """This process, as a reply's owner: "host:pid" (set after gunicorn forks)."""
    global _worker_id
    if _worker_id is None or not _worker_id.endswith(f":{os.getpid()}"):
        _worker_id = f"{socket.gethostname()[:48]}:{os.getpid()}"
    return _worker_id


class LiveReply:
    def __init__(self, meta: Meta):
        self.message_id = meta.message_id
        self.index = StreamIndex(meta)
        self.written = {"text": bytearray(), "reasoning": bytearray()}  # the reply so far
        # How much of each field the database has: (characters, bytes of ``written``).
        self._stored = {"text": (0, 0), "reasoning": (0, 0)}
        # The events held, their ids beside them, and two numbers per event in ``spans``: a
        # piece's start and end in its field's buffer (its log entry is the field's name).
        self.log: list[Event | str] = []
        self.ids = array("q")
        self.spans = array("q")
        self.dropped_to = 0  # events up to this id are saved and no longer held here
        self.heartbeats = 0
        self.ended = False
        self.generator = None  # the greenlet writing it
        self.closing = False  # it is saving its end: no stop or interruption may cut that
        self._waiting: list[Waiter] | None = None  # followers here parked until the next event
        self._readers: set[_Reader] = set()  # this worker's followers, and how far they read
        self.on_publish: Callable[[int, Event], None] | None = None  # the bus, for others

    def so_far(self, field: str = "text") -> str:
        """The reply's text (or reasoning) as written so far."""
        return self.written[field].decode()

    def add(self, field: str, piece: str) -> None:
        """A piece of the reply's text or reasoning: kept, and published as a delta. Called by
        the relay for every piece: the per-chunk hot path."""
        written = self.written[field]
        start = len(written)
        written += piece.encode()
        event_id = self.index.advance_text(field, len(piece))
        self.ids.append(event_id)
        self.log.append(field)
        self.spans.append(start)
        self.spans.append(len(written))
        if self.on_publish is not None:
            self.on_publish(event_id, Delta(field, piece))
        self._wake()

    def publish(self, event: Event) -> None:
        """Any event but a delta: pieces go to ``add``."""
        if event is HEARTBEAT:
            self.heartbeats += 1
        else:
            event_id = self.index.advance(event)
            self.ids.append(event_id)
            self.log.append(event)
            self.spans.append(0)
            self.spans.append(0)
            if self.on_publish is not None:
                self.on_publish(event_id, event)
            if type(event) is Done:
                self.ended = True
        self._wake()

    def _wake(self) -> None:
        """Resume the followers parked here, from the loop, once this greenlet waits. Each
        parks on a ``Waiter`` of its own, the lightest wait gevent has: an ``Event`` made, waited
        on and set for every piece was 1.5-3.5 µs more per piece and follower
        (docs/benchmarks.md)."""
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            for waiter in waiting:
                # A follower killed while parked has left its waiter: switching it is a no-op.
                waiter.hub.loop.run_callback(waiter.switch, None)

    def growth(self) -> tuple[Progress, Mark]:
        """What the database's copy lacks, as the store's row, and the mark to hand to
        ``saved`` once that row is in."""
        text_from, text_start = self._stored["text"]
        reasoning_from, reasoning_start = self._stored["reasoning"]
        text = self.written["text"][text_start:].decode()
        reasoning = self.written["reasoning"][reasoning_start:].decode()
        mark = Mark(self.index.position,
                    (text_from + len(text), len(self.written["text"])),
                    (reasoning_from + len(reasoning), len(self.written["reasoning"])))
        return Progress(self.message_id, text_from, text, reasoning_from, reasoning,
                        self.index.to_json()), mark

    def saved(self, mark: Mark) -> None:
        """The database has the reply as ``growth`` gave it: drop the events up to its
        position that every follower here has read. A follower a little behind (a busy
        worker, a slow network) keeps reading from memory; one more than
        KEEP_UNREAD_SAVED_EVENTS behind goes back to the database.
        (Holding the newest 32 saved events whether or not anyone needed them was ~6 KB of
        every open reply: docs/benchmarks.md.)"""
        self._stored = {"text": mark.text, "reasoning": mark.reasoning}
        position = mark.position
        ids = self.ids
        saved = bisect_right(ids, position)
        read_by_all = min((reader.after for reader in self._readers), default=position)
        drop = max(bisect_right(ids, read_by_all, hi=saved), saved - KEEP_UNREAD_SAVED_EVENTS)
        if drop > 0:
            self.dropped_to = ids[drop - 1]
            del ids[:drop]
            del self.log[:drop]
            del self.spans[:2 * drop]

    def follow(self, after: int, catch_up: Callable[[int], list[tuple[int, Event]]]
               ) -> Iterator[tuple[int, Event] | Heartbeat]:
        """Events with ids above ``after`` until ``done``, waiting for new ones; heartbeats
        while the model is silent. ``catch_up(after)`` reads saved events back."""
        reader = _Reader(after)
        self._readers.add(reader)
        heartbeats = self.heartbeats
        try:
            while True:
                if after < self.dropped_to:
                    behind = after
                    for event_id, event in catch_up(after):
                        if event_id > after:
                            reader.after = after = event_id
                            yield event_id, event
                    if after == behind and after < self.dropped_to:
                        raise RuntimeError(f"events of reply {self.message_id} after {after} "
                                           "were saved but cannot be read back")
                    continue
                ids = self.ids
                at = bisect_right(ids, after)
                while at < len(ids) and after >= self.dropped_to:
                    event_id, event = ids[at], self._event_at(at)
                    reader.after = after = event_id
                    yield event_id, event
                    if type(event) is Done:
                        return
                    # Found again after each write: a save may have dropped the log's head.
                    at = bisect_right(ids, after)
                if self.ended and (not self.ids or self.ids[-1] <= after):
                    return
                if self.heartbeats != heartbeats:
                    heartbeats = self.heartbeats
                    yield HEARTBEAT
                    continue
                if (self.ids and self.ids[-1] > after) or after < self.dropped_to:
                    continue  # more came while the last events were being written out
                waiter = Waiter()
                if self._waiting is None:
                    self._waiting = [waiter]
                else:
                    self._waiting.append(waiter)
                waiter.get()
        finally:
            self._readers.discard(reader)

    def _event_at(self, at: int) -> Event:
        """The ``at``-th held event, a piece made a delta again as it is read (a follower far
        behind does not hold them all at once)."""
        entry = self.log[at]
        if isinstance(entry, str):
            spans = self.spans
            return Delta(entry, self.written[entry][spans[2 * at]:spans[2 * at + 1]].decode())
        return entry


class Mark(NamedTuple):
    """Where a reply's saved copy stands: its last event's id, and (characters, bytes) of
    its text and of its reasoning."""
    position: int
    text: tuple[int, int]
    reasoning: tuple[int, int]


class _Reader:
    """One follower of a live reply: the id of the last event it has read."""

    __slots__ = ("after",)

    def __init__(self, after: int):
        self.after = after
