"""The usage ledger (table ``usage``): written with each reply's last word (``Store.finish_turn``
and ``Store.end_api_reply``), read by token budgets and the operator's page.

Rows are only added: deleting a conversation leaves what it cost. Sums and groups are made by
the database; the only rows read back one by one are a period's times to first token, for
their median.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Engine, Table, case, func, insert, select

from .records import UsageEntry
from .tables import UsageRow

GROUPINGS = ("user", "model", "day")
_USAGE = cast(Table, UsageRow.__table__)


@dataclass(frozen=True)
class UsageTotal:
    key: str  # the user id, model id or day (YYYY-MM-DD) the row sums
    replies: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated_replies: int  # replies whose counts are our estimate
    failed_replies: int  # status error or interrupted


@dataclass(frozen=True)
class ModelHealth:
    model: str
    replies: int
    failed_replies: int
    ttft_median_ms: int | None
    ttft_p95_ms: int | None


def insert_entry(connection: Connection, entry: UsageEntry) -> None:
    connection.execute(_INSERT, {
        "at": entry.at, "user_id": entry.user_id, "provider": entry.provider,
        "model": entry.model, "via": entry.via, "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens, "total_tokens": entry.total_tokens,
        "estimated": entry.estimated, "status": entry.status, "ttft_ms": entry.ttft_ms,
        "duration_ms": entry.duration_ms})


class UsageLedger:
    def __init__(self, engine: Engine):
        self.engine = engine
        # The UTC day of a row, as text: SQLite keeps times as UTC text already; PostgreSQL's
        # date() would use the session's time zone.
        self._day = func.date(_USAGE.c.at) if engine.dialect.name == "sqlite" \
            else func.to_char(func.timezone("UTC", _USAGE.c.at), "YYYY-MM-DD")

    def tokens_spent(self, user_id: str, since: datetime, until: datetime) -> int:
        """What a user's replies in ``[since, until)`` cost: a budget's spending."""
        with self.engine.connect() as connection:
            return int(connection.execute(
                select(func.coalesce(func.sum(_USAGE.c.total_tokens), 0))
                .where(_USAGE.c.user_id == user_id, _USAGE.c.at >= since,
                       _USAGE.c.at < until)).scalar_one())

    def totals(self, by: str, since: datetime, until: datetime) -> list[UsageTotal]:
        """Sums over ``[since, until)`` by user, model or day, the largest spenders first
        (days in order)."""
        key = {"user": _USAGE.c.user_id, "model": _USAGE.c.model, "day": self._day}[by]
        failed = case((_USAGE.c.status.in_(("error", "interrupted")), 1), else_=0)
        estimated = case((_USAGE.c.estimated, 1), else_=0)
        total = func.sum(_USAGE.c.total_tokens)
        query = (select(key.label("key"), func.count(), func.sum(_USAGE.c.prompt_tokens),
                        func.sum(_USAGE.c.completion_tokens), total, func.sum(estimated),
                        func.sum(failed))
                 .where(_USAGE.c.at >= since, _USAGE.c.at < until).group_by(key)
                 .order_by(key if by == "day" else total.desc(), key))
        with self.engine.connect() as connection:
            return [UsageTotal(str(row[0]), *(int(value or 0) for value in row[1:]))
                    for row in connection.execute(query)]

    def model_health(self, since: datetime, until: datetime) -> list[ModelHealth]:
        """Per model over ``[since, until)``: replies, failures and time to first token."""
        query = (select(_USAGE.c.model, _USAGE.c.status, _USAGE.c.ttft_ms)
                 .where(_USAGE.c.at >= since, _USAGE.c.at < until))
        replies: dict[str, list[tuple[str, int | None]]] = {}
        with self.engine.connect() as connection:
            for model, status, ttft in connection.execute(query):
                replies.setdefault(model, []).append((status, ttft))
        health = []
        for model in sorted(replies):
            rows = replies[model]
            times = sorted(ttft for _, ttft in rows if ttft is not None)
            health.append(ModelHealth(
                model, len(rows), sum(status in ("error", "interrupted") for status, _ in rows),
                round(statistics.median(times)) if times else None,
                times[min(len(times) - 1, int(len(times) * 0.95))] if times else None))
        return health


_INSERT = insert(_USAGE)
