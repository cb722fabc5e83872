"""The JSON API: models, and the current user's conversations.

Every conversation route goes through the store with the user's id, so another user's id
answers 404 exactly like an id that never existed.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import ApiError
from ..identity import known_user_id, owner_or
from ..serialize import conversation_json, message_json, model_json
from ..services import services
from ..validation import check_storable, parse_settings, read_json_object, refuse_locked_system

bp = Blueprint("conversations", __name__, url_prefix="/api")

MAX_TITLE_CHARS = 200


@bp.get("/models")
def models():
    """The models, each with what an empty chat shows: its own greeting and starters, or
    GREETING and STARTERS for models without any."""
    app = services()
    registry, settings = app.registry, app.settings
    return jsonify({"models": [model_json(m, settings.greeting, settings.starters)
                               for m in registry.models()],
                    "default": registry.default_model})


@bp.get("/conversations")
def list_conversations():
    user_id = known_user_id()
    conversations = services().store.list_conversations(user_id) if user_id else []
    return jsonify({"conversations": [conversation_json(c) for c in conversations]})


@bp.get("/conversations/<id:conversation_id>")
def get_conversation(conversation_id: str):
    store, user_id = services().store, owner_or(_not_found())
    conversation = store.get_conversation(user_id, conversation_id)
    messages = store.conversation_messages(user_id, conversation_id) if conversation else None
    if conversation is None or messages is None:
        raise _not_found()
    return jsonify({**conversation_json(conversation, settings=True),
                    "messages": [message_json(m) for m in messages]})


@bp.patch("/conversations/<id:conversation_id>")
def update_conversation(conversation_id: str):
    """Rename, and/or change the per-conversation settings (``{"settings": {...}}``)."""
    app, user_id = services(), owner_or(_not_found())
    body = read_json_object(request)
    title = body.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise ApiError(400, "invalid_title", "'title' must be a non-empty string.")
    if title is not None:
        check_storable(title, "title")
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise ApiError(400, "invalid_settings", "'settings' must be an object.")
    settings = parse_settings(settings, app.settings.max_message_chars)
    refuse_locked_system(settings, app.settings.lock_system_prompt)
    if title is not None:
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
    if not app.store.update_conversation(user_id, conversation_id, title=title, settings=settings):
        raise _not_found()
    conversation = app.store.get_conversation(user_id, conversation_id)
    if conversation is None:  # deleted in another tab meanwhile
        raise _not_found()
    return jsonify(conversation_json(conversation, settings=True))


@bp.delete("/conversations/<id:conversation_id>")
def delete_conversation(conversation_id: str):
    if not services().store.delete_conversation(owner_or(_not_found()), conversation_id):
        raise _not_found()
    return "", 204


def _not_found() -> ApiError:
    return ApiError(404, "conversation_not_found", "No such conversation.")

