"""Removing the files of expired sessions (file sessions only: Redis expires its keys itself).

flask-session keeps one file per session through cachelib's ``FileSystemCache``, which
removes a file only when its session is read after it expired: a visitor who never comes
back leaves it for ever. Its own pruning is off (``threshold=0``): past the threshold it
would delete live sessions too. So each worker sweeps the folder every ``SWEEP_SECONDS``, on
a native thread, since reading thousands of files must not stop the worker's streams.
A session file starts with its expiry time (cachelib's format: 4 bytes, unsigned, 0 for
never); ``tests/test_web_identity.py`` checks that this still holds.
"""
from __future__ import annotations

import logging
import os
import struct
import time

import gevent

log = logging.getLogger(__name__)

SWEEP_SECONDS = 3600
_HEADER = struct.Struct("I")


def remove_expired(directory: str, now: float) -> int:
    """Remove the session files in ``directory`` that expired before ``now``; how many.
    Plain file work, safe on a native thread."""
    removed = 0
    if not os.path.isdir(directory):  # no session yet
        return 0
    for entry in os.scandir(directory):
        if not entry.is_file() or entry.name.startswith("__wz_cache"):  # cachelib's own
            continue
        try:
            with open(entry.path, "rb") as session_file:
                header = session_file.read(_HEADER.size)
            if len(header) < _HEADER.size:
                continue  # being written
            expires = _HEADER.unpack(header)[0]
            if expires and expires < now:
                os.remove(entry.path)
                removed += 1
        except FileNotFoundError:  # ended meanwhile, or swept by another worker
            pass
    return removed


def sweep_every_interval(directory: str, interval: float = SWEEP_SECONDS) -> None:
    """For a worker's greenlet: sweep, then every ``interval`` seconds again."""
    pool = gevent.get_hub().threadpool
    while True:
        try:
            removed = pool.apply(remove_expired, (directory, time.time()))
        except OSError:
            log.exception("removing expired session files failed")
        else:
            if removed:
                log.info("expired sessions removed", extra={"sessions": removed})
        gevent.sleep(interval)
