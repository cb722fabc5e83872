"""StreamDesk on the web: the Flask app and everything that knows about HTTP.

``create_app`` wires the parts together. Views are thin: they read the request, call the chat
layer with plain values and encode what comes back. Who may call each view is declared on it
(``policies.py``, ``limits.py``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import gevent
from cachelib.file import FileSystemCache
from flask import Flask, send_from_directory
from flask_session import Session as ServerSideSessions

from providers import Registry, build_registry

from ..chat.budgets import Budgets
from ..chat.bus import DatabaseBus, RedisBus
from ..chat.replies import Replies, ReplyPolicy
from ..settings import load_settings
from ..store import Store
from . import cli, errors, followers, identity, limits, requests_log, security, session_sweep
from .policies import no_identity
from .services import Services
from .validation import RecordId
from .views import api_key_blueprints, blueprints, widget_blueprints

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent  # templates/, static/, node_modules/
SESSION_LIFETIME_DAYS = 90


def create_app(config: Mapping[str, str] | None = None, *, registry: Registry | None = None,
               environ: Mapping[str, str] = os.environ) -> Flask:
    """Build the app from the environment; ``config`` overrides variables, ``environ`` stands
    for the environment and ``registry`` replaces the configured providers (tests use them)."""
    env = {**environ, **(config or {})}
    settings = load_settings(env)
    registry = registry or build_registry(env)
    store = Store(settings.database_url, sqlite_lane=_in_gevent_worker(),
                  pool_size=settings.database_pool_size,
                  longest_reply_seconds=settings.max_reply_seconds)
    store.migrate()

    # The static route is added below, so that it too says who may call it.
    app = Flask("streamdesk", root_path=str(PROJECT_ROOT), instance_path=settings.instance_path,
                static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME="streamdesk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME_DAYS * 86400,
        SESSION_REFRESH_EACH_REQUEST=False,  # identity.KEEP_ALIVE_SECONDS instead
    )
    if settings.widget_cross_site:  # a portal of another site frames the widget
        app.config.update(SESSION_COOKIE_SAMESITE="None", SESSION_COOKIE_SECURE=True)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    redis_client = _init_sessions(app, settings.redis_url)
    if settings.widget_cross_site:
        _partition_session_cookie(app)
    bus = RedisBus(store, settings.heartbeat_seconds, redis_client) if redis_client \
        else DatabaseBus(store, settings.heartbeat_seconds)
    replies = Replies(store, bus, ReplyPolicy(settings.heartbeat_seconds,
                                              settings.save_interval_seconds,
                                              settings.max_reply_seconds,
                                              settings.max_reply_chars))
    app.extensions["streamdesk"] = Services(
        settings, registry, store, replies, redis_client,
        Budgets(settings.token_budget, settings.budget_overrides))

    requests_log.init_app(app)
    security.init_app(app, settings)
    identity.init_app(app)
    limits.init_app(app, settings, store.writer)
    followers.init_app(app, settings)
    errors.init_app(app)
    cli.init_app(app)
    app.url_map.converters["id"] = RecordId
    for blueprint in (blueprints + (api_key_blueprints if settings.api_keys else ())
                      + (widget_blueprints if settings.widget_origins else ())):
        app.register_blueprint(blueprint)
    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=_static_files(app))
    return app


def _in_gevent_worker() -> bool:
    """Served by gunicorn's gevent worker (monkey-patched), not imported by a tool."""
    from gevent import monkey
    return monkey.is_module_patched("socket")


def _static_files(app: Flask):
    static_folder = PROJECT_ROOT / "static"

    @no_identity
    def static(filename: str):
        return send_from_directory(static_folder, filename,
                                   max_age=app.get_send_file_max_age(filename))
    return static


def _init_sessions(app: Flask, redis_url: str | None):
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
        if _in_gevent_worker():
            gevent.spawn(session_sweep.sweep_every_interval, directory)
    ServerSideSessions(app)
    return client


def _partition_session_cookie(app: Flask) -> None:
    """``Partitioned`` on the session cookie (CHIPS): browsers that block third-party cookies
    still keep a cross-site widget's session, in a jar of that portal's own. flask-session
    0.8 cannot set the attribute, so it is added to the cookie it writes."""
    interface = app.session_interface
    save = interface.save_session
    name = app.config["SESSION_COOKIE_NAME"]

    def save_session(app_, session, response):
        save(app_, session, response)
        cookies = response.headers.getlist("Set-Cookie")
        if any(cookie.startswith(name + "=") for cookie in cookies):
            response.headers.remove("Set-Cookie")
            for cookie in cookies:
                mine = cookie.startswith(name + "=") and "Partitioned" not in cookie
                response.headers.add("Set-Cookie", cookie + "; Partitioned" if mine else cookie)

    interface.save_session = save_session  # type: ignore[method-assign]
