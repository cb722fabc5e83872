"""Ending live replies cleanly when the server stops.

On SIGTERM gunicorn stops accepting and lets running requests go on, but its master SIGKILLs
the workers when ``graceful_timeout`` is over, and a killed process saves nothing. Replies are
written on greenlets of their own, which gunicorn does not wait for; so each worker waits for
its replies before it exits (``wait_for_replies``, from gunicorn's ``worker_exit`` hook) and
interrupts those still running shortly before the deadline: each is then saved as
``interrupted`` and its followers are told so, and the worker exits with nothing lost.
Replies that end within the grace period end normally.
"""
from __future__ import annotations

from collections.abc import Callable

import gevent
from gevent import GreenletExit

# How long before the master's SIGKILL the worker interrupts what is still streaming: time
# for each reply to be saved and its followers to get their last two events.
MARGIN_SECONDS = 2.0

_live: dict = {}  # greenlet writing a reply in this worker -> whether it may be interrupted


class ServerStopping(GreenletExit):
    """Raised in a reply's greenlet when the server stops before the reply is done."""


class ClientGone(GreenletExit):
    """Raised in the greenlet serving a request whose client has closed the connection, where
    it waits (``web/disconnect.py`` watches the socket).

    A GreenletExit, like ``ServerStopping``: gunicorn's gevent worker lets it end the request
    quietly, and SQLAlchemy and redis-py drop a connection it interrupts mid-command instead
    of handing it on half-read."""


def track(greenlet, interruptible: Callable[[], bool] = lambda: True) -> None:
    _live[greenlet] = interruptible


def untrack(greenlet) -> None:
    _live.pop(greenlet, None)


def interrupt_live_replies() -> None:
    for reply, interruptible in list(_live.items()):
        if interruptible():  # a reply already saving its end is left to finish
            reply.kill(ServerStopping, block=False)


def schedule_interruption(graceful_timeout: float) -> None:
    gevent.spawn_later(max(0.0, graceful_timeout - MARGIN_SECONDS), interrupt_live_replies)


def wait_for_replies(timeout: float) -> None:
    """Let the replies of this worker end (or be interrupted) before the process exits."""
    if _live:
        gevent.joinall(list(_live), timeout=timeout)
