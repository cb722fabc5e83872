"""Browser-facing hardening: security headers, cross-site request refusal, opt-in CORS.

CSRF: every state change needs ``application/json`` (a cross-site form or a ``text/plain``
fetch cannot send it without a CORS preflight we never grant), the session cookie is
``SameSite=Lax``, and a request whose ``Origin`` (or ``Sec-Fetch-Site``) says it comes from
another site is refused outright.

Framing: the page may be framed as ``FRAME_ANCESTORS`` says (by nobody, by default); the
widget's panel only by the portals of ``WIDGET_ORIGINS``.

Host names: with ``ALLOWED_HOSTS`` set, a request for any other name is refused before
anything else, since the same-origin check trusts the ``Host`` header (``Host: evil.example``
with ``Origin: http://evil.example`` would pass it: DNS rebinding). Files and probes are
exempt: load balancers probe by address.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, make_response, request

from ..settings import Settings
from .errors import OPENAI_PREFIX, ApiError
from .policies import Access, access_of_current_view

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
CORS_METHODS = "GET, POST, PATCH, DELETE"
CORS_HEADERS = "Content-Type, X-Request-ID"
# The OpenAI-compatible API is called with a key, never with cookies (docs/api.md).
OPENAI_CORS_HEADERS = "Authorization, Content-Type, X-Request-ID"


def content_security_policy(frame_ancestors: str) -> str:
    # No inline script anywhere. Inline style *attributes* are allowed (KaTeX positions
    # glyphs with them); style elements and sheets must come from us.
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        "style-src-attr 'unsafe-inline'", "img-src 'self' data:", "font-src 'self' data:",
        "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])


# The widget's panel (``views/widget.py``): framed by the portals of WIDGET_ORIGINS alone.
WIDGET_PANEL = "widget.panel"


def init_app(app: Flask, settings: Settings) -> None:
    policy = content_security_policy(settings.frame_ancestors)
    widget_policy = content_security_policy(" ".join(("'self'", *settings.widget_origins)))
    allowed_origins = set(settings.cors_origins)
    allowed_hosts = set(settings.allowed_hosts)

    @app.before_request
    def refuse_unknown_hosts():
        if allowed_hosts and _host_name(request.host) not in allowed_hosts \
                and access_of_current_view() is not Access.NO_IDENTITY:
            raise ApiError(400, "unknown_host", "This server does not answer for that name.")

    @app.before_request
    def refuse_cross_site_changes():
        if request.method == "OPTIONS" and request.headers.get("Origin") in allowed_origins:
            return _preflight()
        if request.method not in STATE_CHANGING:
            return None
        origin = request.headers.get("Origin")
        if origin:
            if origin != "null" and (urlsplit(origin).netloc == request.host
                                     or origin in allowed_origins):
                return None
            raise ApiError(403, "cross_site", "Requests from other sites are not accepted.")
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise ApiError(403, "cross_site", "Requests from other sites are not accepted.")
        return None

    @app.after_request
    def secure_headers(response):
        panel = request.endpoint == WIDGET_PANEL
        response.headers["Content-Security-Policy"] = widget_policy if panel else policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if settings.frame_ancestors == "'none'" and not panel:
            response.headers["X-Frame-Options"] = "DENY"  # for browsers without CSP 2
        origin = request.headers.get("Origin")
        if origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            if not request.path.startswith(OPENAI_PREFIX):
                response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers.add("Vary", "Origin")
        return response


def _host_name(host: str) -> str | None:
    """The name in a Host header, lowercase, without its port; None for no valid name."""
    try:
        return urlsplit("//" + host).hostname
    except ValueError:  # "[::1" and the like
        return None


def _preflight():
    preflight = make_response("", 204)
    preflight.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    preflight.headers["Access-Control-Allow-Headers"] = (
        OPENAI_CORS_HEADERS if request.path.startswith(OPENAI_PREFIX) else CORS_HEADERS)
    preflight.headers["Access-Control-Max-Age"] = "600"
    return preflight
