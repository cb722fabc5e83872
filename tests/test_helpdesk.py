"""A company deployment under gunicorn: what needs the real server's two workers.

The access code, SSO through a trusted header, the locked assistant and the limits are tested
in process (test_web_identity.py); here, that the count of wrong guesses is shared by both
worker processes.
"""
from __future__ import annotations

import json
import select
import socket
import time

import pytest
import requests

from tests.conftest import AppServer

CODE = "helpdesk-demo-7421"


@pytest.fixture
def coded_server(tmp_path, upstream):
    server = AppServer({"ACCESS_CODE": CODE, "OPENAI_BASE_URL": upstream.url,
                        "OPENAI_MODELS": "echo"}, tmp_path).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_guessing_the_code_locks_the_address_out(coded_server):
    server = coded_server
    # A new connection per guess spreads them over both workers: the count must be shared.
    guess = {"Connection": "close"}
    with requests.Session() as guesser:
        answers = [guesser.post(f"{server.url}/api/access", json={"code": f"guess-{n}"},
                                headers=guess, timeout=10) for n in range(5)]
        assert [a.status_code for a in answers] == [401] * 5
        assert answers[0].json()["error"]["code"] == "invalid_access_code"
        locked = guesser.post(f"{server.url}/api/access", json={"code": CODE}, timeout=10)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert "Try again in" in locked.json()["error"]["message"]
        assert guesser.get(f"{server.url}/api/conversations", timeout=10).status_code == 401


@pytest.fixture(params=["database", "redis"])
def counted_in(request, tmp_path, upstream):
    """The coded server with its counters in the database (SQLite) or in Redis, whose client
    waits on the network (so the check of one guess lets others run)."""
    env = {"ACCESS_CODE": CODE, "OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "echo"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
        import redis
        redis.from_url(env["REDIS_URL"]).flushdb()
    server = AppServer(env, tmp_path).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_guesses_sent_at_the_same_moment_are_counted_before_any_is_checked(counted_in):
    """40 guesses whose bodies are all still arriving: before, each was let through (the count
    was only tested) and then all 40 were checked; now 35 are refused at once, without their
    bodies, and the 5 counted ones are checked once their bodies are complete."""
    host, port = counted_in.url.removeprefix("http://").split(":")
    guesses = []
    for number in range(40):
        body = json.dumps({"code": f"guess-{number}"}).encode()
        guess = socket.create_connection((host, int(port)), timeout=30)
        guess.sendall(b"POST /api/access HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body[:-1]))  # all but the last byte
        guesses.append((guess, body[-1:]))
    refused_at_once, waiting = [], {guess for guess, _ in guesses}
    deadline = time.monotonic() + 15  # a failure's limit, not a synchronisation
    while len(refused_at_once) < 35 and time.monotonic() < deadline:
        readable, _, _ = select.select(list(waiting), [], [], 0.5)
        for guess in readable:
            waiting.discard(guess)
            refused_at_once.append(status_of(guess))
    assert refused_at_once == [429] * 35
    for guess, last_byte in guesses:
        if guess in waiting:
            guess.sendall(last_byte)
    assert sorted(status_of(guess) for guess in waiting) == [401] * 5
    for guess, _ in guesses:
        guess.close()
    right = requests.post(f"{counted_in.url}/api/access", json={"code": CODE}, timeout=10)
    assert right.status_code == 429


def status_of(connection) -> int:
    return int(connection.makefile("rb").readline().split()[1])
