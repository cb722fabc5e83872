"""One reply, from provider chunks to our event stream, saved as it grows.

This generator is the per-chunk hot path: per piece it appends to a list, encodes one event
and marks the reply as grown; ``progress.ProgressSaver`` writes every grown reply of the
worker once per ``save_interval``.

Event order: ``meta`` first, then ``delta``/``usage`` as they come, ``error`` if anything fails,
``done`` last on every path the browser can still hear. When the browser has gone (the server
closes this generator), the partial reply is saved as ``cancelled`` *before* the upstream is
closed, so anyone who sees the upstream connection drop can already read the saved state.
When the server itself stops (``streamdesk.lifecycle``), the reply is saved as ``interrupted``
and the browser is told so while it still can.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

from gevent import GreenletExit

from providers import ChatRequest, Provider, ProviderError

from . import lifecycle, sse
from .observer import ReplyObserver
from .progress import ProgressSaver
from .pump import HEARTBEAT, with_heartbeats
from .storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """Everything the relay needs, as plain values: it runs after the view has returned,
    outside the request context."""

    conversation_id: str
    message_id: str
    model_id: str
    omitted_messages: int = 0


SERVER_STOPPING = {"code": "server_stopping",
                   "message": "The server restarted while writing this reply. Retry to continue."}


def relay_reply(provider: Provider, request: ChatRequest, turn: Turn, store: Store,
                observer: ReplyObserver, *, heartbeat_seconds: float,
                save_interval: float) -> Iterator[bytes]:
    observer.started()
    reply_greenlet = lifecycle.track_current_reply()
    text: list[str] = []
    reasoning: list[str] = []
    usage = None
    finish_reason = None
    error = None
    status = "cancelled"  # what stands if the browser leaves before we know better
    chunks = with_heartbeats(provider.stream(request), heartbeat_seconds)
    saver = ProgressSaver.for_store(store, save_interval) if save_interval > 0 else None

    def save_progress():
        if saver is None:  # SAVE_INTERVAL_SECONDS=0: every piece, at once
            store.save_progress(turn.message_id, "".join(text), "".join(reasoning))
        else:
            saver.grew(turn.message_id, text, reasoning)

    awaiting_first_token = True
    try:
        # Inside the try: a browser gone right after the headers still gets its turn saved.
        yield sse.encode("meta", {"conversation_id": turn.conversation_id,
                                  "message_id": turn.message_id, "model": turn.model_id,
                                  "omitted_messages": turn.omitted_messages})
        for chunk in chunks:
            if chunk is HEARTBEAT:
                yield sse.PING
                save_progress()  # touches the row while the model is silent: not abandoned
                continue
            if awaiting_first_token and (chunk.text or chunk.reasoning):
                observer.first_token()
                awaiting_first_token = False
            if chunk.text:
                text.append(chunk.text)
                yield sse.encode_delta("text", chunk.text)
            elif chunk.reasoning:
                reasoning.append(chunk.reasoning)
                yield sse.encode_delta("reasoning", chunk.reasoning)
            elif chunk.usage:
                usage = chunk.usage.as_dict()
                yield sse.encode("usage", usage)
            elif chunk.finish_reason:
                finish_reason = chunk.finish_reason
            save_progress()
        status, finish_reason = "complete", finish_reason or "stop"
    except ProviderError as e:
        status = "interrupted" if e.code == "interrupted" else "error"
        finish_reason, error = "error", e.as_dict()
    except GeneratorExit:
        finish_reason = "cancelled"
        raise
    except GreenletExit:  # lifecycle.ServerStopping, or gunicorn's own last-resort kill
        status, finish_reason, error = "interrupted", "error", SERVER_STOPPING
    except Exception:
        log.exception("relay failed for message %s", turn.message_id)
        status, finish_reason = "error", "error"
        error = {"code": "internal", "message": "StreamDesk failed while relaying this reply."}
    finally:
        reply = "".join(text)
        if saver is not None:
            saver.finished(turn.message_id)
        try:
            store.finish_turn(turn.message_id, content=reply, reasoning="".join(reasoning),
                              status=status, finish_reason=finish_reason, error=error,
                              usage=usage)
        finally:
            chunks.close()
            lifecycle.untrack(reply_greenlet)
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error=error, reply=reply)
    if error:
        yield sse.encode("error", error)
    yield sse.encode("done", {"finish_reason": finish_reason})
