"""SIGTERM: running replies may finish within the grace period; nothing the user saw is lost."""
from __future__ import annotations

import signal

import requests

from providers.sse import SSEDecoder
from streamdesk.store import Store
from tests.conftest import AppServer


def test_a_reply_that_ends_within_the_grace_period_completes_normally(fresh_upstream,
                                                                        tmp_path):
    server = AppServer({"OPENAI_BASE_URL": fresh_upstream.url, "OPENAI_MODELS": "hold",
                        "GRACEFUL_TIMEOUT": "20", "HEARTBEAT_SECONDS": "0.5"}, tmp_path).start()
    try:
        response = requests.post(f"{server.url}/chat", stream=True, timeout=30,
                                 json={"message": "wait for it", "model": "openai/hold"})
        reads = response.iter_content(chunk_size=None)
        decoder, events = SSEDecoder(), []
        events += decoder.feed(next(reads))  # meta: the reply is under way
        assert fresh_upstream.held.wait(timeout=5)
        server.process.send_signal(signal.SIGTERM)
        fresh_upstream.release.set()  # the model finishes well inside the 20 s
        for data in reads:
            events += decoder.feed(data)
        assert [e.event for e in events][-1] == "done"
        assert events[-1].json() == {"finish_reason": "stop", "status": "complete"}
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop()
    server.assert_clean_log()
    store = Store(f"sqlite:///{tmp_path / 'streamdesk.sqlite3'}")
    message_id = events[0].json()["message_id"]
    conversation_id = events[0].json()["conversation_id"]
    rows = store.engine.connect().exec_driver_sql(
        "SELECT status, content FROM messages WHERE id = ?", (message_id,)).fetchall()
    assert rows == [("complete", "released")] and conversation_id
