"""``POST /chat``: check the request, prepare the turn, start the reply and follow it as SSE.

The reply runs on its own (``streamdesk/chat/replies.py``): this response is only its first
follower. With CANCEL_ON_DISCONNECT the reply stops as soon as this connection closes.
"""
from __future__ import annotations

from flask import Blueprint, request

from ...chat.observer import ReplyObserver
from ...chat.turn import OperatorRules, prepare_turn
from ...logs import hash_user
from ..disconnect import stop_when_gone
from ..identity import current_user_id
from ..limits import limit_messages, within_budget
from ..requests_log import current_request_id
from ..services import services
from ..sse import EventStream, stream_response
from ..validation import parse_turn_request, read_json_object, refuse_locked_system

bp = Blueprint("chat", __name__)


@bp.post("/chat")
@limit_messages
@within_budget
def chat():
    app = services()
    settings = app.settings
    ask = parse_turn_request(read_json_object(request), settings.max_message_chars)
    refuse_locked_system(ask.settings or {}, settings.lock_system_prompt)
    user_id = current_user_id()  # sets the session cookie now: never inside the generator
    turn = prepare_turn(ask, user_id, store=app.store, registry=app.registry,
                        rules=OperatorRules(settings.system_prompt, settings.lock_system_prompt,
                                            settings.max_streams_per_user))
    observer = ReplyObserver(
        provider=turn.provider.name, model_id=turn.meta.model, request_id=current_request_id(),
        user=hash_user(user_id, settings.secret_key), user_id=user_id,
        message_id=turn.meta.message_id, prompt=ask.message if settings.log_content else None)
    live = app.replies.start(turn, observer)
    body = EventStream(app.replies.follow_live(user_id, live))
    if settings.cancel_on_disconnect:
        # gunicorn's gevent worker names the client's socket so; other servers do not.
        body = stop_when_gone(body, request.environ.get("gunicorn.socket"),
                              lambda: app.replies.stop(user_id, live.message_id))
    return stream_response(body)
