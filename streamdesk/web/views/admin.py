"""What operators see: ``/admin``, and the JSON behind it at ``/api/admin/...``.

Who may call: ``/admin`` itself is a page shell anyone may load (it asks for sign-in or the
operator code as the chat page does, and shows nothing without the JSON); every
``/api/admin`` route is for operators alone (``identity.is_admin``: an SSO name in
ADMIN_USERS, or a session that entered ADMIN_CODE), 403 ``admins_only`` for everyone else.

Periods are whole UTC days, ``from`` and ``to`` included (``YYYY-MM-DD``; the last 30 days by
default). Each table is JSON, or CSV with ``?format=csv``.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from functools import wraps

from flask import Blueprint, Response, jsonify, render_template, request

from ...store.usage import GROUPINGS
from ..errors import ApiError
from ..exports import FEEDBACK_FIELDS, feedback_rows, to_csv
from ..identity import is_admin
from ..policies import View, public
from ..services import services

bp = Blueprint("admin", __name__)

DEFAULT_DAYS = 30
MAX_DAYS = 366
USAGE_FIELDS = ("key", "replies", "prompt_tokens", "completion_tokens", "total_tokens",
                "estimated_replies", "failed_replies")
MODEL_FIELDS = ("model", "replies", "failed_replies", "error_rate", "ttft_median_ms",
                "ttft_p95_ms")


def admins_only(view: View) -> View:
    @wraps(view)
    def guarded(*args, **kwargs):
        if not is_admin():
            raise ApiError(403, "admins_only", "This is for the operators of this chat only.")
        return view(*args, **kwargs)
    return guarded  # type: ignore[return-value]


@bp.get("/admin")
@public
def page():
    return render_template("admin.html")


@bp.get("/api/admin/usage")
@admins_only
def usage():
    since, until = _period()
    by = request.args.get("by", "user")
    if by not in GROUPINGS:
        raise ApiError(400, "invalid_grouping", f"'by' must be one of {', '.join(GROUPINGS)}.")
    rows = [asdict(total) for total in services().store.usage.totals(by, since, until)]
    totals = {field: sum(row[field] for row in rows) for field in USAGE_FIELDS[1:]}
    return _table(rows, USAGE_FIELDS, f"usage-by-{by}", since, until, by=by, totals=totals)


@bp.get("/api/admin/models")
@admins_only
def models():
    since, until = _period()
    rows = []
    for health in services().store.usage.model_health(since, until):
        row = asdict(health)
        row["error_rate"] = round(health.failed_replies / health.replies, 4)
        rows.append(row)
    return _table(rows, MODEL_FIELDS, "models", since, until)


@bp.get("/api/admin/feedback")
@admins_only
def feedback():
    since, until = _period()
    app = services()
    rows = feedback_rows(app.store.feedback_since(since, until), app.settings.secret_key)
    return _table(rows, FEEDBACK_FIELDS, "feedback", since, until)


def _period() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).date()
    try:
        first = date.fromisoformat(request.args.get("from") or
                                   (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat())
        last = date.fromisoformat(request.args.get("to") or today.isoformat())
    except ValueError:
        raise ApiError(400, "invalid_period", "'from' and 'to' must be days like 2026-11-27.") \
            from None
    if first > last or (last - first).days >= MAX_DAYS:
        raise ApiError(400, "invalid_period",
                       f"'from' must not be after 'to', and the period at most {MAX_DAYS} days.")
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return start, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


def _table(rows: list[dict], fields: tuple[str, ...], name: str, since: datetime,
           until: datetime, **extra):
    if request.args.get("format") == "csv":
        day = since.date().isoformat()
        last = (until - timedelta(days=1)).date().isoformat()
        return Response(to_csv(rows, fields), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="streamdesk-{name}-{day}-{last}.csv"'})
    return jsonify({"from": since.date().isoformat(),
                    "to": (until - timedelta(days=1)).date().isoformat(), **extra,
                    "rows": rows})
