"""How late a gevent worker's event loop runs: the longest time one greenlet held it.

Everything a worker does shares one loop; a greenlet that computes or blocks for 50 ms
delays every stream of the worker by up to 50 ms. A libev timer fires every
``PERIOD_SECONDS`` and notes how much later than due it ran; a block of B seconds makes one
tick at least B - PERIOD_SECONDS late, so a 20 ms block shows as 10 ms or more. Only lateness
of ``REPORTED_FROM_SECONDS`` or more is recorded (the histogram is not a census of every tick),
with the longest since the worker started in a gauge. gunicorn.conf.py starts it in each
worker; the benchmark reads it from /metrics. Its cost: a C timer and a few Python operations
100 times a second per worker.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from . import metrics

PERIOD_SECONDS = 0.01
REPORTED_FROM_SECONDS = 0.005


class LoopWatch:
    def __init__(self, period: float = PERIOD_SECONDS,
                 clock: Callable[[], float] = time.perf_counter,
                 on_late: Callable[[float], None] | None = None):
        self.period = period
        self.clock = clock
        self.on_late = on_late
        self.longest = 0.0
        self.last = clock()
        self._timer = None

    def start(self) -> LoopWatch:
        import gevent

        self.last = self.clock()
        timer = gevent.get_hub().loop.timer(self.period, self.period)
        timer.ref = False  # it never keeps a worker's loop alive on its own
        timer.start(self.tick)
        self._timer = timer
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def tick(self) -> None:
        now = self.clock()
        late = now - self.last - self.period
        self.last = now
        if late < REPORTED_FROM_SECONDS:
            return
        self.longest = metrics.EVENT_LOOP_LATE.observe(late, self.longest)
        if self.on_late is not None:
            self.on_late(late)
