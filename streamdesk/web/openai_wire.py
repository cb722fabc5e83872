"""OpenAI's chat completion format on the wire: a reply's typed events (``chat/events.py``)
as one ``chat.completion`` object, or as ``chat.completion.chunk`` server-sent events ending
with ``data: [DONE]``, as OpenAI's servers and SDKs write and read them.

Thinking models' reasoning goes in ``reasoning_content`` (DeepSeek's field, which OpenAI-
compatible clients read). A failure after the first chunk ends the stream with an
``{"error": {...}}`` event and no ``[DONE]``, as OpenAI's servers end a failed stream; the
SDKs raise it. A heartbeat is the page's comment line (``sse.PING``), which the SDKs skip.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator

from providers import Usage

from ..chat.events import Delta, Done, Failed, Heartbeat, UsageReport
from ..store.tables import new_id
from .sse import PING

_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring
_FIELD = {"text": "content", "reasoning": "reasoning_content"}

ApiEvent = Delta | UsageReport | Failed | Done | Heartbeat


def finish_reason(done: Done) -> str:
    """OpenAI's: ``length`` when the reply was cut at its size, else ``stop``."""
    return "length" if done.finish_reason == "length" else "stop"


def usage_json(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def error_json(failure: Failed, kind: str = "server_error") -> dict:
    return {"error": {"message": failure.message, "type": kind, "param": None,
                      "code": failure.code}}


class Completion:
    """The id, time and model every object of one completion carries."""

    def __init__(self, model: str):
        self.id = "chatcmpl-" + new_id()
        self.created = int(time.time())
        self.model = model
        # Every chunk starts alike: built once, not per piece.
        self._head = (f'data: {{"id":"{self.id}","object":"chat.completion.chunk",'
                      f'"created":{self.created},"model":{_json_string(model)},'
                      f'"system_fingerprint":null,"choices":[')

    def whole(self, events: Iterable[ApiEvent]) -> dict:
        """The ``chat.completion`` object of a reply that did not fail."""
        text: list[str] = []
        reasoning: list[str] = []
        usage, done = None, None
        for event in events:
            if type(event) is Delta:
                (text if event.field == "text" else reasoning).append(event.text)
            elif isinstance(event, UsageReport):
                usage = event.usage
            elif isinstance(event, Done):
                done = event
        message: dict = {"role": "assistant", "content": "".join(text)}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        answer: dict = {"id": self.id, "object": "chat.completion", "created": self.created,
                        "model": self.model, "system_fingerprint": None,
                        "choices": [{"index": 0, "message": message, "logprobs": None,
                                     "finish_reason": finish_reason(done) if done else "stop"}]}
        if usage is not None:
            answer["usage"] = usage_json(usage)
        return answer

    def stream(self, events: Iterable[ApiEvent], include_usage: bool) -> Iterator[bytes]:
        """The SSE body: a first chunk with the role, one per piece, one with the finish
        reason, the usage chunk when asked for, then ``[DONE]``; or an error event. A comment
        line for each heartbeat, wherever it comes."""
        tail = ',"usage":null}\n\n' if include_usage else "}\n\n"
        yield self._chunk('{"role":"assistant","content":""}', "null", tail)
        usage = None
        for event in events:
            if type(event) is Delta:  # the hot path first
                field = _FIELD[event.field]
                yield self._chunk(f'{{"{field}":{_json_string(event.text)}}}', "null", tail)
            elif type(event) is Heartbeat:
                yield PING
            elif isinstance(event, UsageReport):
                usage = event.usage
            elif isinstance(event, Failed):
                yield f"data: {_to_json(error_json(event))}\n\n".encode()
                return
            elif isinstance(event, Done):
                yield self._chunk("{}", f'"{finish_reason(event)}"', tail)
        if include_usage and usage is not None:
            yield (f'{self._head}],"usage":{_to_json(usage_json(usage))}}}\n\n').encode()
        yield b"data: [DONE]\n\n"

    def _chunk(self, delta: str, reason: str, tail: str) -> bytes:
        return (f'{self._head}{{"index":0,"delta":{delta},"logprobs":null,'
                f'"finish_reason":{reason}}}]{tail}').encode()
