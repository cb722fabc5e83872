"""Writing one reply: provider chunks in, typed events out to the reply's live log, the text
saved as it grows. It runs on a greenlet of its own (``replies.py``), so it goes on when the
connection that asked for it closes; that greenlet reads the upstream itself, so each piece
costs one hand-over between greenlets (to the followers), as it did when the request's own
greenlet read it.

Per piece it cleans the text (``model_text.py``: no NUL, no lone surrogate), adds it to the
live reply (which keeps it and publishes it as a delta) and marks the reply as grown;
``progress.ProgressSaver`` writes every grown reply of the worker once per interval.

How it ends: ``complete`` when the model finished, or when the reply reached
``MAX_REPLY_CHARS`` (finish reason ``length``); ``error`` when the provider failed;
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
from collections.abc import Callable

import gevent
from gevent import GreenletExit

from providers import ChatRequest, Provider, ProviderError, Usage
from providers.errors import StreamInterruptedError

from ..store import ReplyStatus, Store
from .events import HEARTBEAT, Done, Failed, UsageReport
from .ledger import cost_of
from .live import LiveReply
from .model_text import PieceCleaner, storable
from .observer import ReplyObserver
from .progress import ProgressSaver
from .silence import SilenceWatch

log = logging.getLogger(__name__)

SERVER_STOPPING = Failed("server_stopping",
                         "The server restarted while writing this reply. Retry to continue.")
TIME_LIMIT = Failed("time_limit", "The reply took too long and was ended. Retry to continue.")
INTERNAL = Failed("internal", "StreamDesk failed while relaying this reply.")
NOT_SAVED = Failed("internal", "StreamDesk could not save the end of this reply; the part "
                               "before it was saved as it came. Retry to continue.")
# A deadlock or a dropped connection fails one transaction; the next one normally goes through.
FINISH_ATTEMPTS = 2
# An upstream that writes faster than it is read never makes the reading greenlet wait, so
# it would never let the worker's other streams run: it steps aside every this many chunks.
YIELD_EVERY_CHUNKS = 64


class StopRequested(GreenletExit):
    """Raised in a reply's greenlet when someone stops it."""


class TimeLimitReached(GreenletExit):
    """Raised in a reply's greenlet when it has run for MAX_REPLY_SECONDS."""


class UpstreamWentSilent(GreenletExit):
    """Raised in a reply's greenlet when the upstream sent nothing for its idle timeout."""


def generate(provider: Provider, request: ChatRequest, live: LiveReply, store: Store,
             observer: ReplyObserver, saver: ProgressSaver | None, *,
             heartbeat_seconds: float, max_chars: int = 1_000_000) -> None:
    observer.started()
    publish = live.publish
    usage: Usage | None = None
    finish_reason = None
    failure: Failed | None = None
    status = ReplyStatus.INTERRUPTED  # what stands if the greenlet is killed unexpectedly
    chunks = provider.stream(request, watched=True)

    def save_progress():
        if saver is None:  # SAVE_INTERVAL_SECONDS=0: every piece, at once (tests, debugging)
            store.save_progress(live.message_id, live.so_far("text"), live.so_far("reasoning"),
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
    clean_text, clean_reasoning = PieceCleaner().clean, PieceCleaner().clean
    room = max_chars  # MAX_REPLY_CHARS: what the reply may still grow by
    awaiting_first_token = True
    try:
        publish(live.index.meta)
        for read, chunk in enumerate(chunks, 1):
            watch.last = time.monotonic()
            piece = ""
            if chunk.text:
                field, piece = "text", clean_text(chunk.text)
            elif chunk.reasoning:
                field, piece = "reasoning", clean_reasoning(chunk.reasoning)
            elif chunk.usage:
                usage = chunk.usage
                publish(UsageReport(usage))
            elif chunk.finish_reason:
                finish_reason = chunk.finish_reason
            if piece:
                if awaiting_first_token:
                    observer.first_token()
                    awaiting_first_token = False
                piece = piece[:room]
                room -= len(piece)
                live.add(field, piece)
                if not room:
                    finish_reason = "length"  # the upstream is closed below, as for a stop
                    break
            save_progress()
            if not read % YIELD_EVERY_CHUNKS:
                gevent.sleep(0)
        status, finish_reason = ReplyStatus.COMPLETE, finish_reason or "stop"
    except ProviderError as e:
        status = ReplyStatus.INTERRUPTED if isinstance(e, StreamInterruptedError) \
            else ReplyStatus.ERROR
        finish_reason, failure = "error", Failed(e.code, storable(e.message))
    except (GreenletExit, Exception) as ending:
        interruption = interruption_behind(ending)
        if isinstance(interruption, StopRequested):
            status, finish_reason = ReplyStatus.CANCELLED, "cancelled"
        elif isinstance(interruption, UpstreamWentSilent):
            silence = provider.went_silent()
            status, finish_reason = ReplyStatus.ERROR, "error"
            failure = Failed(silence.code, silence.message)
        elif isinstance(interruption, TimeLimitReached):
            status, finish_reason, failure = ReplyStatus.INTERRUPTED, "error", TIME_LIMIT
        elif interruption is not None:  # lifecycle.ServerStopping, or gunicorn's last resort
            status, finish_reason, failure = ReplyStatus.INTERRUPTED, "error", SERVER_STOPPING
        else:
            log.exception("relay failed for message %s", live.message_id)
            status, finish_reason, failure = ReplyStatus.ERROR, "error", INTERNAL
    finally:
        live.closing = True
        watch.close()
        content = live.so_far("text")
        if saver is not None:
            saver.finished(live)
        try:
            error = (failure.code, failure.message) if failure else None
            cost = cost_of(observer, request, content, usage, status)
            if not save_last_word(lambda: store.finish_turn(
                    live.message_id, content=content, reasoning=live.so_far("reasoning"),
                    status=status, finish_reason=finish_reason, error=error, usage=usage,
                    stream_index=live.index.to_json(), cost=cost),
                    f"the end of reply {live.message_id}"):
                # The database holds the last progress save, marked streaming; untouched, it
                # reads as interrupted once stale (STALE_STREAMING_SECONDS), as a dead
                # writer's reply does.
                status, finish_reason = ReplyStatus.INTERRUPTED, "error"
                failure = failure or NOT_SAVED
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator: releases the upstream connection now
                close()
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error_code=failure.code if failure else None, reply=content)
            if failure:
                publish(failure)
            publish(Done(finish_reason or "error", status))


def interruption_behind(error: BaseException) -> GreenletExit | None:
    """The interruption (stop, time limit, shutdown, ...) that ``error`` is, or that it came
    from: one that lands in a database call can come back as the driver's own error, raised
    while it cleaned up after it (psycopg resetting a connection it was pinging), with the
    interruption as its context."""
    seen: BaseException | None = error
    for _ in range(8):  # a context chain is short; never loop on a strange one
        if seen is None or isinstance(seen, GreenletExit):
            return seen
        seen = seen.__context__
    return None


def save_last_word(save: Callable[[], object], what: str) -> bool:
    """``save()``, tried again once if the database refuses it; False (and logged) when it
    refused both times."""
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            save()
            return True
        except Exception:
            if attempt == FINISH_ATTEMPTS:
                log.exception("saving %s failed", what)
            else:
                log.warning("saving %s failed; trying again", what)
    return False
