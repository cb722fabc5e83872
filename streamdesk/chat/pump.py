"""Reading a provider on its own greenlet, so the relay can speak while the upstream is silent.

A WSGI generator blocked in an upstream read can neither send a heartbeat nor be closed until
the read returns. So the provider's iterator runs on a reader greenlet that feeds a small
queue, and a timer on the hub puts SILENCE in the queue whenever the upstream has been silent
for the interval; the relay turns it into a heartbeat.
When the browser goes away, ``close()`` kills the reader: GreenletExit is raised at its
blocking read, the provider's ``finally`` closes the upstream socket, and the vendor stops
generating (and billing) at once.

This needs gevent's cooperative sockets: the production server (gunicorn's gevent worker,
which ``python app.py`` also runs) monkey-patches before the app is imported.
"""
from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import gevent
from gevent.queue import Queue

T = TypeVar("T")

# Yielded whenever the upstream has been silent for a whole interval. Typed Any so the items
# keep their own type for the reader, who tests ``item is SILENCE`` first.
SILENCE: Any = object()
_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def with_heartbeats(items: Iterator[T], interval: float) -> Generator[T, None, None]:
    """``items``, read on their own greenlet, with SILENCE wherever they paused ``interval``."""
    queue: Queue = Queue(maxsize=64)  # bounded: a slow browser slows the reader, not memory
    loop = gevent.get_hub().loop
    last_item = time.monotonic()
    timer = None

    def read():
        nonlocal last_item
        try:
            for item in items:
                last_item = time.monotonic()
                queue.put(item)
            queue.put(_END)
        except gevent.GreenletExit:
            raise
        except Exception as error:  # handed to the relay, which reports it to the browser
            queue.put(_Failure(error))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    # The heartbeat is one timer per silent interval, run by the hub, not a timeout per
    # chunk: a timed ``queue.get`` would start and cancel a timer for every piece of text.
    def watch():
        nonlocal last_item, timer
        now = time.monotonic()
        if now - last_item >= interval:
            last_item = now
            if not queue.full():  # a full queue means the relay has plenty to send
                queue.put_nowait(SILENCE)
        timer.close()
        timer = loop.timer(max(0.001, last_item + interval - now))
        timer.start(watch)

    reader = gevent.spawn(read)
    timer = loop.timer(interval)
    timer.start(watch)
    try:
        while True:
            item = queue.get()
            if item is _END:
                return
            if type(item) is _Failure:
                raise item.error
            yield item
    finally:
        timer.close()
        # Blocks until the provider's own finally has closed the upstream connection.
        reader.kill(block=True)
