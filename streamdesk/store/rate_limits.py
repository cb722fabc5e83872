"""Rate-limit counters in the conversation database, for deployments without Redis.

The ``limits`` library's in-memory storage counts per process, so with two gunicorn workers a
"5 guesses" lockout would allow ten. These counters live in the ``rate_limits`` table
(``tables.py``), so every worker (and, on PostgreSQL, every instance) counts together. Each hit
is one atomic upsert.
Fixed windows only: that is all this storage offers, and all StreamDesk uses.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from limits.storage import Storage
from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .tables import RateLimitRow

_table = cast(Table, RateLimitRow.__table__)
# Both dialects spell an upsert the same way: INSERT ... ON CONFLICT DO UPDATE.
_UPSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert, "sqlite": sqlite.insert}


class DatabaseLimitStorage(Storage):
    STORAGE_SCHEME = ["streamdesk-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 engine: Engine | None = None, **_options):
        super().__init__(uri, wrap_exceptions)
        if engine is None:
            raise ValueError("DatabaseLimitStorage needs the app's engine (storage_options)")
        self.engine = engine

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """One atomic upsert: a new or expired window starts at ``amount``."""
        now = time.time()
        insert = _UPSERT[self.engine.dialect.name](_table).values(
            key=key, count=amount, expires_at=now + expiry)
        expired = _table.c.expires_at <= now
        statement = insert.on_conflict_do_update(index_elements=[_table.c.key], set_={
            "count": case((expired, amount), else_=_table.c.count + amount),
            "expires_at": case((expired, now + expiry), else_=_table.c.expires_at),
        }).returning(_table.c.count)
        with self.engine.begin() as connection:
            return connection.execute(statement).scalar_one()

    def get(self, key: str) -> int:
        row = self._current(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._current(key)
        return row[1] if row else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            return connection.execute(delete(_table)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(_table).where(_table.c.key == key))

    def _current(self, key: str):
        with self.engine.connect() as connection:
            return connection.execute(select(_table.c.count, _table.c.expires_at).where(
                _table.c.key == key, _table.c.expires_at > time.time())).first()
