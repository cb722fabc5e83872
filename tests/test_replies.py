"""Replies on their own, without the web: written on a greenlet of their own, followed from
any event id, stopped, timed out, saved on every path."""
from __future__ import annotations

from itertools import islice

import gevent
import pytest
from gevent import GreenletExit
from gevent.event import Event as Gate
from sqlalchemy import event as db_events
from sqlalchemy.exc import OperationalError

from providers import ChatRequest, Chunk, Message, Usage
from providers.errors import BadRequestError, StreamInterruptedError
from streamdesk.chat import lifecycle
from streamdesk.chat.bus import DatabaseBus, RedisBus
from streamdesk.chat.events import HEARTBEAT, Delta, Done, Failed, Meta, UsageReport
from streamdesk.chat.observer import ReplyObserver
from streamdesk.chat.replies import Replies, ReplyPolicy
from streamdesk.chat.stream_index import replay
from streamdesk.chat.turn import PreparedTurn
from streamdesk.store import ReplyStatus, Store
from tests.fakes import FakeProvider, start_turn


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'replies.sqlite3'}")
    store.migrate()
    return store


@pytest.fixture
def fake():
    return FakeProvider()


def keeper(store, **policy) -> Replies:
    policy.setdefault("save_interval_seconds", 0.0)
    return Replies(store, DatabaseBus(store, policy.get("heartbeat_seconds", 10.0)),
                   ReplyPolicy(**policy))


def begin(store, replies, fake, user="alice"):
    conversation = store.create_conversation(user, "t", "fake/model")
    user_message_id, message_id = start_turn(store, user, conversation.id, "question",
                                             "fake/model")
    meta = Meta(conversation.id, user_message_id, message_id, "fake/model", 0)
    turn = PreparedTurn(fake, ChatRequest("model", (Message("user", "question"),)), meta)
    observer = ReplyObserver(provider="fake", model_id="fake/model", request_id="r",
                             user="u", message_id=message_id)
    return replies.start(turn, observer)


def events_of(followed) -> list:
    return [item for item in followed if item is not HEARTBEAT]


def saved(store, live, user="alice"):
    return store.reply(user, live.message_id)


def test_a_reply_is_meta_deltas_usage_done_with_ids_that_are_positions(store, fake):
    fake.enqueue([Chunk(reasoning="hmm"), Chunk(text="Hel"), Chunk(text="lo"),
                  Chunk(usage=Usage(3, 2, 5)), Chunk(finish_reason="length")])
    replies = keeper(store)
    live = begin(store, replies, fake)
    followed = events_of(replies.follow_live("alice", live))
    meta = followed[0][1]
    assert followed == [
        (1, meta), (4, Delta("reasoning", "hmm")), (7, Delta("text", "Hel")),
        (9, Delta("text", "lo")), (10, UsageReport(Usage(3, 2, 5))),
        (11, Done("length", ReplyStatus.COMPLETE))]
    reply = saved(store, live)
    assert (reply.content, reply.reasoning, reply.status, reply.finish_reason) == (
        "Hello", "hmm", ReplyStatus.COMPLETE, "length")
    assert fake.closed == 1 and live.message_id not in replies.live  # nothing kept in memory


def test_the_upstream_is_asked_before_start_returns(store, fake):
    # The caller's own work (its response, the session, the log line) then overlaps the
    # model's time to its first token.
    gate = Gate()
    fake.enqueue([gate, "late"])
    replies = keeper(store)
    live = begin(store, replies, fake)
    assert len(fake.requests) == 1 and not live.closing  # asked, and waiting on the upstream
    gate.set()
    assert [e.text for _, e in events_of(replies.follow_live("alice", live))
            if type(e) is Delta] == ["late"]


def test_hostile_model_text_is_shown_and_saved_the_same_clean_way(store, fake):
    fake.enqueue(["A\ud83d", "\ude00B", "C\x00D", Chunk(reasoning="E\udc00F"),
                  Chunk(finish_reason="stop")])
    replies = keeper(store)
    live = begin(store, replies, fake)
    shown = [e for _, e in events_of(replies.follow_live("alice", live)) if type(e) is Delta]
    assert [(d.field, d.text) for d in shown] == [
        ("text", "A"), ("text", "\U0001f600B"), ("text", "C\ufffdD"), ("reasoning", "E\ufffdF")]
    reply = saved(store, live)
    assert (reply.content, reply.reasoning, reply.status) == (
        "A\U0001f600BC\ufffdD", "E\ufffdF", ReplyStatus.COMPLETE)


def test_a_reply_reaching_max_chars_ends_as_length_with_what_fits_saved(store, fake):
    fake.enqueue(["x" * 40] * 10)
    replies = keeper(store, max_chars=100)
    live = begin(store, replies, fake)
    followed = events_of(replies.follow_live("alice", live))
    assert "".join(e.text for _, e in followed if type(e) is Delta) == "x" * 100
    assert followed[-1][1] == Done("length", ReplyStatus.COMPLETE)
    reply = saved(store, live)
    assert (reply.content, reply.finish_reason) == ("x" * 100, "length")
    assert fake.closed == 1  # the upstream was closed there


def test_an_upstream_that_never_pauses_still_lets_the_other_streams_run(store, fake):
    fake.enqueue(["word "] * 1000)  # every read returns at once: the greenlet never waits
    replies = keeper(store, save_interval_seconds=60)
    live = begin(store, replies, fake)
    pieces_when_another_stream_ran = []

    def another_stream():
        while not live.ended:
            pieces_when_another_stream_ran.append(live.so_far().count("word"))
            gevent.sleep(0)

    other = gevent.spawn(another_stream)  # scheduled after the reply's own greenlet
    live.generator.join()
    other.join()
    assert any(0 < pieces < 1000 for pieces in pieces_when_another_stream_ran)


def test_a_failure_mid_reply_is_failed_then_done_and_the_partial_reply_stays(store, fake):
    fake.enqueue(["Half an ", BadRequestError("The service refused.")])
    replies = keeper(store)
    followed = events_of(replies.follow_live("alice", begin(store, replies, fake)))
    assert [event for _, event in followed][-3:] == [
        Delta("text", "Half an "), Failed("bad_request", "The service refused."),
        Done("error", ReplyStatus.ERROR)]
    reply = store.reply("alice", followed[0][1].message_id)
    assert (reply.content, reply.status, reply.error_code) == ("Half an ", ReplyStatus.ERROR,
                                                               "bad_request")


def test_a_reply_cut_off_upstream_is_saved_interrupted(store, fake):
    fake.enqueue(["Half", StreamInterruptedError()])
    replies = keeper(store)
    live = begin(store, replies, fake)
    assert events_of(replies.follow_live("alice", live))[-1][1].status == "interrupted"
    assert saved(store, live).status is ReplyStatus.INTERRUPTED


def test_the_reply_goes_on_when_its_follower_leaves(store, fake):
    gate = Gate()
    fake.enqueue(["First piece. ", gate, "The rest."])
    replies = keeper(store)
    live = begin(store, replies, fake)
    follower = replies.follow_live("alice", live)
    assert next(follower)[1] == live.index.meta
    assert next(follower) == (14, Delta("text", "First piece. "))
    follower.close()  # the browser went away
    gate.set()
    live.generator.join(timeout=5)
    reply = saved(store, live)
    assert (reply.content, reply.status) == ("First piece. The rest.", ReplyStatus.COMPLETE)


def test_followers_waiting_together_each_get_every_piece_when_one_of_them_is_killed(
        store, fake):
    gate = Gate()
    fake.enqueue(["One. ", gate, "Two. ", "Three."])
    replies = keeper(store)
    live = begin(store, replies, fake)
    read: dict[str, list] = {"left": [], "a": [], "b": []}
    waiting = {name: Gate() for name in read}

    def follow(name: str) -> None:
        for item in replies.follow_live("alice", live):
            read[name].append(item)
            if item[1] == Delta("text", "One. "):
                waiting[name].set()  # it goes on to wait for the next piece

    followers = {name: gevent.spawn(follow, name) for name in read}
    for name in read:
        assert waiting[name].wait(timeout=5)
    followers["left"].kill()  # its browser left while it waited
    gate.set()
    gevent.joinall([followers["a"], followers["b"], live.generator], timeout=5)
    whole = "One. Two. Three."
    for name in ("a", "b"):
        events = [e for _, e in events_of(read[name])]
        assert "".join(e.text for e in events if isinstance(e, Delta)) == whole
        assert events[-1] == Done("stop", ReplyStatus.COMPLETE)
    assert [e.text for _, e in read["left"] if isinstance(e, Delta)] == ["One. "]
    assert saved(store, live).content == whole


def test_stop_closes_the_upstream_saves_cancelled_and_ends_every_follower(store, fake):
    never = Gate()
    fake.enqueue(["Going on ", never, "never sent"])
    replies = keeper(store)
    live = begin(store, replies, fake)
    first, second = replies.follow_live("alice", live), replies.follow_live("alice", live)
    assert [next(first)[0], next(first)[0]] == [1, 10]
    stopped = replies.stop("alice", live.message_id)
    assert fake.closed == 1  # the upstream is closed by the time stop returns
    assert (stopped.status, stopped.content, stopped.finish_reason) == (
        ReplyStatus.CANCELLED, "Going on ", "cancelled")
    for follower in (first, second):
        assert events_of(follower)[-1][1] == Done("cancelled", ReplyStatus.CANCELLED)
    again = replies.stop("alice", live.message_id)  # idempotent
    assert again.status is ReplyStatus.CANCELLED
    assert replies.stop("mallory", live.message_id) is None


def test_following_from_any_event_id_gives_exactly_the_rest(store, fake):
    parts = [Chunk(reasoning="Let me "), Chunk(reasoning="think."), Chunk(text="流式 "),
             Chunk(text="replies\u2028survive."), Chunk(usage=Usage(4, 3, 7)),
             Chunk(finish_reason="stop")]
    fake.enqueue(parts)
    replies = keeper(store)
    live = begin(store, replies, fake)
    whole = events_of(replies.follow_live("alice", live))
    last = whole[-1][0]
    units = []  # (position, field, character) of every character, as the ids count them
    for event_id, event in whole:
        if isinstance(event, Delta):
            start = event_id - len(event.text)
            units += [(start + i + 1, event.field, ch) for i, ch in enumerate(event.text)]
    for after in range(last + 1):  # the live log is gone: every resume is read back
        rest = events_of(replies.follow("alice", live.message_id, after))
        for field in ("text", "reasoning"):
            received = "".join(e.text for _, e in rest
                               if isinstance(e, Delta) and e.field == field)
            assert received == "".join(ch for p, f, ch in units if p > after and f == field)
        assert [(i, e) for i, e in rest if not isinstance(e, Delta)] == [
            (i, e) for i, e in whole if i > after and not isinstance(e, Delta)]
        ids = [i for i, _ in rest]
        assert ids == sorted(set(ids)) and all(i > after for i in ids)
        assert not rest or ids[-1] == last
    assert replies.follow("mallory", live.message_id, 0) is None


def test_a_live_reply_gives_back_each_held_piece_exactly_from_any_event_id(store, fake):
    # Pieces of several bytes per character, text and reasoning taking turns: each is held
    # once, as UTF-8 in its field's buffer, and must come back as the very delta published.
    gate = Gate()
    fake.enqueue([Chunk(reasoning="Let me "), Chunk(text="流式 "), Chunk(reasoning="think 🙂."),
                  Chunk(text="e\u0301\u2028"), Chunk(usage=Usage(4, 3, 7)), Chunk(text="ok"),
                  gate])
    replies = keeper(store, save_interval_seconds=60)
    live = begin(store, replies, fake)
    published = []
    for item in replies.follow_live("alice", live):
        published.append(item)
        if item[1] == Delta("text", "ok"):
            break
    assert [e for _, e in published[1:]] == [
        Delta("reasoning", "Let me "), Delta("text", "流式 "), Delta("reasoning", "think 🙂."),
        Delta("text", "e\u0301\u2028"), UsageReport(Usage(4, 3, 7)), Delta("text", "ok")]

    def nothing_saved(after):
        raise AssertionError(f"read back from the database after {after}")

    for after in range(published[-1][0]):  # from inside a delta: that whole delta again
        expected = [(i, e) for i, e in published if i > after]
        assert list(islice(live.follow(after, nothing_saved), len(expected))) == expected
    assert (live.so_far("text"), live.so_far("reasoning")) == ("流式 e\u0301\u2028ok",
                                                               "Let me think 🙂.")
    gate.set()
    live.generator.join()
    assert (saved(store, live).content, saved(store, live).reasoning) == (
        "流式 e\u0301\u2028ok", "Let me think 🙂.")


def until_dropped(followed, live, to: int) -> None:
    """Read ``followed`` (a follower at the end of the reply) heartbeat by heartbeat until the
    saves have dropped the reply's events up to id ``to`` from memory."""
    with gevent.Timeout(10):
        for item in followed:
            if item is HEARTBEAT and live.dropped_to >= to:
                return


def test_saved_events_every_follower_has_read_are_let_go_and_a_late_follower_reads_them_back(
        store, fake):
    gate = Gate()
    fake.enqueue(["One. ", "Two. ", gate, "Three."])
    replies = keeper(store, save_interval_seconds=0.01, heartbeat_seconds=0.05)
    live = begin(store, replies, fake)
    early = replies.follow_live("alice", live)
    until_dropped(early, live, to=11)  # meta, "One. ", "Two. ": saved and read
    assert live.log == []  # nothing the only follower has read is still held
    late = replies.follow_live("alice", live, 0)
    assert next(late)[0] == 1
    gate.set()
    received = [e for _, e in events_of(late)]
    assert "".join(e.text for e in received if isinstance(e, Delta)) == "One. Two. Three."


@pytest.mark.parametrize(("kept", "read_back"), [(256, []), (1, [1])])
def test_a_follower_behind_reads_on_from_memory_unless_too_far_behind(
        store, fake, monkeypatch, kept, read_back):
    monkeypatch.setattr("streamdesk.chat.live.KEEP_UNREAD_SAVED_EVENTS", kept)
    thinking, gate = Gate(), Gate()
    fake.enqueue([thinking, "One. ", "Two. ", gate, "Three."])
    replies = keeper(store, save_interval_seconds=0.01, heartbeat_seconds=0.05)
    live = begin(store, replies, fake)
    reads_back: list[int] = []

    def from_the_database(after: int):
        reads_back.append(after)
        return replay(saved(store, live), after)

    behind = live.follow(0, from_the_database)
    assert next(behind)[0] == 1  # it has read the meta event, and no further
    thinking.set()
    ahead = replies.follow_live("alice", live)
    until_dropped(ahead, live, to=1 if kept > 1 else 6)
    gate.set()
    received = [e for _, e in events_of(behind)]
    assert "".join(e.text for e in received if isinstance(e, Delta)) == "One. Two. Three."
    assert reads_back == read_back  # within KEEP_UNREAD_SAVED_EVENTS: from memory


def refusing_finishes(store, monkeypatch, refusals: int) -> list[str]:
    """The store refuses the reply's last word ``refusals`` times (as PostgreSQL does to one
    side of a deadlock), then accepts it; the statuses it was asked to save."""
    asked: list[str] = []
    finish = store.finish_turn

    def flaky_finish(message_id, **end):
        asked.append(end["status"])
        if len(asked) <= refusals:
            raise OperationalError("UPDATE messages ...", {}, Exception("deadlock detected"))
        finish(message_id, **end)

    monkeypatch.setattr(store, "finish_turn", flaky_finish)
    return asked


def test_a_last_word_the_database_refuses_once_is_saved_the_second_time(store, fake,
                                                                        monkeypatch):
    asked = refusing_finishes(store, monkeypatch, refusals=1)
    fake.enqueue(["Hello ", "there."])
    replies = keeper(store)
    live = begin(store, replies, fake)
    followed = [e for _, e in events_of(replies.follow_live("alice", live))]
    assert followed[-1] == Done("stop", ReplyStatus.COMPLETE)
    assert not any(isinstance(e, Failed) for e in followed)
    assert asked == [ReplyStatus.COMPLETE] * 2
    reply = saved(store, live)
    assert (reply.content, reply.status) == ("Hello there.", ReplyStatus.COMPLETE)


def test_a_last_word_the_database_keeps_refusing_is_an_error_and_the_text_so_far_stays(
        store, fake, monkeypatch, caplog):
    refusing_finishes(store, monkeypatch, refusals=2)
    fake.enqueue(["Hello ", "there."])
    replies = keeper(store)  # saves every piece as it comes
    live = begin(store, replies, fake)
    followed = [e for _, e in events_of(replies.follow_live("alice", live))]
    assert followed[-2].code == "internal" and "could not save" in followed[-2].message
    assert followed[-1] == Done("error", ReplyStatus.INTERRUPTED)
    assert saved(store, live).content == "Hello there."  # as the progress saves left it
    assert f"saving the end of reply {live.message_id} failed" in caplog.text
    assert live.message_id not in replies.live


@pytest.mark.parametrize(("interrupt", "code", "status"), [
    ("stop", None, ReplyStatus.CANCELLED),
    ("shutdown", "server_stopping", ReplyStatus.INTERRUPTED)])
def test_an_interruption_that_lands_in_a_database_call_ends_the_reply_as_that_interruption(
        store, fake, monkeypatch, caplog, interrupt, code, status):
    # psycopg, interrupted while it pings a pooled connection, raises its own error as it
    # cleans up, with the interruption as that error's context (seen with PostgreSQL when an
    # instance stopped mid-reply, SAVE_INTERVAL_SECONDS=0).
    in_the_database, never = Gate(), Gate()
    save = store.save_progress

    def save_progress(*args):
        if "Half" not in args[1]:
            return save(*args)
        in_the_database.set()
        try:
            never.wait()
        except GreenletExit:
            raise OperationalError("SELECT 1", {}, Exception("connection reset")) from None

    monkeypatch.setattr(store, "save_progress", save_progress)
    fake.enqueue(["Half", "never read"])
    replies = keeper(store)  # saves every piece as it comes, on the reply's greenlet
    live = begin(store, replies, fake)
    in_the_database.wait(timeout=5)
    if interrupt == "stop":
        replies.stop("alice", live.message_id)
    else:
        lifecycle.interrupt_live_replies()
        live.generator.join(timeout=5)
    followed = [e for _, e in events_of(replies.follow_live("alice", live))]
    failures = [e.code for e in followed if isinstance(e, Failed)]
    assert failures == ([code] if code else []) and followed[-1].status is status
    assert saved(store, live).status is status
    assert "relay failed" not in caplog.text


def test_silence_upstream_is_a_heartbeat_and_the_reply_goes_on(store, fake):
    gate = Gate()
    fake.enqueue(["Thinking… ", gate, "done."])
    replies = keeper(store, heartbeat_seconds=0.05)
    live = begin(store, replies, fake)
    received = []
    for item in replies.follow_live("alice", live):
        received.append(item)
        if item is HEARTBEAT:
            gate.set()
    assert HEARTBEAT in received
    assert saved(store, live).content == "Thinking… done."


def test_an_upstream_silent_past_its_idle_timeout_ends_the_reply_with_the_text_kept(store,
                                                                                     fake):
    never = Gate()
    fake.enqueue(["Started ", never])
    fake.idle_timeout = 0.2
    replies = keeper(store, heartbeat_seconds=0.05)
    live = begin(store, replies, fake)
    received = list(replies.follow_live("alice", live))
    assert received.count(HEARTBEAT) >= 2  # heartbeats went on until the limit
    failed, done = [e for _, e in events_of(received)][-2:]
    assert failed == Failed("timeout", "The fake model service sent nothing for 0.2 s.")
    assert done == Done("error", ReplyStatus.ERROR)
    assert saved(store, live).content == "Started " and fake.closed == 1


def test_before_the_first_piece_the_idle_timeout_is_the_providers_own(store, fake):
    gate = Gate()
    fake.enqueue([gate, "Late but fine."])  # a provider still retrying, say
    fake.idle_timeout = 0.1
    replies = keeper(store, heartbeat_seconds=0.05)
    live = begin(store, replies, fake)
    heartbeats = 0
    for item in replies.follow_live("alice", live):
        heartbeats += item is HEARTBEAT
        if heartbeats == 4:  # twice the idle timeout without a piece
            gate.set()
    assert saved(store, live).content == "Late but fine."


def test_a_reply_that_runs_too_long_is_ended_and_saved_interrupted(store, fake):
    never = Gate()
    fake.enqueue(["Started ", never])
    replies = keeper(store, time_limit_seconds=0.1)
    live = begin(store, replies, fake)
    followed = events_of(replies.follow_live("alice", live))
    assert followed[-2][1].code == "time_limit"
    assert followed[-1][1] == Done("error", ReplyStatus.INTERRUPTED)
    assert saved(store, live).content == "Started " and fake.closed == 1


def test_stop_requests_through_the_database_reach_the_writing_worker(store, fake):
    never = Gate()
    fake.enqueue(["Going on ", never])
    writer, other = keeper(store), keeper(store)  # two workers of one instance, no Redis
    live = begin(store, writer, fake)
    follower = writer.follow_live("alice", live)
    next(follower), next(follower)
    stopped = other.stop("alice", live.message_id)  # lands on the other worker
    assert stopped.status is ReplyStatus.CANCELLED and fake.closed == 1
    assert events_of(follower)[-1][1].finish_reason == "cancelled"


def test_a_follower_on_another_worker_reads_saved_progress_until_done(store, fake):
    gate = Gate()
    fake.enqueue(["Saved. ", gate, "Then the end."])
    writer = keeper(store, save_interval_seconds=0.01)
    other = keeper(store, heartbeat_seconds=0.05)
    live = begin(store, writer, fake)
    remote = other.follow("alice", live.message_id, 0)
    received = []
    for item in remote:
        if item is HEARTBEAT:
            continue
        received.append(item[1])
        if item[1] == Delta("text", "Saved. "):
            gate.set()
    assert "".join(e.text for e in received if isinstance(e, Delta)) == "Saved. Then the end."
    assert received[-1] == Done("stop", ReplyStatus.COMPLETE)


def test_followers_on_another_worker_share_one_read_of_saved_progress(store, fake):
    gates = [Gate(), Gate()]
    fake.enqueue(["One. ", gates[0], "Done."])
    fake.enqueue(["Two. ", gates[1], "Done."])
    writer = keeper(store, save_interval_seconds=0.01)
    other = keeper(store, heartbeat_seconds=10.0)
    replies = [begin(store, writer, fake), begin(store, writer, fake)]
    alone, shared = [], []

    def count(conn, cursor, statement, *args):
        if statement.startswith("SELECT") and "FROM messages" in statement:
            (shared if " IN (" in statement else alone).append(statement)
            if shared or len(alone) > 40:  # the followers poll now: let the replies end
                for gate in gates:
                    gate.set()
    db_events.listen(store.engine, "before_cursor_execute", count)
    followers = [gevent.spawn(events_of, other.follow("alice", live.message_id, 0))
                 for live in replies for _ in range(10)]
    texts = ["".join(e.text for _, e in f.get() if isinstance(e, Delta)) for f in followers]
    assert texts == ["One. Done."] * 10 + ["Two. Done."] * 10
    assert len(alone) == 20  # each follower's owner check, and no read of its own after it
    assert shared


def test_a_follower_notices_the_writer_died_and_the_reply_reads_interrupted(store, fake):
    replies = keeper(store, heartbeat_seconds=0.05)
    conversation = store.create_conversation("alice", "t", "fake/model")
    _, message_id = start_turn(store, "alice", conversation.id, "q", "fake/model")
    # "test-host:1" is not this host: make the owner a process of this host that has ended.
    import socket
    import subprocess

    from sqlalchemy import update
    dead = subprocess.Popen(["true"])
    dead.wait()

    from streamdesk.store.tables import MessageRow
    with store.engine.begin() as connection:
        connection.execute(update(MessageRow).where(MessageRow.id == message_id).values(
            owner=f"{socket.gethostname()[:48]}:{dead.pid}"))
    followed = events_of(replies.follow("alice", message_id, 0))
    assert [type(e).__name__ for _, e in followed][-2:] == ["Failed", "Done"]
    assert followed[-2][1].code == "interrupted"
    assert store.reply("alice", message_id).status is ReplyStatus.INTERRUPTED


def test_with_redis_each_reply_is_one_capped_stream_that_expires_after_done(store, fake,
                                                                          redis_url,
                                                                          monkeypatch):
    import redis
    client = redis.from_url(redis_url)
    client.flushdb()
    # Redis trims in whole nodes of ~100 entries (approximate MAXLEN): a small cap and a long
    # reply show the trimming.
    monkeypatch.setattr(RedisBus, "STREAM_LENGTH", 10)
    # Stop requests are not this test's; their listener's blocking read would stall this
    # process, which gevent has not patched (the app's workers are).
    monkeypatch.setattr(RedisBus, "_listen_for_stops", lambda self: None)
    bus = RedisBus(store, 10.0, client)
    replies = Replies(store, bus, ReplyPolicy(save_interval_seconds=0.0))
    fake.enqueue(["w "] * 600)
    live = begin(store, replies, fake)
    events = events_of(replies.follow_live("alice", live))
    assert type(events[-1][1]) is Done
    bus._flusher.join()  # the last batch of events is in Redis
    assert client.keys("streamdesk:reply:*") == [f"streamdesk:reply:{live.message_id}".encode()]
    key = RedisBus.STREAM.format(live.message_id)
    assert client.xlen(key) < 300  # 600 pieces and more were written; the oldest trimmed
    assert client.xrevrange(key, count=1)[0][0] == f"{events[-1][0]}-0".encode()  # done kept
    assert 0 < client.ttl(key) <= RedisBus.KEEP_AFTER_DONE_SECONDS
