"""Noticing that the model has gone quiet, for heartbeats, without a timer per chunk.

While a reasoning model thinks, nothing arrives for a long time; followers still need a sign
of life (proxies close idle streams) and the reply's row must be touched so it does not look
abandoned. The reply's greenlet is blocked in the upstream read then, so the hub does it: one
timer per silent interval, rescheduled from the time of the last chunk. A timed read per chunk
would start and cancel a timer for every piece of text instead.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import gevent


class SilenceWatch:
    def __init__(self, interval: float, on_silence: Callable[[], object]):
        self.interval, self.on_silence = interval, on_silence
        self.last = time.monotonic()  # set by the reader at every chunk: the per-chunk cost
        self._loop = gevent.get_hub().loop
        self._timer = self._loop.timer(interval)
        self._timer.start(self._check)

    def close(self) -> None:
        self._timer.close()

    def _check(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.on_silence()  # runs on the hub: it must not block
        self._timer.close()
        self._timer = self._loop.timer(max(0.001, self.last + self.interval - now))
        self._timer.start(self._check)
