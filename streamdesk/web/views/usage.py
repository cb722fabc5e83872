"""``GET /api/usage``: what the user has spent today and this month, and what is left of each
token budget, for the settings panel. Who may call: the signed-in user (or the browser's
anonymous user), for their own usage only."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify

from ...chat.budgets import period_bounds
from ..identity import current_groups, known_user_id
from ..serialize import iso
from ..services import services

bp = Blueprint("usage", __name__, url_prefix="/api")

SPENT_PERIODS = ("day", "month")


@bp.get("/usage")
def own_usage():
    app = services()
    user_id = known_user_id() or ""  # a browser that is nobody yet has spent nothing
    now = datetime.now(UTC)
    spent = {period: app.store.usage.tokens_spent(user_id, *period_bounds(period, now))
             for period in SPENT_PERIODS}
    states = app.budgets.states(app.store, user_id, current_groups())
    return jsonify({"spent": spent, "budgets": [
        {"period": s.budget.period, "tokens": s.budget.tokens, "spent": s.used,
         "remaining": s.remaining, "resets_at": iso(s.resets_at)} for s in states]})
