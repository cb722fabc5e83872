"""Each request's application code on a greenlet of its own, which ends as the response is
returned; the connection's greenlet then only writes the body.

Why: since Python 3.11 a greenlet keeps its Python frames on a data stack of its own, and the
pages its deepest call touched stay resident for as long as the greenlet lives. Routing, the
session and the database go deep; writing a streamed body does not, and the connection of an
open reply lives as long as the reply. With the view on a greenlet that ends, an open reply
held 3-6 KB less (docs/benchmarks.md, seventh round).

A plain greenlet switched to at once, not a gevent one: no turn of the event loop between the
connection and its request. It shares the caller's ``contextvars`` context, so what the view
sets (the request id of log lines, Flask's own context variables) is there while the body is
written, as if it had run on the connection's greenlet.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TypeVar

import greenlet

T = TypeVar("T")


def run_apart(function: Callable[..., T], *args) -> T:
    """``function(*args)`` on a new greenlet that ends with it: its result, or its exception,
    as if called here. Interrupted meanwhile (a kill, a timeout), the caller first ends that
    greenlet (``GreenletExit`` where it waits, so its ``finally`` blocks run), then goes on
    with the interruption."""
    caller = greenlet.getcurrent()
    if caller.gr_context is None:  # none made yet: one to share from now on
        caller.gr_context = contextvars.Context()
    callee = greenlet.greenlet(function, parent=caller)
    callee.gr_context = caller.gr_context
    try:
        return callee.switch(*args)
    except BaseException:
        if not callee.dead:
            callee.throw()
        raise


def each_request_apart(wsgi: Callable) -> Callable:
    """The WSGI application ``wsgi``, each call run apart (``run_apart``)."""
    def application(environ, start_response):
        return run_apart(wsgi, environ, start_response)
    return application
