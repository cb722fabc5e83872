"""Reading and checking the body of ``POST /chat`` before anything is streamed."""
from __future__ import annotations

import json

import gevent
from flask import Request
from werkzeug.routing import BaseConverter

from ..chat.model_text import UNSTORABLE
from ..chat.turn import TurnRequest
from .errors import ApiError
from .services import services

MAX_TOKENS_LIMIT = 131_072
TEMPERATURE_RANGE = (0.0, 2.0)
ID_LENGTH = 32


class RecordId(BaseConverter):
    """A conversation or message id in a URL (``<id:...>``): up to 128 characters, none that a
    database refuses. Any other path is not found, as an unknown id is."""
    regex = f"[^/\x00\ud800-\udfff]{{1,{ID_LENGTH * 4}}}"


def read_json_object(request: Request) -> dict:
    """The body as a JSON object, or the right 4xx: 415 not JSON, 413 too large, 408 too slow
    (not whole within BODY_TIMEOUT_SECONDS: a client trickling it would hold its connection
    for ever; headers are bounded by gunicorn's keepalive), 400 bad JSON."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    raw = None
    with gevent.Timeout(services().settings.body_timeout_seconds, False):
        raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if raw is None:
        raise ApiError(408, "body_too_slow", "The request body did not arrive in time.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ApiError(400, "bad_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    return body


def parse_turn_request(body: dict, max_message_chars: int) -> TurnRequest:
    message = body.get("message")
    if not isinstance(message, str):
        raise ApiError(400, "invalid_message", "'message' must be a string.")
    check_storable(message, "message")
    if not message.strip():
        raise ApiError(400, "empty_message", "The message is empty.")
    if len(message) > max_message_chars:
        raise ApiError(400, "message_too_long",
                       f"The message is longer than {max_message_chars} characters.")
    return TurnRequest(
        message=message,
        conversation_id=_optional_id(body, "conversation_id"),
        edit_message_id=_optional_id(body, "edit_message_id"),
        model=_optional_string(body, "model", 200),
        settings=parse_settings(body, max_message_chars),
    )


def parse_settings(body: dict, max_system_chars: int) -> dict:
    """The per-conversation settings present in ``body``, checked."""
    readers = {"system": lambda: _optional_string(body, "system", max_system_chars),
               "temperature": lambda: _optional_temperature(body),
               "max_tokens": lambda: _optional_max_tokens(body)}
    return {field: read() for field, read in readers.items() if field in body}


def refuse_locked_system(settings: dict, locked: bool) -> None:
    """With LOCK_SYSTEM_PROMPT the operator's prompt is the only one: say so, don't ignore."""
    if locked and settings.get("system"):
        raise ApiError(400, "system_prompt_locked",
                       "The system prompt is set by the operator and cannot be changed.")


def _optional_string(body: dict, field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"invalid_{field}", f"'{field}' must be a string.")
    if len(value) > limit:
        raise ApiError(400, f"invalid_{field}", f"'{field}' is longer than {limit} characters.")
    check_storable(value, field)
    return value


def check_storable(text: str, field: str) -> None:
    if UNSTORABLE.search(text):  # JSON carries them as \u0000 and \uD800 escapes
        raise ApiError(400, f"invalid_{field}", f"'{field}' contains a character that cannot be "
                       "kept (U+0000, or half of a surrogate pair).")


def _optional_id(body: dict, field: str) -> str | None:
    value = _optional_string(body, field, ID_LENGTH * 4)
    return value or None


def _optional_temperature(body: dict) -> float | None:
    return checked_temperature(body.get("temperature"), "temperature")


def _optional_max_tokens(body: dict) -> int | None:
    return checked_max_tokens(body.get("max_tokens"), "max_tokens")


def checked_temperature(value, field: str) -> float | None:
    """A temperature from 0 to 2, or None when absent; 400 ``invalid_<field>`` otherwise."""
    if value is None:
        return None
    low, high = TEMPERATURE_RANGE
    # Compared, never converted first: float() of a 400-digit integer raises. NaN and the
    # infinities fail the comparison.
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not low <= value <= high:
        raise ApiError(400, f"invalid_{field}",
                       f"'{field}' must be a number from {low:g} to {high:g}.")
    return float(value)


def checked_max_tokens(value, field: str) -> int | None:
    """A whole number of tokens from 1 to MAX_TOKENS_LIMIT, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ApiError(400, f"invalid_{field}",
                       f"'{field}' must be a whole number from 1 to {MAX_TOKENS_LIMIT}.")
    return value
