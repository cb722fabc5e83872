"""One call of the OpenAI-compatible API: the caller's messages under the operator's rules,
written for the caller only.

Unlike a page turn, nothing is kept: the caller sends the whole conversation each time, and
the call is no conversation of the user's. The rules are the page's all the same: the
operator's system prompt first (the caller's own only when it is not locked), the history
fitted to the model, the text cleaned (``model_text.py``), ``MAX_REPLY_CHARS`` and
``MAX_REPLY_SECONDS``, and the stream cap, which counts the call while it runs (a row in
``api_replies``, touched by a timer while the call runs, silences included, and ended whatever
happens). The observer reports it like any reply (metrics, the reply log).

``ApiReply.events`` yields typed events (``events.py``): pieces and usage as they come, then
``Failed`` if the reply failed and ``Done`` last. It runs on the caller's greenlet, so the
provider's own timeouts bound each silence, and closing the generator closes the upstream; so
does ``client_gone``, when the caller leaves while the reply waits for the upstream.

A stream shows signs of life while the model is silent, as the page's does (proxies close idle
connections). Before the first piece the caller's greenlet waits for it with a timeout
(``first_event``: the upstream is read on a greenlet of its own until then). After it, the
caller's greenlet is the one blocked in the upstream read, so the hub notices each silence
(``silence.py``: one timer per silence, nothing per chunk) and a greenlet of its own writes the
heartbeat, never while anything else is written: the next chunk waits for that write.
"""
from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import gevent
from greenlet import greenlet

from providers import ChatRequest, Message, Provider, ProviderError, Registry, Usage
from providers.errors import StreamInterruptedError

from ..store import ReplyStatus, Store
from .events import Delta, Done, Failed, UsageReport
from .ledger import cost_of, estimated_usage
from .lifecycle import ClientGone
from .model_text import PieceCleaner, storable
from .observer import ReplyObserver
from .relay import INTERNAL, TIME_LIMIT, YIELD_EVERY_CHUNKS, save_last_word
from .silence import SilenceWatch
from .turn import OperatorRules, choose_model, fit_history, system_prompt

log = logging.getLogger(__name__)

# A row of api_replies stops counting once untouched this long (STALE_STREAMING_SECONDS, 60):
# a running reply touches its row this often, whether or not its model is writing.
TOUCH_EVERY_SECONDS = 20.0
# How soon a departed caller's reply is looked at again when it was not waiting (it was
# writing, or in the database): it waits again within a chunk.
GONE_RETRY_SECONDS = 0.02

ApiEvent = Delta | UsageReport | Failed | Done
# What ``first_event`` answers for a reply that ended without a word: its caller left.
CALLER_LEFT = Done("cancelled", ReplyStatus.CANCELLED)


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
    """One reply being written for the API; ``waiting`` is the greenlet reading it while it
    waits for the upstream or for its turn (None otherwise), the only moments at which
    ``ClientGone`` may be raised in it: not while it writes to the caller or to the database.
    Noted at each wait: the first piece may be read on a greenlet of its own, the view runs on
    another, and the rest is read on the connection's."""

    def __init__(self, turn: PreparedApiTurn, reply_id: str, store: Store,
                 observer: ReplyObserver, *, max_chars: int, time_limit_seconds: float,
                 heartbeat_seconds: float | None = None):
        """``heartbeat_seconds``: for a stream, the silence after which ``keep_alive``'s
        ``beat`` is called; None for an answer sent whole."""
        self.turn, self.reply_id, self.store, self.observer = turn, reply_id, store, observer
        self.max_chars, self.time_limit_seconds = max_chars, time_limit_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.waiting: greenlet | None = None
        self.ended = False
        self.cancelled = False  # the caller left: nobody is told how it ended
        # Past it, the next chunk first catches up: with the time limit or a heartbeat being
        # written. One comparison per chunk for both.
        self.due = 0.0
        self._deadline = 0.0
        self._first: gevent.Greenlet | None = None
        self._beat: Callable[[], object] | None = None
        self._beating: gevent.Greenlet | None = None

    def first_event(self, events: Generator[ApiEvent, None, None]) -> ApiEvent | None:
        """For a stream, the first of ``events``: the upstream's first piece, or how the reply
        ended (``CALLER_LEFT`` if silently); None if it has not come within
        ``heartbeat_seconds``: ask again. Until it comes the upstream is read on a greenlet of
        its own, then on the one that asked."""
        assert self.heartbeat_seconds
        if self._first is None:  # in this request's context: its log lines keep its id
            self._first = gevent.spawn(contextvars.copy_context().run, next, events,
                                       CALLER_LEFT)
        self._first.join(self.heartbeat_seconds)
        if not self._first.ready():
            return None
        return self._first.get()

    def keep_alive(self, beat: Callable[[], object]) -> None:
        """From now on, after each silence of ``heartbeat_seconds`` while the reply waits for
        the upstream, ``beat`` is called on a greenlet of its own to write a sign of life (the
        caller's greenlet, blocked in the read, cannot). Call it once the reply's first bytes
        are written, on the greenlet that writes the rest."""
        self._beat = beat

    def _silent(self) -> None:  # on the hub, from the SilenceWatch
        if self._beat is not None and self.waiting is not None and self._beating is None:
            self.due = 0.0  # the next chunk waits for this write: one writer at a time
            self._beating = gevent.spawn(self._send_beat, self._beat)

    def _send_beat(self, beat: Callable[[], object]) -> None:
        try:
            if self.waiting is not None:  # still: nothing else is being written
                beat()
        except OSError:  # the caller left: the watch on its socket ends the reply
            pass
        finally:
            self._beating = None

    def _catch_up(self, moment: float) -> Failed | None:
        """Before a chunk goes on: a heartbeat's write ends first, and past the time limit
        the reply ends (``TIME_LIMIT``)."""
        beating = self._beating
        if beating is not None:
            beating.join()
        if moment > self._deadline:
            return TIME_LIMIT
        self.due = self._deadline
        return None

    def _touch_soon(self) -> None:  # on the hub, every TOUCH_EVERY_SECONDS while it runs
        if not self.ended:
            gevent.spawn(self._touch)

    def _touch(self) -> None:
        """The row says the reply still runs. Touched when chunks came, it went stale while
        a model thought for a minute without a word, and the cap let the user start more."""
        try:
            self.store.touch_api_reply(self.reply_id)
        except Exception as error:  # the next touch comes in TOUCH_EVERY_SECONDS
            log.warning("touching API reply %s failed (%s)", self.reply_id,
                        type(error).__name__)

    def client_gone(self) -> None:
        """The caller left: the reply ends as cancelled, and its upstream is closed."""
        gevent.get_hub().loop.run_callback(self._stop_when_waiting)

    def _stop_when_waiting(self) -> None:
        # On the hub, so the greenlet cannot stop waiting between the look and the throw
        # (greenlet.kill would throw from a later callback, wherever it is by then).
        if self.ended:
            return
        if self.waiting is not None:
            self.waiting.throw(ClientGone)
        else:
            gevent.spawn_later(GONE_RETRY_SECONDS, self.client_gone)

    def events(self) -> Generator[ApiEvent, None, None]:
        """The reply's events. The store must already count it (``start_api_reply``)."""
        observer, store = self.observer, self.store
        observer.started()
        text: list[str] = []
        usage: Usage | None = None
        finish_reason, failure = None, None
        status = ReplyStatus.INTERRUPTED
        clean_text, clean_reasoning = PieceCleaner().clean, PieceCleaner().clean
        room = self.max_chars
        self._deadline = time.monotonic() + self.time_limit_seconds
        self.due = self._deadline
        watch = SilenceWatch(self.heartbeat_seconds, self._silent) if self.heartbeat_seconds \
            else _UNWATCHED
        chunks = self.turn.provider.stream(self.turn.request)
        # Started where the ``finally`` below is sure to close it: a timer left running would
        # touch the row of an ended reply for as long as the worker lives.
        toucher = gevent.get_hub().loop.timer(TOUCH_EVERY_SECONDS, TOUCH_EVERY_SECONDS)
        toucher.start(self._touch_soon)
        try:
            read = 0
            while True:
                self.waiting = gevent.getcurrent()
                try:
                    chunk = next(chunks, None)
                finally:
                    self.waiting = None
                if chunk is None:
                    break
                read += 1
                moment = watch.last = time.monotonic()
                if moment > self.due:
                    failure = self._catch_up(moment)
                    if failure is not None:
                        break
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
                if not read % YIELD_EVERY_CHUNKS:
                    # Waiting for its turn too: an upstream that is never waited for would
                    # otherwise never let a departed caller's reply be stopped.
                    self.waiting = gevent.getcurrent()
                    try:
                        gevent.sleep(0)
                    finally:
                        self.waiting = None
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
            toucher.close()
            watch.close()
            if self._beating is not None:  # its write ends before the reply's last ones
                self._beating.join()
            close = getattr(chunks, "close", None)
            if close is not None:  # a generator: releases the upstream connection now
                close()
            content = "".join(text)
            cost = cost_of(observer, self.turn.request, content, usage, status)
            # Refused twice: the ledger misses this reply, and its row stops counting against
            # the stream cap once stale; the caller has the whole reply all the same.
            save_last_word(lambda: store.end_api_reply(self.reply_id, cost),
                           f"the end of API reply {self.reply_id}")
            observer.finished(status=status, finish_reason=finish_reason, usage=usage,
                              error_code=failure.code if failure else None, reply=content)
        if status == ReplyStatus.CANCELLED:
            return
        if failure:
            yield failure
        else:
            yield UsageReport(usage or estimated_usage(self.turn.request, "".join(text)))
        yield Done(finish_reason or "error", status)


class _Unwatched:
    """Where an answer sent whole notes the time of its chunks: nobody hears its silences."""

    __slots__ = ("last",)
    last: float | None

    def close(self) -> None:
        pass


_UNWATCHED = _Unwatched()
