"""Bringing the database schema up to date, with Alembic (migrations in ``migrations/``).

Every worker of every instance runs ``migrate`` at start-up, so they take turns under a lock:
otherwise two see a migration pending and both try to apply it. PostgreSQL has an advisory
lock for that; SQLite's own locks do not cover switching to WAL, so its workers queue on a
file beside the database. ``flask --app app db upgrade`` runs the same function by hand.
"""
from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_POSTGRES_LOCK_KEY = 0x5D5C4E3A  # any constant of ours; every instance uses the same one


def migrate(engine: Engine, revision: str = "head") -> None:
    with _schema_lock(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:  # one line when something changed, not one per worker start
        log.info("database schema upgraded", extra={"from_revision": before,
                                                    "to_revision": after})


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def _schema_lock(engine: Engine):
    if engine.dialect.name == "sqlite":
        with _file_lock(engine.url.database), engine.begin() as connection:
            # WAL: readers never wait for the streaming writers. Kept in the file.
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            yield connection
        return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _POSTGRES_LOCK_KEY})
        yield connection


@contextmanager
def _file_lock(database_path: str | None):
    if not database_path or database_path == ":memory:":
        yield
        return
    with open(database_path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


