"""Writing one reply: provider chunks in, typed events out to the reply's live log, the text
saved as it grows. It runs on a greenlet of its own (``replies.py``), so it goes on when the
connection that asked for it closes; that greenlet reads the upstream itself, so each piece
costs one hand-over between greenlets (to the followers), as it did when the request's own
greenlet read it.

Per piece it appends to a list, publishes one small event and marks the reply as grown;
``progress.ProgressSaver`` writes every grown reply of the worker once per interval.

How it ends: ``complete`` when the model finished; ``error`` when the provider failed;
``interrupted`` when the upstream cut the reply off, the server stops (``lifecycle.py``) or the
reply ran past ``MAX_REPLY_SECONDS``; ``cancelled`` when someone stopped it. Stop, shutdown, the
time limit and the upstream's idle timeout are raised in this greenlet, where it waits for the
upstream: the provider closes the connection at once and the reply is saved right after.
Whatever the ending, the reply is saved *before* its ``error``/``done`` events go out, so anyone
who hears of the end can already read it.
"""
from __future__ import annotations

import logging
import time

import gevent
from gevent import GreenletExit

from providers import ChatRequest, Provider, ProviderError, Usage
from providers.errors import StreamInterruptedError

from ..store import ReplyStatus, Store
from .events import HEARTBEAT, Delta, Done, Failed, UsageReport
from .live import LiveReply
from .observer import ReplyObserver
from .progress import ProgressSaver
from .silence import SilenceWatch

log = logging.getLogger(__name__)

SERVER_STOPPING = Failed("server_stopping",
                         "The server restarted while writing this reply. Retry to continue.")
TIME_LIMIT = Failed("time_limit", "The reply took too long and was ended. Retry to continue.")
INTERNAL = Failed("internal", "StreamDesk failed while relaying this reply.")


class StopRequested(GreenletExit):
    """Raised in a reply's greenlet when someone stops it."""


class TimeLimitReached(GreenletExit):
    """Raised in a reply's greenlet when it has run for MAX_REPLY_SECONDS."""


class UpstreamWentSilent(GreenletExit):
    """Raised in a reply's greenlet when the upstream sent nothing for its idle timeout."""


def generate(provider: Provider, request: ChatRequest, live: LiveReply, store: Store,
             observer: ReplyObserver, saver: ProgressSaver | None, *,
             heartbeat_seconds: float) -> None:
    observer.started()
    text, reasoning, publish = live.text, live.reasoning, live.publish
    usage: Usage | None = None
    finish_reason = None
    failure: Failed | None = None
    status = ReplyStatus.INTERRUPTED  # what stands if the greenlet is killed unexpectedly
    chunks = provider.stream(request, watched=True)

    def save_progress():
        if saver is None:  # SAVE_INTERVAL_SECONDS=0: every piece, at once (tests, debugging)
            store.save_progress(live.message_id, "".join(text), "".join(reasoning),
                                live.index.to_json())
        else:
            saver.grew(live)

    def silent():  # on the hub: publish a heartbeat, and touch the row (not abandoned)
        publish(HEARTBEAT)
        if saver is None:
            gevent.spawn(save_progress)
        else:
            saver.grew(live)

    writer = gevent.getcurrent()
    watch = SilenceWatch(heartbeat_seconds, silent, limit=provider.idle_timeout,
                         on_limit=lambda: live.closing or writer.kill(UpstreamWentSilent,
                                                                      block=False))
    awaiting_first_token = True
    try:
        publish(live.index.meta)
        for chunk in chunks:
            watch.last = time.monotonic()
            if awaiting_first_token and (chunk.text or chunk.reasoning):
                observer.first_token()
                awaiting_first_token = False
            if chunk.text:
                text.append(chunk.text)
                publish(Delta("text", chunk.text))
            elif chunk.reasoning:
                reasoning.append(chunk.reasoning)
                publish(Delta("reasoning", chunk.reasoning))
            elif chunk.usage:
                usage = chunk.usage
                publish(UsageReport(usage))
            elif chunk.finish_reason:
                finish_reason = chunk.finish_reason
            save_progress()
        status, finish_reason = ReplyStatus.COMPLETE, finish_reason or "stop"
    except ProviderError as e:
        status = ReplyStatus.INTERRUPTED if isinstance(e, StreamInterruptedError) \
            else ReplyStatus.ERROR
        finish_reason, failure = "error", Failed(e.code, e.message)
    except StopRequested:
        status, finish_reason = ReplyStatus.CANCELLED, "cancelled"
    except UpstreamWentSilent:
        silence = provider.went_silent()
        status, finish_reason = ReplyStatus.ERROR, "error"
        failure = Failed(silence.code, silence.message)
    except TimeLimitReached:
        status, finish_reason, failure = ReplyStatus.INTERRUPTED, "error", TIME_LIMIT
    except GreenletExit:  # lifecycle.ServerStopping, or gunicorn's own last-resort kill
        status, finish_reason, failure = ReplyStatus.INTERRUPTED, "error", SERVER_STOPPING
    except Exception:
        log.exception("relay failed for message %s", live.message_id)
        status, finish_reason, failure = ReplyStatus.ERROR, "error", INTERNAL
    finally:
        live.closing = True
        watch.close()
        content = "".join(text)
        if saver is not None:
            saver.finished(live)
        try:
            store.finish_turn(live.message_id, content=content, reasoning="".join(reasoning),
                              status=status, finish_reason=finish_reason,
                              error=(failure.code, failure.message) if failure else None,
                              usage=usage, stream_index=live.index.to_json())
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator: releases the upstream connection now
                close()
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error_code=failure.code if failure else None, reply=content)
            if failure:
                publish(failure)
            publish(Done(finish_reason or "error", status))
