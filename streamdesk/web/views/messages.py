"""A reply on its own: follow it from any tab, device or instance, stop it, rate it.

``GET /api/messages/<id>/events`` sends the reply's events after the one named by
``Last-Event-ID`` (or ``?after=``, for clients that cannot set headers), then follows it live
until ``done``; an ended reply is replayed from storage. ``POST /api/messages/<id>/stop`` ends
it wherever it is being written and answers its final status. ``PUT
/api/messages/<id>/feedback`` rates a finished reply (👍/👎, with an optional comment). All
three are the owner's only: anyone else's id answers 404 like one that never existed. A user
follows at most MAX_FOLLOWERS_PER_USER replies at once on each worker (``followers.py``) and
sends at most STOP_RATE_LIMIT stops (``limits.py``).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ... import metrics
from ...store import Feedback, NotAReply, ReplyInProgress
from ..disconnect import end_when_gone
from ..errors import ApiError
from ..followers import followers
from ..identity import owner_or
from ..limits import limit_stops
from ..serialize import feedback_json
from ..services import services
from ..sse import EventStream, stream_response
from ..validation import check_storable, read_json_object

bp = Blueprint("messages", __name__, url_prefix="/api/messages")

RATINGS = ("up", "down")
MAX_COMMENT = 1000
MAX_EVENT_ID = 2**53  # ids are positions in a reply: anything larger is not one of ours


@bp.get("/<id:message_id>/events")
def follow(message_id: str):
    user_id = owner_or(_not_found())
    events = services().replies.follow(user_id, message_id, _after())
    if events is None:
        raise _not_found()
    # A follower whose client leaves ends at once, even while the model is silent (gunicorn's
    # gevent worker names the client's socket so). Otherwise it would keep its greenlet and its
    # place until a write failed, two heartbeats later: a page reloaded a few times would find
    # no place left.
    body = end_when_gone(EventStream(events), request.environ.get("gunicorn.socket"))
    return stream_response(followers().admit(user_id, body))


@bp.post("/<id:message_id>/stop")
@limit_stops
def stop(message_id: str):
    read_json_object(request)  # like every state change: JSON only, so no plain form can post it
    reply = services().replies.stop(owner_or(_not_found()), message_id)
    if reply is None:
        raise _not_found()
    return jsonify({"id": reply.id, "status": reply.status})


@bp.put("/<id:message_id>/feedback")
def feedback(message_id: str):
    """The user's rating of a reply: ``{"rating": "up" | "down" | null, "comment"?: str}``;
    null clears it (and its comment). Counted in ``streamdesk_feedback_total``."""
    given = _feedback(read_json_object(request))
    try:
        message = services().store.set_feedback(owner_or(_not_found()), message_id, given)
    except NotAReply:
        raise ApiError(400, "not_a_reply", "Only the assistant's replies can be rated.") from None
    except ReplyInProgress:
        raise ApiError(409, "reply_in_progress",
                       "This reply is still being written: rate it once it is done.") from None
    if message is None:
        raise _not_found()
    if given is not None:
        model = message.model or "unknown"
        metrics.FEEDBACK.labels(model.split("/", 1)[0], model, given.rating).inc()
    return jsonify(feedback_json(message.feedback) or {"rating": None, "comment": None})


def _feedback(body: dict) -> Feedback | None:
    rating, comment = body.get("rating"), body.get("comment")
    if rating is not None and rating not in RATINGS:
        raise ApiError(400, "invalid_rating", "'rating' must be \"up\", \"down\" or null.")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise ApiError(400, "invalid_comment",
                       f"'comment' must be text of at most {MAX_COMMENT} characters.")
    if comment is not None:
        check_storable(comment, "comment")
    if rating is None:
        return None
    return Feedback(rating, comment.strip() or None if comment else None)


def _after() -> int:
    """The last event id the client has: the header wins, as the SSE spec has it."""
    raw = request.headers.get("Last-Event-ID", request.args.get("after", "0")).strip() or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_EVENT_ID:
        raise ApiError(400, "invalid_event_id",
                       "Last-Event-ID (or 'after') must be an event id of this reply.")
    return int(raw)



def _not_found() -> ApiError:
    return ApiError(404, "message_not_found", "No such reply.")
