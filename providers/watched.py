"""Reads without a timeout of their own, for a caller that watches for silence itself.

See ``Provider.stream(watched=True)``: once the first piece of a reply is out, the caller's
timer bounds the silences, so the provider's socket stops starting one per read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import requests

from .base import Chunk


def untimed_after_first(chunks: Iterator[Chunk], untime: Callable[[], None],
                        watched: bool) -> Iterator[Chunk]:
    """``chunks``; when ``watched``, ``untime()`` is called once the first one has been taken."""
    return _untimed_after_first(chunks, untime) if watched else chunks


def _untimed_after_first(chunks: Iterator[Chunk], untime: Callable[[], None]) -> Iterator[Chunk]:
    for chunk in chunks:
        yield chunk
        untime()
        break
    yield from chunks


def untime_response(response: requests.Response) -> Callable[[], None]:
    """Stops timing the reads of a streamed response's body. urllib3 sets the socket's
    timeout again whenever the pooled connection is next used, so this lasts one response."""
    def untime() -> None:
        connection = response.raw.connection  # None once the body has been read to the end
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(None)
    return untime
