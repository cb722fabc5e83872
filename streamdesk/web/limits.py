"""Rate limits, token budgets and the access-code lockout, each declared on the view it guards
(``@limit_messages``, ``@limit_stops``, ``@within_budget``, ``@limit_code_guesses``). The cap
on replies being written is checked where the reply is saved, in one transaction
(``streamdesk/chat/turn.py``); the cap on replies followed at once is counted by each worker
(``followers.py``).

Counters come from the ``limits`` library: in Redis when REDIS_URL is set, else in the app's
own database (``streamdesk/store/rate_limits.py``), so every worker and instance counts the
same. Fixed windows. Every refusal is a 429 JSON error with Retry-After, so the page can say
when to try again.
"""
from __future__ import annotations

import math
import time
from functools import wraps
from typing import cast

from flask import Flask, current_app
from limits import RateLimitItem, parse, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ..chat.budgets import BudgetExceeded, BudgetState
from ..settings import Settings
from ..store import DatabaseLimitStorage
from .errors import ApiError
from .identity import client_address, current_groups, current_user_id, known_user_id
from .policies import View
from .services import services


class RateLimits:
    """The configured limits of one app and the counters behind them."""

    def __init__(self, settings: Settings, storage: Storage):
        self.window = FixedWindowRateLimiter(storage)
        self.per_user = parse_many(settings.rate_limit) if settings.rate_limit else []
        self.per_address = parse_many(settings.ip_rate_limit) if settings.ip_rate_limit else []
        if not self.per_address and not (settings.access_code or settings.trusted_user_header):
            # An anonymous user is a cookie, and a client that drops it would get a fresh
            # RATE_LIMIT: the same limit counts per address too (IP_RATE_LIMIT overrides it).
            self.per_address = self.per_user
        self.code_guesses = parse(settings.access_code_attempts)  # ACCESS_CODE_ATTEMPTS
        self.stops = parse_many(settings.stop_rate_limit)  # STOP_RATE_LIMIT

    def hit(self, items: list[RateLimitItem], *keys: str) -> None:
        for item in items:
            if not self.window.hit(item, *keys):
                raise self.refusal(item, *keys)

    def take_back(self, item: RateLimitItem, *keys: str) -> None:
        """Undo one hit (the count is a failure count, and this one did not fail)."""
        self.window.storage.incr(item.key_for(*keys), item.get_expiry(), amount=-1)

    def refusal(self, item: RateLimitItem, *keys: str) -> ApiError:
        reset_at = self.window.get_window_stats(item, *keys).reset_time
        wait = max(1, math.ceil(reset_at - time.time()))
        return ApiError(429, "rate_limited",
                        f"Too many requests ({item}). Try again in {wait} seconds.",
                        retry_after=wait)


def init_app(app: Flask, settings: Settings, engine) -> None:
    storage: Storage
    if settings.redis_url:
        storage = cast(Storage, storage_from_string(settings.redis_url))  # redis://: not async
    else:
        storage = DatabaseLimitStorage(engine=engine)
    app.extensions["streamdesk.limits"] = RateLimits(settings, storage)


def _limits() -> RateLimits:
    return current_app.extensions["streamdesk.limits"]


def limit_messages(view: View) -> View:
    """RATE_LIMIT per user and IP_RATE_LIMIT per address, counted for every message."""
    @wraps(view)
    def limited(*args, **kwargs):
        limits = _limits()
        if limits.per_user:
            limits.hit(limits.per_user, "chat-user", current_user_id())
        if limits.per_address:
            limits.hit(limits.per_address, "chat-ip", client_address())
        return view(*args, **kwargs)
    return limited  # type: ignore[return-value]


def limit_stops(view: View) -> View:
    """STOP_RATE_LIMIT per user (30 a minute), for ``POST /api/messages/<id>/stop``, which
    any user may send for their own replies. A stop may write a row for another worker and
    wait up to 5 s for it, and a person presses Stop once per reply. Every stop counts, of
    any id. A browser that is nobody yet owns nothing to stop: its 404 needs no count (and
    counting would mint it a session)."""
    @wraps(view)
    def limited(*args, **kwargs):
        limits, user_id = _limits(), known_user_id()
        if user_id is not None:
            limits.hit(limits.stops, "stop-user", user_id)
        return view(*args, **kwargs)
    return limited  # type: ignore[return-value]


def limit_code_guesses(view: View) -> View:
    """ACCESS_CODE_ATTEMPTS wrong codes per address (5 per 15 minutes), then a lockout.

    Each guess is counted before it is checked, in one atomic increment: guesses sent at the
    same moment cannot all be checked before the first failure is counted. A right code
    takes its count back, so only failures count. A locked address gets 429 even for the
    right code: answering it would tell a guesser which code is right. Behind one NAT
    address a whole office shares the count; ACCESS_CODE_ATTEMPTS raises it
    (docs/helpdesk.md)."""
    @wraps(view)
    def limited(*args, **kwargs):
        limits, address = _limits(), client_address()
        item = limits.code_guesses
        if not limits.window.hit(item, "access-code", address):
            raise limits.refusal(item, "access-code", address)
        try:
            response = view(*args, **kwargs)
        except ApiError as error:
            if error.status != 401:
                limits.take_back(item, "access-code", address)
            raise
        limits.take_back(item, "access-code", address)
        return response
    return limited  # type: ignore[return-value]


def within_budget(view: View) -> View:
    """TOKEN_BUDGET (and its overrides): a user who has spent a budget gets 429
    ``budget_exceeded``, saying when it resets (``streamdesk/chat/budgets.py``)."""
    @wraps(view)
    def limited(*args, **kwargs):
        app = services()
        if app.budgets.configured:
            try:
                app.budgets.check(app.store, current_user_id(), current_groups())
            except BudgetExceeded as exceeded:
                raise budget_refusal(exceeded.state) from None
        return view(*args, **kwargs)
    return limited  # type: ignore[return-value]


def budget_refusal(state: BudgetState) -> ApiError:
    budget, wait = state.budget, max(1, math.ceil(state.resets_at.timestamp() - time.time()))
    return ApiError(429, "budget_exceeded",
                    f"You have used this {budget.period}'s budget of {budget.tokens:,} tokens. "
                    f"It resets at {state.resets_at:%Y-%m-%d %H:%M} UTC.", retry_after=wait)
