"""Two instances behind one PostgreSQL and one Redis serve one user interchangeably."""
from __future__ import annotations

import signal
import time

import pytest
import requests

from providers.sse import SSEDecoder
from tests.conftest import AppServer, EventStream, deltas, read_events
from tests.nginx import running_nginx

SHARED_SECRET = "shared-deployment-test-secret"


def start_instance(name, postgres_url, redis_url, upstream, tmp_path_factory, **extra):
    return AppServer({
        "DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "SECRET_KEY": SHARED_SECRET,
        "OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "echo,slow",
        "DEFAULT_MODEL": "openai/echo", **extra,
    }, tmp_path_factory.mktemp(name)).start()


@pytest.fixture(scope="module")
def instances(postgres_url, redis_url, upstream, tmp_path_factory):
    # Started together: both create the schema at once, as a rolling deploy would.
    servers = [start_instance(name, postgres_url, redis_url, upstream, tmp_path_factory)
               for name in ("a", "b")]
    yield servers
    for server in servers:
        server.stop()
        server.assert_clean_log()


def test_a_conversation_started_on_one_instance_continues_on_the_other(instances, upstream):
    a, b = instances
    with requests.Session() as browser:  # cookies ignore the port: one browser, two instances
        first = read_events(browser.post(f"{a.url}/chat", json={"message": "one"}, timeout=30))
        conversation_id = first[0][1]["conversation_id"]
        second = read_events(browser.post(f"{b.url}/chat", timeout=30, json={
            "message": "two", "conversation_id": conversation_id}))
        assert "".join(d.get("text", "") for e, d in second if e == "delta") == \
            "Echo: two [3 messages]"
        for server in (a, b):
            listed = browser.get(f"{server.url}/api/conversations", timeout=10).json()
            assert [c["id"] for c in listed["conversations"]] == [conversation_id]
            saved = browser.get(f"{server.url}/api/conversations/{conversation_id}",
                                timeout=10).json()
            assert len(saved["messages"]) == 4


def test_both_instances_are_ready_and_say_so(instances):
    for server in instances:
        body = requests.get(f"{server.url}/readyz", timeout=10).json()
        assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_stopping_an_instance_mid_stream_saves_the_partial_reply_and_the_other_serves_on(
        postgres_url, redis_url, upstream, tmp_path_factory):
    upstream.reset()
    doomed = start_instance("doomed", postgres_url, redis_url, upstream, tmp_path_factory,
                            GRACEFUL_TIMEOUT="3", SAVE_INTERVAL_SECONDS="0")
    survivor = start_instance("survivor", postgres_url, redis_url, upstream, tmp_path_factory)
    try:
        with requests.Session() as browser:
            response = browser.post(f"{doomed.url}/chat", stream=True, timeout=60,
                                    json={"message": "long one", "model": "openai/slow"})
            decoder, events = SSEDecoder(), []
            reads = response.iter_content(chunk_size=None)
            while sum(e.event == "delta" for e in events) < 5:
                events += decoder.feed(next(reads))
            doomed.process.send_signal(signal.SIGTERM)  # a deploy or a scale-down
            for data in reads:  # the grace period ends; the server says why it stopped
                events += decoder.feed(data)
            assert [e.event for e in events][-2:] == ["error", "done"]
            assert events[-2].json()["code"] == "server_stopping"
            seen = "".join(e.json()["text"] for e in events if e.event == "delta")
            conversation_id = events[0].json()["conversation_id"]
            assert doomed.process.wait(timeout=30) == 0

            saved = browser.get(f"{survivor.url}/api/conversations/{conversation_id}",
                                timeout=10).json()["messages"][1]
            assert saved["status"] == "interrupted" and saved["content"] == seen
            after = read_events(browser.post(f"{survivor.url}/chat", timeout=30, json={
                "message": "still there?", "conversation_id": conversation_id,
                "model": "openai/echo"}))
            assert after[-1] == ("done", {"finish_reason": "stop", "status": "complete"})
    finally:
        for server in (doomed, survivor):
            server.stop()
        doomed.assert_clean_log()
        survivor.assert_clean_log()



def chat_status(server, session=None, message="hi") -> int:
    """A fresh connection each time, so the requests spread over the workers too."""
    post = session.post if session else requests.post
    response = post(f"{server.url}/chat", json={"message": message}, timeout=30,
                    headers={"Connection": "close"})
    if response.status_code == 200:
        read_events(response)
    return response.status_code


def test_a_users_rate_limit_is_counted_across_instances_in_redis(postgres_url, redis_url,
                                                                  upstream, tmp_path_factory):
    a, b = (start_instance(name, postgres_url, redis_url, upstream, tmp_path_factory,
                           RATE_LIMIT="2/minute") for name in ("limit-a", "limit-b"))
    try:
        with requests.Session() as browser:
            assert [chat_status(a, browser), chat_status(b, browser)] == [200, 200]
            assert chat_status(a, browser) == 429 and chat_status(b, browser) == 429
    finally:
        for server in (a, b):
            server.stop()
            server.assert_clean_log()


def test_without_redis_the_database_counts_for_every_instance(postgres_url, upstream,
                                                              tmp_path_factory):
    a, b = (start_instance(name, postgres_url, "", upstream, tmp_path_factory,
                           IP_RATE_LIMIT="3/minute") for name in ("db-a", "db-b"))
    try:
        assert [chat_status(a), chat_status(b), chat_status(a)] == [200, 200, 200]
        assert chat_status(b) == 429
    finally:
        for server in (a, b):
            server.stop()
            server.assert_clean_log()


# -- replies across instances (Redis Streams and pub/sub) ------------------------------------

Stream = EventStream


@pytest.fixture(scope="module")
def followed_instances(postgres_url, redis_url, upstream, tmp_path_factory):
    servers = [start_instance(name, postgres_url, redis_url, upstream, tmp_path_factory,
                              OPENAI_MODELS="paced,slow", DEFAULT_MODEL="openai/paced",
                              HEARTBEAT_SECONDS="0.3")
               for name in ("follow-a", "follow-b")]
    yield servers
    for server in servers:
        server.stop()
        server.assert_clean_log()


def test_a_reply_written_on_one_instance_resumes_on_the_other_with_nothing_lost(
        followed_instances, fresh_upstream):
    a, b = followed_instances
    with requests.Session() as browser:
        stream = Stream(browser.post(f"{a.url}/chat", stream=True, timeout=30,
                                     json={"message": "count", "model": "openai/paced"}))
        first = stream.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 5)
        stream.response.close()  # the connection to instance A drops
        meta = first[0][2]
        rest = Stream(browser.get(f"{b.url}/api/messages/{meta['message_id']}/events",
                                  headers={"Last-Event-ID": str(first[-1][0])}, stream=True,
                                  timeout=30)).read()
        ids = [event_id for event_id, _, _ in first + rest]
        assert ids == sorted(set(ids))
        assert rest[-1][1:] == ("done", {"finish_reason": "stop", "status": "complete"})
        saved = browser.get(f"{b.url}/api/conversations/{meta['conversation_id']}",
                            timeout=10).json()["messages"][-1]
        assert deltas(first) + deltas(rest) == saved["content"] == "".join(
            f"{i} " for i in range(60))


def test_a_reply_written_on_one_instance_is_followed_and_stopped_from_the_other(
        followed_instances, fresh_upstream):
    a, b = followed_instances
    with requests.Session() as browser:
        writer = Stream(browser.post(f"{a.url}/chat", stream=True, timeout=30,
                                     json={"message": "long", "model": "openai/slow"}))
        meta = writer.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 2)[0][2]
        follower = Stream(browser.get(f"{b.url}/api/messages/{meta['message_id']}/events",
                                      stream=True, timeout=30))
        # The follower on B sees the reply grow live, event by event, from A.
        growing = follower.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 10)
        assert growing[0][1] == "meta"
        sent = time.monotonic()
        stopped = browser.post(f"{b.url}/api/messages/{meta['message_id']}/stop", json={},
                               timeout=10)
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
        assert fresh_upstream.disconnected.wait(timeout=5)
        assert fresh_upstream.disconnected_at - sent < 1.0  # across instances: within 1 s
        for stream in (writer, follower):
            events = stream.events + stream.read()
            assert events[-1][1:] == ("done", {"finish_reason": "cancelled",
                                               "status": "cancelled"})
        saved = browser.get(f"{b.url}/api/conversations/{meta['conversation_id']}",
                            timeout=10).json()["messages"][-1]
        assert saved["status"] == "cancelled" and saved["content"] == deltas(follower.events)


def test_follow_and_stop_through_nginx_in_front_of_both_instances(
        followed_instances, fresh_upstream, tmp_path_factory):
    a, b = followed_instances
    with running_nginx([a.port, b.port], tmp_path_factory.mktemp("nginx")) as site, \
            requests.Session() as browser:
        # nginx spreads the requests over both instances; each must work wherever it lands.
        for _ in range(2):
            fresh_upstream.reset()
            writer = Stream(browser.post(f"{site}/chat", stream=True, timeout=30,
                                         json={"message": "long", "model": "openai/slow"}))
            meta = writer.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 2)[0][2]
            follower = Stream(browser.get(f"{site}/api/messages/{meta['message_id']}/events",
                                          stream=True, timeout=30))
            follower.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 3)
            stopped = browser.post(f"{site}/api/messages/{meta['message_id']}/stop",
                                   json={}, timeout=10)
            assert stopped.json()["status"] == "cancelled"
            assert fresh_upstream.disconnected.wait(timeout=5)
            for stream in (writer, follower):
                assert (stream.events + stream.read())[-1][2]["status"] == "cancelled"
