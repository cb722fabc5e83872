"""One reply, from provider chunks to typed events (``events.py``), saved as it grows.

This generator is the per-chunk hot path: per piece it appends to a list, yields one small
event and marks the reply as grown; ``progress.ProgressSaver`` writes every grown reply of the
worker once per ``save_interval``.

When the consumer goes away (the server closes this generator), the partial reply is saved as
``cancelled`` *before* the upstream is closed, so anyone who sees the upstream connection drop
can already read the saved state. When the server itself stops (``lifecycle.py``), the reply
is saved as ``interrupted`` and the client is told so while it still can.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from gevent import GreenletExit

from providers import ChatRequest, Provider, ProviderError, Usage
from providers.errors import StreamInterruptedError

from ..store import ReplyStatus, Store
from . import lifecycle
from .events import HEARTBEAT, Delta, Done, Event, Failed, Meta, UsageReport
from .observer import ReplyObserver
from .progress import ProgressSaver
from .pump import SILENCE, with_heartbeats

log = logging.getLogger(__name__)

SERVER_STOPPING = Failed("server_stopping",
                         "The server restarted while writing this reply. Retry to continue.")
INTERNAL = Failed("internal", "StreamDesk failed while relaying this reply.")


@dataclass(frozen=True)
class Reply:
    """Which reply is being written, as plain values: the relay runs after the view has
    returned, outside the request context."""

    conversation_id: str
    user_message_id: str
    message_id: str
    model_id: str
    omitted_messages: int = 0


def relay_reply(provider: Provider, request: ChatRequest, reply: Reply, store: Store,
                observer: ReplyObserver, *, heartbeat_seconds: float,
                save_interval: float) -> Iterator[Event]:
    observer.started()
    reply_greenlet = lifecycle.track_current_reply()
    text: list[str] = []
    reasoning: list[str] = []
    usage: Usage | None = None
    finish_reason = None
    failure: Failed | None = None
    status = ReplyStatus.CANCELLED  # what stands if the consumer leaves before we know better
    chunks = with_heartbeats(provider.stream(request), heartbeat_seconds)
    saver = ProgressSaver.for_store(store, save_interval) if save_interval > 0 else None

    def save_progress():
        if saver is None:  # SAVE_INTERVAL_SECONDS=0: every piece, at once
            store.save_progress(reply.message_id, "".join(text), "".join(reasoning))
        else:
            saver.grew(reply.message_id, text, reasoning)

    awaiting_first_token = True
    try:
        # Inside the try: a client gone right after the headers still gets its turn saved.
        yield Meta(reply.conversation_id, reply.user_message_id, reply.message_id,
                   reply.model_id, reply.omitted_messages)
        for chunk in chunks:
            if chunk is SILENCE:
                yield HEARTBEAT
                save_progress()  # touches the row while the model is silent: not abandoned
                continue
            if awaiting_first_token and (chunk.text or chunk.reasoning):
                observer.first_token()
                awaiting_first_token = False
            if chunk.text:
                text.append(chunk.text)
                yield Delta("text", chunk.text)
            elif chunk.reasoning:
                reasoning.append(chunk.reasoning)
                yield Delta("reasoning", chunk.reasoning)
            elif chunk.usage:
                usage = chunk.usage
                yield UsageReport(usage)
            elif chunk.finish_reason:
                finish_reason = chunk.finish_reason
            save_progress()
        status, finish_reason = ReplyStatus.COMPLETE, finish_reason or "stop"
    except ProviderError as e:
        status = ReplyStatus.INTERRUPTED if isinstance(e, StreamInterruptedError) \
            else ReplyStatus.ERROR
        finish_reason, failure = "error", Failed(e.code, e.message)
    except GeneratorExit:
        finish_reason = "cancelled"
        raise
    except GreenletExit:  # lifecycle.ServerStopping, or gunicorn's own last-resort kill
        status, finish_reason, failure = ReplyStatus.INTERRUPTED, "error", SERVER_STOPPING
    except Exception:
        log.exception("relay failed for message %s", reply.message_id)
        status, finish_reason, failure = ReplyStatus.ERROR, "error", INTERNAL
    finally:
        content = "".join(text)
        if saver is not None:
            saver.finished(reply.message_id)
        try:
            store.finish_turn(reply.message_id, content=content, reasoning="".join(reasoning),
                              status=status, finish_reason=finish_reason,
                              error=(failure.code, failure.message) if failure else None,
                              usage=usage)
        finally:
            chunks.close()
            lifecycle.untrack(reply_greenlet)
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error_code=failure.code if failure else None, reply=content)
    if failure:
        yield failure
    yield Done(finish_reason, status)
