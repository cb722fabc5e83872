"""Ending live replies cleanly when the server stops.

On SIGTERM gunicorn stops accepting and lets running requests go on, but its master SIGKILLs
the workers when ``graceful_timeout`` is over, and a killed process saves nothing. A reply
whose connection closed goes on on a greenlet of its own, which gunicorn does not wait for; so
each worker waits for its replies before it exits (``wait_for_replies``, from gunicorn's
``worker_exit`` hook) and interrupts those still running shortly before the deadline: each is
then saved as ``interrupted`` and its followers are told so, and the worker exits with nothing
lost. Replies that end within the grace period end normally.
"""
from __future__ import annotations

import gevent
from gevent import GreenletExit

# How long before the master's SIGKILL the worker interrupts what is still streaming: time
# for each reply to be saved and its followers to get their last two events.
MARGIN_SECONDS = 2.0

_live: set = set()  # the Drive of each reply being written by this worker (driving.py)


class ServerStopping(GreenletExit):
    """Raised in a reply's greenlet when the server stops before the reply is done."""


class ClientGone(GreenletExit):
    """Raised in the greenlet serving a request whose client has closed the connection, where
    it waits (``web/disconnect.py`` watches the socket).

    A GreenletExit, like ``ServerStopping``: gunicorn's gevent worker lets it end the request
    quietly, and SQLAlchemy and redis-py drop a connection it interrupts mid-command instead
    of handing it on half-read."""


def track(drive) -> None:
    _live.add(drive)


def untrack(drive) -> None:
    _live.discard(drive)


def interrupt_live_replies() -> None:
    for drive in list(_live):
        drive.interrupt(ServerStopping)  # a reply already saving its end is left to finish


def schedule_interruption(graceful_timeout: float) -> None:
    gevent.spawn_later(max(0.0, graceful_timeout - MARGIN_SECONDS), interrupt_live_replies)


def wait_for_replies(timeout: float) -> None:
    """Let the replies of this worker end (or be interrupted) before the process exits."""
    if _live:
        gevent.wait([drive.finished for drive in _live], timeout=timeout)
