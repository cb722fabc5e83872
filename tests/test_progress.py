"""Saving growing replies in batches (streamdesk/chat/progress.py) on a real SQLite file."""
from __future__ import annotations

import gevent
import pytest
from gevent.event import Event as Gate

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


def test_many_replies_are_saved_in_slices_and_the_loop_runs_between_two(store, monkeypatch):
    replies = [growing_reply(store, f"user{i}", f"reply {i} so far") for i in range(120)]
    saver = ProgressSaver(store, interval=60)
    for reply in replies:
        saver.grew(reply)
    happened = []
    write = store.save_progress_many
    monkeypatch.setattr(store, "save_progress_many",
                        lambda rows: (happened.append(len(rows)), write(rows)))
    gevent.spawn(happened.append, "another greenlet ran")
    saver.flush()
    size = progress.ROWS_PER_WRITE
    assert happened == [size, "another greenlet ran", size, 120 - 2 * size]
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
    # here as the reply's text so far.)
    postgresql = store.engine.dialect.name == "postgresql"
    refusable = "secret words \x00" if postgresql else "secret words \ud800"
    refused.so_far = lambda field="text": refusable if field == "text" else ""
    saver = ProgressSaver(store, interval=60)
    for reply in replies:
        saver.grew(reply)
    saver.flush()
    assert [store.reply(f"user{i}", r.message_id).content for i, r in enumerate(replies)] == [
        "reply 0 so far", "", "reply 2 so far"]
    assert f"saving the growing reply {refused.message_id} failed" in caplog.text
    assert "secret words" not in caplog.text  # the error's log line has no model text


def test_the_next_batch_waits_for_the_one_being_written(store, monkeypatch):
    # Two batches at once update the same rows in different orders: on PostgreSQL under load
    # (a batch slower than the interval) that was deadlocks, failed saves and lost last words.
    first, second = (growing_reply(store, f"user{i}", f"reply {i} so far") for i in range(2))
    saver = ProgressSaver(store, interval=0)
    write, writing, most_at_once = store.save_progress_many, [], []
    held, release = Gate(), Gate()

    def slow_write(rows):
        writing.append(rows)
        most_at_once.append(len(writing))
        if len(most_at_once) == 1:  # the first batch is slow
            held.set()
            release.wait()
        write(rows)
        writing.remove(rows)

    monkeypatch.setattr(store, "save_progress_many", slow_write)
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
