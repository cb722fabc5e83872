"""``POST /chat``: check the request, prepare the turn, stream the reply as SSE."""
from __future__ import annotations

from flask import Blueprint, Response, request

from ...chat.observer import ReplyObserver
from ...chat.relay import relay_reply
from ...chat.turn import OperatorRules, prepare_turn
from ...logs import hash_user
from ..identity import current_user_id
from ..limits import cap_streams, limit_messages
from ..requests_log import current_request_id
from ..services import services
from ..sse import event_stream
from ..validation import parse_turn_request, read_json_object, refuse_locked_system

bp = Blueprint("chat", __name__)

STREAM_HEADERS = {
    # no-transform stops proxies from compressing or buffering; X-Accel-Buffering: no is
    # nginx's switch for the same. Without them the reply arrives all at once at the end.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


@bp.post("/chat")
@limit_messages
@cap_streams
def chat():
    app = services()
    ask = parse_turn_request(read_json_object(request), app.settings.max_message_chars)
    refuse_locked_system(ask.settings or {}, app.settings.lock_system_prompt)
    user_id = current_user_id()  # sets the session cookie now: never inside the generator
    turn = prepare_turn(ask, user_id, store=app.store, registry=app.registry,
                        rules=OperatorRules(app.settings.system_prompt,
                                            app.settings.lock_system_prompt))
    observer = ReplyObserver(
        provider=turn.provider.name, model_id=turn.reply.model_id,
        request_id=current_request_id(), user=hash_user(user_id, app.settings.secret_key),
        message_id=turn.reply.message_id,
        prompt=ask.message if app.settings.log_content else None)
    events = relay_reply(turn.provider, turn.request, turn.reply, app.store, observer,
                         heartbeat_seconds=app.settings.heartbeat_seconds,
                         save_interval=app.settings.save_interval_seconds)
    return Response(event_stream(events), mimetype="text/event-stream", headers=STREAM_HEADERS)
