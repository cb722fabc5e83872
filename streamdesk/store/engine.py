"""One SQLAlchemy engine per process, tuned for the database behind it."""
from __future__ import annotations

from sqlalchemy import Engine, create_engine, event


def engine_url(database_url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, which waits cooperatively under gevent
    (psycopg2 would block every stream of the worker during each query)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    return database_url


def make_engine(database_url: str) -> Engine:
    database_url = engine_url(database_url)
    sqlite = database_url.startswith("sqlite")
    # A ping before every checkout guards against dropped server connections; a SQLite
    # file cannot drop, and the extra query would run for every progress save.
    options: dict = {"pool_pre_ping": not sqlite}
    if sqlite:
        # One engine serves every greenlet of a worker; SQLite's own thread check would
        # refuse that, and its default 5 s busy wait is short for several workers.
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(database_url, **options)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # per connection, unlike journal_mode
    # In WAL mode NORMAL syncs at checkpoints instead of at every commit: a crash of the app
    # loses nothing, a power cut at most the last saves. Each commit no longer waits on fsync
    # while the whole worker (every stream on it) waits with it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
