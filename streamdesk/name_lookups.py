"""Name lookups in a gevent worker, without a native thread for every new connection.

gevent's default resolver runs each ``getaddrinfo`` on the hub's pool of native threads, a
numeric address such as 127.0.0.1 included; the thread takes the interpreter lock to start
the call and again to hand its answer back. Every new upstream connection paid ~170 us of
CPU for it on the 2-core machine of docs/benchmarks.md (4-5 us with this resolver), and a
named model service a DNS query per connection, ten at a time (the pool's size): a burst of
new chats opens a connection each.

``Resolver`` answers a numeric address at once from the OS (``AI_NUMERICHOST``: no network,
no file but /etc/services for a named port). A name is looked up on the pool as before, once
for everyone who asks while it runs, and the answer is kept for ``TTL_SECONDS``, as aiohttp's
connector keeps its own: a burst of new chats to api.example.com makes one lookup, not one
per chat, and a changed DNS record is followed within that time. Failures are not kept.
gunicorn.conf.py installs it in each worker, for every lookup the worker makes (model
services, Redis).
"""
from __future__ import annotations

import _socket
import time
from collections.abc import Callable

from gevent.event import AsyncResult
from gevent.resolver.thread import Resolver as ThreadResolver

TTL_SECONDS = 10.0
MAX_NAMES = 256  # kept answers; a worker talks to a handful of hosts


class Resolver(ThreadResolver):
    def __init__(self, hub=None, *, ttl: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(hub)
        self.ttl = ttl
        self.clock = clock
        self._answers: dict[tuple, tuple[float, list]] = {}  # key: (expires at, answer)
        self._running: dict[tuple, AsyncResult] = {}  # lookups on the pool, by key

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        key = (host, port, family, type, proto, flags)
        while True:
            kept = self._answers.get(key)
            if kept is not None and kept[0] > self.clock():
                return list(kept[1])
            try:  # an address, not a name: the OS answers without looking anything up
                return _socket.getaddrinfo(host, port, family, type, proto,
                                           flags | _socket.AI_NUMERICHOST)
            except _socket.gaierror:
                pass
            running = self._running.get(key)
            if running is None:
                return list(self._look_up(key))
            try:
                return list(running.get())
            except _Abandoned:  # the greenlet that asked first was interrupted: ask again
                continue

    def _look_up(self, key: tuple) -> list:
        running = self._running[key] = AsyncResult()
        try:
            answer = super().getaddrinfo(*key)
        except Exception as error:  # no such name, no DNS server: everyone waiting hears it
            running.set_exception(error)
            raise
        except BaseException:  # this greenlet was killed (a stop, shutdown): not the lookup
            running.set_exception(_Abandoned())
            raise
        finally:
            del self._running[key]
        self._keep(key, answer)
        running.set(answer)
        return answer

    def _keep(self, key: tuple, answer: list) -> None:
        if len(self._answers) >= MAX_NAMES:
            self._answers.clear()
        self._answers[key] = (self.clock() + self.ttl, answer)


class _Abandoned(Exception):
    """A lookup whose greenlet was interrupted before it had an answer."""
