"""Ending live replies cleanly when the server stops.

On SIGTERM gunicorn stops accepting and lets running requests go on, but its master SIGKILLs
the workers when ``graceful_timeout`` is over, and a killed process saves nothing. So each
worker interrupts its own live replies shortly before that deadline: each relay then saves
its reply as ``interrupted`` and tells its browser, and the worker exits with nothing lost.
Replies that end within the grace period end normally.
"""
from __future__ import annotations

import gevent
from gevent import GreenletExit

# How long before the master's SIGKILL the worker interrupts what is still streaming: time
# for each relay to save its reply and write its last two events.
MARGIN_SECONDS = 2.0

_live: set = set()  # the greenlets currently relaying a reply in this worker


class ServerStopping(GreenletExit):
    """Raised in a relaying greenlet when the server stops before the reply is done."""


def track_current_reply():
    current = gevent.getcurrent()
    _live.add(current)
    return current


def untrack(reply) -> None:
    _live.discard(reply)


def interrupt_live_replies() -> None:
    for reply in list(_live):
        reply.kill(ServerStopping, block=False)


def schedule_interruption(graceful_timeout: float) -> None:
    gevent.spawn_later(max(0.0, graceful_timeout - MARGIN_SECONDS), interrupt_live_replies)
