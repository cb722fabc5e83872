"""The API's JSON for the store's records: one place that decides what a client sees."""
from __future__ import annotations

from datetime import datetime

from providers import ModelInfo

from ..store import Conversation, Feedback, StoredMessage
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
                    finish_reason=message.finish_reason, feedback=feedback_json(message.feedback))
        if message.error_code:
            data["error"] = {"code": message.error_code, "message": message.error_message or ""}
        if message.completion_tokens is not None:
            data["usage"] = {"prompt_tokens": message.prompt_tokens,
                             "completion_tokens": message.completion_tokens,
                             "total_tokens": (message.prompt_tokens or 0)
                             + message.completion_tokens}
    return data


def model_json(model: ModelInfo, greeting: str | None, starters: tuple[str, ...]) -> dict:
    """A model for the page; ``greeting`` and ``starters`` stand in for its own when it has
    neither (GREETING, STARTERS)."""
    data = model.as_dict()
    if not model.greeting and not model.starters:
        data.update(greeting=greeting, starters=list(starters))
    return data


def feedback_json(feedback: Feedback | None) -> dict | None:
    return {"rating": feedback.rating, "comment": feedback.comment} if feedback else None
