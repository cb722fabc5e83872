"""The API's JSON for the store's records: one place that decides what a client sees."""
from __future__ import annotations

from datetime import datetime

from ..store import Conversation, StoredMessage
from ..store.records import utc


def iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


def conversation_json(conversation: Conversation, *, settings: bool = False) -> dict:
    data: dict[str, object] = {"id": conversation.id, "title": conversation.title,
                               "model": conversation.model,
                               "updated_at": iso(conversation.updated_at)}
    if settings:
        data["settings"] = conversation.settings
    return data


def message_json(message: StoredMessage) -> dict:
    data: dict = {"id": message.id, "role": message.role, "content": message.content,
                  "status": message.status}
    if message.role == "assistant":
        data.update(model=message.model, reasoning=message.reasoning,
                    finish_reason=message.finish_reason)
        if message.error_code:
            data["error"] = {"code": message.error_code, "message": message.error_message or ""}
        if message.completion_tokens is not None:
            data["usage"] = {"prompt_tokens": message.prompt_tokens,
                             "completion_tokens": message.completion_tokens,
                             "total_tokens": (message.prompt_tokens or 0)
                             + message.completion_tokens}
    return data
