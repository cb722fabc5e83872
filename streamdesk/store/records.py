"""What the store hands out: frozen records and the reply status, never ORM rows.

``ReplyStatus`` is the one list of statuses a reply can have. The relay decides it, the store
keeps it, ``docs/api.md`` documents it and ``static/status.js`` mirrors it for the page; a test
keeps the four in step.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

# A reply touched by nobody for this long lost its process (SIGKILL, OOM, power): it reads as
# interrupted. Live relays touch their row at least every heartbeat (at most 15 s).
STALE_STREAMING_SECONDS = 60


class ReplyStatus(enum.StrEnum):
    STREAMING = "streaming"  # being written now
    COMPLETE = "complete"  # the model finished
    CANCELLED = "cancelled"  # the user stopped it (or left, with CANCEL_ON_DISCONNECT)
    ERROR = "error"  # the model service refused or failed
    INTERRUPTED = "interrupted"  # cut off: the connection broke, or the server stopped or died


class Progress(NamedTuple):
    """A growing reply's saved copy brought up to date: what it lacks of each field after the
    characters it already has. Only the growth travels, not the whole reply every time (a
    worker's save of 500 open replies held every one's whole text at once)."""
    message_id: str
    content_from: int  # characters of the content already saved
    content: str  # the content after them
    reasoning_from: int
    reasoning: str
    stream_index: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    model: str
    updated_at: datetime
    settings: dict  # system, temperature, max_tokens; None means the model's own default


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    role: str  # "user" or "assistant"
    content: str
    status: ReplyStatus
    model: str | None = None
    reasoning: str = ""
    finish_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    feedback: Feedback | None = None  # the user's rating of a reply


@dataclass(frozen=True, slots=True)
class Feedback:
    rating: str  # "up" or "down"
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One rated reply, for the operator's export."""
    at: datetime
    user_id: str
    model: str | None
    rating: str
    comment: str | None
    question: str  # the user's message the reply answered
    reply: str


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """A row of the usage ledger: what one finished reply cost."""
    at: datetime
    user_id: str
    provider: str
    model: str
    via: str  # "page" or "api"
    prompt_tokens: int
    completion_tokens: int
    estimated: bool  # the vendor sent no counts: ours (providers.history.estimate_tokens)
    status: str
    ttft_ms: int | None
    duration_ms: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class NotAReply(Exception):
    """Feedback is for the assistant's replies, not the user's own messages."""


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; we only ever store UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def effective_status(status: str, updated_at: datetime | None, now: datetime) -> ReplyStatus:
    """A reply still marked ``streaming`` that nobody touched for a while was abandoned."""
    if status == ReplyStatus.STREAMING and updated_at is not None \
            and (now - utc(updated_at)).total_seconds() > STALE_STREAMING_SECONDS:
        return ReplyStatus.INTERRUPTED
    return ReplyStatus(status)


@dataclass(frozen=True, slots=True)
class StoredReply:
    """An assistant message with what it takes to follow or replay it."""

    id: str
    conversation_id: str
    status: ReplyStatus
    content: str
    reasoning: str
    model: str | None
    finish_reason: str | None
    error_code: str | None
    error_message: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    owner: str | None  # the worker generating it, while it streams
    stream_index: str | None  # JSON: streamdesk/chat/stream_index.py


@dataclass(frozen=True, slots=True)
class NewConversation:
    """A conversation that a turn starts: saved in the turn's own transaction."""

    title: str
    settings: dict  # as Conversation.settings, only the fields given


class StreamCapReached(Exception):
    """The user already has as many replies being written as allowed."""


class ReplyInProgress(Exception):
    """Replacing turns would delete a reply that is still being written."""

    def __init__(self, message_id: str):
        super().__init__(message_id)
        self.message_id = message_id
