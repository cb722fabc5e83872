"""Saving growing replies: one transaction per worker per interval, not one per reply.

Every open reply must reach the store at least every ``SAVE_INTERVAL_SECONDS`` so a reload, a
crash or a drop loses little. Done per reply, 1,000 open replies are 1,000 transactions a
second, each blocking the worker's event loop (SQLite's driver does not yield) and all 1,000
streams with it. Here a reply only marks itself as grown (a dict assignment per chunk); one
greenlet per worker writes every grown reply once per interval, a few hundred rows per
executemany. Each reply's pieces are joined into one string as it is saved (and kept that way).

The write only touches rows still ``streaming``: a reply that finished in the meantime was
saved whole by ``finish_turn`` and must not be overwritten by an older snapshot (with
PostgreSQL the driver yields, so a finish can commit while a batch is in flight).
"""
from __future__ import annotations

import logging
import weakref

import gevent

log = logging.getLogger(__name__)

_savers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
ROWS_PER_WRITE = 200  # bounds the strings held at once, and each blocking write


class ProgressSaver:
    def __init__(self, store, interval: float):
        self.store = store
        self.interval = interval
        self.grown: dict[str, tuple[list[str], list[str]]] = {}
        self.flusher = None

    @classmethod
    def for_store(cls, store, interval: float) -> ProgressSaver:
        saver = _savers.get(store)
        if saver is None or saver.interval != interval:
            saver = _savers[store] = cls(store, interval)
        return saver

    def grew(self, message_id: str, text: list[str], reasoning: list[str]) -> None:
        """The reply's live lists: they are joined when the batch is written."""
        if message_id not in self.grown:
            self.grown[message_id] = (text, reasoning)
            if self.flusher is None:
                self.flusher = gevent.spawn_later(self.interval, self.flush)

    def finished(self, message_id: str) -> None:
        self.grown.pop(message_id, None)

    def flush(self) -> None:
        self.flusher = None
        batch, self.grown = list(self.grown.items()), {}
        for start in range(0, len(batch), ROWS_PER_WRITE):
            rows = [(message_id, _compact(text), _compact(reasoning))
                    for message_id, (text, reasoning) in batch[start:start + ROWS_PER_WRITE]]
            try:
                self.store.save_progress_many(rows)
            except Exception:  # the replies still end with finish_turn; the next batch retries
                log.exception("saving %d growing replies failed", len(rows))


def _compact(pieces: list[str]) -> str:
    """The reply so far as one string, which then replaces the pieces in the live list: a
    long reply held as thousands of small str objects costs ~70 bytes per piece."""
    if len(pieces) == 1:
        return pieces[0]
    whole = "".join(pieces)
    pieces[:] = [whole] if whole else []
    return whole
