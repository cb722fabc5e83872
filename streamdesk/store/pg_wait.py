"""psycopg's waits for PostgreSQL, as waits on gevent's loop.

A query's round trip waits for the connection's socket between the sending and the answer.
Under gevent psycopg picks its ``wait_poll``, which goes through gevent's patched
``select.poll``: a poll object, a result object, an event, a watcher and a timer (psycopg wakes
every 0.1 s to notice Ctrl-C) for every wait. In a burst of 200 new chats on PostgreSQL that
was ~13 % of the workers' CPU (py-spy, docs/benchmarks.md). Here a wait is one watcher on the
socket and the greenlet's switch back: the same bursts took 12 % less CPU and their first
tokens came ~16 % sooner.

``install`` replaces psycopg's module-level ``wait``, the function psycopg itself chooses at
import (and lets ``PSYCOPG_WAIT_FUNC`` choose), which every wait of a connection on its socket
goes through; connecting still uses psycopg's own ``wait_conn``. Only for a process whose
``select`` gevent has patched: elsewhere psycopg's C wait is the right one.
"""
from __future__ import annotations

from time import monotonic

import gevent
from gevent.hub import Waiter
from psycopg import errors, waiting


def install() -> None:
    """Waits on gevent's loop from now on, where gevent has patched this process."""
    from gevent import monkey
    if monkey.is_module_patched("select"):
        waiting.wait = wait_on_the_loop


def wait_on_the_loop(gen, fileno: int, interval: float = 0.0, timeout: float | None = None):
    """psycopg's ``wait``: drives ``gen``, waiting for ``fileno`` to be ready as it asks
    (readable, writable or either: psycopg's Wait values are libev's event bits), until
    ``gen`` returns. ``interval`` is not needed: gevent's loop hears signals itself. Past
    ``timeout`` seconds, psycopg's own ``_WaitTimeout``, which its callers expect."""
    hub = gevent.get_hub()
    new_watcher = hub.loop.io
    deadline = monotonic() + timeout if timeout is not None else None
    try:
        wanted = next(gen)
        while True:
            watcher = new_watcher(fileno, wanted)
            waiter = Waiter(hub)
            watcher.start(waiter.switch, pass_events=True)  # switches back with the events
            timer = None
            if deadline is not None:
                timer = gevent.Timeout(max(deadline - monotonic(), 0.0))
                timer.start()
            try:
                ready = waiter.get()
            except gevent.Timeout as expired:
                if expired is not timer:
                    raise
                raise errors._WaitTimeout("wait timeout expired") from None
            finally:
                watcher.stop()
                watcher.close()
                if timer is not None:
                    timer.close()
            wanted = gen.send(ready)
    except StopIteration as done:
        return done.value
