"""For operators and their load balancers: liveness, readiness and metrics. A probe is nobody:
these routes load no identity."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from ... import metrics
from ..policies import no_identity
from ..services import services

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@no_identity
def healthz():
    """The process is up and answering."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@no_identity
def readyz():
    """Ready to serve: the database (and Redis, when sessions live there) answer."""
    app = services()
    checks = {"database": _check(app.store.ping)}
    if app.redis is not None:
        checks["redis"] = _check(app.redis.ping)
    ready = all(result == "ok" for result in checks.values())
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), \
        200 if ready else 503


@bp.get("/metrics")
@no_identity
def prometheus_metrics():
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as error:  # any failure means not ready; the reason goes to the log
        log.warning("readiness check failed: %s", type(error).__name__)
        return "unavailable"
