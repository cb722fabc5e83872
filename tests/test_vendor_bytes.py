"""Hostile model text, vendor bytes and client strings through the app under gunicorn, on
SQLite and on PostgreSQL: what the browser is shown is what is saved, a reply that will not
stop is ended at MAX_REPLY_CHARS with what it wrote kept, and what no database keeps is
refused before it reaches one."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import AppServer, EventStream, deltas
from tests.standins.openai_server import SURROGATES_REPLY

MAX_REPLY_CHARS = 5000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, upstream, tmp_path_factory):
    env = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-vendor-bytes-test",
           "OPENAI_MODELS": "surrogates,flood,split-crlf-error,endless-line",
           "DEFAULT_MODEL": "openai/surrogates", "MAX_REPLY_CHARS": str(MAX_REPLY_CHARS)}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    server = AppServer(env, tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def chat(server, model: str) -> tuple[list, dict]:
    """The events of one new chat, and the reply as saved."""
    with requests.Session() as browser:
        response = browser.post(f"{server.url}/chat", json={"message": "hi", "model": model},
                                stream=True, timeout=30)
        assert response.status_code == 200
        events = EventStream(response).read()
        conversation_id = next(data for _, name, data in events
                               if name == "meta")["conversation_id"]
        saved = browser.get(f"{server.url}/api/conversations/{conversation_id}",
                            timeout=10).json()["messages"][-1]
    return events, saved


def test_nul_and_surrogates_from_the_model_are_shown_and_saved_alike(server):
    events, saved = chat(server, "openai/surrogates")
    assert deltas(events) == saved["content"] == SURROGATES_REPLY
    assert events[-1][1:] == ("done", {"finish_reason": "stop", "status": "complete"})
    assert saved["status"] == "complete"


def test_a_reply_that_never_stops_ends_at_max_reply_chars(server, fresh_upstream):
    events, saved = chat(server, "openai/flood")
    assert len(deltas(events)) == len(saved["content"]) == MAX_REPLY_CHARS
    assert events[-1][1:] == ("done", {"finish_reason": "length", "status": "complete"})
    assert saved["status"] == "complete" and saved["finish_reason"] == "length"
    assert fresh_upstream.disconnected.wait(5)  # the upstream connection was closed


def test_an_in_band_error_cut_between_reads_reaches_the_browser_with_its_words(server):
    events, saved = chat(server, "openai/split-crlf-error")
    error = next(data for _, name, data in events if name == "error")
    assert error["code"] == "upstream_error" and "quota used up mid-reply" in error["message"]
    assert saved["content"] == "partial " and saved["status"] == "error"


def test_a_line_that_never_ends_is_cut_off_at_1_mib_with_the_reply_before_it_kept(
        server, fresh_upstream):
    events, saved = chat(server, "openai/endless-line")
    error = next(data for _, name, data in events if name == "error")
    assert error["code"] == "upstream_error" and "larger than 1 MiB" in error["message"]
    assert events[-1][1:] == ("done", {"finish_reason": "error", "status": "error"})
    assert deltas(events) == saved["content"] == "partial " and saved["status"] == "error"
    assert fresh_upstream.disconnected.wait(5)  # the upstream connection was closed


@pytest.mark.parametrize("method, path, body, status", [
    ("post", "/chat", {"message": "a\x00b"}, 400),
    ("post", "/chat", {"message": "a\ud800b"}, 400),
    ("post", "/chat", {"message": "hi", "system": "\x00"}, 400),
    ("post", "/chat", {"message": "hi", "conversation_id": "a\x00b"}, 400),
    ("get", "/api/conversations/a%00b", None, 404),
    ("post", "/api/messages/a%00b/stop", {}, 404),
])
def test_what_no_database_keeps_is_refused_before_it_reaches_one(server, method, path, body,
                                                                 status):
    response = requests.request(method, f"{server.url}{path}", json=body, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"]
