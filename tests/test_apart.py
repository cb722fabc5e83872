"""A request's application code on a greenlet of its own (streamdesk/apart.py): it answers as if
called on the connection's greenlet (result, exception, context variables, interruptions), and
the greenlet it ran on has ended by the time the body is written. The Procfile server runs
every request this way, so every test that talks to it goes through here too."""
from __future__ import annotations

import contextvars

import gevent
import greenlet
import pytest
from gevent.event import Event

from streamdesk.apart import each_request_apart, run_apart

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                          default=None)


def on_a_greenlet(function):
    """``function()`` on a gevent greenlet of its own, as gunicorn serves a connection."""
    return gevent.spawn(function).get(timeout=5)


def test_the_result_and_the_exception_are_the_functions_own():
    assert on_a_greenlet(lambda: run_apart(lambda a, b: a + b, 2, 3)) == 5

    def fails():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        on_a_greenlet(lambda: run_apart(fails))


def test_the_application_has_ended_before_its_body_is_written():
    seen = {}

    def wsgi(environ, start_response):
        seen["app"] = greenlet.getcurrent()
        gevent.sleep(0)  # waits like a view that asks the database: other greenlets run
        start_response("200 OK", [])
        return iter([b"body"])

    def connection():
        body = each_request_apart(wsgi)({}, lambda status, headers: None)
        seen["connection"] = greenlet.getcurrent()
        seen["app ended"] = seen["app"].dead
        return list(body)

    assert on_a_greenlet(connection) == [b"body"]
    assert seen["app"] is not seen["connection"]
    assert seen["app ended"]


def test_context_variables_go_both_ways():
    def view():
        before = request_id.get()
        request_id.set("req-2")
        gevent.sleep(0)
        return before

    def connection():
        request_id.set("req-1")
        before = run_apart(view)
        return before, request_id.get()

    # The view sees what the connection set, and the body is written with what the view set.
    assert on_a_greenlet(connection) == ("req-1", "req-2")


def test_a_fresh_connection_greenlet_still_sees_what_the_view_set():
    def view():
        request_id.set("req-3")

    def connection():  # has not touched a context variable before
        run_apart(view)
        return request_id.get()

    assert on_a_greenlet(connection) == "req-3"


def test_an_interrupted_caller_ends_the_application_first():
    never = Event()
    steps = []

    def view():
        try:
            never.wait()
            steps.append("woke")
        finally:
            steps.append("view ended")

    def connection():
        try:
            with gevent.Timeout(0.05):
                run_apart(view)
        except gevent.Timeout:
            steps.append("connection interrupted")

    on_a_greenlet(connection)
    never.set()
    gevent.sleep(0)  # let anything still waiting on the event run: nothing is
    assert steps == ["view ended", "connection interrupted"]
