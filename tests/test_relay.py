"""The relay on its own: provider chunks in, typed events out, the reply saved on every path."""
from __future__ import annotations

import pytest
from gevent.event import Event as Gate

from providers import ChatRequest, Chunk, Message, Usage
from providers.errors import BadRequestError, StreamInterruptedError
from streamdesk.chat.events import HEARTBEAT, Delta, Done, Failed, Meta, UsageReport
from streamdesk.chat.observer import ReplyObserver
from streamdesk.chat.relay import Reply, relay_reply
from streamdesk.store import ReplyStatus, Store
from tests.fakes import FakeProvider


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'relay.sqlite3'}")
    store.migrate()
    return store


@pytest.fixture
def fake():
    return FakeProvider()


def start(store, fake, *, heartbeat=5.0, save_interval=0.0):
    conversation = store.create_conversation("alice", "t", "fake/model")
    user_message_id, message_id = store.start_turn(conversation.id, "question", "fake/model")
    reply = Reply(conversation.id, user_message_id, message_id, "fake/model", 2)
    observer = ReplyObserver(provider="fake", model_id="fake/model", request_id="r",
                             user="u", message_id=message_id)
    events = relay_reply(fake, ChatRequest("model", (Message("user", "question"),)), reply,
                         store, observer, heartbeat_seconds=heartbeat,
                         save_interval=save_interval)
    return reply, events


def saved(store, reply):
    return store.conversation_messages("alice", reply.conversation_id)[-1]


def test_a_whole_reply_is_meta_deltas_usage_done_and_saved_complete(store, fake):
    fake.enqueue([Chunk(reasoning="hmm"), Chunk(text="Hel"), Chunk(text="lo"),
                  Chunk(usage=Usage(3, 2, 5)), Chunk(finish_reason="length")])
    reply, events = start(store, fake)
    assert list(events) == [
        Meta(reply.conversation_id, reply.user_message_id, reply.message_id, "fake/model", 2),
        Delta("reasoning", "hmm"), Delta("text", "Hel"), Delta("text", "lo"),
        UsageReport(Usage(3, 2, 5)), Done("length", ReplyStatus.COMPLETE)]
    message = saved(store, reply)
    assert (message.content, message.reasoning, message.status) == ("Hello", "hmm",
                                                                     ReplyStatus.COMPLETE)
    assert (message.finish_reason, message.prompt_tokens, message.completion_tokens) == (
        "length", 3, 2)
    assert fake.closed == 1


def test_a_failure_mid_reply_is_failed_then_done_and_the_partial_reply_stays(store, fake):
    fake.enqueue(["Half an ", BadRequestError("The service refused.")])
    reply, events = start(store, fake)
    assert list(events)[-3:] == [Delta("text", "Half an "),
                                 Failed("bad_request", "The service refused."),
                                 Done("error", ReplyStatus.ERROR)]
    message = saved(store, reply)
    assert (message.content, message.status, message.error_code) == (
        "Half an ", ReplyStatus.ERROR, "bad_request")


def test_a_reply_cut_off_upstream_is_saved_interrupted(store, fake):
    fake.enqueue(["Half", StreamInterruptedError()])
    reply, events = start(store, fake)
    assert list(events)[-1] == Done("error", ReplyStatus.INTERRUPTED)
    assert saved(store, reply).status is ReplyStatus.INTERRUPTED


def test_a_consumer_that_leaves_gets_the_partial_reply_saved_cancelled_and_upstream_closed(
        store, fake):
    never = Gate()
    fake.enqueue(["First piece. ", never, "never sent"])
    reply, events = start(store, fake)
    assert next(events) == Meta(reply.conversation_id, reply.user_message_id, reply.message_id,
                                "fake/model", 2)
    assert next(events) == Delta("text", "First piece. ")
    events.close()
    message = saved(store, reply)
    assert (message.content, message.status, message.finish_reason) == (
        "First piece. ", ReplyStatus.CANCELLED, "cancelled")
    assert fake.closed == 1


def test_silence_upstream_is_a_heartbeat_and_the_reply_goes_on(store, fake):
    gate = Gate()
    fake.enqueue(["Thinking… ", gate, "done."])
    reply, events = start(store, fake, heartbeat=0.05)
    received = []
    for event in events:
        received.append(event)
        if event is HEARTBEAT:
            gate.set()  # the model speaks again once we have heard the heartbeat
    assert HEARTBEAT in received
    assert [e.text for e in received if isinstance(e, Delta)] == ["Thinking… ", "done."]
    assert saved(store, reply).content == "Thinking… done."


def test_batched_progress_saves_reach_the_store_while_the_reply_grows(store, fake):
    gate = Gate()
    fake.enqueue(["Saved before the end. ", gate, "The end."])
    reply, events = start(store, fake, heartbeat=0.05, save_interval=0.01)
    heartbeats = 0
    for event in events:
        if event is HEARTBEAT:
            heartbeats += 1
            assert heartbeats < 100, "no progress save within 100 heartbeats"
            if saved(store, reply).content:
                gate.set()  # a batch wrote the first piece while the reply was still open
    assert saved(store, reply).content == "Saved before the end. The end."
