"""The app under gunicorn as the Procfile starts it, driven over real HTTP on loopback."""
from __future__ import annotations

import json
import threading

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


def test_history_travels_upstream_across_turns(user, app_server, fresh_upstream):
    first = read_events(chat(user, app_server, message="one", model="openai/echo"))
    conversation_id = first[0][1]["conversation_id"]
    assert texts(first) == "Echo: one [1 messages]"
    second = read_events(chat(user, app_server, message="two", conversation_id=conversation_id))
    assert texts(second) == "Echo: two [3 messages]"
    sent = fresh_upstream.requests[-1]["body"]["messages"]
    assert [m["content"] for m in sent] == ["one", "Echo: one [1 messages]", "two"]
    saved = conversation(user, app_server, conversation_id)
    assert [m["content"] for m in saved["messages"]] == [
        "one", "Echo: one [1 messages]", "two", "Echo: two [3 messages]"]
    assert saved["model"] == "openai/echo"


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


LONG = "x" * 32_001


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "bad_json"),
    (b"[1, 2]", 400, "bad_json"),
    (b"[" * 100_000, 400, "bad_json"),
    (b'"\xff\xfe"', 400, "bad_json"),
    (json.dumps({}), 400, "invalid_message"),
    (json.dumps({"message": 42}), 400, "invalid_message"),
    (json.dumps({"message": ""}), 400, "empty_message"),
    (json.dumps({"message": " \n\t "}), 400, "empty_message"),
    (json.dumps({"message": LONG}), 400, "message_too_long"),
    (json.dumps({"message": "hi", "model": "nope/nothing"}), 400, "unknown_model"),
    (json.dumps({"message": "hi", "model": "demo"}), 400, "unknown_model"),
    (json.dumps({"message": "hi", "model": 7}), 400, "invalid_model"),
    (json.dumps({"message": "hi", "temperature": 2.5}), 400, "invalid_temperature"),
    (json.dumps({"message": "hi", "temperature": "hot"}), 400, "invalid_temperature"),
    (json.dumps({"message": "hi", "temperature": True}), 400, "invalid_temperature"),
    ('{"message": "hi", "temperature": NaN}', 400, "invalid_temperature"),
    (json.dumps({"message": "hi", "max_tokens": 0}), 400, "invalid_max_tokens"),
    (json.dumps({"message": "hi", "max_tokens": 1.5}), 400, "invalid_max_tokens"),
    (json.dumps({"message": "hi", "max_tokens": 10**12}), 400, "invalid_max_tokens"),
    (json.dumps({"message": "hi", "system": ["x"]}), 400, "invalid_system"),
    (json.dumps({"message": "hi", "conversation_id": 5}), 400, "invalid_conversation_id"),
    (json.dumps({"message": "hi", "conversation_id": "0" * 32}), 404, "conversation_not_found"),
    (json.dumps({"message": "hi", "conversation_id": "../../etc"}), 404, "conversation_not_found"),
    (json.dumps({"message": "x" * 2_000_000}), 413, "too_large"),
])
def test_bad_input_gets_a_clear_json_error(user, app_server, body, status, code):
    response = user.post(f"{app_server.url}/chat", data=body, timeout=10,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_body_that_is_not_json_is_415(user, app_server, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = user.post(f"{app_server.url}/chat", data=b'{"message": "hi"}', headers=headers,
                         timeout=10)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_get_chat_is_405(user, app_server):
    response = user.get(f"{app_server.url}/chat", timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_no_bad_input_leaves_a_traceback_or_500_in_the_log(app_server):
    # Runs after the bad-input tests in this module (pytest keeps file order).
    assert "Traceback" not in app_server.log
    assert '" 500 ' not in app_server.log


def test_users_cannot_see_or_touch_each_others_conversations(app_server):
    with requests.Session() as alice, requests.Session() as mallory:
        events = read_events(chat(alice, app_server, message="alice's secret"))
        conversation_id = events[0][1]["conversation_id"]
        url = f"{app_server.url}/api/conversations/{conversation_id}"
        assert mallory.get(url, timeout=10).status_code == 404
        assert mallory.patch(url, json={"title": "pwned"}, timeout=10).status_code == 404
        assert mallory.delete(url, timeout=10).status_code == 404
        hijack = mallory.post(f"{app_server.url}/chat", timeout=10,
                              json={"message": "hi", "conversation_id": conversation_id})
        assert hijack.status_code == 404
        assert mallory.get(f"{app_server.url}/api/conversations", timeout=10).json() == {
            "conversations": []}
        saved = alice.get(url, timeout=10).json()
        assert saved["title"] == "alice's secret" and len(saved["messages"]) == 2


def test_session_cookie_is_httponly_and_samesite_lax(user, app_server):
    response = user.get(f"{app_server.url}/api/conversations", timeout=10)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_conversations_listed_newest_first_renamed_and_deleted(user, app_server):
    ids = [read_events(chat(user, app_server, message=f"topic {n}"))[0][1]["conversation_id"]
           for n in range(3)]
    listed = user.get(f"{app_server.url}/api/conversations", timeout=10).json()["conversations"]
    assert [c["id"] for c in listed] == ids[::-1]
    url = f"{app_server.url}/api/conversations/{ids[0]}"
    renamed = user.patch(url, json={"title": "  Renamed   topic "}, timeout=10)
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed topic"
    assert user.patch(url, json={"title": ""}, timeout=10).status_code == 400
    assert user.delete(url, timeout=10).status_code == 204
    assert user.get(url, timeout=10).status_code == 404
    listed = user.get(f"{app_server.url}/api/conversations", timeout=10).json()["conversations"]
    assert ids[0] not in [c["id"] for c in listed]


def test_models_api_lists_every_model_with_the_default(user, app_server):
    body = user.get(f"{app_server.url}/api/models", timeout=10).json()
    assert body["default"] == "demo/offline"
    assert {"id": "openai/echo", "provider": "openai", "label": "echo"} in body["models"]
    assert "sk-app-test-key" not in json.dumps(body)


def test_client_leaving_mid_stream_closes_upstream_and_saves_partial_as_cancelled(
        user, app_server, fresh_upstream):
    response = chat(user, app_server, message="go", model="openai/slow")
    decoder, seen = SSEDecoder(), []
    for data in response.iter_content(chunk_size=None):
        seen += decoder.feed(data)
        if sum(e.event == "delta" for e in seen) >= 3:
            break
    response.close()  # the browser goes away
    assert fresh_upstream.disconnected.wait(timeout=5), "the upstream never saw us leave"
    meta = seen[0].json()
    saved = conversation(user, app_server, meta["conversation_id"])["messages"][1]
    assert saved["status"] == "cancelled" and saved["finish_reason"] == "cancelled"
    received = "".join(e.json()["text"] for e in seen if e.event == "delta")
    assert saved["content"].startswith(received)


def test_client_leaving_before_the_first_token_is_saved_and_frees_its_stream(
        user, app_server, fresh_upstream):
    response = chat(user, app_server, message="bye", model="openai/hold")
    meta = SSEDecoder().feed(next(response.iter_content(chunk_size=None)))[0].json()
    response.close()  # gone before the model said anything
    assert fresh_upstream.disconnected.wait(timeout=5)
    saved = conversation(user, app_server, meta["conversation_id"])["messages"][1]
    assert saved["status"] == "cancelled"
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


def test_client_leaving_during_silence_closes_the_upstream(user, app_server, fresh_upstream):
    response = chat(user, app_server, message="wait", model="openai/hold")
    assert fresh_upstream.held.wait(timeout=5)
    response.close()
    # Detected by the next heartbeat write failing: within a few 0.3 s heartbeats.
    assert fresh_upstream.disconnected.wait(timeout=5)


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


def test_conversation_settings_are_stored_and_used_for_later_turns(user, app_server,
                                                                    fresh_upstream):
    first = read_events(chat(user, app_server, message="one", model="openai/echo",
                             system="Answer in French.", temperature=0.2, max_tokens=64))
    conversation_id = first[0][1]["conversation_id"]
    read_events(chat(user, app_server, message="two", conversation_id=conversation_id))
    sent = fresh_upstream.requests[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 64
    url = f"{app_server.url}/api/conversations/{conversation_id}"
    assert user.get(url, timeout=10).json()["settings"] == {
        "system": "Answer in French.", "temperature": 0.2, "max_tokens": 64}
    changed = user.patch(url, json={"settings": {"system": None, "temperature": 1}}, timeout=10)
    assert changed.json()["settings"] == {"system": None, "temperature": 1, "max_tokens": 64}
    read_events(chat(user, app_server, message="three", conversation_id=conversation_id))
    sent = fresh_upstream.requests[-1]["body"]
    assert sent["messages"][0]["role"] == "user" and sent["temperature"] == 1


@pytest.mark.parametrize("settings", [{"temperature": 9}, {"max_tokens": "many"},
                                      {"system": 5}, "not an object"])
def test_invalid_settings_are_refused(user, app_server, settings):
    conversation_id = read_events(chat(user, app_server, message="x"))[0][1]["conversation_id"]
    response = user.patch(f"{app_server.url}/api/conversations/{conversation_id}",
                          json={"settings": settings}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["code"].startswith("invalid_")


def test_edit_and_resend_replaces_the_later_turns(user, app_server, fresh_upstream):
    first = read_events(chat(user, app_server, message="one", model="openai/echo"))
    conversation_id = first[0][1]["conversation_id"]
    read_events(chat(user, app_server, message="two", conversation_id=conversation_id))
    messages = conversation(user, app_server, conversation_id)["messages"]
    edited = read_events(chat(user, app_server, message="one, edited",
                              conversation_id=conversation_id, edit_message_id=messages[0]["id"]))
    assert texts(edited) == "Echo: one, edited [1 messages]"
    saved = conversation(user, app_server, conversation_id)["messages"]
    assert [m["content"] for m in saved] == ["one, edited", "Echo: one, edited [1 messages]"]


def test_regenerate_the_last_reply_resends_the_last_question(user, app_server, fresh_upstream):
    first = read_events(chat(user, app_server, message="one", model="openai/echo"))
    conversation_id = first[0][1]["conversation_id"]
    read_events(chat(user, app_server, message="two", conversation_id=conversation_id))
    last_question = conversation(user, app_server, conversation_id)["messages"][2]
    read_events(chat(user, app_server, message="two", conversation_id=conversation_id,
                     edit_message_id=last_question["id"]))
    saved = conversation(user, app_server, conversation_id)["messages"]
    assert [m["content"] for m in saved] == ["one", "Echo: one [1 messages]", "two",
                                             "Echo: two [3 messages]"]


def test_editing_someone_elses_or_an_assistant_message_is_404(app_server):
    with requests.Session() as alice, requests.Session() as mallory:
        events = read_events(chat(alice, app_server, message="mine"))
        alice_conversation = events[0][1]["conversation_id"]
        assistant_id = events[0][1]["message_id"]
        other = read_events(chat(mallory, app_server, message="theirs"))[0][1]["conversation_id"]
        user_message = conversation(alice, app_server, alice_conversation)["messages"][0]["id"]
        for session, conversation_id, message_id in [
                (mallory, other, user_message),          # alice's message, mallory's conversation
                (alice, alice_conversation, assistant_id),  # not a user message
                (alice, alice_conversation, "0" * 32)]:
            response = session.post(f"{app_server.url}/chat", timeout=10, json={
                "message": "x", "conversation_id": conversation_id, "edit_message_id": message_id})
            assert response.status_code == 404
        assert len(conversation(alice, app_server, alice_conversation)["messages"]) == 2


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
        response.close()
        assert fresh_upstream.disconnected.wait(timeout=5)
        seen = "".join(e.json()["text"] for e in events if e.event == "delta")
        final = user.get(url, timeout=10).json()["messages"][1]
        # The last batch never overwrites the whole reply saved at the end.
        assert final["status"] == "cancelled" and final["content"].startswith(seen)
