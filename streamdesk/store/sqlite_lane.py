"""SQLite's bulk background work on a native thread, where it cannot stop a gevent worker.

Python's sqlite3 blocks the whole process's event loop while SQLite works, so every stream
of a worker waits for each statement. Two jobs are big and periodic, and nobody waits for
their result: saving every growing reply once a second (``chat/progress.py``) and copying
the write-ahead log back into the database (a checkpoint, with an fsync). Done on the loop,
they took the relayed chunks' p99 after the ramp from 2.6 ms (no saves) to 9-12 ms at 500
streams (docs/benchmarks.md). Here they run on a native thread of their own (a gevent
``ThreadPool`` of one), with a connection of their own: sqlite3 lets go of the interpreter
while SQLite works, so the loop runs on meanwhile.

Each batch of a progress save is one ``UPDATE ... FROM (VALUES ...)`` in autocommit: one call
into SQLite takes the write lock, writes and commits, so the lock is never held while this
thread waits for the interpreter. Waiting for the lock is SQLite's own busy timeout, which only
sleeps this thread. The thread touches no gevent or SQLAlchemy object (their locks are not
meant to be shared across threads): plain ``sqlite3`` only.

The workers' own connections no longer checkpoint when a commit takes the log past 1,000
pages; the lane checkpoints every ``CHECKPOINT_SECONDS`` instead (PASSIVE: it neither waits
for nor holds up readers and writers). Processes without gevent's loop (tests, ``flask db
upgrade``) have no lane and keep SQLite's own checkpoints.
"""
from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

import gevent
from gevent.threadpool import ThreadPool
from sqlalchemy import Engine, event

from .engine import WRITE_LOCK_TIMEOUT_SECONDS
from .records import Progress, ReplyStatus
from .tables import MessageRow

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0
CACHE_KIB = 256  # SQLite's page cache for the lane's connection
# When the log starts over after a complete checkpoint, its file is cut back to this size:
# a burst's log does not keep its disk space for ever.
KEEP_LOG_BYTES = 16 * 1024 * 1024

# The rows of a batch as a table of values, joined to the replies still being written (a
# reply that finished meanwhile was saved whole by finish_turn: an older snapshot must not
# overwrite it). Same columns as repository._SAVE_PROGRESS, the statement of other databases.
_SAVE_PROGRESS = ("WITH grown(id, content_from, content, reasoning_from, reasoning, stream_index)"
                  " AS (VALUES {rows}) UPDATE messages SET "
                  "content = substr(messages.content, 1, grown.content_from) || grown.content, "
                  "reasoning = substr(messages.reasoning, 1, grown.reasoning_from) "
                  "|| grown.reasoning, stream_index = grown.stream_index, updated_at = ? "
                  "FROM grown WHERE messages.id = grown.id AND messages.status = ?")


class SqliteLane:
    def __init__(self, engine: Engine, interval: float = CHECKPOINT_SECONDS):
        if not engine.url.database or engine.url.database == ":memory:":
            raise ValueError("a SQLite lane needs a database file")
        self.database_path: str = engine.url.database
        self.interval = interval
        # The moment as SQLAlchemy writes it, so both kinds of writes agree.
        moment_text = engine.dialect.type_descriptor(
            MessageRow.__table__.c.updated_at.type).bind_processor(engine.dialect)
        assert moment_text is not None  # SQLite stores moments as text
        self._moment_text = moment_text
        self._statements: dict[int, str] = {}
        self._pool = ThreadPool(1)  # one thread: jobs run one at a time, in order
        self._connection: sqlite3.Connection | None = None  # the pool's thread's only
        self._checkpointer: gevent.Greenlet | None = None

    def take_over_checkpoints(self, engine: Engine) -> None:
        """The engine's connections no longer checkpoint when they commit."""
        event.listen(engine, "connect", _no_checkpoint_on_commit)

    def start(self) -> SqliteLane:
        self._checkpointer = gevent.spawn(self._checkpoint_every_interval)
        return self

    def stop(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.kill()
        self._pool.kill()

    def save_progress(self, batches: list[list[Progress]], moment: datetime
                      ) -> list[Exception | None]:
        """The growth of replies still being written, a statement per batch; what each batch
        failed with, None where it was saved. All go in one job: the calling greenlet waits
        for the loop to hear of one job, not of each statement (at 400 open replies on a busy
        worker, a turn of the loop per statement made a save of 1 s of growth take up to
        6 s: docs/benchmarks.md). The rest of the worker does not wait."""
        jobs = []
        for rows in batches:
            statement = self._statements.get(len(rows))
            if statement is None:
                statement = self._statements[len(rows)] = _SAVE_PROGRESS.format(
                    rows=", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows)))
            values = [value for row in rows for value in row]
            values += (self._moment_text(moment), ReplyStatus.STREAMING.value)
            jobs.append((statement, values))
        return self._pool.apply(self._execute_each, (jobs,))

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (1 if it could not run, pages in the log, pages copied)."""
        return self._pool.apply(self._execute, ("PRAGMA wal_checkpoint(PASSIVE)", ()))[0]

    def _checkpoint_every_interval(self) -> None:
        while True:
            gevent.sleep(self.interval)
            try:
                self.checkpoint()
            except sqlite3.Error:  # the next one copies what this one could not
                log.exception("checkpointing the database's write-ahead log failed")

    def _execute_each(self, jobs: list[tuple[str, list]]) -> list[Exception | None]:
        failures: list[Exception | None] = []  # on the pool's thread
        for statement, values in jobs:
            try:
                self._execute(statement, values)
            except Exception as error:  # a value sqlite3 cannot bind, a lock held too long
                failures.append(error)
            else:
                failures.append(None)
        return failures

    def _execute(self, statement: str, values) -> list:  # on the pool's thread
        if self._connection is None:
            self._connection = _connect(self.database_path)
        return self._connection.execute(statement, values).fetchall()


def _connect(database_path: str) -> sqlite3.Connection:
    # Autocommit (isolation_level None): each statement is its own transaction.
    connection = sqlite3.connect(database_path, timeout=WRITE_LOCK_TIMEOUT_SECONDS,
                                 isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")  # as engine.py's connections
    # It rewrites rows it wrote a second ago, whose pages the OS still caches: SQLite's
    # default cache of 2 MB here was ~4 KB of every open reply at 1,000 (docs/benchmarks.md).
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    _no_checkpoint_on_commit(connection, None)
    return connection


def _no_checkpoint_on_commit(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={KEEP_LOG_BYTES}")
    cursor.close()

