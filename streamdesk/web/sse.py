"""Our own event stream on the wire: each typed event of ``streamdesk.chat.events`` as one
server-sent event with its id (``streamdesk/chat/stream_index.py``) and a single line of JSON
as data (JSON escapes CR and LF, so no data line can end early). The page reads it with
``static/sse.js``."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from flask import Response

from ..chat.events import Delta, Done, Event, Failed, Heartbeat, Meta, UsageReport

PING = b": ping\n\n"

STREAM_HEADERS = {
    # no-transform stops proxies from compressing or buffering; X-Accel-Buffering: no is
    # nginx's switch for the same. Without them the reply arrives all at once at the end.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}

# One encoder for every event: json.dumps with options builds a new JSONEncoder per call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring  # the C encoder of one string


def encode(event: str, data: dict, event_id: int) -> bytes:
    """One named event whose data is a single line of JSON."""
    return f"id: {event_id}\nevent: {event}\ndata: {_to_json(data)}\n\n".encode()


def encode_delta(field: str, text: str, event_id: int) -> bytes:
    """``encode("delta", {field: text}, event_id)`` without the dict and the encoder's walk
    over it: this runs once per piece of every reply."""
    return f'id: {event_id}\nevent: delta\ndata: {{"{field}":{_json_string(text)}}}\n\n'.encode()


def encode_event(event_id: int, event: Event) -> bytes:
    if type(event) is Delta:  # the hot path first
        return encode_delta(event.field, event.text, event_id)
    if isinstance(event, Meta):
        return encode("meta", {"conversation_id": event.conversation_id,
                               "user_message_id": event.user_message_id,
                               "message_id": event.message_id, "model": event.model,
                               "omitted_messages": event.omitted_messages}, event_id)
    if isinstance(event, UsageReport):
        return encode("usage", event.usage.as_dict(), event_id)
    if isinstance(event, Failed):
        return encode("error", {"code": event.code, "message": event.message}, event_id)
    if isinstance(event, Done):
        return encode("done", {"finish_reason": event.finish_reason, "status": event.status},
                      event_id)
    raise TypeError(f"not an event: {event!r}")


class EventStream:
    """The WSGI body of a followed reply: each event with its id, heartbeats as comments.
    Closing it (the client left) closes ``events`` at once.

    The events are encoded one by one through ``map``, which the server iterates in C: a
    generator here was one more level in the saved stack of every waiting follower and a
    step per piece (docs/benchmarks.md)."""

    __slots__ = ("_events", "_encoded")

    def __init__(self, events: Iterable[tuple[int, Event] | Heartbeat]):
        self._events = iter(events)
        self._encoded = map(_encode_item, self._events)

    def __iter__(self) -> Iterator[bytes]:
        return self._encoded

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


def _encode_item(item: tuple[int, Event] | Heartbeat) -> bytes:
    if isinstance(item, Heartbeat):
        return PING
    return encode_event(*item)


def stream_response(body: Iterable[bytes]) -> Response:
    """The response that sends ``body``, an event stream already in bytes, as it comes. It
    goes to the server as it is: werkzeug would wrap it in two more iterators (encoding and
    closing), a step each per piece and a level each in the saved stack of every waiting
    reply (docs/benchmarks.md). Closing it still closes ``body``."""
    return Response(body, mimetype="text/event-stream", headers=STREAM_HEADERS,
                    direct_passthrough=True)
