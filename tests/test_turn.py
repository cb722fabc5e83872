"""Preparing a turn, without the web: one model choice, one history budget pass with the
provider's own reserve and rules, the real omitted count, and the user's turn saved first."""
from __future__ import annotations

import pytest

from providers import Message, Registry
from providers.base import ModelEntry
from providers.demo import DemoProvider
from providers.ernie import ErnieProvider
from providers.history import estimate_tokens
from streamdesk.chat.turn import OperatorRules, TurnRefused, TurnRequest, prepare_turn
from streamdesk.store import ReplyStatus, Store
from tests.fakes import FakeProvider


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    store.migrate()
    return store


def prepare(store, registry, message, *, rules=None, user="alice", **fields):
    return prepare_turn(TurnRequest(message, **fields), user, store=store, registry=registry,
                        rules=rules or OperatorRules())


def test_a_new_turn_saves_the_question_and_an_empty_reply_before_anything_is_sent(store):
    registry = Registry([FakeProvider(), DemoProvider(0)])
    turn = prepare(store, registry, "  What is   SSE?\n")
    question, reply = store.conversation_messages("alice", turn.meta.conversation_id)
    assert (question.id, question.content) == (turn.meta.user_message_id, "  What is   SSE?\n")
    assert (reply.id, reply.status, reply.content) == (turn.meta.message_id,
                                                       ReplyStatus.STREAMING, "")
    assert store.get_conversation("alice", turn.meta.conversation_id).title == "What is SSE?"
    assert turn.request.messages == (Message("user", "  What is   SSE?\n"),)
    assert (turn.provider.name, turn.request.model, turn.meta.model) == (
        "fake", "model", "fake/model")


def test_history_is_fitted_once_with_the_providers_own_reserve(store):
    # 600 tokens of window, 500 kept for the reply: only the newest turns fit.
    fake = FakeProvider(models=[ModelEntry("small", context_tokens=600)], reserve=500)
    registry = Registry([fake])
    first = prepare(store, registry, "q" * 400)
    store.finish_turn(first.meta.message_id, content="a" * 400, reasoning="",
                      status=ReplyStatus.COMPLETE, finish_reason="stop")
    turn = prepare(store, registry, "newest", conversation_id=first.meta.conversation_id)
    assert turn.request.messages == (Message("user", "newest"),)
    assert turn.meta.omitted_messages == 2
    budget = 600 - 500
    assert sum(estimate_tokens(m.content) for m in turn.request.messages) <= budget


def test_the_omitted_count_includes_turns_the_vendors_rules_leave_out(store, tmp_path):
    # ERNIE wants alternating turns: of two questions in a row only the newer is sent.
    ernie = ErnieProvider("ernie", [ModelEntry("completions_pro", context_tokens=8192)],
                          base_url="http://127.0.0.1:9", api_key="k", secret_key="s")
    registry = Registry([ernie])
    first = prepare(store, registry, "unanswered question")
    store.finish_turn(first.meta.message_id, content="", reasoning="",
                      status=ReplyStatus.ERROR, finish_reason="error")
    turn = prepare(store, registry, "asked again", conversation_id=first.meta.conversation_id)
    assert turn.request.messages == (Message("user", "asked again"),)
    assert turn.meta.omitted_messages == 1
    ernie.close()


def test_the_model_is_the_asked_one_else_the_conversations_else_the_default(store):
    registry = Registry([FakeProvider(models=[ModelEntry("a"), ModelEntry("b")]),
                         DemoProvider(0)], "demo/offline")
    assert prepare(store, registry, "hi").meta.model == "demo/offline"
    first = prepare(store, registry, "hi", model="fake/b")
    again = prepare(store, registry, "more", conversation_id=first.meta.conversation_id)
    assert again.meta.model == "fake/b"
    with pytest.raises(TurnRefused) as refused:
        prepare(store, registry, "hi", model="fake/c")
    assert refused.value.code == "unknown_model"


def test_a_conversation_whose_model_was_removed_continues_on_the_default(store):
    first = prepare(store, Registry([FakeProvider(name="gone"), DemoProvider(0)]), "hi")
    turn = prepare(store, Registry([DemoProvider(0)]), "still there?",
                   conversation_id=first.meta.conversation_id)
    assert turn.meta.model == "demo/offline"


def test_the_operators_prompt_comes_first_and_a_locked_one_drops_the_users(store):
    registry = Registry([FakeProvider()])
    open_rules = OperatorRules(system_prompt="Operator.")
    turn = prepare(store, registry, "hi", rules=open_rules, settings={"system": "Mine."})
    assert turn.request.system == "Operator.\n\nMine."
    locked = OperatorRules(system_prompt="Operator.", lock_system_prompt=True)
    again = prepare(store, registry, "hi", rules=locked,
                    conversation_id=turn.meta.conversation_id)
    assert again.request.system == "Operator."


def test_someone_elses_conversation_or_message_is_refused_as_not_found(store):
    registry = Registry([FakeProvider()])
    alices = prepare(store, registry, "secret")
    with pytest.raises(TurnRefused) as refused:
        prepare(store, registry, "hi", user="mallory",
                conversation_id=alices.meta.conversation_id)
    assert refused.value.code == "conversation_not_found"
    with pytest.raises(TurnRefused) as refused:
        prepare(store, registry, "edit", conversation_id=alices.meta.conversation_id,
                edit_message_id=alices.meta.message_id)  # an assistant message
    assert refused.value.code == "message_not_found"


def test_editing_a_question_replaces_it_and_everything_after(store):
    registry = Registry([FakeProvider()])
    first = prepare(store, registry, "one")
    store.finish_turn(first.meta.message_id, content="answer one", reasoning="",
                      status=ReplyStatus.COMPLETE, finish_reason="stop")
    edited = prepare(store, registry, "one, better", conversation_id=first.meta.conversation_id,
                     edit_message_id=first.meta.user_message_id)
    contents = [m.content for m in store.conversation_messages("alice",
                                                               first.meta.conversation_id)]
    assert contents == ["one, better", ""]
    assert edited.request.messages == (Message("user", "one, better"),)
