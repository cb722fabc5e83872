"""The cap on replies one user follows at once, under gunicorn as the Procfile starts it: the
risk is the server's handling of connections that stay open, leave, or are never read.

One worker, since the cap is counted by each worker (streamdesk/web/followers.py), and
heartbeats 15 s apart: a follower that leaves while the model is silent is noticed by the
watch on its socket, or not for 15 s and more.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import AppServer, EventStream

CAP = 2


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-follow-limits-test",
        "OPENAI_MODELS": "hold,paced", "DEFAULT_MODEL": "openai/hold",
        "WEB_CONCURRENCY": "1", "HEARTBEAT_SECONDS": "15",
        "MAX_FOLLOWERS_PER_USER": str(CAP),
    }, tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def start_reply(user, server, model="openai/hold") -> tuple[str, EventStream]:
    """A reply being written (POST /chat, which is not one of its followers): its id and
    its stream, read up to meta."""
    stream = EventStream(user.post(f"{server.url}/chat", json={"message": "hi", "model": model},
                                   stream=True, timeout=30))
    meta = stream.read(until=lambda events: events[0][1] == "meta")[0][2]
    return meta["message_id"], stream


def follow(user, server, message_id) -> requests.Response:
    return user.get(f"{server.url}/api/messages/{message_id}/events", stream=True, timeout=30)


def following(user, server, message_id) -> EventStream:
    """A follower that has been admitted and has read the reply's first event. (Keep it: its
    reader, once collected, closes the connection.)"""
    response = follow(user, server, message_id)
    assert response.status_code == 200, response.text
    stream = EventStream(response)
    assert stream.read(until=bool)[0][1] == "meta"
    return stream


def test_the_follower_past_the_cap_is_refused_and_one_that_leaves_frees_its_place_at_once(
        server, fresh_upstream):
    with requests.Session() as alice, requests.Session() as bob:
        reply, _writing = start_reply(alice, server)
        followers = [following(alice, server, reply) for _ in range(CAP)]
        refused = follow(alice, server, reply)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        error = refused.json()["error"]
        assert error["code"] == "too_many_followers"
        assert f"at most {CAP}" in error["message"] and "close other tabs" in error["message"]
        # Another user is not held back by Alice's followers.
        bobs_reply, _bobs_writing = start_reply(bob, server)
        bobs = [following(bob, server, bobs_reply) for _ in range(CAP)]
        # One of Alice's tabs closes while the model is silent: no write tells the server.
        followers[0].response.close()
        deadline = time.monotonic() + 5
        while (again := follow(alice, server, reply)).status_code == 429:
            again.close()
            assert time.monotonic() < deadline, "the follower that left still holds its place"
            time.sleep(0.05)
        assert again.status_code == 200
        assert follow(alice, server, reply).status_code == 429  # full again
        for stream in [*followers, *bobs]:
            stream.response.close()
        again.close()


def test_followers_that_end_or_are_never_read_give_their_place_back(server, fresh_upstream):
    with requests.Session() as alice:
        ended, writing = start_reply(alice, server, model="openai/paced")
        assert writing.read()[-1][1] == "done"
        url = f"{server.url}/api/messages/{ended}/events"
        for _ in range(CAP + 1):  # one after another, more than the cap
            assert alice.head(url, timeout=10).status_code == 200  # its body is never read
            replayed = follow(alice, server, ended)
            assert replayed.status_code == 200, replayed.text
            assert EventStream(replayed).read()[-1][1] == "done"
        # None of them is still counted: the cap's worth of followers, and not one more.
        reply, _writing = start_reply(alice, server)
        followers = [following(alice, server, reply) for _ in range(CAP)]
        refused = follow(alice, server, reply)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_followers"
        for stream in followers:
            stream.response.close()
