"""Rate limits (Flask-Limiter; counted in Redis when REDIS_URL is set, else in the database,
so every worker and instance counts the same), the access-code lockout, and the cap on
concurrent replies per user.

Every refusal is a 429 JSON error with Retry-After, so the page can say when to try again.
"""
from __future__ import annotations

import math
import time

from flask import Flask
from flask_limiter import Limiter, RateLimitExceeded

from .limit_storage import DatabaseLimitStorage
from .errors import ApiError, json_error
from .identity import client_address, current_user_id
from .services import services

ACCESS_CODE_ATTEMPTS = "5 per 15 minutes"  # failed guesses per address before a lockout
STREAM_CAP_RETRY_SECONDS = 5


def install(app: Flask) -> None:
    """Call after the identity hook and the blueprints are registered."""
    app_services = app.extensions["streamdesk"]
    settings = app_services.settings
    # Counters every worker shares: Redis when there is one, else the app's own database.
    if settings.redis_url:
        storage = {"storage_uri": settings.redis_url}
    else:
        storage = {"storage_uri": DatabaseLimitStorage.STORAGE_SCHEME[0] + "://",
                   "storage_options": {"engine": app_services.store.engine}}
    limiter = Limiter(client_address, app=app, key_prefix="streamdesk", headers_enabled=True,
                      strategy="fixed-window", **storage)
    def limit(endpoint: str, rate: str, **options) -> None:
        # Flask-Limiter checks a decorated limit inside the wrapper it returns, so the
        # wrapper must become the view.
        app.view_functions[endpoint] = limiter.limit(rate, **options)(app.view_functions[endpoint])

    if settings.rate_limit:
        limit("chat.chat", settings.rate_limit, key_func=lambda: "user:" + current_user_id(),
              scope="chat-user")
    if settings.ip_rate_limit:
        limit("chat.chat", settings.ip_rate_limit, key_func=client_address, scope="chat-ip")
    limit("access.enter_code", ACCESS_CODE_ATTEMPTS, key_func=client_address,
          scope="access-code", deduct_when=lambda response: response.status_code == 401)

    @app.errorhandler(RateLimitExceeded)
    def too_many(error: RateLimitExceeded):
        current = limiter.current_limit
        wait = max(1, math.ceil(current.reset_at - time.time())) if current else 60
        response = json_error(429, "rate_limited",
                              f"Too many requests ({error.description}). "
                              f"Try again in {wait} seconds.")
        response.headers["Retry-After"] = str(wait)
        return response


def check_stream_cap(user_id: str) -> None:
    app = services()
    if app.store.active_streams(user_id) >= app.settings.max_streams_per_user:
        raise ApiError(429, "too_many_streams",
                       f"You already have {app.settings.max_streams_per_user} replies being "
                       "written. Wait for one to finish or stop it.",
                       retry_after=STREAM_CAP_RETRY_SECONDS)
