"""The app under gunicorn as the Procfile starts it, driven over real HTTP on loopback: what
depends on a real server and socket (the stream itself, heartbeats, clients leaving, saving
while streaming). Request checks, the conversations API and ownership are tested in process
(test_web_input.py)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid

import pytest
import requests

from providers import ChatRequest, Message
from providers.demo import compose_reply
from providers.sse import SSEDecoder
from tests.conftest import AppServer, read_events


@pytest.fixture
def user(app_server):
    """One browser: a requests session keeps its cookie."""
    with requests.Session() as session:
        yield session


def chat(user, app_server, **body):
    response = user.post(f"{app_server.url}/chat", json=body, stream=True, timeout=30)
    assert response.status_code == 200, response.text
    return response


def texts(events, field="text"):
    return "".join(data.get(field, "") for name, data in events if name == "delta")


def conversation(user, app_server, conversation_id):
    return user.get(f"{app_server.url}/api/conversations/{conversation_id}", timeout=10).json()


def test_stream_is_meta_then_deltas_then_usage_then_done(user, app_server):
    response = chat(user, app_server, message="Hello, 流式!")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache, no-transform"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in response.headers
    events = read_events(response)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "done" and names[-2] == "usage"
    assert set(names[1:-2]) == {"delta"}
    meta = events[0][1]
    assert meta["model"] == "demo/offline" and meta["conversation_id"] and meta["message_id"]
    expected = compose_reply(ChatRequest("offline", (Message("user", "Hello, 流式!"),)))
    assert texts(events) == expected
    assert events[-1][1] == {"finish_reason": "stop", "status": "complete"}
    saved = conversation(user, app_server, meta["conversation_id"])
    assert [(m["role"], m["status"]) for m in saved["messages"]] == [
        ("user", "complete"), ("assistant", "complete")]
    assert saved["messages"][1]["content"] == expected
    assert saved["messages"][1]["id"] == meta["message_id"]


def test_stream_is_never_compressed(user, app_server):
    response = user.post(f"{app_server.url}/chat", json={"message": "hi"}, stream=True,
                         headers={"Accept-Encoding": "gzip, br"}, timeout=30)
    assert "Content-Encoding" not in response.headers
    read_events(response)


def test_usage_from_the_upstream_is_relayed_and_saved(user, app_server, fresh_upstream):
    events = read_events(chat(user, app_server, message="u", model="openai/echo"))
    assert ("usage", {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}) in events
    saved = conversation(user, app_server, events[0][1]["conversation_id"])
    assert saved["messages"][1]["usage"]["total_tokens"] == 18


def test_reasoning_deltas_are_relayed_and_saved(user, app_server, fresh_upstream):
    events = read_events(chat(user, app_server, message="think", model="openai/reasoning"))
    assert texts(events, "reasoning") == "Let me think. Done thinking."
    assert texts(events) == "Answer."
    saved = conversation(user, app_server, events[0][1]["conversation_id"])
    assert saved["messages"][1]["reasoning"] == "Let me think. Done thinking."


# A few bad bodies through gunicorn itself (its body reading, the worker's greenlet stack for
# deep nesting); the whole matrix is in test_web_input.py.
BAD_OVER_HTTP = [
    (b"{not json", "application/json", 400, "bad_json"),
    (b"[" * 100_000, "application/json", 400, "bad_json"),
    (b'"\xff\xfe"', "application/json", 400, "bad_json"),
    (json.dumps({"message": "x" * 2_000_000}).encode(), "application/json", 413, "too_large"),
    (b'{"message": "hi"}', "text/plain", 415, "unsupported_media_type"),
]


def access_log(server, request_ids, timeout=10.0):
    """The access-log entries of these requests, once the collected log has caught up."""
    deadline = time.monotonic() + timeout
    while True:
        entries = {}
        for line in list(server.lines):
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["message"] == "request" and entry.get("request_id") in request_ids:
                    entries[entry["request_id"]] = entry
        if len(entries) == len(request_ids) or time.monotonic() > deadline:
            return [entries.get(request_id) for request_id in request_ids]
        time.sleep(0.01)  # the log is read by another thread: poll until it has these lines


def test_no_bad_input_leaves_a_traceback_or_500_in_the_log(app_server):
    request_ids = []
    for body, content_type, status, code in BAD_OVER_HTTP:
        request_id = f"bad-input-{uuid.uuid4().hex[:12]}"
        response = requests.post(f"{app_server.url}/chat", data=body, timeout=10, headers={
            "Content-Type": content_type, "X-Request-ID": request_id})
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == code
        request_ids.append(request_id)
    entries = access_log(app_server, request_ids)
    assert [e and e["status"] for e in entries] == [status for *_, status, _ in BAD_OVER_HTTP]
    assert "Traceback" not in app_server.log
    statuses = [json.loads(line).get("status") for line in app_server.lines
                if line.startswith("{")]
    assert not [s for s in statuses if isinstance(s, int) and s >= 500]


def test_a_browser_leaving_mid_stream_leaves_the_reply_running_to_its_end(
        user, app_server, fresh_upstream):
    response = chat(user, app_server, message="go", model="openai/paced")
    decoder, seen = SSEDecoder(), []
    reads = response.iter_content(chunk_size=None)
    while sum(e.event == "delta" for e in seen) < 3:
        seen += decoder.feed(next(reads))
    response.close()  # the browser goes away
    meta = seen[0].json()
    # The reply goes on without it: following it again shows it through to the end.
    url = f"{app_server.url}/api/messages/{meta['message_id']}/events"
    rest = read_events(user.get(url, stream=True, timeout=30))
    assert rest[-1] == ("done", {"finish_reason": "stop", "status": "complete"})
    assert not fresh_upstream.disconnected.is_set()
    saved = conversation(user, app_server, meta["conversation_id"])["messages"][1]
    assert saved["status"] == "complete" and saved["content"] == "".join(
        f"{i} " for i in range(60))


def test_a_browser_leaving_before_the_first_token_leaves_the_reply_running(
        user, app_server, fresh_upstream):
    response = chat(user, app_server, message="bye", model="openai/hold")
    meta = SSEDecoder().feed(next(response.iter_content(chunk_size=None)))[0].json()
    assert fresh_upstream.held.wait(timeout=5)
    response.close()  # gone before the model said anything
    follower = user.get(f"{app_server.url}/api/messages/{meta['message_id']}/events",
                        stream=True, timeout=30)
    fresh_upstream.release.set()  # the model answers after all
    assert read_events(follower)[-1][1]["status"] == "complete"
    saved = conversation(user, app_server, meta["conversation_id"])["messages"][1]
    assert saved["status"] == "complete" and saved["content"] == "released"
    metrics = requests.get(f"{app_server.url}/metrics", timeout=10).text
    assert "streamdesk_active_streams 0.0" in metrics


def test_heartbeats_while_the_upstream_is_silent_before_the_first_token(
        user, app_server, fresh_upstream):
    response = chat(user, app_server, message="wait", model="openai/hold")
    reads = response.iter_content(chunk_size=None)
    raw = b""
    while raw.count(b": ping\n\n") < 2:
        raw += next(reads)
    assert b"event: delta" not in raw
    fresh_upstream.release.set()
    rest = b"".join(reads)
    events = SSEDecoder().feed(raw + rest)
    assert [e.json()["text"] for e in events if e.event == "delta"] == ["released"]
    assert events[-1].event == "done"


@pytest.mark.parametrize("model, code, status", [
    ("openai/midstream-error", "upstream_error", "error"),
    ("openai/cut", "interrupted", "interrupted"),
])
def test_failure_mid_stream_is_error_then_done_and_the_partial_reply_stays(
        user, app_server, fresh_upstream, model, code, status):
    events = read_events(chat(user, app_server, message="go", model=model))
    assert [name for name, _ in events][-2:] == ["error", "done"]
    assert events[-2][1]["code"] == code and events[-2][1]["message"]
    assert events[-1][1] == {"finish_reason": "error", "status": status}
    saved = conversation(user, app_server, events[0][1]["conversation_id"])["messages"][1]
    assert saved["status"] == status and saved["content"] == texts(events) != ""
    assert saved["error"]["code"] == code


def test_upstream_refusal_before_the_first_token_is_an_error_event(user, app_server,
                                                                     fresh_upstream):
    events = read_events(chat(user, app_server, message="go", model="openai/status-401"))
    assert [name for name, _ in events] == ["meta", "error", "done"]
    assert events[1][1]["code"] == "auth"
    assert "sk-app-test-key" not in json.dumps(events) and "sk-app-test-key" not in app_server.log


def test_two_tabs_streaming_into_one_conversation_keep_both_turns(user, app_server,
                                                                   fresh_upstream):
    first = read_events(chat(user, app_server, message="start", model="openai/echo"))
    conversation_id = first[0][1]["conversation_id"]
    results = {}

    def tab(name):
        results[name] = read_events(chat(user, app_server, message=f"from {name}",
                                          conversation_id=conversation_id))

    tabs = [threading.Thread(target=tab, args=(name,)) for name in ("tab-a", "tab-b")]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join(timeout=30)
    saved = conversation(user, app_server, conversation_id)["messages"]
    contents = [m["content"] for m in saved]
    assert len(saved) == 6 and "from tab-a" in contents and "from tab-b" in contents
    assert all(m["status"] == "complete" for m in saved)


@pytest.fixture(scope="module")
def batched_server(upstream, tmp_path_factory):
    """The production way of saving: every open reply of a worker written in one batch."""
    server = AppServer({"OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "slow",
                        "SAVE_INTERVAL_SECONDS": "0.2"},
                       tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_a_growing_reply_is_saved_while_it_streams_and_whole_at_the_end(batched_server,
                                                                         fresh_upstream):
    with requests.Session() as user:
        response = chat(user, batched_server, message="go", model="openai/slow")
        decoder, events = SSEDecoder(), []
        reads = response.iter_content(chunk_size=None)
        while sum(e.event == "delta" for e in events) < 40:  # 0.8 s of reply: 4 save intervals
            events += decoder.feed(next(reads))
        meta = events[0].json()
        url = f"{batched_server.url}/api/conversations/{meta['conversation_id']}"
        while_streaming = user.get(url, timeout=10).json()["messages"][1]
        assert while_streaming["status"] == "streaming"
        assert while_streaming["content"].startswith("0 1 2 3 4 5")  # saved mid-reply
        stopped = user.post(f"{batched_server.url}/api/messages/{meta['message_id']}/stop",
                            json={}, timeout=10)
        assert stopped.json()["status"] == "cancelled"
        assert fresh_upstream.disconnected.wait(timeout=5)
        events += SSEDecoder().feed(b"".join(reads))
        seen = "".join(e.json()["text"] for e in events if e.event == "delta")
        final = user.get(url, timeout=10).json()["messages"][1]
        # The last batch never overwrites the whole reply saved at the end.
        assert final["status"] == "cancelled" and final["content"] == seen


@pytest.mark.parametrize("raw, status, code", [
    (b"GET /" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(120))
     + b"\r\n", 431, "headers_too_large"),
    (b"NOT A REQUEST LINE\r\n\r\n", 400, "bad_request"),
])
def test_requests_the_server_cannot_read_get_json_errors_too(app_server, raw, status, code):
    host, port = app_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(raw)
        answer = connection.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == str(status).encode()
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == code


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    server = AppServer({"BODY_TIMEOUT_SECONDS": "1"}, tmp_path_factory.mktemp("impatient")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def trickle(server, start: bytes) -> socket.socket:
    """A client that sends the start of a request and then nothing more."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=15)  # a failure's limit
    connection.sendall(start)
    return connection


def test_a_body_that_does_not_arrive_in_time_is_refused_and_the_server_goes_on(
        impatient_server):
    slow = [trickle(impatient_server, b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/json\r\nContent-Length: 100\r\n\r\n{\"mess")
            for _ in range(60)]
    started = time.monotonic()
    assert requests.get(f"{impatient_server.url}/healthz", timeout=5).status_code == 200
    for connection in slow:
        # Read the answer by its length: the connection itself then stays open as long as
        # gunicorn's keepalive (5 s), which is not what is measured here.
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        assert answer.status == 408
        assert json.loads(answer.read())["error"]["code"] == "body_too_slow"
        connection.close()
    assert time.monotonic() - started < 10  # BODY_TIMEOUT_SECONDS=1, not the clients' pace


def test_headers_that_do_not_arrive_in_time_end_the_connection(impatient_server):
    # gunicorn's keepalive (5 s, gunicorn.conf.py) bounds the wait for a request's headers.
    connection = trickle(impatient_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    assert connection.recv(1024) == b""  # closed by the server, nothing answered
    assert time.monotonic() - started < 10
    connection.close()
