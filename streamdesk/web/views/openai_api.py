"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Who may call: the holder of a personal API key (``Authorization: Bearer sd-...``), acting as
the user who made it; cookies are not read here (``policies.api_key_only``). Registered only
while API_KEYS is on. Every configured model is offered under the ids the page shows, with
the page's rules: the operator's system prompt, RATE_LIMIT and the stream cap (counted with
the page's messages), MAX_REPLY_CHARS and MAX_REPLY_SECONDS. Calls are not conversations: they
are not kept, and are counted in the metrics and the reply log (``"via": "api"``).

An upstream failure before the first piece is an HTTP error with the status OpenAI clients
expect; after it, an error event ends the stream (``openai_wire.py``). A stream gets the
page's heartbeats while the model is silent, also before its first piece: a stream whose model
says nothing for HEARTBEAT_SECONDS begins (200) with a heartbeat, and a later failure is an
error event. A caller that closes its connection stops the upstream at once, even while it is
silent and whether or not it asked for a stream: its socket is watched from before the first
piece (``disconnect.py``).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator

from flask import Blueprint, Response, jsonify, request

from ...chat.api_turn import CALLER_LEFT, ApiEvent, ApiReply, prepare_api_turn
from ...chat.events import HEARTBEAT, Failed, Heartbeat
from ...chat.observer import ReplyObserver
from ...chat.turn import STREAM_CAP_RETRY_SECONDS, OperatorRules, TurnRefused
from ...logs import hash_user
from ...store import StreamCapReached
from ...store.tables import new_id
from ..disconnect import ClientWatch
from ..errors import ApiError
from ..identity import current_user_id
from ..limits import limit_messages, within_budget
from ..openai_input import parse_completion_request
from ..openai_wire import Completion
from ..policies import api_key_only
from ..requests_log import current_request_id
from ..services import services
from ..sse import PING, STREAM_HEADERS
from ..validation import read_json_object, refuse_locked_system

bp = Blueprint("openai_api", __name__, url_prefix="/v1")

# The status of an upstream failure before the first piece, by our error code; others 502.
_STATUS_BEFORE_FIRST_PIECE = {"rate_limited": 429, "upstream_unavailable": 503, "timeout": 504,
                              "bad_request": 400, "context_length": 400,
                              "content_refused": 400}


@bp.get("/models")
@api_key_only
def list_models():
    return jsonify({"object": "list", "data": [
        {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}
        for model in services().registry.models()]})


@bp.post("/chat/completions")
@api_key_only
@limit_messages
@within_budget
def chat_completions():
    app = services()
    settings = app.settings
    asked = parse_completion_request(read_json_object(request), settings.max_message_chars)
    refuse_locked_system({"system": asked.turn.system}, settings.lock_system_prompt)
    user_id = current_user_id()
    try:
        turn = prepare_api_turn(asked.turn, registry=app.registry, rules=OperatorRules(
            settings.system_prompt, settings.lock_system_prompt))
    except TurnRefused as refusal:  # the only refusal: a model that is not configured
        raise ApiError(404, "model_not_found", refusal.message) from None
    reply_id = new_id()
    try:
        app.store.start_api_reply(user_id, reply_id, settings.max_streams_per_user)
    except StreamCapReached:
        raise ApiError(429, "too_many_streams",
                       f"You already have {settings.max_streams_per_user} replies being "
                       "written. Wait for one to finish.",
                       retry_after=STREAM_CAP_RETRY_SECONDS) from None
    reply = ApiReply(turn, reply_id, app.store, ReplyObserver(
        provider=turn.provider.name, model_id=turn.model_id, request_id=current_request_id(),
        user=hash_user(user_id, settings.secret_key), user_id=user_id, message_id=reply_id,
        via="api", prompt=asked.turn.messages[-1].content if settings.log_content else None),
        max_chars=settings.max_reply_chars, time_limit_seconds=settings.max_reply_seconds,
        heartbeat_seconds=settings.heartbeat_seconds if asked.stream else None)
    # gunicorn's gevent worker names the client's socket so; other servers do not.
    watch = ClientWatch(request.environ.get("gunicorn.socket"), reply.client_gone)
    try:
        response = _answer(reply, asked.stream, asked.include_usage)
    except BaseException:
        watch.close()
        raise

    def closed():  # sent, or given up (a write failed): a reply still written lost its caller
        watch.close()
        reply.client_gone()

    response.call_on_close(closed)
    return response


def _answer(reply: ApiReply, stream: bool, include_usage: bool) -> Response:
    events = reply.events()
    completion = Completion(reply.turn.model_id)
    if not stream:  # nothing is sent before the end: any failure is an HTTP error
        collected = list(events)
        if reply.cancelled:
            raise _caller_left()
        failure = next((event for event in collected if isinstance(event, Failed)), None)
        if failure is not None:
            raise _failed_before_first_piece(failure)
        return jsonify(completion.whole(collected))
    # The upstream's first piece, or its failure; None while the model is still silent.
    first = reply.first_event(events)
    if first is CALLER_LEFT:
        raise _caller_left()
    if isinstance(first, Failed):
        events.close()
        raise _failed_before_first_piece(first)
    response = _WritableResponse(mimetype="text/event-stream", headers=STREAM_HEADERS)
    # The rest straight from the reply, as before heartbeats: nothing more per piece.
    response.response = completion.stream(
        itertools.chain(_beginning(reply, events, first, response), events), include_usage)
    return response


def _beginning(reply: ApiReply, events: Generator[ApiEvent, None, None],
               first: ApiEvent | None, response: _WritableResponse
               ) -> Iterator[ApiEvent | Heartbeat]:
    """The reply's first event, after a heartbeat for each silence before it."""
    while first is None:
        yield HEARTBEAT
        first = reply.first_event(events)
    if first is CALLER_LEFT:
        return
    write = response.write  # the headers and the role's chunk are out
    if write is not None:
        reply.keep_alive(lambda: write(PING))
    yield first


class _WritableResponse(Response):
    """A response that may be written to between two parts of its body too (heartbeats), with
    the ``write`` callable WSGI's ``start_response`` returns."""

    write: Callable[[bytes], object] | None = None

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            self.write = start_response(status, headers, exc_info)
            return self.write
        return super().__call__(environ, start)


def _caller_left() -> ApiError:
    """Nobody reads it: what the request's log line and metrics say (nginx's 499, "client
    closed request")."""
    return ApiError(499, "cancelled", "The caller closed the connection.")


def _failed_before_first_piece(failure: Failed) -> ApiError:
    """The HTTP error for a failure before anything was sent."""
    status = _STATUS_BEFORE_FIRST_PIECE.get(failure.code, 502)
    retry_after = STREAM_CAP_RETRY_SECONDS if status in (429, 503) else None
    return ApiError(status, failure.code, failure.message, retry_after=retry_after)
