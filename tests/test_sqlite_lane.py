"""SQLite's bulk background work on a native thread (streamdesk/store/sqlite_lane.py), on a
real database file: the worker's loop runs on while a progress save waits inside SQLite."""
from __future__ import annotations

import sqlite3

import gevent
import pytest

from streamdesk.store import Store, sqlite_lane
from tests.fakes import start_turn


@pytest.fixture
def database(tmp_path):
    return tmp_path / "store.sqlite3"


@pytest.fixture
def store(database):
    store = Store(f"sqlite:///{database}", sqlite_lane=True)
    store.migrate()
    yield store
    store.close()


def streaming_reply(store, user: str = "ana") -> str:
    conversation = store.create_conversation(user, "t", "demo/offline")
    return start_turn(store, user, conversation.id, "question")[1]


def test_a_save_waiting_for_the_write_lock_leaves_the_loop_running(store, database,
                                                                  monkeypatch):
    # Were the save run on the loop's own thread, SQLite's busy wait (a sleep in C) would stop
    # the loop: the greenlet below could never release the lock, and the save would fail.
    monkeypatch.setattr(sqlite_lane, "WRITE_LOCK_TIMEOUT_SECONDS", 5)
    reply_id = streaming_reply(store)
    other_process = sqlite3.connect(database, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    ticks = []

    def keep_the_loop_busy_then_release():
        while len(ticks) < 20:
            gevent.sleep(0.001)
            ticks.append(len(ticks))
        other_process.execute("COMMIT")

    releaser = gevent.spawn(keep_the_loop_busy_then_release)
    store.save_progress(reply_id, "saved after the wait", "", '{"position": 3}')
    assert releaser.dead and len(ticks) == 20
    saved = store.reply("ana", reply_id)
    assert (saved.content, saved.status, saved.stream_index) == (
        "saved after the wait", "streaming", '{"position": 3}')


def test_lane_and_loop_write_the_same_row(database, tmp_path):
    """Both kinds of saves leave identical rows, the moment's text included (the reply's
    staleness is read from it)."""
    rows = {}
    for lane, path in ((True, database), (False, tmp_path / "plain.sqlite3")):
        store = Store(f"sqlite:///{path}", sqlite_lane=lane)
        store.migrate()
        reply_id = streaming_reply(store)
        store.save_progress(reply_id, "so far", "thinking", "{}")
        store.close()
        with sqlite3.connect(path) as connection:
            rows[lane] = connection.execute(
                "SELECT content, reasoning, status, stream_index, length(updated_at) "
                "FROM messages WHERE id = ?", (reply_id,)).fetchone()
    assert rows[True] == rows[False] == ("so far", "thinking", "streaming", "{}", 26)


def test_a_finished_reply_is_not_overwritten_by_a_late_snapshot(store):
    reply_id = streaming_reply(store)
    store.finish_turn(reply_id, content="the whole answer", reasoning="", status="complete",
                      finish_reason="stop")
    store.save_progress(reply_id, "the whole", "", "{}")
    saved = store.reply("ana", reply_id)
    assert (saved.content, saved.status) == ("the whole answer", "complete")


def test_commits_leave_checkpoints_to_the_lane(store, database):
    for user in range(40):  # enough writes for a log of some pages
        reply_id = streaming_reply(store, f"user{user}")
        store.save_progress(reply_id, "x" * 5000, "", "{}")
    with store.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with sqlite3.connect(database) as other:  # an ordinary connection checkpoints itself
        assert other.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    busy, pages, copied = store.lane.checkpoint()
    assert busy == 0 and pages > 40 and copied == pages
