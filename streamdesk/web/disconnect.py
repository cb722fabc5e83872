"""Noticing at once that a client went away, even while nothing is being written to it.

A server only learns that a peer closed the connection when it next writes, which, while a
reasoning model thinks, may be a whole heartbeat away. With CANCEL_ON_DISCONNECT the operator
wants the reply stopped when its browser leaves, so the client's socket is watched instead:
the hub wakes us when it becomes readable, and a peek that reads nothing means the peer
closed it. (Bytes arriving instead, a pipelined request, end the watch.)
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator

import gevent


def stop_when_gone(body: Iterable[bytes], client, on_gone: Callable[[], object]
                   ) -> Iterator[bytes]:
    """``body`` as is, calling ``on_gone`` (on a greenlet of its own) once the client has
    closed its connection. ``client`` is gunicorn's socket for the request, or None."""
    watcher = None
    if client is not None:
        raw = getattr(client, "_sock", client)
        watcher = gevent.get_hub().loop.io(raw.fileno(), 1)

        def readable():
            try:
                peeked = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                peeked = b""
            watcher.stop()
            if not peeked:
                gevent.spawn(on_gone)

        watcher.start(readable)
    try:
        yield from body
    except GeneratorExit:
        gevent.spawn(on_gone)  # the server noticed first (a write failed)
        raise
    finally:
        if watcher is not None:
            watcher.close()
