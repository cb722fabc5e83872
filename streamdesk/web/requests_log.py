"""Per-request bookkeeping: the request id (taken from X-Request-ID or made up, and sent
back), the request counter, and one JSON access line per request."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from .. import logs, metrics

log = logging.getLogger("streamdesk.access")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Every label value of a metric is a series kept for ever: a client must not be able to make
# new ones. Any other method a client invents counts as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def current_request_id() -> str:
    """This request's id, decided on first use, so no hook has to run before the others."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        logs.request_id.set(g.request_id)
    return g.request_id


def init_app(app: Flask) -> None:
    @app.before_request
    def start():
        g.started_at = time.monotonic()
        current_request_id()

    @app.after_request
    def finish(response):
        request_id = current_request_id()
        response.headers["X-Request-ID"] = request_id
        route = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        metrics.REQUESTS.labels(route, method, str(response.status_code)).inc()
        # For /chat this is when the headers leave; the reply's own line follows at its end.
        started = g.get("started_at", time.monotonic())
        log.info("request", extra={
            "request_id": request_id, "method": request.method, "route": route,
            "status": response.status_code,
            "duration_ms": round((time.monotonic() - started) * 1000)})
        return response
