"""The event-loop lateness sampler (streamdesk/loop_lag.py)."""
from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import AsyncResult
from prometheus_client import REGISTRY

from streamdesk.loop_lag import LoopWatch


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_late_ticks_are_recorded_and_the_longest_is_kept():
    clock = Clock()
    watch = LoopWatch(period=0.01, clock=clock)
    count = sample("streamdesk_event_loop_late_seconds_count")
    clock.now += 0.0101  # on time
    watch.tick()
    assert sample("streamdesk_event_loop_late_seconds_count") == count
    clock.now += 0.01 + 0.030  # the loop was held for ~30 ms
    watch.tick()
    clock.now += 0.01 + 0.012
    watch.tick()
    assert sample("streamdesk_event_loop_late_seconds_count") == count + 2
    assert watch.longest == pytest.approx(0.030)
    assert sample("streamdesk_event_loop_late_max_seconds") >= 0.0299


def test_a_greenlet_that_holds_the_loop_shows_as_a_late_tick():
    seen = AsyncResult()
    watch = LoopWatch(period=0.01, on_late=seen.set).start()
    try:
        gevent.sleep(0)  # the timer is armed; now hold the loop without yielding
        held_until = time.perf_counter() + 0.06
        while time.perf_counter() < held_until:
            pass
        late = seen.get(timeout=5)
    finally:
        watch.stop()
    assert 0.045 <= late < 1.0
