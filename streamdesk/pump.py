"""Reading a provider on its own greenlet, so the relay can speak while the upstream is silent.

A WSGI generator blocked in an upstream read can neither send a heartbeat nor be closed until
the read returns. So the provider's iterator runs on a reader greenlet that feeds a small
queue; the relay waits on the queue with a timeout and sends ``: ping`` whenever it expires.
When the browser goes away, ``close()`` kills the reader: GreenletExit is raised at its
blocking read, the provider's ``finally`` closes the upstream socket, and the vendor stops
generating (and billing) at once.

This needs gevent's cooperative sockets: the production server (gunicorn's gevent worker,
which ``python app.py`` also runs) monkey-patches before the app is imported.
"""
from __future__ import annotations

from typing import Iterator, TypeVar

import gevent
from gevent.queue import Empty, Queue

T = TypeVar("T")

HEARTBEAT = object()  # yielded whenever the upstream has been silent for a whole interval
_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def with_heartbeats(items: Iterator[T], interval: float) -> Iterator[T | object]:
    queue: Queue = Queue(maxsize=64)  # bounded: a slow browser slows the reader, not memory

    def read():
        try:
            for item in items:
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

    reader = gevent.spawn(read)
    try:
        while True:
            try:
                item = queue.get(timeout=interval)
            except Empty:
                yield HEARTBEAT
                continue
            if item is _END:
                return
            if type(item) is _Failure:
                raise item.error
            yield item
    finally:
        # Blocks until the provider's own finally has closed the upstream connection.
        reader.kill(block=True)
