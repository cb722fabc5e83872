"""How the workers of a deployment tell each other about replies: stop requests, and the
events of a reply for followers on another worker or instance.

* ``RedisBus`` (REDIS_URL set): each reply's events go into a Redis Stream of their own
  (``streamdesk:reply:<id>``, capped, expiring a while after ``done``), written in small
  batches; followers elsewhere read it with XREAD. Stop requests go by pub/sub, and each
  worker writing replies keeps a short-lived key that says it is alive.
* ``DatabaseBus`` (no Redis: one instance): followers on a sibling worker read the reply's
  saved progress (``stream_index.replay`` rebuilds exact events from it), and stop requests
  wait in the ``reply_stops`` table for the writing worker, which looks every 50 ms.

Either way a reply whose writer died is noticed by its followers (a dead process on this
host, or a writer's key expired in Redis) and saved as ``interrupted``.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator

import gevent
from gevent.event import AsyncResult

from ..store import ReplyStatus, Store, StoredReply
from .events import HEARTBEAT, Delta, Done, Event, Heartbeat, event_from_json, event_to_json
from .live import LiveReply, worker_id
from .stream_index import INTERRUPTED, abandoned, replay

log = logging.getLogger(__name__)

Followed = Iterator[tuple[int, Event] | Heartbeat]
Reread = Callable[[], StoredReply | None]

POLL_SECONDS = 0.25  # a follower reading saved progress looks this often
STOP_POLL_SECONDS = 0.05  # a worker writing replies looks for stop requests this often


class Bus:
    """What ``Replies`` needs from its neighbours."""

    def __init__(self, store: Store, heartbeat_seconds: float):
        self.store, self.heartbeat_seconds = store, heartbeat_seconds
        self._stop_here: Callable[[str], bool] = lambda message_id: False

    def on_stop_request(self, stop_here: Callable[[str], bool]) -> None:
        self._stop_here = stop_here

    def generating(self, live: LiveReply) -> None:
        """This worker starts writing ``live``."""

    def ended(self, live: LiveReply) -> None:
        """This worker has saved ``live`` whole."""

    def request_stop(self, message_id: str) -> None:
        raise NotImplementedError

    def follow(self, reply: StoredReply, after: int, reread: Reread) -> Followed:
        """Follow a reply written by another worker."""
        raise NotImplementedError

    def writer_is_dead(self, owner: str | None) -> bool:
        """True when the writer is known to be gone: a process of this host that no longer
        runs. (A writer on another host is judged by the bus, or by its row going stale.)"""
        if not owner:
            return False
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname()[:48] or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _abandon(self, reply: StoredReply) -> None:
        if reply.owner and self.store.interrupt_abandoned(
                reply.id, reply.owner, INTERRUPTED.message, abandoned(reply.stream_index)):
            log.warning("reply %s: its writer %s died; saved as interrupted", reply.id,
                        reply.owner)


class DatabaseBus(Bus):
    def __init__(self, store: Store, heartbeat_seconds: float):
        super().__init__(store, heartbeat_seconds)
        self._writing: set[str] = set()
        self._poller = None
        self._saved = SavedReplies(store, POLL_SECONDS)

    def generating(self, live: LiveReply) -> None:
        self._writing.add(live.message_id)
        if self._poller is None:
            self._poller = gevent.spawn(self._watch_stop_requests)

    def ended(self, live: LiveReply) -> None:
        self._writing.discard(live.message_id)

    def request_stop(self, message_id: str) -> None:
        self.store.request_stop(message_id)

    def _watch_stop_requests(self) -> None:
        since = time.time()
        try:
            while self._writing:
                gevent.sleep(STOP_POLL_SECONDS)
                try:
                    requests = self.store.stop_requests_since(since)
                except Exception:
                    log.exception("reading stop requests failed")
                    continue
                for message_id, requested_at in requests:
                    since = max(since, requested_at)
                    if message_id in self._writing:
                        gevent.spawn(self._stop_here, message_id)
        finally:
            self._poller = None

    def follow(self, reply: StoredReply, after: int, reread: Reread) -> Followed:
        # ``reread`` is not needed: every follower of this worker is served by one read.
        cursor = _Cursor(after)
        current: StoredReply | None = reply
        while current is not None:
            yield from cursor.take(replay(current, cursor.after))
            if cursor.done or current.status != ReplyStatus.STREAMING:
                return
            if self.writer_is_dead(current.owner):
                self._abandon(current)
            elif cursor.quiet_for(self.heartbeat_seconds):
                yield HEARTBEAT
            current = self._saved.next_read(current.id)


class RedisBus(Bus):
    STREAM = "streamdesk:reply:{}"
    WRITER = "streamdesk:writer:{}"
    STOPS = "streamdesk:stops"
    STREAM_LENGTH = 20_000  # events kept per reply; older ones are read back from the database
    KEEP_AFTER_DONE_SECONDS = 600
    FLUSH_SECONDS = 0.02  # events reach other workers in batches this far apart
    WRITER_KEY_SECONDS = 10  # a writer that stops refreshing its key is taken for dead
    BLOCK_MS = 2000

    def __init__(self, store: Store, heartbeat_seconds: float, redis_client):
        super().__init__(store, heartbeat_seconds)
        self.redis = redis_client
        self._outbox: list[tuple[str, int, str]] = []
        self._writing: set[str] = set()
        self._flusher = None
        self._listener = None

    def generating(self, live: LiveReply) -> None:
        key = self.STREAM.format(live.message_id)
        outbox = self._outbox

        def publish(event_id: int, event: Event) -> None:
            outbox.append((key, event_id, event_to_json(event)))

        live.on_publish = publish
        self._writing.add(live.message_id)
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)
        if self._listener is None:
            self._listener = gevent.spawn(self._listen_for_stops)

    def ended(self, live: LiveReply) -> None:
        self._writing.discard(live.message_id)

    def request_stop(self, message_id: str) -> None:
        self.redis.publish(self.STOPS, message_id)

    def _flush_loop(self) -> None:
        writer_key = self.WRITER.format(worker_id())
        refreshed = 0.0
        try:
            while self._writing or self._outbox:
                gevent.sleep(self.FLUSH_SECONDS)
                batch, self._outbox[:] = list(self._outbox), []
                try:
                    pipe = self.redis.pipeline(transaction=False)
                    if time.monotonic() - refreshed > self.WRITER_KEY_SECONDS / 3:
                        refreshed = time.monotonic()
                        pipe.set(writer_key, "1", ex=self.WRITER_KEY_SECONDS)
                    for key, event_id, data in batch:
                        # XADD key MAXLEN ~ n id e data, as redis-py's xadd() sends it: its
                        # checks of the arguments cost 2 µs more per event (docs/benchmarks.md).
                        pipe.execute_command("XADD", key, "MAXLEN", "~", self.STREAM_LENGTH,
                                             f"{event_id}-0", "e", data)
                        if data.startswith('["x"'):  # done: the stream may go in a while
                            pipe.expire(key, self.KEEP_AFTER_DONE_SECONDS)
                    pipe.execute()
                except Exception:  # followers elsewhere fall back to the database
                    log.exception("publishing %d events to Redis failed", len(batch))
        finally:
            self._flusher = None

    def _listen_for_stops(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.STOPS)
                while True:
                    # A bounded wait: the client's socket timeout must never fire here.
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    message_id = message["data"].decode()
                    if message_id in self._writing:
                        gevent.spawn(self._stop_here, message_id)
            except Exception as error:  # Redis restarted or unreachable: subscribe again
                log.warning("listening for stop requests failed (%s); listening again",
                            type(error).__name__)
                gevent.sleep(1)

    def follow(self, reply: StoredReply, after: int, reread: Reread) -> Followed:
        key = self.STREAM.format(reply.id)
        cursor = _Cursor(after)
        current: StoredReply | None = reply
        while current is not None:
            entries = self.redis.xrange(key, min=f"({cursor.after}-0", count=500)
            if entries and not self._contiguous(entries[0], cursor.after):
                entries = []  # older events left the stream: read them back from the database
            if not entries:
                yield from cursor.take(replay(current, cursor.after))
                if cursor.done or current.status != ReplyStatus.STREAMING:
                    return
                if self.writer_is_dead(current.owner) or (
                        current.owner and not self.redis.exists(self.WRITER.format(
                            current.owner))):
                    self._abandon(current)
                    current = reread()
                    continue
                answer = self.redis.xread({key: f"{cursor.after}-0"}, count=500,
                                          block=self.BLOCK_MS)
                entries = answer[0][1] if answer else []
            yield from cursor.take(_entry_events(entries, cursor.after))
            if cursor.done:
                return
            if not entries:
                if cursor.quiet_for(self.heartbeat_seconds):
                    yield HEARTBEAT
                current = reread()

    @staticmethod
    def _contiguous(entry, after: int) -> bool:
        """Whether the oldest entry read reaches back to ``after`` (nothing trimmed)."""
        event = event_from_json(entry[1][b"e"])
        size = len(event.text) if type(event) is Delta else 1
        return _event_id(entry[0]) - size <= after


def _event_id(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _entry_events(entries, after: int) -> Iterator[tuple[int, Event]]:
    for entry_id, fields in entries:
        event_id, event = _event_id(entry_id), event_from_json(fields[b"e"])
        if type(event) is Delta and event_id - len(event.text) < after < event_id:
            # Resumed from an id inside this delta: only the part not yet seen.
            event = Delta(event.field, event.text[after - event_id:])
        yield event_id, event


class SavedReplies:
    """Saved progress for the followers of this worker: one database read per interval for
    every reply they wait on, instead of one per follower (a read blocks the worker's loop
    while SQLite runs it)."""

    BATCH = 500  # replies per query: well under SQLite's limit on bound parameters

    def __init__(self, store: Store, interval: float):
        self.store, self.interval = store, interval
        self._waiting: dict[str, list[AsyncResult]] = {}
        self._poller: gevent.Greenlet | None = None

    def next_read(self, message_id: str) -> StoredReply | None:
        """The reply as the next read finds it (None: it is gone)."""
        result: AsyncResult = AsyncResult()
        self._waiting.setdefault(message_id, []).append(result)
        if self._poller is None:
            self._poller = gevent.spawn(self._read_while_waited_on)
        return result.get()

    def _read_while_waited_on(self) -> None:
        try:
            while self._waiting:
                gevent.sleep(self.interval)
                waiting, self._waiting = self._waiting, {}
                ids = list(waiting)
                for start in range(0, len(ids), self.BATCH):
                    batch = ids[start:start + self.BATCH]
                    try:
                        found = self.store.replies(batch)
                    except Exception as error:  # each follower ends with it, as its own read would
                        for message_id in batch:
                            for result in waiting[message_id]:
                                result.set_exception(error)
                        continue
                    for message_id in batch:
                        for result in waiting[message_id]:
                            result.set(found.get(message_id))
        finally:
            self._poller = None


class _Cursor:
    """Where a follower stands: the last event id it has, and when it last heard anything."""

    def __init__(self, after: int):
        self.after, self.done = after, False
        self._heard = time.monotonic()

    def take(self, events) -> Iterator[tuple[int, Event]]:
        """The events it has not had yet, up to ``done``."""
        for event_id, event in events:
            if event_id <= self.after:
                continue
            self.after, self._heard = event_id, time.monotonic()
            yield event_id, event
            if type(event) is Done:
                self.done = True
                return

    def quiet_for(self, seconds: float) -> bool:
        """True (and counts as heard) when nothing was sent for ``seconds``: a heartbeat."""
        if time.monotonic() - self._heard < seconds:
            return False
        self._heard = time.monotonic()
        return True
