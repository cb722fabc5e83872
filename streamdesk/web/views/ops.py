"""For operators and their load balancers: liveness, readiness and metrics. A probe is nobody:
these routes load no identity. Readiness and metrics say how the instance is doing, which is
nobody else's business: with METRICS_ALLOWED_FROM set only those addresses may read them
(``identity.client_address``: behind trusted proxies, the forwarded client)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from flask import Blueprint, Response, jsonify

from ... import metrics
from ..errors import ApiError
from ..identity import address_in, client_address
from ..policies import no_identity
from ..services import services

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@no_identity
def healthz():
    """The process is up and answering."""
    return jsonify({"status": "ok"})


def operators_only(view: Callable) -> Callable:
    @wraps(view)
    def checked(*args, **kwargs):
        allowed = services().settings.metrics_allowed_from
        if allowed and not address_in(client_address(), allowed):
            raise ApiError(403, "forbidden", "Only the operator's monitoring may read this.")
        return view(*args, **kwargs)
    return checked


@bp.get("/readyz")
@no_identity
@operators_only
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
@operators_only
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
