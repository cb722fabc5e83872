"""The fault matrix of the OpenAI-compatible provider: each way an upstream fails, through the
app under gunicorn as the Procfile starts it (provider, relay, store), against the stand-in.

Every cell ends as the browser needs it: ``done`` last, after an ``error`` with a stable code
when the reply failed, and the text the browser was shown is exactly the text saved. (ERNIE's
and Spark's own columns are in tests/test_ernie.py and tests/test_spark.py, not yet as one
matrix.)
"""
from __future__ import annotations

import pytest
import requests

from tests.conftest import AppServer, EventStream, deltas, free_port
from tests.standins.openai_server import SURROGATES_REPLY

UP_MODELS = ("status-401, status-429, status-500, hold, stall, cut, malformed, midstream-error, "
             "paced, split-crlf, hard-framing, surrogates")

# (cell, model, the error code it must end with, or None for a complete reply; the text saved,
# or None where only "exactly what was shown" is required)
CELLS = [
    ("connect refused", "down/echo", "upstream_unavailable", ""),
    ("401", "up/status-401", "auth", ""),
    ("429", "up/status-429", "rate_limited", ""),
    ("5xx", "up/status-500", "upstream_unavailable", ""),
    ("timeout before the first byte", "up/hold", "timeout", ""),
    ("stall mid-reply", "up/stall", "timeout", "first "),
    ("drop mid-reply", "up/cut", "interrupted", "half a rep"),
    ("malformed frame", "up/malformed", "upstream_error", "partial "),
    ("in-band error", "up/midstream-error", "upstream_error", "partial "),
    ("CRLF split across reads", "up/split-crlf", None, None),
    ("split multi-byte character", "up/hard-framing", None, "流式输出 ok\u2028done"),
    ("split surrogate pair", "up/surrogates", None, SURROGATES_REPLY),
]


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-matrix")
    config = folder / "streamdesk.toml"
    config.write_text(f"""
[providers.up]
type = "openai"
base_url = "{upstream.url}"
idle_timeout = 1
max_retries = 0
models = "{UP_MODELS}"

[providers.down]
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
max_retries = 0
models = "echo"
""")
    server = AppServer({"STREAMDESK_CONFIG": str(config), "DEFAULT_MODEL": "up/paced"},
                       folder).start()
    yield server
    server.stop()
    server.assert_clean_log()


def saved_reply(browser, server, events) -> dict:
    conversation_id = next(data for _, name, data in events if name == "meta")["conversation_id"]
    return browser.get(f"{server.url}/api/conversations/{conversation_id}",
                       timeout=10).json()["messages"][-1]


@pytest.mark.parametrize("cell, model, code, text", CELLS, ids=[cell for cell, *_ in CELLS])
def test_every_failure_ends_with_done_and_the_text_shown_is_saved(server, fresh_upstream, cell,
                                                                  model, code, text):
    with requests.Session() as browser:
        response = browser.post(f"{server.url}/chat", json={"message": "hi", "model": model},
                                stream=True, timeout=30)
        assert response.status_code == 200
        events = EventStream(response).read()
        saved = saved_reply(browser, server, events)
    names = [name for _, name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1
    done = events[-1][2]
    if code is None:
        assert done == {"finish_reason": "stop", "status": "complete"} and "error" not in names
    else:
        assert names[-2] == "error" and events[-2][2]["code"] == code
        assert done["finish_reason"] == "error"
    assert saved["status"] == done["status"]
    assert saved["content"] == deltas(events)  # what was shown is what was saved
    if text is not None:
        assert saved["content"] == text


def test_a_browser_that_leaves_mid_reply_leaves_it_running_to_the_end(server, fresh_upstream):
    """The matrix's "client gone" cell: the reply goes on and is saved whole."""
    with requests.Session() as browser:
        response = browser.post(f"{server.url}/chat", json={"message": "count",
                                                            "model": "up/paced"},
                                stream=True, timeout=30)
        first = EventStream(response).read(
            until=lambda e: sum(name == "delta" for _, name, _ in e) >= 3)
        response.close()  # the browser leaves after three pieces
        message_id = next(data for _, name, data in first if name == "meta")["message_id"]
        followed = browser.get(f"{server.url}/api/messages/{message_id}/events", stream=True,
                               timeout=30)  # from the start, to the end, wherever it is
        events = EventStream(followed).read()
        saved = saved_reply(browser, server, events)
    assert events[-1][1:] == ("done", {"finish_reason": "stop", "status": "complete"})
    assert saved["content"] == deltas(events) == "".join(f"{n} " for n in range(60))
