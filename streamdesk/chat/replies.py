"""Replies that outlive the connection that asked for them.

``Replies`` is the worker's keeper of replies: ``start`` writes a reply on a greenlet of its
own, ``follow`` gives the events after any event id (from this worker's memory, the database,
or another worker through the bus), and ``stop`` ends a reply wherever it is being written.
Which followers there are makes no difference to the reply: a browser that leaves, reloads or
loses its network leaves the reply running (unless CANCEL_ON_DISCONNECT is set, which the web
layer honours by calling ``stop``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gevent

from ..settings import DEFAULT_MAX_REPLY_SECONDS
from ..store import ReplyStatus, Store, StoredReply
from . import lifecycle
from .bus import Bus
from .events import Done, Event, Heartbeat
from .live import LiveReply
from .observer import ReplyObserver
from .progress import ProgressSaver
from .relay import StopRequested, TimeLimitReached, generate
from .stream_index import replay
from .turn import PreparedTurn

STOP_WAIT_SECONDS = 5.0  # how long a stop request waits to answer with the final status

Followed = Iterator[tuple[int, Event] | Heartbeat]


@dataclass(frozen=True)
class ReplyPolicy:
    heartbeat_seconds: float = 10.0
    save_interval_seconds: float = 1.0
    time_limit_seconds: float = DEFAULT_MAX_REPLY_SECONDS  # MAX_REPLY_SECONDS
    max_chars: int = 1_000_000  # MAX_REPLY_CHARS


class Replies:
    def __init__(self, store: Store, bus: Bus, policy: ReplyPolicy):
        self.store, self.bus, self.policy = store, bus, policy
        self.live: dict[str, LiveReply] = {}  # replies being written by this worker
        bus.on_stop_request(self._stop_here)

    # Writing -------------------------------------------------------------------------------

    def start(self, turn: PreparedTurn, observer: ReplyObserver) -> LiveReply:
        live = LiveReply(turn.meta)
        self.live[live.message_id] = live
        self.bus.generating(live)
        live.generator = gevent.spawn(self._write, turn, live, observer)
        # Let the reply run up to its first wait, the upstream request sent, before the caller
        # goes on: what the caller still does (its response, the session, the log line) then
        # overlaps the model's time to its first token instead of adding to it.
        gevent.sleep(0)
        return live

    def _write(self, turn: PreparedTurn, live: LiveReply, observer: ReplyObserver) -> None:
        current = gevent.getcurrent()
        lifecycle.track(current, lambda: not live.closing)
        limit = gevent.get_hub().loop.timer(self.policy.time_limit_seconds)
        limit.start(lambda: live.closing or current.kill(TimeLimitReached, block=False))
        saver = None
        if self.policy.save_interval_seconds > 0:
            saver = ProgressSaver.for_store(self.store, self.policy.save_interval_seconds)
        try:
            generate(turn.provider, turn.request, live, self.store, observer, saver,
                     heartbeat_seconds=self.policy.heartbeat_seconds,
                     max_chars=self.policy.max_chars)
        finally:
            limit.close()
            lifecycle.untrack(current)
            self.live.pop(live.message_id, None)  # saved whole: replays come from the database
            self.bus.ended(live)

    # Stopping ------------------------------------------------------------------------------

    def stop(self, user_id: str, message_id: str) -> StoredReply | None:
        """Stop a reply of this user wherever it is being written; its final state, or None
        when there is no such reply of this user. Stopping an ended reply changes nothing."""
        reply = self.store.reply(user_id, message_id)
        if reply is None or reply.status != ReplyStatus.STREAMING:
            return reply
        if not self._stop_here(message_id):
            self.bus.request_stop(message_id)
            with gevent.Timeout(STOP_WAIT_SECONDS, False):
                for item in self.follow_stored(user_id, reply, reply_position(reply)):
                    if not isinstance(item, Heartbeat) and type(item[1]) is Done:
                        break
        return self.store.reply(user_id, message_id)

    def _stop_here(self, message_id: str) -> bool:
        """Stop the reply if this worker writes it: the upstream is closed and the reply saved
        as ``cancelled`` before this returns."""
        live = self.live.get(message_id)
        if live is None or live.generator is None:
            return False
        if live.closing:  # ending anyway: let it finish saving
            live.generator.join()
        else:
            live.generator.kill(StopRequested, block=True)
        return True

    # Following -----------------------------------------------------------------------------

    def follow(self, user_id: str, message_id: str, after: int = 0) -> Followed | None:
        """The events of a reply of this user after event id ``after``, live until ``done``;
        None when there is no such reply of this user."""
        reply = self.store.reply(user_id, message_id)
        if reply is None:
            return None
        return self.follow_stored(user_id, reply, after)

    def follow_stored(self, user_id: str, reply: StoredReply, after: int) -> Followed:
        live = self.live.get(reply.id)
        if live is not None:
            return self.follow_live(user_id, live, after)
        if reply.status != ReplyStatus.STREAMING:
            return iter(replay(reply, after))
        return self.bus.follow(reply, after, lambda: self.store.reply(user_id, reply.id))

    def follow_live(self, user_id: str, live: LiveReply, after: int = 0) -> Followed:
        def catch_up(position: int) -> list[tuple[int, Event]]:
            reply = self.store.reply(user_id, live.message_id)
            return replay(reply, position) if reply else []
        return live.follow(after, catch_up)


def reply_position(reply: StoredReply) -> int:
    """How far a follower that has everything saved so far has read."""
    events = replay(reply)
    return events[-1][0] if events else 0
