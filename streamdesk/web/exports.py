"""Tables for operators, as JSON rows or as CSV a spreadsheet opens safely: the feedback
export (``flask --app app feedback export`` and ``/api/admin/feedback``) and the operator
page's usage tables."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from ..logs import hash_user
from ..store import FeedbackEntry
from .serialize import iso

FEEDBACK_FIELDS = ("time", "model", "rating", "comment", "question", "reply", "user")


def feedback_rows(entries: Iterable[FeedbackEntry], secret_key: str) -> list[dict]:
    """Each rated reply, with the user as the same hash the logs use."""
    return [{"time": iso(entry.at), "model": entry.model, "rating": entry.rating,
             "comment": entry.comment or "", "question": entry.question, "reply": entry.reply,
             "user": hash_user(entry.user_id, secret_key)} for entry in entries]


def to_csv(rows: Iterable[dict], fields: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({field: inert("" if value is None else str(value))
                      for field, value in row.items()} for row in rows)
    return out.getvalue()


def inert(cell: str) -> str:
    """A cell a spreadsheet shows as text: users and models write the comments, questions and
    replies, and a cell starting with = + - @ (or a tab or CR) would be run as a formula."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
