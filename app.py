"""StreamDesk: a self-hosted browser chat that streams replies from large language models.

``create_app`` wires the parts together; ``app`` is the one global, for gunicorn
(``gunicorn -c gunicorn.conf.py app:app``). ``python app.py`` runs the same production server
on HOST:PORT (default 127.0.0.1:5000).
"""
from __future__ import annotations

import atexit
import os
import sys
from typing import Mapping

from cachelib.file import FileSystemCache
from flask import Flask
from flask_session import Session as ServerSideSessions

from providers import build_registry
from providers.errors import ConfigurationError
from streamdesk import limits, requests_log, security
from streamdesk.errors import register_error_handlers
from streamdesk.identity import resolve_identity
from streamdesk.logs import configure_logging
from streamdesk.services import Services
from streamdesk.settings import SettingsError, load_settings
from streamdesk.storage import Store
from streamdesk.views import blueprints

SESSION_LIFETIME_DAYS = 90


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment; ``config`` overrides variables (tests use it)."""
    env = {**os.environ, **(config or {})}
    app = Flask(__name__, instance_path=env.get("INSTANCE_PATH") or None)
    settings = load_settings(env, app.instance_path)
    registry = build_registry(env)
    store = Store(settings.database_url)
    store.create_schema()

    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME="streamdesk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME_DAYS * 86400,
    )
    app.json.sort_keys = False
    redis_client = _configure_sessions(app, settings.redis_url)
    app.extensions["streamdesk"] = Services(settings, registry, store, redis_client)
    # Hook order matters: request id, cross-site refusal, identity, then the rate limiter
    # (which counts per user, so it needs the identity).
    requests_log.install(app)
    security.install(app)
    app.before_request(resolve_identity)
    register_error_handlers(app)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    limits.install(app)
    atexit.register(registry.close)
    return app


def _configure_sessions(app: Flask, redis_url: str | None):
    """Server-side sessions: Redis when several instances share users, else files.
    Returns the Redis client, if any, for the readiness check."""
    client = None
    if redis_url:
        import redis
        client = redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
    else:
        directory = os.path.join(app.instance_path, "sessions")
        app.config.update(SESSION_TYPE="cachelib",
                          SESSION_CACHELIB=FileSystemCache(directory, threshold=0, mode=0o600))
    ServerSideSessions(app)
    return client


def _serve() -> None:
    """Run gunicorn exactly as the Procfile does, on HOST:PORT."""
    here = os.path.dirname(os.path.abspath(__file__))
    bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--chdir", here,
                              "-c", os.path.join(here, "gunicorn.conf.py"), "--bind", bind,
                              "app:app"])


configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
try:
    app = create_app()
except (ConfigurationError, SettingsError) as error:
    # One clear line instead of a traceback. Exit code 3 tells gunicorn's arbiter that the
    # worker cannot boot, so it stops instead of restarting it forever.
    print(f"StreamDesk cannot start: {error}", file=sys.stderr)
    sys.exit(3)

if __name__ == "__main__":
    _serve()
