"""Preparing one turn of a chat: everything between a checked request and the upstream call.

No Flask here: the web layer hands in plain values and gets a ``PreparedTurn`` back, or a
``TurnRefused`` with a stable code. In order: find the conversation (owner-checked), choose the
model once, replace the conversation's tail (edit and regenerate), fit the history into the
model's window in a single pass, with the provider's own reply reserve and message rules, and
save the user's turn and an empty reply (and a new conversation) before anything goes upstream.
"""
from __future__ import annotations

from dataclasses import dataclass

from providers import ChatRequest, Message, Provider, Registry, UnknownModelError
from providers.history import estimate_tokens, trim_to_budget

from ..store import Conversation, NewConversation, ReplyInProgress, Store, StreamCapReached
from ..store.tables import new_id
from .events import Meta
from .live import worker_id
from .stream_index import StreamIndex

TITLE_CHARS = 60


@dataclass(frozen=True)
class TurnRequest:
    """A checked request for a new turn, as the user sent it."""

    message: str
    conversation_id: str | None = None
    edit_message_id: str | None = None  # replace this user message and everything after it
    model: str | None = None
    settings: dict | None = None  # only the fields present in the request (None clears one)


@dataclass(frozen=True)
class OperatorRules:
    system_prompt: str | None = None  # SYSTEM_PROMPT; a model's own in the config file wins
    lock_system_prompt: bool = False  # then the user's own prompt is never sent
    max_streams_per_user: int | None = None  # replies one user may have written at once


@dataclass(frozen=True)
class PreparedTurn:
    provider: Provider
    request: ChatRequest  # what goes upstream
    meta: Meta  # which rows the turn is saved in, and what the reply's first event says


class TurnRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


STREAM_CAP_RETRY_SECONDS = 5


def prepare_turn(ask: TurnRequest, user_id: str, *, store: Store, registry: Registry,
                 rules: OperatorRules) -> PreparedTurn:
    settings = ask.settings or {}
    conversation = None
    if ask.conversation_id:
        conversation = store.get_conversation(user_id, ask.conversation_id)
        if conversation is None:
            raise TurnRefused("conversation_not_found", "No such conversation.")
    model_id, provider, model = choose_model(registry, ask.model, conversation)

    if conversation is None:  # saved with the turn, in one transaction
        conversation_id, history = new_id(), []
        new_conversation = NewConversation(title_from(ask.message), settings)
    else:
        if ask.edit_message_id and not _replace_from(store, user_id, conversation.id,
                                                     ask.edit_message_id):
            raise TurnRefused("message_not_found", "No such message in this conversation.")
        if settings:
            store.update_conversation(user_id, conversation.id, settings=settings)
        settings = {**conversation.settings, **settings}
        conversation_id, history = conversation.id, store.history(conversation.id)
        new_conversation = None

    system = system_prompt(provider.operator_system_prompt(model) or rules.system_prompt,
                           None if rules.lock_system_prompt else settings.get("system"))
    history.append(Message("user", ask.message))
    sent = fit_history(provider, model, history, system)
    request = ChatRequest(model, tuple(sent), system, settings.get("temperature"),
                          settings.get("max_tokens"))
    meta = Meta(conversation_id, new_id(), new_id(), model_id, len(history) - len(sent))
    try:
        store.start_turn(user_id, conversation_id, ask.message, model_id,
                         user_message_id=meta.user_message_id, message_id=meta.message_id,
                         owner=worker_id(), stream_index=StreamIndex(meta).to_json(),
                         max_streams=rules.max_streams_per_user,
                         new_conversation=new_conversation)
    except StreamCapReached:
        raise TurnRefused("too_many_streams",
                          f"You already have {rules.max_streams_per_user} replies being "
                          "written. Wait for one to finish or stop it.") from None
    return PreparedTurn(provider, request, meta)


def _replace_from(store: Store, user_id: str, conversation_id: str, message_id: str) -> bool:
    try:
        return store.truncate_from(user_id, conversation_id, message_id)
    except ReplyInProgress:
        raise TurnRefused("reply_in_progress",
                          "A reply after this message is still being written. Stop it first, "
                          "then edit or regenerate.") from None


def choose_model(registry: Registry, requested: str | None,
                 conversation: Conversation | None) -> tuple[str, Provider, str]:
    """(model id, provider, the provider's model name): the one asked for, else the
    conversation's, else the default."""
    model_id = requested or (conversation.model if conversation else None) \
        or registry.default_model
    try:
        provider, model = registry.resolve(model_id)
    except UnknownModelError:
        if requested or conversation is None:
            raise TurnRefused("unknown_model", f"Unknown model {model_id!r}.") from None
        # The conversation's model was removed from the configuration: use the default.
        model_id = registry.default_model
        provider, model = registry.resolve(model_id)
    return model_id, provider, model


def fit_history(provider: Provider, model: str, history: list[Message],
                system: str | None) -> list[Message]:
    """The newest turns the vendor accepts that fit the model's window, after the system
    prompt and the provider's room for the reply."""
    acceptable = provider.acceptable_history(history)
    reserved = provider.reply_reserve_tokens(model) + (estimate_tokens(system) if system else 0)
    return trim_to_budget(acceptable, provider.context_tokens(model), reserved)


def system_prompt(operators: str | None, users: str | None) -> str | None:
    """The operator's prompt first (it cannot be dropped), then the user's own, if allowed."""
    return "\n\n".join(part for part in (operators, users) if part) or None


def title_from(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1] + "…"
