"""``POST /chat``: check everything, save the user's turn, then stream the reply as SSE."""
from __future__ import annotations

from flask import Blueprint, Response, g, request

from providers import ChatRequest, UnknownModelError
from providers.history import estimate_tokens, trim_to_budget

from ..errors import ApiError
from ..identity import current_user_id
from ..limits import check_stream_cap
from ..logs import content_logging_enabled, hash_user
from ..observer import ReplyObserver
from ..relay import Turn, relay_reply
from ..services import services
from ..validation import ChatInput, parse_chat_input, read_json_object, refuse_locked_system

bp = Blueprint("chat", __name__)

TITLE_CHARS = 60
REPLY_RESERVE_TOKENS = 1024  # room left in the model's window for its answer

STREAM_HEADERS = {
    # no-transform stops proxies from compressing or buffering; X-Accel-Buffering: no is
    # nginx's switch for the same. Without them the reply arrives all at once at the end.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


@bp.post("/chat")
def chat():
    app = services()
    chat_input = parse_chat_input(read_json_object(request), app.settings.max_message_chars)
    refuse_locked_system(chat_input.settings, app.settings.lock_system_prompt)
    user_id = current_user_id()  # sets the session cookie now: never inside the generator

    conversation = None
    if chat_input.conversation_id:
        conversation = app.store.get_conversation(user_id, chat_input.conversation_id)
        if conversation is None:
            raise ApiError(404, "conversation_not_found", "No such conversation.")
    model_id = _choose_model(chat_input, conversation)
    provider, model = app.registry.resolve(model_id)
    check_stream_cap(user_id)

    if conversation is None:
        conversation = app.store.create_conversation(user_id, _title(chat_input.message), model_id,
                                                     chat_input.settings)
    else:
        if chat_input.edit_message_id and not app.store.truncate_from(
                user_id, conversation.id, chat_input.edit_message_id):
            raise ApiError(404, "message_not_found", "No such message in this conversation.")
        if chat_input.settings:
            app.store.update_conversation(user_id, conversation.id, settings=chat_input.settings)
    settings = {**conversation.settings, **chat_input.settings}
    _, message_id = app.store.start_turn(conversation.id, chat_input.message, model_id)

    system = _system_prompt(model_id, settings.get("system"))
    history = app.store.history(conversation.id)
    reserved = REPLY_RESERVE_TOKENS + (estimate_tokens(system) if system else 0)
    trimmed = trim_to_budget(history, provider.context_tokens(model), reserved)
    provider_request = ChatRequest(model, tuple(trimmed), system, settings.get("temperature"),
                                   settings.get("max_tokens"))
    turn = Turn(conversation.id, message_id, model_id, len(history) - len(trimmed))
    observer = ReplyObserver(
        provider=provider.name, model_id=model_id, request_id=g.request_id,
        user=hash_user(user_id, app.settings.secret_key), message_id=message_id,
        prompt=chat_input.message if content_logging_enabled() else None)
    body = relay_reply(provider, provider_request, turn, app.store, observer,
                       heartbeat_seconds=app.settings.heartbeat_seconds,
                       save_interval=app.settings.save_interval_seconds)
    return Response(body, mimetype="text/event-stream", headers=STREAM_HEADERS)


def _choose_model(chat_input: ChatInput, conversation) -> str:
    registry = services().registry
    model_id = chat_input.model or (conversation.model if conversation else None) \
        or registry.default_model
    try:
        registry.resolve(model_id)
    except UnknownModelError:
        if chat_input.model or conversation is None:
            raise ApiError(400, "unknown_model", f"Unknown model {model_id!r}.") from None
        # The conversation's model was removed from the configuration: use the default.
        return registry.default_model
    return model_id


def _system_prompt(model_id: str, users: str | None) -> str | None:
    """The operator's prompt first (it cannot be dropped), then the user's own, if allowed."""
    app = services()
    operators = app.registry.operator_system_prompt(model_id, app.settings.system_prompt)
    if app.settings.lock_system_prompt:
        users = None
    return "\n\n".join(part for part in (operators, users) if part) or None


def _title(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1] + "…"
