"""Saving growing replies: one transaction per worker per interval, not one per reply.

Every open reply must reach the store at least every ``SAVE_INTERVAL_SECONDS`` so a reload, a
crash or a drop loses little. Done per reply, 1,000 open replies are 1,000 transactions a
second. Here a reply only marks itself as grown (a dict assignment per chunk); one greenlet
per worker writes every grown reply once per interval, ``ROWS_PER_WRITE`` rows per statement.
On SQLite the statements run on the store's native thread (``store/sqlite_lane.py``), all
the slices of one save as one job: run on the loop, SQLite rewriting a few hundred rows a
second stopped every stream of the worker each time. Only what each reply grew by since its
last save travels (``LiveReply.growth``): the statement keeps the characters already saved
and appends the rest, so a save that failed after its commit is not appended twice. The
reply's stream index is saved with its text, so the two always agree, and the events now
saved are dropped from the reply's live log.

The write only touches rows still ``streaming``: a reply that finished in the meantime was
saved whole by ``finish_turn`` and must not be overwritten by an older snapshot (with
PostgreSQL the driver yields, so a finish can commit while a batch is in flight).
"""
from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable

import gevent

from .. import metrics
from .live import LiveReply

log = logging.getLogger(__name__)

_savers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Bounds each write's hold on SQLite's write lock (other workers' turns wait for it) and,
# where the writes hold the loop, the work it does between two pauses.
ROWS_PER_WRITE = 50


class ProgressSaver:
    def __init__(self, store, interval: float, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.interval = interval
        self.clock = clock
        self.grown: dict[str, LiveReply] = {}
        self.flusher = None
        self.longest = 0.0  # seconds, the longest save so far

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
        began = self.clock()
        slices = [batch[start:start + ROWS_PER_WRITE]
                  for start in range(0, len(batch), ROWS_PER_WRITE)]
        try:
            if self.store.progress_saves_hold_the_loop:
                for number, replies in enumerate(slices):
                    if number:
                        gevent.sleep(0)  # the streams of this worker go on between two writes
                    self._save([replies])
            else:
                # On the lane the streams go on during the writes anyway, and the slices go
                # in one job: a pause, or a job each, only queued the save behind more turns
                # of the loop (docs/benchmarks.md).
                self._save(slices)
            if batch:
                self.longest = metrics.PROGRESS_SAVE.observe(self.clock() - began,
                                                             self.longest)
        finally:
            # The next batch is written after this one, never beside it: a batch slower
            # than the interval (PostgreSQL under load) had the next one update the same
            # rows in another order, and PostgreSQL broke the deadlocks by failing saves
            # and replies' last words (docs/benchmarks.md).
            self.flusher = gevent.spawn_later(self.interval, self.flush) if self.grown \
                else None

    def _save(self, slices: list[list[LiveReply]]) -> None:
        """Each slice of replies in a write of its own. When one fails, each of its replies
        is tried alone: a reply the database refuses must not stop the saves of the others.
        A refused one is tried again next interval, and still ends with finish_turn."""
        growth = [[reply.growth() for reply in replies] for replies in slices]
        rows = [[row for row, _ in grown] for grown in growth]
        failures = self.store.save_progress_batches(rows)
        for replies, grown, batch_rows, failure in zip(slices, growth, rows, failures,
                                                       strict=True):
            if failure is None or len(replies) == 1:
                alone = [failure] * len(replies)
            else:
                alone = self.store.save_progress_batches([[row] for row in batch_rows])
            for reply, (_, mark), refused in zip(replies, grown, alone, strict=True):
                if refused is None:
                    reply.saved(mark)
                else:
                    log.error("saving the growing reply %s failed", reply.message_id,
                              exc_info=refused)
