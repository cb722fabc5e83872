"""ERNIE's OAuth access token, cached, and kept out of the logs.

The token is fetched once per credential pair and shared by every reply of the worker
(docs/providers/ernie.md: never fetch a token per chat call). It, and both
keys, travel in query strings, which urllib3 logs at DEBUG: a filter blanks them there.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable

from .errors import ProviderError

_QUERY_SECRET = re.compile(r"((?:access_token|client_id|client_secret)=)[^&\s\"']+")


class _RedactQuerySecrets(logging.Filter):
    """urllib3 logs each request line, query string included, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY_SECRET.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_RedactQuerySecrets())


class TokenCache:
    """One access token per credential pair, fetched by one caller while the others wait.

    gevent patches ``threading.Lock`` into a cooperative lock, so a hundred greenlets asking at
    once still cause one fetch. A failed fetch is handed to the callers that were waiting for it
    instead of being repeated by each in turn (a dead token service would otherwise cost each
    of them a full timeout, one after another).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._current: tuple[str, float] | None = None  # (token, refresh after); swapped whole
        self._failures = 0
        self._last_failure: ProviderError | None = None

    def _fresh(self) -> str | None:
        current = self._current
        return current[0] if current and self._clock() < current[1] else None

    def get(self, fetch: Callable[[], tuple[str, float]]) -> str:
        token = self._fresh()
        if token:
            return token
        failures = self._failures
        with self._lock:
            token = self._fresh()
            if token:
                return token
            if self._failures != failures and self._last_failure is not None:
                e = self._last_failure
                raise type(e)(e.message, retryable=e.retryable, upstream_code=e.upstream_code)
            try:
                token, expires_in = fetch()
            except ProviderError as error:
                self._failures += 1
                self._last_failure = error
                raise
            # Refresh well ahead of expiry: 10 % of the lifetime, at most a day (of 30).
            self._current = (token, self._clock() + expires_in - min(expires_in * 0.1, 86400.0))
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one: a hundred replies failing with the
        same expired token cause one refresh, not a hundred."""
        with self._lock:
            if self._current and self._current[0] == token:
                self._current = None


_SHARED: dict[str, TokenCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_token_cache(token_url: str, api_key: str, secret_key: str) -> TokenCache:
    key = hashlib.sha256("\0".join((token_url, api_key, secret_key)).encode()).hexdigest()
    with _SHARED_LOCK:
        return _SHARED.setdefault(key, TokenCache())
