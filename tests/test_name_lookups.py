"""Name lookups in a worker (streamdesk/name_lookups.py): addresses answered at once, a name
looked up once for everyone asking, kept for its time, and failures never kept. The lookups
are the OS's own, on gevent's real thread pool; the pool is only counted."""
from __future__ import annotations

import _socket
import socket

import gevent
import pytest
import requests
from gevent.event import Event

from streamdesk.name_lookups import Resolver
from tests.conftest import AppServer, read_events


class CountedPool:
    """The hub's thread pool, counting the lookups sent to it; ``gate``, when given, holds
    each lookup until it is set."""

    def __init__(self, pool, gate: Event | None = None):
        self.pool, self.gate, self.lookups = pool, gate, 0

    def apply(self, func, args=None, kwds=None):
        self.lookups += 1
        if self.gate is not None:
            self.gate.wait()
        return self.pool.apply(func, args, kwds)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver(gate: Event | None = None, ttl: float = 10.0) -> tuple[Resolver, CountedPool, Clock]:
    clock = Clock()
    made = Resolver(gevent.get_hub(), ttl=ttl, clock=clock)
    made.pool = counted = CountedPool(made.pool, gate)
    return made, counted, clock


@pytest.mark.parametrize("address, family", [("127.0.0.1", 0), ("::1", socket.AF_INET6)])
def test_an_address_is_answered_as_the_os_answers_it_without_a_lookup(address, family):
    made, pool, _ = resolver()
    answer = made.getaddrinfo(address, 8080, family, socket.SOCK_STREAM)
    assert answer == _socket.getaddrinfo(address, 8080, family, socket.SOCK_STREAM)
    assert pool.lookups == 0


def test_a_name_asked_for_at_once_is_looked_up_once_and_kept_for_its_time():
    made, pool, clock = resolver(ttl=10.0)
    expected = _socket.getaddrinfo("localhost", 443, 0, socket.SOCK_STREAM)
    askers = [gevent.spawn(made.getaddrinfo, "localhost", 443, 0, socket.SOCK_STREAM)
              for _ in range(20)]
    gevent.joinall(askers, raise_error=True)
    assert all(asker.value == expected for asker in askers)
    assert pool.lookups == 1

    clock.now += 9.9
    assert made.getaddrinfo("localhost", 443, 0, socket.SOCK_STREAM) == expected
    assert pool.lookups == 1
    clock.now += 0.2  # past its time: a changed DNS record would be seen now
    assert made.getaddrinfo("localhost", 443, 0, socket.SOCK_STREAM) == expected
    assert pool.lookups == 2
    # Another port is another question.
    made.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)
    assert pool.lookups == 3


def test_a_failed_lookup_reaches_everyone_asking_and_is_not_kept():
    made, pool, _ = resolver()
    askers = [gevent.spawn(made.getaddrinfo, "localhost", "no-such-service", 0,
                           socket.SOCK_STREAM) for _ in range(5)]
    gevent.joinall(askers)
    assert all(isinstance(asker.exception, socket.gaierror) for asker in askers)
    assert pool.lookups == 1
    with pytest.raises(socket.gaierror):
        made.getaddrinfo("localhost", "no-such-service", 0, socket.SOCK_STREAM)
    assert pool.lookups == 2  # asked again: a failure is never kept


def test_when_the_first_asker_is_stopped_the_others_still_get_an_answer():
    gate = Event()
    made, pool, _ = resolver(gate=gate)
    first = gevent.spawn(made.getaddrinfo, "localhost", 443, 0, socket.SOCK_STREAM)
    gevent.sleep(0)  # it is waiting on its lookup
    others = [gevent.spawn(made.getaddrinfo, "localhost", 443, 0, socket.SOCK_STREAM)
              for _ in range(3)]
    gevent.sleep(0)  # they wait on the first one's lookup
    first.kill()  # a stop, or shutdown, while it waited
    gate.set()
    gevent.joinall(others, raise_error=True)
    assert first.dead
    expected = _socket.getaddrinfo("localhost", 443, 0, socket.SOCK_STREAM)
    assert all(other.value == expected for other in others)
    assert pool.lookups == 2  # one of the others asked again, for all of them


def test_an_app_whose_model_service_is_named_streams_replies(upstream, tmp_path):
    host, port = upstream.server_address[:2]
    assert host == "127.0.0.1"  # the stand-in listens there: "localhost" is a name for it
    server = AppServer({
        "OPENAI_BASE_URL": f"http://localhost:{port}/v1",
        "OPENAI_MODELS": "echo",
        "DEFAULT_MODEL": "openai/echo",
    }, tmp_path / "instance").start()
    try:
        for _ in range(2):  # the second reply's connection uses the kept answer
            response = requests.post(f"{server.url}/chat", json={"message": "hello there"},
                                     stream=True, timeout=30)
            events = read_events(response)
            text = "".join(data.get("text", "") for name, data in events if name == "delta")
            assert text.startswith("Echo: hello there")
            assert events[-1][0] == "done" and events[-1][1]["status"] == "complete"
    finally:
        server.stop()
    server.assert_clean_log()
