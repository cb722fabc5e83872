"""The SQLAlchemy engines of a process, tuned for the database behind them.

``make_engines`` gives one engine for reads and one for write transactions. On PostgreSQL they
are the same engine. On SQLite the writer's transactions take the database's one write lock
when they begin (``BEGIN IMMEDIATE``) and wait for it cooperatively: SQLite's own wait (its
busy timeout) sleeps inside C, and under gevent that sleep stops every stream of the worker,
1 ms, then 2, 5, 10... per try. Two workers starting replies in a burst collided hundreds of
times a second that way (docs/benchmarks.md). In WAL mode (``schema.py`` sets it) nothing
else in a write transaction waits for a lock, and readers never do.
"""
from __future__ import annotations

import sqlite3
import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError

from providers.idle_connections import closed_while_idle

from ..settings import DEFAULT_POOL_SIZE

# How long a write transaction waits for the lock before failing, as SQLite's busy timeout did.
WRITE_LOCK_TIMEOUT_SECONDS = 30.0
_FIRST_RETRY_SECONDS = 0.0005
_LONGEST_RETRY_SECONDS = 0.005


def engine_url(database_url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, which waits cooperatively under gevent
    (psycopg2 would block every stream of the worker during each query)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    return database_url


def make_engines(database_url: str, pool_size: int = DEFAULT_POOL_SIZE
                 ) -> tuple[Engine, Engine]:
    """(the engine for reads, the engine for write transactions).

    A database server's connections are made as the load asks for them, up to ``pool_size``,
    and kept: SQLAlchemy's default pool closes each connection past its fifth as it is given
    back, so every burst of new chats opened and closed dozens of PostgreSQL sessions, and a
    new session costs the server a process and its cold caches (about twice the server's CPU
    per reply in a burst of 200, docs/benchmarks.md). A request that finds every connection in
    use waits for one (up to 30 s), as before."""
    database_url = engine_url(database_url)
    # A failed statement's error (and so its log line) leaves its values out: they are
    # messages, prompts, titles and user ids, which only LOG_CONTENT puts in the logs.
    private = {"hide_parameters": True}
    kept = {"pool_size": pool_size, "max_overflow": 0}
    if database_url.startswith("postgresql+psycopg:"):
        from . import pg_wait  # psycopg, only where PostgreSQL is used
        pg_wait.install()  # a query's round trip as a wait on gevent's loop
        engine = create_engine(database_url, **kept, **private)
        event.listen(engine, "checkout", _closed_by_the_server)
        return engine, engine
    if not database_url.startswith("sqlite"):
        # A ping before every checkout guards against dropped server connections.
        engine = create_engine(database_url, pool_pre_ping=True, **kept, **private)
        return engine, engine
    # One engine serves every greenlet of a worker; SQLite's own thread check would refuse
    # that. A SQLite file cannot drop a connection: no ping (it would run for every save).
    reads = create_engine(database_url, **private,
                          connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(reads, "connect", _sqlite_pragmas)
    writes = create_engine(database_url, **private,
                           connect_args={"check_same_thread": False, "timeout": 0})
    event.listen(writes, "connect", _sqlite_pragmas)
    event.listen(writes, "connect", _no_implicit_begin)
    event.listen(writes, "begin", _begin_immediate)
    return reads, writes


def _closed_by_the_server(connection, _record, _proxy) -> None:
    """A pooled PostgreSQL connection that the server has closed (a restart, a failover, a
    proxy's idle timeout) is dropped before it is used, and the pool makes a new one: one
    look at its socket tells (``providers.idle_connections``), with no round trip. SQLAlchemy's
    pre-ping asked the server at every checkout, a round trip more before each transaction
    (docs/benchmarks.md)."""
    if closed_while_idle(connection.fileno()):
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # per connection, unlike journal_mode
    # In WAL mode NORMAL syncs at checkpoints instead of at every commit: a crash of the app
    # loses nothing, a power cut at most the last saves. Each commit no longer waits on fsync
    # while the whole worker (every stream on it) waits with it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _no_implicit_begin(connection, _record) -> None:
    # The driver would begin a deferred transaction before the first write by itself;
    # _begin_immediate begins every transaction of this engine instead.
    connection.isolation_level = None


def _begin_immediate(connection) -> None:
    """BEGIN IMMEDIATE, retried with short cooperative sleeps (gevent patches time.sleep)
    while another process holds the write lock."""
    delay, deadline = _FIRST_RETRY_SECONDS, time.monotonic() + WRITE_LOCK_TIMEOUT_SECONDS
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as error:
            busy = getattr(error.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _LONGEST_RETRY_SECONDS)
