"""The JSON API: models, and the current user's conversations.

Every conversation route goes through the store with the user's id, so another user's id
answers 404 exactly like an id that never existed.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import ApiError
from ..identity import current_user_id
from ..services import services
from ..validation import read_json_object

bp = Blueprint("conversations", __name__, url_prefix="/api")

MAX_TITLE_CHARS = 200


@bp.get("/models")
def models():
    registry = services().registry
    return jsonify({"models": [m.as_dict() for m in registry.models()],
                    "default": registry.default_model})


@bp.get("/conversations")
def list_conversations():
    conversations = services().store.list_conversations(current_user_id())
    return jsonify({"conversations": [c.as_dict() for c in conversations]})


@bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str):
    store, user_id = services().store, current_user_id()
    conversation = store.get_conversation(user_id, conversation_id)
    messages = store.conversation_messages(user_id, conversation_id) if conversation else None
    if conversation is None or messages is None:
        raise _not_found()
    return jsonify({**conversation.as_dict(), "messages": messages})


@bp.patch("/conversations/<conversation_id>")
def rename_conversation(conversation_id: str):
    body = read_json_object(request)
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ApiError(400, "invalid_title", "'title' must be a non-empty string.")
    title = " ".join(title.split())[:MAX_TITLE_CHARS]
    store, user_id = services().store, current_user_id()
    if not store.rename_conversation(user_id, conversation_id, title):
        raise _not_found()
    return jsonify(store.get_conversation(user_id, conversation_id).as_dict())


@bp.delete("/conversations/<conversation_id>")
def delete_conversation(conversation_id: str):
    if not services().store.delete_conversation(current_user_id(), conversation_id):
        raise _not_found()
    return "", 204


def _not_found() -> ApiError:
    return ApiError(404, "conversation_not_found", "No such conversation.")
