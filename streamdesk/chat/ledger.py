"""What a finished reply cost, as a row of the usage ledger (``store/usage.py``): the vendor's
token counts, or our estimate, marked so, when it sent none."""
from __future__ import annotations

import time

from providers import ChatRequest, Usage
from providers.history import estimate_tokens

from ..store import UsageEntry
from ..store.tables import now
from .observer import ReplyObserver


def estimated_usage(request: ChatRequest, reply: str) -> Usage:
    """Our estimate (``providers.history``) of what was sent and written."""
    prompt = sum(estimate_tokens(m.content) for m in request.messages) \
        + (estimate_tokens(request.system) if request.system else 0)
    completion = estimate_tokens(reply) if reply else 0
    return Usage(prompt, completion, prompt + completion)


def cost_of(observer: ReplyObserver, request: ChatRequest, reply: str, usage: Usage | None,
            status: str) -> UsageEntry:
    estimated = usage is None
    counted = usage or estimated_usage(request, reply)
    ended = time.monotonic()
    return UsageEntry(
        at=now(), user_id=observer.user_id, provider=observer.provider,
        model=observer.model_id, via=observer.via, prompt_tokens=counted.prompt_tokens,
        completion_tokens=counted.completion_tokens, estimated=estimated, status=str(status),
        ttft_ms=round((observer.first_token_at - observer.started_at) * 1000)
        if observer.first_token_at else None,
        duration_ms=round((ended - observer.started_at) * 1000))
