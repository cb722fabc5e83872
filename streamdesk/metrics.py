"""Prometheus metrics, correct across gunicorn's worker processes.

With several workers each process counts on its own, so prometheus-client runs in multiprocess
mode: ``gunicorn.conf.py`` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before any
worker starts, each process writes its values there, and ``/metrics`` adds them up. Without
that variable (tests, a single process) the ordinary in-process registry is used.

Nothing here runs per chunk: a reply touches these once when it starts, once at its first
token and once when it ends. The event-loop figures come from ``loop_lag.py``, the progress
saves' from ``chat/progress.py`` (once per save interval).
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("streamdesk_http_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
ACTIVE_STREAMS = Gauge("streamdesk_active_streams", "Replies streaming right now",
                       multiprocess_mode="livesum")
TIME_TO_FIRST_TOKEN = Histogram(
    "streamdesk_time_to_first_token_seconds", "From the request to the first piece of the reply",
    ["provider", "model"], buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120))
STREAM_DURATION = Histogram(
    "streamdesk_stream_duration_seconds", "Whole replies, by how they ended",
    ["provider", "model", "outcome"], buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640))
TOKENS = Counter("streamdesk_tokens_total", "Tokens reported by providers",
                 ["provider", "model", "kind"])
UPSTREAM_ERRORS = Counter("streamdesk_upstream_errors_total", "Provider errors by stable code",
                          ["provider", "code"])
FEEDBACK = Counter("streamdesk_feedback_total", "Ratings users gave replies (a change counts "
                   "again; clearing one takes nothing back)", ["provider", "model", "rating"])


class Durations:
    """``<name>_seconds``, a histogram of how long something took, and ``<name>_max_seconds``,
    the longest any worker has seen since it started."""

    def __init__(self, name: str, what: str, longest: str, buckets: tuple[float, ...]):
        self.histogram = Histogram(f"{name}_seconds", what, buckets=buckets)
        self.longest = Gauge(f"{name}_max_seconds", longest, multiprocess_mode="max")

    def observe(self, seconds: float, longest_so_far: float) -> float:
        """Count ``seconds``; the longest so far in this process, after it."""
        self.histogram.observe(seconds)
        if seconds <= longest_so_far:
            return longest_so_far
        self.longest.set(seconds)
        return seconds


# streamdesk/loop_lag.py: how late a worker's event loop ran, when 5 ms or more late.
EVENT_LOOP_LATE = Durations(
    "streamdesk_event_loop_late",
    "Ticks of a worker's event loop that ran 5 ms or more late, by how late",
    "The latest any worker's event loop ran since it started",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
# chat/progress.py: a worker's save of its growing replies. Each reply's saved copy is at most
# SAVE_INTERVAL_SECONDS plus the longest save old: what a crash or a reload can lose.
PROGRESS_SAVE = Durations(
    "streamdesk_progress_save",
    "A worker's save of every reply it is writing, from start to end",
    "The longest save of growing replies by any worker since it started",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
