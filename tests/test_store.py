"""The conversation store on a real SQLite file: records out, owners checked."""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from streamdesk.store import NewConversation, ReplyStatus, Store, StreamCapReached, engine
from streamdesk.store.tables import ConversationRow, MessageRow, new_id
from tests.fakes import start_turn


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.migrate()
    return store


def test_a_reply_abandoned_by_a_dead_process_reads_as_interrupted(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = start_turn(store, "alice", conversation.id, "question")
    store.save_progress(reply_id, "half an ans", "", None)
    assert store.conversation_messages("alice", conversation.id)[1].status == "streaming"
    with store.engine.begin() as connection:  # what a SIGKILLed worker leaves behind
        connection.execute(update(MessageRow).where(MessageRow.id == reply_id).values(
            updated_at=datetime.now(UTC) - timedelta(minutes=5)))
    reply = store.conversation_messages("alice", conversation.id)[1]
    assert reply.status is ReplyStatus.INTERRUPTED and reply.content == "half an ans"
    assert [m.content for m in store.history(conversation.id)] == ["question", "half an ans"]


def test_a_live_reply_still_streaming_is_left_out_of_the_history(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = start_turn(store, "alice", conversation.id, "question")
    store.save_progress(reply_id, "being written", "", None)
    assert [m.content for m in store.history(conversation.id)] == ["question"]


def test_every_conversation_operation_checks_the_owner(store):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    user_message, _ = start_turn(store, "alice", conversation.id, "question")
    assert store.get_conversation("bob", conversation.id) is None
    assert store.conversation_messages("bob", conversation.id) is None
    assert not store.update_conversation("bob", conversation.id, title="x")
    assert not store.truncate_from("bob", conversation.id, user_message)
    assert not store.delete_conversation("bob", conversation.id)
    assert len(store.conversation_messages("alice", conversation.id)) == 2


def test_records_are_frozen_and_carry_the_whole_reply(store):
    conversation = store.create_conversation("alice", "t", "demo/offline",
                                             {"temperature": 0.5})
    _, reply_id = start_turn(store, "alice", conversation.id, "question")
    store.finish_turn(reply_id, content="answer", reasoning="thought",
                      status=ReplyStatus.ERROR, finish_reason="error",
                      error=("rate_limited", "Slow down."))
    question, reply = store.conversation_messages("alice", conversation.id)
    assert (question.role, question.status) == ("user", ReplyStatus.COMPLETE)
    assert (reply.content, reply.reasoning, reply.status, reply.error_code) == (
        "answer", "thought", ReplyStatus.ERROR, "rate_limited")
    assert store.get_conversation("alice", conversation.id).settings["temperature"] == 0.5
    with pytest.raises(AttributeError):
        reply.content = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_stop_requests_are_read_back_on_both_databases(dialect, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'stops.sqlite3'}" if dialect == "sqlite" \
        else request.getfixturevalue("empty_postgres_database")
    store = Store(url)
    store.migrate()
    store.request_stop("m1")
    store.request_stop("m1")  # twice: still one request
    assert [message_id for message_id, _ in store.stop_requests_since(0)] == ["m1"]
    assert store.stop_requests_since(time.time() + 60) == []
    store.engine.dispose()


def _locked_by_another_process(tmp_path):
    """A connection of its own holding the database's write lock, as another worker's
    transaction would."""
    other = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_write_waits_for_another_process_in_short_sleeps_that_gevent_makes_cooperative(
        store, tmp_path, monkeypatch):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = start_turn(store, "alice", conversation.id, "question")
    other = _locked_by_another_process(tmp_path)
    naps = []

    def nap(seconds):  # time.sleep, which gevent patches: meanwhile the other one commits
        naps.append(seconds)
        if len(naps) == 5:
            other.execute("COMMIT")

    monkeypatch.setattr(engine.time, "sleep", nap)
    store.finish_turn(reply_id, content="the answer", reasoning="",
                      status=ReplyStatus.COMPLETE, finish_reason="stop")
    # SQLite's own busy wait would have slept inside C, stopping the whole worker.
    assert naps == [0.0005, 0.001, 0.002, 0.004, 0.005]
    assert store.conversation_messages("alice", conversation.id)[1].content == "the answer"


def test_a_write_lock_never_released_fails_after_the_timeout(store, tmp_path, monkeypatch):
    conversation = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = start_turn(store, "alice", conversation.id, "question")
    other = _locked_by_another_process(tmp_path)
    monkeypatch.setattr(engine, "WRITE_LOCK_TIMEOUT_SECONDS", 0.0)
    with pytest.raises(OperationalError, match="locked"):
        store.finish_turn(reply_id, content="lost", reasoning="", status=ReplyStatus.COMPLETE,
                          finish_reason="stop")
    other.execute("ROLLBACK")
    assert store.conversation_messages("alice", conversation.id)[1].status == "streaming"


def cap_store(dialect, tmp_path, request) -> Store:
    url = f"sqlite:///{tmp_path / 'cap.sqlite3'}" if dialect == "sqlite" \
        else request.getfixturevalue("empty_postgres_database")
    store = Store(url)
    store.migrate()
    return store


def at_once(count: int, start) -> list[str]:
    """``start(index)`` on ``count`` threads released together: "started" or "refused" each."""
    gate, outcomes = threading.Barrier(count), []

    def run(index):
        gate.wait()
        try:
            start(index)
            outcomes.append("started")
        except StreamCapReached:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("new_conversations", [True, False])
def test_the_stream_cap_holds_when_a_users_turns_start_at_once(dialect, new_conversations,
                                                               tmp_path, request):
    store = cap_store(dialect, tmp_path, request)
    existing = [store.create_conversation("alice", "t", "demo/offline").id for _ in range(12)]

    def turn(index):
        start_turn(store, "alice", new_id() if new_conversations else existing[index], "q",
                   max_streams=3, new_conversation=NewConversation("t", {})
                   if new_conversations else None)

    assert at_once(12, turn) == ["refused"] * 9 + ["started"] * 3
    assert store.active_streams("alice") == 3
    store.engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_api_replies_and_page_replies_share_the_stream_cap_when_they_start_at_once(
        dialect, tmp_path, request):
    store = cap_store(dialect, tmp_path, request)
    conversations = [store.create_conversation("alice", "t", "demo/offline").id
                     for _ in range(6)]

    def turn(index):
        if index % 2:
            store.start_api_reply("alice", new_id(), max_streams=4)
        else:
            start_turn(store, "alice", conversations[index // 2], "q", max_streams=4)

    assert at_once(12, turn) == ["refused"] * 8 + ["started"] * 4
    assert store.active_streams("alice") == 4
    assert store.active_streams("bob") == 0
    store.engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_reply_written_for_minutes_still_counts_against_the_stream_cap(dialect, tmp_path,
                                                                        request):
    """The cap reads only conversations touched since a reply still being written could have
    started (MAX_REPLY_SECONDS ago): a reply that started 9 minutes ago, and has been saved as
    it grew since, still counts; the user's older conversations are not read."""
    store = cap_store(dialect, tmp_path, request)
    long_running = store.create_conversation("alice", "t", "demo/offline")
    _, reply_id = start_turn(store, "alice", long_running.id, "a long report", max_streams=1)
    with store.writer.begin() as connection:  # it started 9 minutes ago...
        connection.execute(update(ConversationRow).where(
            ConversationRow.id == long_running.id).values(
            updated_at=datetime.now(UTC) - timedelta(minutes=9)))
    store.save_progress(reply_id, "page 40 of 80", "", None)  # ...and is still being written
    other = store.create_conversation("alice", "t", "demo/offline")
    with pytest.raises(StreamCapReached):
        start_turn(store, "alice", other.id, "another question", max_streams=1)
    assert store.active_streams("alice") == 1
    store.engine.dispose()


def test_the_stream_cap_reads_the_users_recent_conversations_through_their_index(store):
    """However many conversations a user has, the count before each message looks up only
    those touched lately, through ix_conversations_user_updated (0007): before it, each of
    the user's conversations was one more probe, ~1 ms more per message at 3,000 of them."""
    from streamdesk.store.repository import _COUNT_BEING_WRITTEN
    compiled = _COUNT_BEING_WRITTEN.compile(store.engine)
    values = {"b_user": "alice", "b_fresh": "x", "b_started": "x"}
    with store.engine.connect() as connection:
        plan = connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}",
            tuple(values[name] for name in compiled.positiontup or ())).fetchall()
    steps = [row[-1] for row in plan]
    assert any(step.startswith("SEARCH conversations USING INDEX ix_conversations_user_updated "
                               "(user_id=? AND updated_at>?)") for step in steps), steps


def test_an_api_reply_stops_counting_when_it_ends_or_its_worker_died(store):
    store.start_api_reply("alice", "ended", max_streams=3)
    store.start_api_reply("alice", "orphan", max_streams=3)
    store.end_api_reply("ended")
    assert store.active_streams("alice") == 1
    with store.writer.begin() as connection:  # its worker died a while ago: never touched
        connection.exec_driver_sql("UPDATE api_replies SET updated_at = '2020-01-01 00:00:00'")
    assert store.active_streams("alice") == 0
    store.start_api_reply("alice", "touched", max_streams=3)
    store.touch_api_reply("touched")
    assert store.active_streams("alice") == 1
