"""A reply on its own: follow it from any tab, device or instance, and stop it.

``GET /api/messages/<id>/events`` sends the reply's events after the one named by
``Last-Event-ID`` (or ``?after=``, for clients that cannot set headers), then follows it live
until ``done``; an ended reply is replayed from storage. ``POST /api/messages/<id>/stop`` ends
it wherever it is being written and answers its final status. Both are the owner's only:
anyone else's id answers 404 like one that never existed.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..errors import ApiError
from ..identity import owner_or
from ..services import services
from ..sse import event_stream
from ..validation import read_json_object
from .chat import STREAM_HEADERS

bp = Blueprint("messages", __name__, url_prefix="/api/messages")

MAX_EVENT_ID = 2**53  # ids are positions in a reply: anything larger is not one of ours


@bp.get("/<id:message_id>/events")
def follow(message_id: str):
    events = services().replies.follow(owner_or(_not_found()), message_id, _after())
    if events is None:
        raise _not_found()
    return Response(event_stream(events), mimetype="text/event-stream", headers=STREAM_HEADERS)


@bp.post("/<id:message_id>/stop")
def stop(message_id: str):
    read_json_object(request)  # like every state change: JSON only, so no plain form can post it
    reply = services().replies.stop(owner_or(_not_found()), message_id)
    if reply is None:
        raise _not_found()
    return jsonify({"id": reply.id, "status": reply.status})


def _after() -> int:
    """The last event id the client has: the header wins, as the SSE spec has it."""
    raw = request.headers.get("Last-Event-ID", request.args.get("after", "0")).strip() or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_EVENT_ID:
        raise ApiError(400, "invalid_event_id",
                       "Last-Event-ID (or 'after') must be an event id of this reply.")
    return int(raw)



def _not_found() -> ApiError:
    return ApiError(404, "message_not_found", "No such reply.")
