"""How many replies one user may follow at once (``GET /api/messages/<id>/events``):
MAX_FOLLOWERS_PER_USER, 4 x MAX_STREAMS_PER_USER unless set. One more is 429
``too_many_followers``.

Each follower holds a connection and a greenlet until its reply ends, and one on a worker
that is not writing the reply (without Redis) reads the database while it waits. Without a cap
one user, or a script with their cookie, could open thousands.

Counted by each worker process in its memory, unlike the rate limits: what the cap guards is
what this process holds (its sockets and greenlets), the count is exact and costs no I/O, and a
count kept in Redis or the database would outlive a worker killed outright (SIGKILL, out of
memory) and shut its users out until something expired it. So a user may hold the cap on each
worker of each instance, and no worker holds more than the cap for one user.

A follower's place is given back when the server closes its response: when the reply has
ended, when the client has left (``disconnect.end_when_gone`` notices at once), or when the
response is never sent.
"""
from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from flask import Flask, current_app

from ..chat.turn import STREAM_CAP_RETRY_SECONDS
from ..settings import Settings
from .errors import ApiError


class Followers:
    """The followers each user has open on this worker."""

    def __init__(self, cap: int):
        self.cap = cap
        self.open: Counter[str] = Counter()

    def admit(self, user_id: str, body: Iterable[bytes]) -> Iterable[bytes]:
        """``body``, the response of one more follower of ``user_id``, holding its place until
        the server closes it; or 429 when the user has ``cap`` open already."""
        if self.open[user_id] >= self.cap:
            raise ApiError(
                429, "too_many_followers",
                f"Too many replies followed at once (at most {self.cap}): close other tabs or "
                "windows showing a reply being written, then reload.",
                retry_after=STREAM_CAP_RETRY_SECONDS)
        self.open[user_id] += 1
        return _Held(body, lambda: self._leave(user_id))

    def _leave(self, user_id: str) -> None:
        self.open[user_id] -= 1
        if not self.open[user_id]:
            del self.open[user_id]


class _Held:
    """A response body that gives its follower's place back once. A WSGI server closes every
    body it was given (PEP 3333), even one it never iterated (a HEAD request), where a
    generator's ``finally`` would never run; and a response dropped unsent (an error after the
    view returned it) gives it back when it is collected."""

    def __init__(self, body: Iterable[bytes], leave: Callable[[], None]):
        self._body: Iterator[bytes] = iter(body)
        self._leave = weakref.finalize(self, leave)  # runs once: at close, else when collected

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._leave()


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["streamdesk.followers"] = Followers(settings.max_followers_per_user)


def followers() -> Followers:
    return current_app.extensions["streamdesk.followers"]
