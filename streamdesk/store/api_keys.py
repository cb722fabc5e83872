"""Personal API keys: made by a user in the page, used by their tools on ``/v1``.

A key is ``sd-`` and 43 random URL-safe characters (256 bits). Only its SHA-256 is kept: a
slow password hash would add nothing for a secret that cannot be guessed, and would cost
every API call. A key is found by its hash through the unique index; the stored hash is then
compared with ``hmac.compare_digest`` as well, so no comparison of ours leaks by its time.

``last_used_at`` is written at most once a minute per key, not on every call.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from .records import utc
from .tables import ApiKeyRow, new_id, now

PREFIX = "sd-"
MAX_KEYS_PER_USER = 20
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class KeyHolder:
    """Who a presented key belongs to."""

    key_id: str
    user_id: str


class TooManyKeys(Exception):
    pass


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.created_at, row.last_used_at)


class ApiKeys:
    def __init__(self, engine: Engine, writer: Engine):
        self.engine, self.writer = engine, writer

    def create(self, user_id: str, name: str) -> tuple[ApiKey, str]:
        """A new key of this user and its secret, which is never readable again."""
        secret = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(id=new_id(), user_id=user_id, name=name, secret_hash=_hash(secret),
                        created_at=now(), last_used_at=None)
        with Session(self.writer) as db, db.begin():
            count = db.scalar(select(func.count()).select_from(ApiKeyRow)
                              .where(ApiKeyRow.user_id == user_id))
            if (count or 0) >= MAX_KEYS_PER_USER:
                raise TooManyKeys(MAX_KEYS_PER_USER)
            db.add(row)
            key = _key(row)
        return key, secret

    def of_user(self, user_id: str) -> list[ApiKey]:
        with Session(self.engine) as db:
            rows = db.scalars(select(ApiKeyRow).where(ApiKeyRow.user_id == user_id)
                              .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id))
            return [_key(row) for row in rows]

    def revoke(self, user_id: str, key_id: str) -> bool:
        """Delete a key of this user; False when this user has no such key."""
        with Session(self.writer) as db, db.begin():
            result = db.execute(delete(ApiKeyRow).where(ApiKeyRow.id == key_id,
                                                        ApiKeyRow.user_id == user_id))
            return bool(getattr(result, "rowcount", 0))

    def holder(self, secret: str) -> KeyHolder | None:
        """Whose key this is, noting that it was used; None for an unknown or revoked key."""
        if not secret.startswith(PREFIX):
            return None
        presented = _hash(secret)
        with Session(self.engine) as db:
            row = db.execute(select(ApiKeyRow.id, ApiKeyRow.user_id, ApiKeyRow.secret_hash,
                                    ApiKeyRow.last_used_at)
                             .where(ApiKeyRow.secret_hash == presented)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, presented):
            return None
        moment = now()
        if row.last_used_at is None or moment - utc(row.last_used_at) >= LAST_USED_PRECISION:
            with Session(self.writer) as db, db.begin():
                db.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id)
                           .values(last_used_at=moment))
        return KeyHolder(row.id, row.user_id)

