"""Saving growing replies: one transaction per worker per interval, not one per reply.

Every open reply must reach the store at least every ``SAVE_INTERVAL_SECONDS`` so a reload, a
crash or a drop loses little. Done per reply, 1,000 open replies are 1,000 transactions a
second. Here a reply only marks itself as grown (a dict assignment per chunk); one greenlet
per worker writes every grown reply once per interval, ``ROWS_PER_WRITE`` rows per statement.
On SQLite the statement runs on the store's native thread (``store/sqlite_lane.py``): run on
the loop, SQLite rewriting a few hundred rows a second stopped every stream of the worker
each time. The reply's stream index is saved with its text, so the two always agree, and the
events now saved are dropped from the reply's live log.

The write only touches rows still ``streaming``: a reply that finished in the meantime was
saved whole by ``finish_turn`` and must not be overwritten by an older snapshot (with
PostgreSQL the driver yields, so a finish can commit while a batch is in flight).
"""
from __future__ import annotations

import logging
import weakref

import gevent

from .live import LiveReply

log = logging.getLogger(__name__)

_savers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Bounds the strings held at once, each write's hold on SQLite's write lock (other workers'
# turns wait for it) and the work the loop does between two pauses (joining, the index).
ROWS_PER_WRITE = 50


class ProgressSaver:
    def __init__(self, store, interval: float):
        self.store = store
        self.interval = interval
        self.grown: dict[str, LiveReply] = {}
        self.flusher = None

    @classmethod
    def for_store(cls, store, interval: float) -> ProgressSaver:
        saver = _savers.get(store)
        if saver is None or saver.interval != interval:
            saver = _savers[store] = cls(store, interval)
        return saver

    def grew(self, reply: LiveReply) -> None:
        """The reply changed (or should be touched): it is saved with the next batch."""
        if reply.message_id not in self.grown:
            self.grown[reply.message_id] = reply
            if self.flusher is None:
                self.flusher = gevent.spawn_later(self.interval, self.flush)

    def finished(self, reply: LiveReply) -> None:
        self.grown.pop(reply.message_id, None)

    def flush(self) -> None:
        batch, self.grown = list(self.grown.values()), {}
        # Where the streams go on during each write anyway, a pause only queued the save
        # behind a whole turn of the loop (~3 s of a 6 s save at 400 open replies on the
        # lane, docs/benchmarks.md).
        pause = self.store.progress_saves_hold_the_loop
        try:
            for start in range(0, len(batch), ROWS_PER_WRITE):
                if start and pause:
                    gevent.sleep(0)  # the streams of this worker go on between two writes
                replies = batch[start:start + ROWS_PER_WRITE]
                positions = [reply.index.position for reply in replies]
                rows = [(reply.message_id, reply.so_far("text"), reply.so_far("reasoning"),
                         reply.index.to_json()) for reply in replies]
                saved = self._save(rows, replies)
                for reply, position, was_saved in zip(replies, positions, saved, strict=True):
                    if was_saved:
                        reply.saved(position)
        finally:
            # The next batch is written after this one, never beside it: a batch slower
            # than the interval (PostgreSQL under load) had the next one update the same
            # rows in another order, and PostgreSQL broke the deadlocks by failing saves
            # and replies' last words (docs/benchmarks.md).
            self.flusher = gevent.spawn_later(self.interval, self.flush) if self.grown \
                else None

    def _save(self, rows: list, replies: list[LiveReply]) -> list[bool]:
        """Save the rows; whether each was saved. When the batch fails, each row is tried
        alone: a reply the database refuses must not stop the saves of the others. A refused
        one is tried again next interval, and still ends with finish_turn."""
        try:
            self.store.save_progress_many(rows)
            return [True] * len(rows)
        except Exception:
            if len(rows) == 1:
                log.exception("saving the growing reply %s failed", replies[0].message_id)
                return [False]
        return [self._save([row], [reply])[0] for row, reply in zip(rows, replies, strict=True)]

