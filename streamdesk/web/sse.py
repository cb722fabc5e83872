"""Our own event stream on the wire: each typed event of ``streamdesk.chat.events`` as one
server-sent event whose data is a single line of JSON (JSON escapes CR and LF, so no data line
can end early). The page reads it with ``static/sse.js``."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from ..chat.events import Delta, Done, Event, Failed, Heartbeat, Meta, UsageReport

PING = b": ping\n\n"

# One encoder for every event: json.dumps with options builds a new JSONEncoder per call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring  # the C encoder of one string


def encode(event: str, data: dict) -> bytes:
    """One named event whose data is a single line of JSON."""
    return f"event: {event}\ndata: {_to_json(data)}\n\n".encode()


def encode_delta(field: str, text: str) -> bytes:
    """``encode("delta", {field: text})`` without the dict and the encoder's walk over it:
    this runs once per piece of every reply."""
    return f'event: delta\ndata: {{"{field}":{_json_string(text)}}}\n\n'.encode()


def encode_event(event: Event) -> bytes:
    if type(event) is Delta:  # the hot path first
        return encode_delta(event.field, event.text)
    if isinstance(event, Heartbeat):
        return PING
    if isinstance(event, Meta):
        return encode("meta", {"conversation_id": event.conversation_id,
                               "user_message_id": event.user_message_id,
                               "message_id": event.message_id, "model": event.model,
                               "omitted_messages": event.omitted_messages})
    if isinstance(event, UsageReport):
        return encode("usage", event.usage.as_dict())
    if isinstance(event, Failed):
        return encode("error", {"code": event.code, "message": event.message})
    if isinstance(event, Done):
        return encode("done", {"finish_reason": event.finish_reason, "status": event.status})
    raise TypeError(f"not an event: {event!r}")


def event_stream(events: Iterable[Event]) -> Iterator[bytes]:
    """The WSGI body of a reply. Closing it (the client left) closes ``events`` at once."""
    iterator = iter(events)
    try:
        for event in iterator:
            yield encode_event(event)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
