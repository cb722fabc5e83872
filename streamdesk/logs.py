"""Structured logs: one JSON object per line, with the request id of the request at hand.

Message text and keys are never logged unless the operator sets LOG_CONTENT=1.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
import time

from flask import g, has_request_context

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        request_id = getattr(record, "request_id", None) or _current_request_id()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs request URLs at DEBUG, and ERNIE's access token travels in the URL.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def hash_user(user_id: str, secret: str) -> str:
    """A stable pseudonym for logs: keyed, so SSO user names cannot be guessed back."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:16]


def content_logging_enabled() -> bool:
    return os.environ.get("LOG_CONTENT", "").strip().lower() in ("1", "true", "yes", "on")
