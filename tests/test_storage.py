"""The conversation store on a real SQLite file."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from streamdesk.storage import MessageRow, Store


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.create_schema()
    return store


def test_a_reply_abandoned_by_a_dead_process_reads_as_interrupted(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = store.start_turn(conversation.id, "question", "demo/offline")
    store.save_progress(reply_id, "half an ans", "")
    assert store.conversation_messages("alice", conversation.id)[1]["status"] == "streaming"
    with store.engine.begin() as connection:  # what a SIGKILLed worker leaves behind
        connection.execute(update(MessageRow).where(MessageRow.id == reply_id).values(
            updated_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
    reply = store.conversation_messages("alice", conversation.id)[1]
    assert reply["status"] == "interrupted" and reply["content"] == "half an ans"
    assert [m.content for m in store.history(conversation.id)] == ["question", "half an ans"]


def test_a_live_reply_still_streaming_is_left_out_of_the_history(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = store.start_turn(conversation.id, "question", "demo/offline")
    store.save_progress(reply_id, "being written", "")
    assert [m.content for m in store.history(conversation.id)] == ["question"]


def test_every_conversation_operation_checks_the_owner(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    user_message, _ = store.start_turn(conversation.id, "question", "demo/offline")
    assert store.get_conversation("bob", conversation.id) is None
    assert store.conversation_messages("bob", conversation.id) is None
    assert not store.update_conversation("bob", conversation.id, title="x")
    assert not store.truncate_from("bob", conversation.id, user_message)
    assert not store.delete_conversation("bob", conversation.id)
    assert len(store.conversation_messages("alice", conversation.id)) == 2


def test_schema_creation_can_run_twice(store):
    store.create_schema()
    assert store.list_conversations("nobody") == []


def test_a_database_from_an_earlier_version_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    import sqlite3
    with sqlite3.connect(path) as old:  # the first release's schema, with a reply in flight
        old.executescript("""
            CREATE TABLE conversations (id VARCHAR(32) PRIMARY KEY, user_id VARCHAR(128),
                title VARCHAR(200), model VARCHAR(200), created_at DATETIME, updated_at DATETIME);
            CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(32) UNIQUE,
                conversation_id VARCHAR(32), role VARCHAR(16), content TEXT, reasoning TEXT,
                status VARCHAR(16), model VARCHAR(200), finish_reason VARCHAR(32),
                error_code VARCHAR(64), error_message TEXT, prompt_tokens INTEGER,
                completion_tokens INTEGER, created_at DATETIME);
            INSERT INTO conversations VALUES ('c1', 'alice', 'old', 'demo/offline',
                '2026-01-01 00:00:00', '2026-01-01 00:00:00');
            INSERT INTO messages (id, conversation_id, role, content, reasoning, status, created_at)
                VALUES ('m1', 'c1', 'user', 'hello', '', 'complete', '2026-01-01 00:00:00'),
                       ('m2', 'c1', 'assistant', 'half', '', 'streaming', '2026-01-01 00:00:01');
        """)
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    conversation = store.get_conversation("alice", "c1")
    assert conversation.settings == {"system": None, "temperature": None, "max_tokens": None}
    messages = store.conversation_messages("alice", "c1")
    assert [m["status"] for m in messages] == ["complete", "interrupted"]
    assert store.update_conversation("alice", "c1", settings={"temperature": 0.5})
    _, reply = store.start_turn("c1", "again", "demo/offline")
    assert store.active_streams("alice") == 1
