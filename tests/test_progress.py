"""Saving growing replies in batches (streamdesk/chat/progress.py) on a real SQLite file."""
from __future__ import annotations

import sqlite3

import gevent
import pytest
from gevent.event import Event as Gate
from prometheus_client import REGISTRY

from streamdesk.chat import progress
from streamdesk.chat.events import Meta
from streamdesk.chat.live import LiveReply
from streamdesk.chat.progress import ProgressSaver
from streamdesk.store import Store
from tests.fakes import start_turn


@pytest.fixture(params=["sqlite", "sqlite lane", "postgresql"])
def store(tmp_path, request):
    if request.param == "postgresql":
        store = Store(request.getfixturevalue("empty_postgres_database"))
    else:
        store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}",
                      sqlite_lane=request.param == "sqlite lane")
    store.migrate()
    yield store
    store.close()


def growing_reply(store, user: str, text: str) -> LiveReply:
    conversation = store.create_conversation(user, "t", "demo/offline")
    user_message_id, message_id = start_turn(store, user, conversation.id, "question")
    reply = LiveReply(Meta(conversation.id, user_message_id, message_id, "demo/offline", 0))
    reply.add("text", text)
    return reply


def test_many_replies_are_saved_in_slices_and_the_loop_runs_beside_them(store, monkeypatch):
    replies = [growing_reply(store, f"user{i}", f"reply {i} so far") for i in range(120)]
    saver = ProgressSaver(store, interval=60)
    for reply in replies:
        saver.grew(reply)
    happened = []
    write = store.save_progress_batches
    monkeypatch.setattr(store, "save_progress_batches", lambda batches: (
        happened.append([len(rows) for rows in batches]), write(batches))[1])
    gevent.spawn(happened.append, "another greenlet ran")
    saver.flush()
    size = progress.ROWS_PER_WRITE
    if store.progress_saves_hold_the_loop:
        assert happened == [[size], "another greenlet ran", [size], [120 - 2 * size]]
    else:  # the lane: one job, while the loop runs on
        assert happened == [[size, size, 120 - 2 * size], "another greenlet ran"]
    for i, reply in enumerate(replies):
        saved = store.reply(f"user{i}", reply.message_id)
        assert saved.content == f"reply {i} so far" and saved.status == "streaming"


def test_a_reply_that_finishes_between_two_slices_keeps_its_last_word(store, monkeypatch):
    replies = [growing_reply(store, f"user{i}", "partial") for i in range(progress.ROWS_PER_WRITE
                                                                          + 1)]
    saver = ProgressSaver(store, interval=60)
    for reply in replies:
        saver.grew(reply)
    last = replies[-1]

    def finish():  # runs while the flush lets the loop go on after its first slice
        store.finish_turn(last.message_id, content="the whole answer", reasoning="",
                          status="complete", finish_reason="stop")
        saver.finished(last)

    gevent.spawn(finish)
    saver.flush()
    saved = store.reply(f"user{len(replies) - 1}", last.message_id)
    assert saved.content == "the whole answer" and saved.status == "complete"


def test_a_reply_the_database_refuses_does_not_stop_the_others_saves(store, caplog):
    replies = [growing_reply(store, f"user{i}", f"reply {i} so far") for i in range(3)]
    refused = replies[1]
    # PostgreSQL's driver refuses NUL (a database error, with the statement's values);
    # SQLite's refuses half a surrogate pair, which nothing can encode. (The relay cleans
    # both out of model text, and a live reply cannot even hold the second: it is given
    # here as the reply's growth.)
    postgresql = store.engine.dialect.name == "postgresql"
    refusable = "secret words \x00" if postgresql else "secret words \ud800"
    row, mark = refused.growth()
    refused.growth = lambda: (row._replace(content=refusable), mark)
    saver = ProgressSaver(store, interval=60)
    for reply in replies:
        saver.grew(reply)
    saver.flush()
    assert [store.reply(f"user{i}", r.message_id).content for i, r in enumerate(replies)] == [
        "reply 0 so far", "", "reply 2 so far"]
    assert f"saving the growing reply {refused.message_id} failed" in caplog.text
    assert "secret words" not in caplog.text  # the error's log line has no model text


@pytest.mark.parametrize("written", [False, True], ids=["nothing written", "answer lost"])
def test_saves_of_each_growth_add_up_to_the_whole_reply_a_failed_one_included(
        store, monkeypatch, written):
    # A save can fail with nothing written (a lock held past the busy timeout), or fail after
    # its commit (the connection lost before the answer came): either way the next save puts
    # the copy right, neither missing nor repeating the growth.
    reply = growing_reply(store, "ana", "Once ")
    saver = ProgressSaver(store, interval=60)
    write, fail_next = store.save_progress_batches, []

    def write_unless_told_to_fail(batches):
        if fail_next:
            if written:
                write(batches)
            return [fail_next.pop()] * len(batches)
        return write(batches)

    monkeypatch.setattr(store, "save_progress_batches", write_unless_told_to_fail)
    saves = [("upon 流 ", ""), ("a time", "so"), (".", " it goes")]
    for number, (text, reasoning) in enumerate(saves):
        reply.add("text", text)
        if reasoning:
            reply.add("reasoning", reasoning)
        if number == 1:
            fail_next.append(sqlite3.OperationalError("database is locked"))
        saver.grew(reply)
        saver.flush()
        saved = store.reply("ana", reply.message_id)
        if number != 1:  # the failed save's growth went with the next one
            assert (saved.content, saved.reasoning) == (reply.so_far("text"),
                                                        reply.so_far("reasoning"))
    assert (saved.content, saved.reasoning) == ("Once upon 流 a time.", "so it goes")
    assert saved.stream_index == reply.index.to_json()


def test_operators_see_how_long_each_save_took(store, monkeypatch):
    now = [100.0]
    saver = ProgressSaver(store, interval=60, clock=lambda: now[0])
    write = store.save_progress_batches

    def slow_write(batches):
        now[0] += 0.75
        return write(batches)

    monkeypatch.setattr(store, "save_progress_batches", slow_write)
    count, within_half_a_second, within_a_second = (
        sample("streamdesk_progress_save_seconds_count"),
        sample("streamdesk_progress_save_seconds_bucket", le="0.5"),
        sample("streamdesk_progress_save_seconds_bucket", le="1.0"))
    saver.grew(growing_reply(store, "ana", "so far"))
    saver.flush()
    saver.flush()  # nothing grew since: no save to count
    assert sample("streamdesk_progress_save_seconds_count") == count + 1
    assert sample("streamdesk_progress_save_seconds_bucket", le="0.5") == within_half_a_second
    assert sample("streamdesk_progress_save_seconds_bucket", le="1.0") == within_a_second + 1
    assert saver.longest == pytest.approx(0.75)
    assert sample("streamdesk_progress_save_max_seconds") >= 0.75


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_next_batch_waits_for_the_one_being_written(store, monkeypatch):
    # Two batches at once update the same rows in different orders: on PostgreSQL under load
    # (a batch slower than the interval) that was deadlocks, failed saves and lost last words.
    first, second = (growing_reply(store, f"user{i}", f"reply {i} so far") for i in range(2))
    saver = ProgressSaver(store, interval=0)
    write, writing, most_at_once = store.save_progress_batches, [], []
    held, release = Gate(), Gate()

    def slow_write(batches):
        writing.append(batches)
        most_at_once.append(len(writing))
        if len(most_at_once) == 1:  # the first batch is slow
            held.set()
            release.wait()
        failures = write(batches)
        writing.remove(batches)
        return failures

    monkeypatch.setattr(store, "save_progress_batches", slow_write)
    saver.grew(first)
    held.wait()  # the first batch is being written
    first.add("text", " and more")
    saver.grew(first)
    saver.grew(second)
    gevent.idle()  # a second batch due now would have started by the time the loop is idle
    assert most_at_once == [1]
    release.set()
    while saver.flusher is not None:  # the batch that waited, then nothing more
        saver.flusher.join()
    assert most_at_once == [1, 1]
    assert store.reply("user0", first.message_id).content == "reply 0 so far and more"
    assert store.reply("user1", second.message_id).content == "reply 1 so far"
