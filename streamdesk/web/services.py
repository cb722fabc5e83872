"""The app's long-lived parts, built once by ``create_app`` and reached by the views."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from providers import Registry

from ..chat.budgets import Budgets
from ..chat.replies import Replies
from ..settings import Settings
from ..store import Store


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: Registry
    store: Store
    replies: Replies
    redis: object | None  # the Redis client when sessions live in Redis
    budgets: Budgets


def services() -> Services:
    return current_app.extensions["streamdesk"]
