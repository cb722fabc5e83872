"""Reading and checking the body of ``POST /v1/chat/completions``.

What the models behind StreamDesk can do is accepted; what they cannot (tools, images, audio,
several choices, log probabilities, forced JSON) is refused with a 400 that says so, rather
than silently ignored; any other field is ignored, as OpenAI-compatible servers do.
"""
from __future__ import annotations

from dataclasses import dataclass

from providers import Message

from ..chat.api_turn import ApiTurnRequest
from .errors import ApiError
from .validation import check_storable, checked_max_tokens, checked_temperature

MAX_MESSAGES = 1000
_SYSTEM_ROLES = {"system", "developer"}  # "developer" is OpenAI's newer name for it
_UNSUPPORTED = {  # field -> what the caller is told
    "tools": "tools (function calling)", "functions": "function calling",
    "logprobs": "log probabilities", "top_logprobs": "log probabilities",
    "audio": "audio output", "prediction": "predicted outputs",
}


@dataclass(frozen=True)
class CompletionRequest:
    turn: ApiTurnRequest
    stream: bool
    include_usage: bool  # stream_options.include_usage


def parse_completion_request(body: dict, max_message_chars: int) -> CompletionRequest:
    _refuse_what_no_model_here_does(body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model", "'model' must be one of the ids GET /v1/models lists.")
    check_storable(model, "model")
    system, turns = _messages(body.get("messages"), max_message_chars)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _invalid("stream", "'stream' must be true or false.")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _invalid("stream_options", "'stream_options' must be an object.")
    include_usage = options.get("include_usage") or False
    if not isinstance(include_usage, bool):
        raise _invalid("stream_options", "'stream_options.include_usage' must be true or false.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("user", "'user' must be a string.")
    return CompletionRequest(ApiTurnRequest(
        model=model, messages=tuple(turns), system=system,
        temperature=checked_temperature(body.get("temperature"), "temperature"),
        max_tokens=_max_tokens(body)), stream, include_usage)


def _refuse_what_no_model_here_does(body: dict) -> None:
    for field, what in _UNSUPPORTED.items():
        if body.get(field):
            raise _unsupported(field, f"This server does not offer {what}.")
    if body.get("tool_choice") not in (None, "none"):
        raise _unsupported("tool_choice", "This server does not offer tools (function calling).")
    n = body.get("n")
    if n is not None and n != 1:
        raise _unsupported("n", "This server writes one choice per request: 'n' must be 1.")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise _unsupported("response_format", "This server does not force a response format; "
                           "only {\"type\": \"text\"} is accepted.")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise _unsupported("modalities", "This server writes text only.")


def _messages(value, max_chars: int) -> tuple[str | None, list[Message]]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages", "'messages' must be a non-empty list.")
    if len(value) > MAX_MESSAGES:
        raise _invalid("messages", f"'messages' holds more than {MAX_MESSAGES} messages.")
    system: list[str] = []
    turns: list[Message] = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid("messages", f"{where} must be an object.")
        role = message.get("role")
        if not isinstance(role, str):
            raise _invalid("messages", f"{where}.role must be system, user or assistant.")
        if role in ("tool", "function") or message.get("tool_calls"):
            raise _unsupported("messages", f"{where}: this server does not offer tools.")
        if role not in _SYSTEM_ROLES and role not in ("user", "assistant"):
            raise _invalid("messages", f"{where}.role must be system, user or assistant.")
        text = _content(message.get("content"), where, max_chars)
        if role in _SYSTEM_ROLES:
            system.append(text)
        else:
            turns.append(Message(role, text))
    if not any(turn.role == "user" and turn.content.strip() for turn in turns):
        raise _invalid("messages", "'messages' holds no user message to answer.")
    return "\n\n".join(part for part in system if part) or None, turns


def _content(content, where: str, max_chars: int) -> str:
    """A message's text: a string, or a list of text parts (joined)."""
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind != "text":
                    raise _unsupported("messages", f"{where}: this server takes text only, "
                                       f"not {kind[:40]!r} parts.")
                raise _invalid("messages", f"{where}.content parts must be "
                               "{\"type\": \"text\", \"text\": ...}.")
            if not isinstance(part.get("text"), str):
                raise _invalid("messages", f"{where}.content: a text part needs 'text'.")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise _invalid("messages", f"{where}.content must be a string or a list of text parts.")
    if len(content) > max_chars:
        raise _invalid("messages", f"{where}.content is longer than {max_chars} characters.")
    check_storable(content, "messages")
    return content


def _max_tokens(body: dict) -> int | None:
    """``max_completion_tokens`` (OpenAI's newer name) or ``max_tokens``."""
    for field in ("max_completion_tokens", "max_tokens"):
        if body.get(field) is not None:
            return checked_max_tokens(body[field], field)
    return None


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"invalid_{field}", message)


def _unsupported(field: str, message: str) -> ApiError:
    return ApiError(400, "unsupported_parameter", f"{message} ('{field}')")
