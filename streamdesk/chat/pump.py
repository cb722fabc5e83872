"""Reading a provider on its own greenlet, so the relay can speak while the upstream is silent.

A relay blocked in an upstream read can neither report silence nor be stopped until the read
returns. So the provider's iterator runs on a reader greenlet that feeds a small queue, and a
timer on the hub puts SILENCE in the queue whenever the upstream has been silent for the
interval; the relay turns it into a heartbeat.

``close()`` kills the reader: GreenletExit is raised at its blocking read, the provider's
``finally`` closes the upstream socket, and the vendor stops generating (and billing) at once.
The relay closes the pump only after it has saved the reply, so whoever sees the upstream
connection drop can already read the saved state. That is why this is a class and not a
generator: an exception thrown into the relay while it waits here (Stop, shutdown, the time
limit) passes through ``__next__`` and leaves the reader alone until ``close()``.

This needs gevent's cooperative sockets: the production server (gunicorn's gevent worker,
which ``python app.py`` also runs) monkey-patches before the app is imported.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import gevent
from gevent.queue import Queue

T = TypeVar("T")

# Returned whenever the upstream has been silent for a whole interval. Typed Any so the items
# keep their own type for the reader, who tests ``item is SILENCE`` first.
SILENCE: Any = object()
_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class with_heartbeats(Generic[T]):  # noqa: N801 (used like the generator it replaces)
    """``items``, read on their own greenlet, with SILENCE wherever they paused ``interval``."""

    def __init__(self, items: Iterator[T], interval: float):
        self._queue: Queue = Queue(maxsize=64)  # bounded: a slow relay slows the reader
        self._interval = interval
        self._last_item = time.monotonic()
        self._loop = gevent.get_hub().loop
        self._reader = gevent.spawn(self._read, items)
        # The heartbeat is one timer per silent interval, run by the hub, not a timeout per
        # chunk: a timed ``queue.get`` would start and cancel a timer for every piece of text.
        self._timer = self._loop.timer(interval)
        self._timer.start(self._watch)

    def __iter__(self) -> with_heartbeats[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _END:
            raise StopIteration
        if type(item) is _Failure:
            raise item.error
        return item

    def close(self) -> None:
        """Stop reading: blocks until the provider's own finally has closed the upstream."""
        self._timer.close()
        self._reader.kill(block=True)

    def _read(self, items: Iterator[T]) -> None:
        queue = self._queue
        try:
            for item in items:
                self._last_item = time.monotonic()
                queue.put(item)
            queue.put(_END)
        except gevent.GreenletExit:
            raise
        except Exception as error:  # handed to the relay, which reports it
            queue.put(_Failure(error))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    def _watch(self) -> None:
        now = time.monotonic()
        if now - self._last_item >= self._interval:
            self._last_item = now
            if not self._queue.full():  # a full queue means the relay has plenty to send
                self._queue.put_nowait(SILENCE)
        self._timer.close()
        self._timer = self._loop.timer(max(0.001, self._last_item + self._interval - now))
        self._timer.start(self._watch)
