"""Fitting a conversation into a model's budget, shared by every provider.

Token counts are estimated, not exact: vendors' tokenizers differ, and an estimate that errs
high only trims a little early. CJK characters count about one token each; other text about
one token per four characters.
"""
from __future__ import annotations

from .base import Message


def estimate_tokens(text: str) -> int:
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4 + 4  # +4: per-message framing


def trim_to_budget(messages: list[Message] | tuple[Message, ...], budget: int,
                   reserved: int = 0) -> list[Message]:
    """Keep the newest turns that fit in ``budget`` tokens, always keeping the last message.

    ``reserved`` is spent first (system prompt, room for the reply). Whole turns are dropped
    from the oldest end so a reply never loses the question it answered.
    """
    messages = list(messages)
    if not messages:
        return messages
    remaining = budget - reserved - estimate_tokens(messages[-1].content)
    start = len(messages) - 1
    while start > 0:
        cost = estimate_tokens(messages[start - 1].content)
        if cost > remaining:
            break
        remaining -= cost
        start -= 1
    kept = messages[start:]
    # Never open with an assistant turn that lost its question.
    while len(kept) > 1 and kept[0].role != "user":
        kept = kept[1:]
    return kept
