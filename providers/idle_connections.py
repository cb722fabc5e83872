"""Whether an idle connection is still open, asked of the OS at once.

An idle connection has nothing to read. One that the other end has closed (a model service's
keep-alive timeout, a database restart, a proxy's idle timeout) has its end, and often a last
message, waiting on the socket: one poll() with a timeout of 0 tells, with no round trip. It
is the OS's own poll(): gevent's patched one goes round the event loop even for a timeout of
0 (docs/benchmarks.md). Used for pooled connections to model services (``providers.http``)
and to PostgreSQL (``streamdesk.store.engine``).
"""
from __future__ import annotations

import select

try:
    from gevent.monkey import get_original
    _poll = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent comes with the app
    _poll = select.poll


def closed_while_idle(connection) -> bool:
    """True when the idle ``connection`` (a socket or its file descriptor) has something to
    read: closed by the other end, or garbage; either way not to be used again."""
    poller = _poll()
    poller.register(connection, select.POLLIN)
    return bool(poller.poll(0))
