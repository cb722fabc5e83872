"""Noticing at once that a client went away, even while nothing is being written to it.

A server only learns that a peer closed the connection when it next writes, which, while a
reasoning model thinks, may be a whole heartbeat away (two, as the first write after a close
still succeeds), and for an answer sent whole only at its end. So the client's socket is
watched instead: the hub wakes us when it becomes readable, and a peek that reads nothing means
the peer closed it. (Bytes arriving instead, a pipelined request, end the watch.) With
CANCEL_ON_DISCONNECT the operator wants the reply stopped then (``stop_when_gone``); an API
call stops when its caller leaves (``ClientWatch``); a follower of a reply just ends
(``end_when_gone``), so that its greenlet and its place among the user's followers are free at
once.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator

import gevent

from ..chat.lifecycle import ClientGone


class ClientWatch:
    """Calls ``on_gone`` (on a greenlet of its own) once the client has closed its connection,
    until ``close()``. ``client`` is gunicorn's socket for the request, or None (other servers
    do not name it): then nothing is watched."""

    def __init__(self, client, on_gone: Callable[[], object]):
        self.on_gone = on_gone
        self._watcher = _watch(client, lambda: gevent.spawn(on_gone))

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()

    def __enter__(self) -> ClientWatch:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def stop_when_gone(body: Iterable[bytes], client, on_gone: Callable[[], object]
                   ) -> Iterator[bytes]:
    """``body`` as is, calling ``on_gone`` once the client has closed its connection: watched
    from the body's first step to its end."""
    with ClientWatch(client, on_gone):
        try:
            yield from body
        except GeneratorExit:
            gevent.spawn(on_gone)  # the server noticed first (a write failed)
            raise
        finally:
            _close(body)


def end_when_gone(body: Iterable[bytes], client) -> Iterator[bytes]:
    """``body`` as is, ended as soon as the client has closed its connection: ``ClientGone``
    is raised where the serving greenlet waits (for the reply's next event, a database read),
    and the server then closes the body as after a failed write. ``client`` is gunicorn's
    socket for the request, or None (then only a failed write ends it)."""
    serving = gevent.getcurrent()
    # The watch is closed before the body is done, and a peer that has closed sends no next
    # request: ClientGone cannot reach a later response on the same greenlet.
    watcher = _watch(client, lambda: gevent.kill(serving, ClientGone))
    try:
        yield from body
    finally:
        if watcher is not None:
            watcher.close()
        _close(body)


def _close(body: Iterable[bytes]) -> None:
    """Close ``body`` itself: ``yield from`` closes only the iterator it took from it, which
    for a body that is not a generator (``sse.EventStream``) is not the body."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _watch(client, on_gone: Callable[[], object]):
    """Call ``on_gone`` from the hub once the peer of ``client`` has closed it; the watcher
    (to close), or None without a socket to watch."""
    if client is None:
        return None
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
            on_gone()

    watcher.start(readable)
    return watcher
