"""One call of the OpenAI-compatible API: the caller's messages under the operator's rules,
written for the caller only.

Unlike a page turn, nothing is kept: the caller sends the whole conversation each time, and
the call is no conversation of the user's. The rules are the page's all the same: the
operator's system prompt first (the caller's own only when it is not locked), the history
fitted to the model, the text cleaned (``model_text.py``), ``MAX_REPLY_CHARS`` and
``MAX_REPLY_SECONDS``, and the stream cap, which counts the call while it runs (a row in
``api_replies``, ended whatever happens). The observer reports it like any reply (metrics,
the reply log).

``ApiReply.events`` yields typed events (``events.py``): pieces and usage as they come, then
``Failed`` if the reply failed and ``Done`` last. It runs on the caller's greenlet, so the
provider's own timeouts bound each silence, and closing the generator closes the upstream; so
does ``client_gone``, when the caller leaves while the reply waits for the upstream.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass

import gevent
from gevent import GreenletExit

from providers import ChatRequest, Message, Provider, ProviderError, Registry, Usage
from providers.errors import StreamInterruptedError

from ..store import ReplyStatus, Store
from .events import Delta, Done, Failed, UsageReport
from .ledger import cost_of, estimated_usage
from .model_text import PieceCleaner, storable
from .observer import ReplyObserver
from .relay import INTERNAL, TIME_LIMIT, YIELD_EVERY_CHUNKS
from .turn import OperatorRules, choose_model, fit_history, system_prompt

log = logging.getLogger(__name__)

# A row of api_replies stops counting once untouched this long (STALE_STREAMING_SECONDS, 60):
# a long reply touches its row this often.
TOUCH_EVERY_SECONDS = 20.0
# How soon a departed caller's reply is looked at again when it was not waiting (it was
# writing, or in the database): it waits again within a chunk.
GONE_RETRY_SECONDS = 0.02


@dataclass(frozen=True)
class ApiTurnRequest:
    model: str
    messages: tuple[Message, ...]  # user and assistant turns, oldest first
    system: str | None = None  # the caller's system messages, joined
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class PreparedApiTurn:
    provider: Provider
    model_id: str
    request: ChatRequest


class ClientGone(GreenletExit):
    """Raised in the caller's greenlet, where it waits for the upstream or for its turn, once
    the caller has closed its connection."""


def prepare_api_turn(ask: ApiTurnRequest, *, registry: Registry,
                     rules: OperatorRules) -> PreparedApiTurn:
    """Raises ``turn.TurnRefused("unknown_model")`` for a model that is not configured."""
    model_id, provider, model = choose_model(registry, ask.model, None)
    system = system_prompt(provider.operator_system_prompt(model) or rules.system_prompt,
                           None if rules.lock_system_prompt else ask.system)
    sent = fit_history(provider, model, list(ask.messages), system)
    return PreparedApiTurn(provider, model_id, ChatRequest(
        model, tuple(sent), system, ask.temperature, ask.max_tokens))


class ApiReply:
    """One reply being written for the API; ``waiting`` is True while it waits for the
    upstream or for its turn, the only moments at which ``ClientGone`` may be raised in its
    greenlet: not while it writes to the caller or to the database."""

    def __init__(self, turn: PreparedApiTurn, reply_id: str, store: Store,
                 observer: ReplyObserver, *, max_chars: int, time_limit_seconds: float):
        self.turn, self.reply_id, self.store, self.observer = turn, reply_id, store, observer
        self.max_chars, self.time_limit_seconds = max_chars, time_limit_seconds
        self.waiting = False
        self.ended = False
        self.cancelled = False  # the caller left: nobody is told how it ended
        self.greenlet = gevent.getcurrent()

    def client_gone(self) -> None:
        """The caller left: the reply ends as cancelled, and its upstream is closed."""
        gevent.get_hub().loop.run_callback(self._stop_when_waiting)

    def _stop_when_waiting(self) -> None:
        # On the hub, so the greenlet cannot stop waiting between the look and the throw
        # (greenlet.kill would throw from a later callback, wherever it is by then).
        if self.ended:
            return
        if self.waiting:
            self.greenlet.throw(ClientGone)
        else:
            gevent.spawn_later(GONE_RETRY_SECONDS, self.client_gone)

    def events(self) -> Generator[Delta | UsageReport | Failed | Done, None, None]:
        """The reply's events. The store must already count it (``start_api_reply``)."""
        observer, store = self.observer, self.store
        observer.started()
        text: list[str] = []
        usage: Usage | None = None
        finish_reason, failure = None, None
        status = ReplyStatus.INTERRUPTED
        clean_text, clean_reasoning = PieceCleaner().clean, PieceCleaner().clean
        room = self.max_chars
        deadline = time.monotonic() + self.time_limit_seconds
        touched = time.monotonic()
        chunks = self.turn.provider.stream(self.turn.request)
        try:
            read = 0
            while True:
                self.waiting = True
                try:
                    chunk = next(chunks, None)
                finally:
                    self.waiting = False
                if chunk is None:
                    break
                read += 1
                if chunk.text or chunk.reasoning:
                    field = "text" if chunk.text else "reasoning"
                    piece = (clean_text(chunk.text) if chunk.text
                             else clean_reasoning(chunk.reasoning or ""))[:room]
                    if piece:
                        if observer.first_token_at is None:
                            observer.first_token()
                        if field == "text":
                            room -= len(piece)
                            text.append(piece)
                        yield Delta(field, piece)
                        if not room:
                            finish_reason = "length"
                            break
                elif chunk.usage:
                    usage = chunk.usage
                elif chunk.finish_reason:
                    finish_reason = chunk.finish_reason
                moment = time.monotonic()
                if moment > deadline:
                    failure = TIME_LIMIT
                    break
                if moment - touched > TOUCH_EVERY_SECONDS:
                    store.touch_api_reply(self.reply_id)
                    touched = moment
                if not read % YIELD_EVERY_CHUNKS:
                    # Waiting for its turn too: an upstream that is never waited for would
                    # otherwise never let a departed caller's reply be stopped.
                    self.waiting = True
                    try:
                        gevent.sleep(0)
                    finally:
                        self.waiting = False
            if failure is None:
                status, finish_reason = ReplyStatus.COMPLETE, finish_reason or "stop"
            else:
                status, finish_reason = ReplyStatus.INTERRUPTED, "error"
        except ProviderError as e:
            status = ReplyStatus.INTERRUPTED if isinstance(e, StreamInterruptedError) \
                else ReplyStatus.ERROR
            finish_reason, failure = "error", Failed(e.code, storable(e.message))
        except (ClientGone, GeneratorExit):  # the caller left: the upstream is closed below
            status, finish_reason = ReplyStatus.CANCELLED, "cancelled"
            self.cancelled = True
        except Exception:
            log.exception("API reply %s failed", self.reply_id)
            status, finish_reason, failure = ReplyStatus.ERROR, "error", INTERNAL
        finally:
            self.ended = True
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator: releases the upstream connection now
                close()
            content = "".join(text)
            store.end_api_reply(self.reply_id,
                                cost_of(observer, self.turn.request, content, usage, status))
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error_code=failure.code if failure else None, reply=content)
        if status == ReplyStatus.CANCELLED:
            return
        if failure:
            yield failure
        else:
            yield UsageReport(usage or estimated_usage(self.turn.request, "".join(text)))
        yield Done(finish_reason or "error", status)
