"""Rate-limit counters in the conversation database, for deployments without Redis.

The ``limits`` library's in-memory storage counts per process, so with two gunicorn workers a
"5 guesses" lockout would allow ten. These counters live in the ``rate_limits`` table, so every
worker (and, on PostgreSQL, every instance) counts together. Each hit is one atomic upsert.
Fixed windows only: that is all this storage offers, and all StreamDesk uses.
"""
from __future__ import annotations

import time

from limits.storage import Storage
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

_INCREMENT = text("""
    INSERT INTO rate_limits (key, count, expires_at) VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN rate_limits.expires_at <= :now THEN :amount
                     ELSE rate_limits.count + :amount END,
        expires_at = CASE WHEN rate_limits.expires_at <= :now THEN :expires
                          ELSE rate_limits.expires_at END
    RETURNING count""")
_CURRENT = text("SELECT count, expires_at FROM rate_limits WHERE key = :key AND expires_at > :now")


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
        now = time.time()
        with self.engine.begin() as connection:
            return connection.execute(_INCREMENT, {"key": key, "amount": amount, "now": now,
                                                   "expires": now + expiry}).scalar_one()

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
            return connection.execute(text("DELETE FROM rate_limits")).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(text("DELETE FROM rate_limits WHERE key = :key"), {"key": key})

    def _current(self, key: str):
        with self.engine.connect() as connection:
            return connection.execute(_CURRENT, {"key": key, "now": time.time()}).first()
