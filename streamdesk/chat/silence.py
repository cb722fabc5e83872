"""Noticing that the model has gone quiet, without a timer per chunk: for heartbeats, and to
end a reply whose upstream has been silent too long.

While a reasoning model thinks, nothing arrives for a long time; followers still need a sign
of life (proxies close idle streams) and the reply's row must be touched so it does not look
abandoned. The reply's greenlet is blocked in the upstream read then, so the hub does it: one
timer per silent interval, rescheduled from the time of the last chunk. A timed read per chunk
would start and cancel a timer for every piece of text instead; that is also why the same
timer bounds the upstream's silences (``Provider.stream(watched=True)``).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import gevent


class SilenceWatch:
    """Calls ``on_silence`` every ``interval`` seconds without a chunk, and ``on_limit`` once
    when ``limit`` seconds have passed since the last chunk. The limit counts from the first
    chunk: before it, the provider times its own reads."""

    def __init__(self, interval: float, on_silence: Callable[[], object], *,
                 limit: float | None = None, on_limit: Callable[[], object] = lambda: None):
        self.interval, self.on_silence = interval, on_silence
        self.limit, self.on_limit = limit, on_limit
        self.last: float | None = None  # set by the reader at every chunk: the per-chunk cost
        self._beat = time.monotonic()  # the last chunk or heartbeat
        self._loop = gevent.get_hub().loop
        self._timer = self._loop.timer(interval)
        self._timer.start(self._check)

    def close(self) -> None:
        self._timer.close()

    def _check(self) -> None:  # on the hub: nothing here may block
        self._timer.close()
        now, last = time.monotonic(), self.last
        if last is not None and self.limit is not None and now - last >= self.limit:
            self.on_limit()
            return
        beat = max(self._beat, last or 0.0)
        if now - beat >= self.interval:
            beat = self._beat = now
            self.on_silence()
        due = beat + self.interval
        if last is not None and self.limit is not None:
            due = min(due, last + self.limit)
        self._timer = self._loop.timer(max(0.001, due - now))
        self._timer.start(self._check)
