"""Structured logs: one JSON object per line, with the request id of the request at hand.

Message text and keys are never logged unless the operator sets LOG_CONTENT=1. The web layer
sets ``request_id`` for each request; a context variable is per greenlet under gevent, so
thousands of concurrent requests in one worker each log their own.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
import time
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        current = getattr(record, "request_id", None) or request_id.get()
        if current:
            entry["request_id"] = current
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # A record asks for its thread's name, which nothing here logs: under gevent that makes a
    # thread object for each greenlet that logs, held for as long as it lives (every open
    # reply's request).
    logging.logThreads = False
    # urllib3 logs request URLs at DEBUG, and ERNIE's access token travels in the URL.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def hash_user(user_id: str, secret: str) -> str:
    """A stable pseudonym for logs: keyed, so SSO user names cannot be guessed back."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:16]

