"""What a reply reports about itself: metrics at start, first token and end, and one JSON log
line with provider, model, time to first token, duration, tokens and outcome."""
from __future__ import annotations

import logging
import time

from providers import Usage

from .. import metrics

log = logging.getLogger("streamdesk.reply")
_NOT_UPSTREAM = {"internal", "server_stopping"}  # our own failures, not the provider's


class ReplyObserver:
    def __init__(self, *, provider: str, model_id: str, request_id: str, user: str,
                 message_id: str, prompt: str | None = None, via: str = "page",
                 user_id: str = ""):
        self.provider, self.model_id = provider, model_id
        self.request_id, self.user, self.message_id = request_id, user, message_id
        self.prompt = prompt  # only when the operator turned content logging on
        self.via = via  # "page", or "api" for the OpenAI-compatible API
        self.user_id = user_id  # for the usage ledger; the log line has only the hash, user
        self.started_at = 0.0
        self.first_token_at: float | None = None

    def started(self) -> None:
        self.started_at = time.monotonic()
        metrics.ACTIVE_STREAMS.inc()

    def first_token(self) -> None:
        self.first_token_at = time.monotonic()
        metrics.TIME_TO_FIRST_TOKEN.labels(self.provider, self.model_id).observe(
            self.first_token_at - self.started_at)

    def finished(self, *, status: str, finish_reason: str | None, usage: Usage | None,
                 error_code: str | None, reply: str) -> None:
        duration = time.monotonic() - self.started_at
        metrics.ACTIVE_STREAMS.dec()
        metrics.STREAM_DURATION.labels(self.provider, self.model_id, status).observe(duration)
        if usage:
            metrics.TOKENS.labels(self.provider, self.model_id, "prompt").inc(
                usage.prompt_tokens)
            metrics.TOKENS.labels(self.provider, self.model_id, "completion").inc(
                usage.completion_tokens)
        if error_code and error_code not in _NOT_UPSTREAM:
            metrics.UPSTREAM_ERRORS.labels(self.provider, error_code).inc()
        fields = {
            "request_id": self.request_id, "user": self.user, "message_id": self.message_id,
            "provider": self.provider, "model": self.model_id, "via": self.via,
            "outcome": status,
            "finish_reason": finish_reason, "duration_ms": round(duration * 1000),
            "ttft_ms": round((self.first_token_at - self.started_at) * 1000)
            if self.first_token_at else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "error_code": error_code,
        }
        if self.prompt is not None:
            fields.update(prompt=self.prompt, reply=reply)
        log.info("reply finished", extra=fields)
