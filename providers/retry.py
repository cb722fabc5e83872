"""Retries that the user never sees: only before the first chunk has been yielded.

Once a byte of the reply has reached the browser a retry would repeat or contradict it, so
``retry_before_first_chunk`` re-opens the stream only while nothing has come out of it yet.
The policy mirrors the official OpenAI SDK: at most 2 retries, backoff from 0.5 s doubling to
8 s with up to 25 % jitter, and the server's Retry-After honoured when it is at most 60 s.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .base import Chunk
from .errors import ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based), or None: give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if 0 <= retry_after <= self.max_retry_after else None
        backoff = min(self.initial_delay * 2 ** attempt, self.max_delay)
        return backoff * (1 - self.jitter * random.random())


NO_RETRIES = RetryPolicy(max_retries=0)


def retry_before_first_chunk(open_stream: Callable[[], Iterator[Chunk]], policy: RetryPolicy,
                             sleep: Callable[[float], None] = time.sleep) -> Iterator[Chunk]:
    attempt = 0
    while True:
        stream = open_stream()
        try:
            first = next(stream)
        except StopIteration:
            return
        except ProviderError as error:
            close = getattr(stream, "close", None)
            if close:
                close()
            wait = policy.delay(attempt, error.retry_after) if error.retryable else None
            if wait is None:
                raise
            sleep(wait)
            attempt += 1
            continue
        break
    try:
        yield first
        yield from stream
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
