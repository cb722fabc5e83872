"""The HTTP API in process: request checks and their JSON errors, the conversations API,
who owns what, the models list and the session cookie. ``create_app(...).test_client()``
with the fake provider, so each test can also say exactly what reached the model.

What needs a real server (the stream on a socket, heartbeats, leaving mid-reply) stays in
test_app_http.py.
"""
from __future__ import annotations

import json

import pytest

from providers import Message, build_registry
from tests.inprocess import events_of

LONG = "x" * 32_001
OPENAI_KEY = "sk-app-test-key-0123456789"


def chat(client, **body):
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return events_of(response)


def texts(events):
    return "".join(data.get("text", "") for name, data in events if name == "delta")


def conversation(client, conversation_id):
    response = client.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


# -- POST /chat refuses what it cannot use ------------------------------------------------------

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
    # What no database keeps: half a surrogate pair (a JSON escape), NUL (PostgreSQL refuses it).
    (json.dumps({"message": "a\ud800b"}), 400, "invalid_message"),
    (json.dumps({"message": "a\x00b"}), 400, "invalid_message"),
    (json.dumps({"message": "hi", "system": "\udfff"}), 400, "invalid_system"),
    (json.dumps({"message": "hi", "model": "openai/\x00"}), 400, "invalid_model"),
    (json.dumps({"message": "hi", "conversation_id": "\x00"}), 400, "invalid_conversation_id"),
    (json.dumps({"message": "hi", "edit_message_id": "\ud83d"}), 400, "invalid_edit_message_id"),
    (json.dumps({"message": "hi", "temperature": 10**400}), 400, "invalid_temperature"),
    (json.dumps({"message": "hi", "temperature": -10**400}), 400, "invalid_temperature"),
])
def test_bad_input_gets_a_clear_json_error(client, fake, body, status, code):
    response = client.post("/chat", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    assert fake.requests == []  # nothing reached the model


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_body_that_is_not_json_is_415(client, fake, content_type):
    response = client.post("/chat", data=b'{"message": "hi"}', content_type=content_type)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"
    assert fake.requests == []


def test_get_chat_is_405(client):
    response = client.get("/chat")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


# -- whose is what ----------------------------------------------------------------------------

def test_users_cannot_see_or_touch_each_others_conversations(make_app, fake):
    app = make_app()
    alice, mallory = app.test_client(), app.test_client()
    events = chat(alice, message="alice's secret")
    conversation_id = events[0][1]["conversation_id"]
    url = f"/api/conversations/{conversation_id}"
    for response in (mallory.get(url), mallory.patch(url, json={"title": "pwned"}),
                     mallory.delete(url)):
        assert response.status_code == 404
        assert response.json["error"]["code"] == "conversation_not_found"
    hijack = mallory.post("/chat", json={"message": "hi", "conversation_id": conversation_id})
    assert hijack.status_code == 404
    assert mallory.get("/api/conversations").json == {"conversations": []}
    saved = conversation(alice, conversation_id)
    assert saved["title"] == "alice's secret" and len(saved["messages"]) == 2
    assert [r.messages for r in fake.requests] == [(Message("user", "alice's secret"),)]


def test_editing_someone_elses_or_an_assistant_message_is_404(make_app, fake):
    app = make_app()
    alice, mallory = app.test_client(), app.test_client()
    events = chat(alice, message="mine")
    alice_conversation = events[0][1]["conversation_id"]
    assistant_id = events[0][1]["message_id"]
    other = chat(mallory, message="theirs")[0][1]["conversation_id"]
    user_message = conversation(alice, alice_conversation)["messages"][0]["id"]
    for client, conversation_id, message_id in [
            (mallory, other, user_message),             # alice's message, mallory's conversation
            (alice, alice_conversation, assistant_id),  # not a user message
            (alice, alice_conversation, "0" * 32)]:
        response = client.post("/chat", json={
            "message": "x", "conversation_id": conversation_id, "edit_message_id": message_id})
        assert response.status_code == 404
        assert response.json["error"]["code"] == "message_not_found"
    assert len(conversation(alice, alice_conversation)["messages"]) == 2
    assert len(conversation(mallory, other)["messages"]) == 2
    assert len(fake.requests) == 2  # the two first turns only


def test_session_cookie_is_httponly_and_samesite_lax(client):
    cookie = client.post("/chat", json={"message": "hi"}).headers["Set-Cookie"]
    assert cookie.startswith("streamdesk_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


# -- the conversations API ----------------------------------------------------------------------

def test_conversations_listed_newest_first_renamed_and_deleted(client):
    ids = [chat(client, message=f"topic {n}")[0][1]["conversation_id"] for n in range(3)]
    listed = client.get("/api/conversations").json["conversations"]
    assert [c["id"] for c in listed] == ids[::-1]
    url = f"/api/conversations/{ids[0]}"
    renamed = client.patch(url, json={"title": "  Renamed   topic "})
    assert renamed.status_code == 200 and renamed.json["title"] == "Renamed topic"
    empty = client.patch(url, json={"title": ""})
    assert empty.status_code == 400 and empty.json["error"]["code"] == "invalid_title"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    listed = client.get("/api/conversations").json["conversations"]
    assert [c["id"] for c in listed] == ids[:0:-1]


def test_models_api_lists_every_model_with_the_default(make_app, fake):
    keyed = build_registry({"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_MODELS": "echo",
                            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}).providers["openai"]
    try:
        response = make_app(keyed, fake, DEFAULT_MODEL="demo/offline").test_client().get(
            "/api/models")
    finally:
        keyed.close()
    body = response.json
    assert body["default"] == "demo/offline"
    assert {"id": "openai/echo", "provider": "openai", "label": "echo", "greeting": None,
            "starters": []} in body["models"]
    assert [m["id"] for m in body["models"]] == ["openai/echo", "fake/model", "demo/offline"]
    assert OPENAI_KEY not in response.get_data(as_text=True)


# -- history and settings: what the model is sent -------------------------------------------

def test_history_travels_upstream_across_turns(make_app, fake):
    client = make_app(DEFAULT_MODEL="demo/offline").test_client()
    fake.enqueue(["Answer ", "one."])
    first = chat(client, message="one", model="fake/model")
    conversation_id = first[0][1]["conversation_id"]
    assert texts(first) == "Answer one."
    fake.enqueue(["Answer two."])
    second = chat(client, message="two", conversation_id=conversation_id)  # no model named
    assert second[0][1]["model"] == "fake/model" and texts(second) == "Answer two."
    assert fake.requests[-1].model == "model"
    assert fake.requests[-1].messages == (
        Message("user", "one"), Message("assistant", "Answer one."), Message("user", "two"))
    saved = conversation(client, conversation_id)
    assert [m["content"] for m in saved["messages"]] == [
        "one", "Answer one.", "two", "Answer two."]
    assert saved["model"] == "fake/model"


def test_conversation_settings_are_stored_and_used_for_later_turns(client, fake):
    first = chat(client, message="one", system="Answer in French.", temperature=0.2,
                 max_tokens=64)
    conversation_id = first[0][1]["conversation_id"]
    chat(client, message="two", conversation_id=conversation_id)
    sent = fake.requests[-1]
    assert sent.system == "Answer in French."
    assert sent.temperature == 0.2 and sent.max_tokens == 64
    assert [m.content for m in sent.messages] == ["one", "OK", "two"]  # no system turn in them
    url = f"/api/conversations/{conversation_id}"
    assert client.get(url).json["settings"] == {
        "system": "Answer in French.", "temperature": 0.2, "max_tokens": 64}
    changed = client.patch(url, json={"settings": {"system": None, "temperature": 1}})
    assert changed.json["settings"] == {"system": None, "temperature": 1, "max_tokens": 64}
    chat(client, message="three", conversation_id=conversation_id)
    sent = fake.requests[-1]
    assert sent.system is None and sent.temperature == 1 and sent.max_tokens == 64


@pytest.mark.parametrize("settings, code", [
    ({"temperature": 9}, "invalid_temperature"), ({"max_tokens": "many"}, "invalid_max_tokens"),
    ({"temperature": 10**400}, "invalid_temperature"), ({"system": "a\x00"}, "invalid_system"),
    ({"system": 5}, "invalid_system"), ("not an object", "invalid_settings")])
def test_invalid_settings_are_refused(client, settings, code):
    conversation_id = chat(client, message="x", temperature=0.5)[0][1]["conversation_id"]
    url = f"/api/conversations/{conversation_id}"
    response = client.patch(url, json={"settings": settings})
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert client.get(url).json["settings"] == {  # unchanged
        "system": None, "temperature": 0.5, "max_tokens": None}


@pytest.mark.parametrize("title", ["half a pair \ud800", "nul \x00"])
def test_a_title_no_database_keeps_is_refused(client, title):
    conversation_id = chat(client, message="x")[0][1]["conversation_id"]
    url = f"/api/conversations/{conversation_id}"
    response = client.patch(url, json={"title": title})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_title"
    assert client.get(url).json["title"] == "x"


@pytest.mark.parametrize("path", ["/api/conversations/%00", "/api/conversations/a%00b",
                                  "/api/messages/%00/events"])
def test_an_id_no_database_keeps_in_a_url_is_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"


def test_edit_and_resend_replaces_the_later_turns(client, fake):
    fake.enqueue(["Answer one."])
    conversation_id = chat(client, message="one")[0][1]["conversation_id"]
    fake.enqueue(["Answer two."])
    chat(client, message="two", conversation_id=conversation_id)
    messages = conversation(client, conversation_id)["messages"]
    fake.enqueue(["Answer to the edit."])
    edited = chat(client, message="one, edited", conversation_id=conversation_id,
                  edit_message_id=messages[0]["id"])
    assert texts(edited) == "Answer to the edit."
    assert fake.requests[-1].messages == (Message("user", "one, edited"),)
    saved = conversation(client, conversation_id)["messages"]
    assert [m["content"] for m in saved] == ["one, edited", "Answer to the edit."]


def test_regenerate_the_last_reply_resends_the_last_question(client, fake):
    fake.enqueue(["Answer one."])
    conversation_id = chat(client, message="one")[0][1]["conversation_id"]
    fake.enqueue(["First answer two."])
    chat(client, message="two", conversation_id=conversation_id)
    last_question = conversation(client, conversation_id)["messages"][2]
    fake.enqueue(["Second answer two."])
    chat(client, message="two", conversation_id=conversation_id,
         edit_message_id=last_question["id"])
    assert fake.requests[-1].messages == (
        Message("user", "one"), Message("assistant", "Answer one."), Message("user", "two"))
    saved = conversation(client, conversation_id)["messages"]
    assert [m["content"] for m in saved] == ["one", "Answer one.", "two", "Second answer two."]
