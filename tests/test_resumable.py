"""Replies that outlive their connection, under gunicorn as the Procfile starts it: resume
after a drop with Last-Event-ID, follow from anywhere, stop from anywhere, survive a killed
writer, cap replies per user under concurrency."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest
import requests

from tests.conftest import AppServer, EventStream, deltas


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-resumable-test",
        "OPENAI_MODELS": "paced,slow,hold", "DEFAULT_MODEL": "openai/paced",
        "HEARTBEAT_SECONDS": "0.3", "MAX_STREAMS_PER_USER": "3",
    }, instance).start()
    server.instance = instance
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture
def browser(server):
    with requests.Session() as session:
        yield session


Stream = EventStream


def events_with_ids(response, until=None):
    return EventStream(response).read(until)


def saved_reply(browser, server, conversation_id):
    return browser.get(f"{server.url}/api/conversations/{conversation_id}",
                       timeout=10).json()["messages"][-1]


def follow(browser, server, message_id, last_event_id=None, **params):
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    return browser.get(f"{server.url}/api/messages/{message_id}/events", headers=headers,
                       params=params, stream=True, timeout=30)


def test_a_dropped_connection_resumes_with_last_event_id_and_nothing_repeats_or_goes_missing(
        browser, server, fresh_upstream):
    response = browser.post(f"{server.url}/chat", json={"message": "count"}, stream=True,
                            timeout=30)
    first = events_with_ids(response, until=lambda e: sum(n == "delta" for _, n, _ in e) >= 5)
    response.close()  # the network dropped
    meta = first[0][2]
    assert first[0][1] == "meta" and meta["user_message_id"]
    rest = events_with_ids(follow(browser, server, meta["message_id"], first[-1][0]))
    ids = [event_id for event_id, _, _ in first + rest]
    assert ids == sorted(set(ids))  # every event has an id, increasing, none twice
    assert rest[-1][1:] == ("done", {"finish_reason": "stop", "status": "complete"})
    saved = saved_reply(browser, server, meta["conversation_id"])
    assert saved["status"] == "complete"
    assert deltas(first) + deltas(rest) == saved["content"] == "".join(
        f"{i} " for i in range(60))


def test_an_ended_reply_is_replayed_from_storage_from_the_start_or_after_an_id(
        browser, server, fresh_upstream):
    original = events_with_ids(browser.post(f"{server.url}/chat", json={"message": "again"},
                                            stream=True, timeout=30))
    message_id = original[0][2]["message_id"]
    replayed = events_with_ids(follow(browser, server, message_id))
    assert [n for _, n, _ in replayed][0] == "meta" and replayed[-1][1] == "done"
    assert deltas(replayed) == deltas(original)
    assert replayed[-1][0] == original[-1][0]
    middle = original[len(original) // 2][0]
    after = events_with_ids(follow(browser, server, message_id, after=middle))
    assert deltas(after) == "".join(
        data.get("text", "") for i, n, data in original if n == "delta" and i > middle)
    assert after[0][0] > middle


def test_follow_and_stop_are_the_owners_only(browser, server, fresh_upstream):
    events = events_with_ids(browser.post(f"{server.url}/chat", json={"message": "mine"},
                                          stream=True, timeout=30))
    message_id = events[0][2]["message_id"]
    with requests.Session() as mallory:
        assert follow(mallory, server, message_id).status_code == 404
        stopped = mallory.post(f"{server.url}/api/messages/{message_id}/stop", json={},
                               timeout=10)
        assert stopped.status_code == 404
        assert stopped.json()["error"]["code"] == "message_not_found"
    bad = follow(browser, server, message_id, "not-an-id")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_event_id"


def test_stop_closes_the_upstream_at_once_and_every_follower_hears_cancelled(
        browser, server, fresh_upstream):
    stream = Stream(browser.post(f"{server.url}/chat", stream=True, timeout=30,
                                 json={"message": "long", "model": "openai/slow"}))
    first = stream.read(until=lambda e: sum(n == "delta" for _, n, _ in e) >= 3)
    meta = first[0][2]
    other_tab = follow(browser, server, meta["message_id"])
    tab_events = []
    reader = threading.Thread(target=lambda: tab_events.extend(events_with_ids(other_tab)))
    reader.start()
    sent = time.monotonic()
    stopped = browser.post(f"{server.url}/api/messages/{meta['message_id']}/stop", json={},
                           timeout=10)
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    assert fresh_upstream.disconnected.wait(timeout=5)
    assert fresh_upstream.disconnected_at - sent < 0.1  # the upstream was closed within 100 ms
    rest = stream.read()
    reader.join(timeout=10)
    for events in (first + rest, tab_events):
        assert events[-1][1:] == ("done", {"finish_reason": "cancelled", "status": "cancelled"})
    saved = saved_reply(browser, server, meta["conversation_id"])
    assert saved["status"] == "cancelled" and saved["content"] == deltas(tab_events)
    again = browser.post(f"{server.url}/api/messages/{meta['message_id']}/stop", json={},
                         timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_replies_being_written_are_capped_per_user_under_concurrent_requests(
        browser, server, fresh_upstream):
    # One user: the cookie first, from a first message (read to its end: it is not counted).
    events_with_ids(browser.post(f"{server.url}/chat", json={"message": "hi"}, stream=True,
                                 timeout=30))
    results = []

    def ask():
        response = browser.post(f"{server.url}/chat", stream=True, timeout=30,
                                json={"message": "hold on", "model": "openai/hold"})
        results.append(response)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    statuses = sorted(response.status_code for response in results)
    assert statuses == [200] * 3 + [429] * 9
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_streams" and refused.headers["Retry-After"]
    fresh_upstream.release.set()
    for response in results:
        if response.status_code == 200:
            assert events_with_ids(response)[-1][1] == "done"


def test_editing_while_another_tab_writes_after_that_message_is_refused(
        browser, server, fresh_upstream):
    writing = Stream(browser.post(f"{server.url}/chat", stream=True, timeout=30,
                                  json={"message": "first", "model": "openai/hold"}))
    meta = writing.read(until=lambda e: e[0][1] == "meta")[0][2]
    assert fresh_upstream.held.wait(timeout=5)
    edit = browser.post(f"{server.url}/chat", timeout=10, json={
        "message": "first, edited", "conversation_id": meta["conversation_id"],
        "edit_message_id": meta["user_message_id"]})
    assert edit.status_code == 409 and edit.json()["error"]["code"] == "reply_in_progress"
    fresh_upstream.release.set()
    assert writing.read()[-1][2]["status"] == "complete"


def reply_row(server, message_id, column):
    with sqlite3.connect(server.instance / "streamdesk.sqlite3") as db:
        return db.execute(f"SELECT {column} FROM messages WHERE id = ?",
                          (message_id,)).fetchone()[0]


def owner_pid(server, message_id) -> int:
    return int(reply_row(server, message_id, "owner").rpartition(":")[2])


def saved_text(server, message_id) -> str:
    return reply_row(server, message_id, "content")


def test_when_the_writing_worker_is_killed_its_followers_hear_interrupted_within_15_s(
        browser, server, fresh_upstream):
    stream = Stream(browser.post(f"{server.url}/chat", stream=True, timeout=30,
                                 json={"message": "doomed", "model": "openai/slow"}))
    first = stream.read(until=lambda e: e[0][1] == "meta")
    meta = first[0][2]
    while not saved_text(server, meta["message_id"]):  # until a progress save has happened
        first += stream.read(until=lambda e: e[-1][1] == "delta")
    os.kill(owner_pid(server, meta["message_id"]), signal.SIGKILL)
    killed_at = time.monotonic()
    last, events = first[-1][0], []
    while time.monotonic() - killed_at < 15 and not (events and events[-1][1] == "done"):
        try:  # the page's way: follow again from the last event id whenever the stream breaks
            events += events_with_ids(follow(browser, server, meta["message_id"], last))
        except requests.RequestException:
            pass
        last = events[-1][0] if events else last
    assert time.monotonic() - killed_at < 15
    assert [n for _, n, _ in events][-2:] == ["error", "done"]
    assert events[-2][2]["code"] == "interrupted"
    saved = saved_reply(browser, server, meta["conversation_id"])
    assert saved["status"] == "interrupted"
    assert saved["content"] and deltas(first).startswith(saved["content"])  # saved so far
    server.lines[:] = [line for line in server.lines if "WORKER TIMEOUT" not in line
                       and "was sent SIGKILL" not in line]  # our own doing, not a fault


def test_a_reply_past_max_reply_seconds_is_ended_and_saved_interrupted(upstream,
                                                                       tmp_path_factory):
    upstream.reset()
    server = AppServer({"OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "hold",
                        "DEFAULT_MODEL": "openai/hold", "MAX_REPLY_SECONDS": "1"},
                       tmp_path_factory.mktemp("instance")).start()
    try:
        with requests.Session() as browser:
            events = events_with_ids(browser.post(f"{server.url}/chat", json={"message": "x"},
                                                  stream=True, timeout=30))
            assert [n for _, n, _ in events][-2:] == ["error", "done"]
            assert events[-2][2]["code"] == "time_limit"
            assert events[-1][2] == {"finish_reason": "error", "status": "interrupted"}
            assert upstream.disconnected.wait(timeout=5)
    finally:
        upstream.release.set()
        server.stop()
    server.assert_clean_log()


def test_cancel_on_disconnect_notices_a_silent_browser_within_a_second(upstream,
                                                                      tmp_path_factory):
    upstream.reset()
    server = AppServer({"OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "hold",
                        "DEFAULT_MODEL": "openai/hold", "CANCEL_ON_DISCONNECT": "1",
                        "HEARTBEAT_SECONDS": "10"}, tmp_path_factory.mktemp("instance")).start()
    try:
        with requests.Session() as browser:
            stream = Stream(browser.post(f"{server.url}/chat", json={"message": "x"},
                                         stream=True, timeout=30))
            meta = stream.read(until=lambda e: e[0][1] == "meta")[0][2]
            assert upstream.held.wait(timeout=5)
            left = time.monotonic()
            stream.response.close()  # the browser leaves while the model is silent
            assert upstream.disconnected.wait(timeout=5)
            assert upstream.disconnected_at - left < 1.0
            saved = browser.get(f"{server.url}/api/conversations/{meta['conversation_id']}",
                                timeout=10).json()["messages"][-1]
            assert saved["status"] == "cancelled"
    finally:
        upstream.release.set()
        server.stop()
    server.assert_clean_log()
