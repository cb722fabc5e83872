"""The database tables, as SQLAlchemy declares them. The schema itself is made and changed by
the migrations in ``streamdesk/store/migrations``, never by ``create_all``."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    # Per-conversation settings; None means the model's own default.
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)

    # A user's conversations by when they were last touched: the stream cap reads only those
    # touched since the longest reply could have started, the sidebar lists them newest first
    # (0007).
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)


SETTINGS_FIELDS = ("system", "temperature", "max_tokens")


class MessageRow(Base):
    __tablename__ = "messages"
    # seq orders the turns (timestamps can tie); id is what the API shows.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    # The worker generating a streaming reply, and the index of its events (records.py).
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stream_index: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The user's rating of a reply ("up" or "down"), with an optional comment (0005).
    feedback_rating: Mapped[str | None] = mapped_column(String(8), nullable=True)
    feedback_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True,
                                                         index=True)
    # Databases made before this column was added hold NULL in old rows.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now,
                                                 onupdate=now)

    # Only the replies being written: the stream cap counts them at every message (0003).
    __table_args__ = (Index("ix_messages_being_written", "conversation_id",
                            sqlite_where=text("status = 'streaming'"),
                            postgresql_where=text("status = 'streaming'")),)


class RateLimitRow(Base):
    """Fixed-window counters for rate limits when there is no Redis (``rate_limits.py``)."""
    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)


class ReplyStopRow(Base):
    """Stop requests, for the worker generating the reply when there is no Redis to tell it."""
    __tablename__ = "reply_stops"
    message_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requested_at: Mapped[float] = mapped_column(Float, index=True)


class ApiKeyRow(Base):
    """A personal API key (``api_keys.py``): only a hash of the secret is kept."""
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256, hex
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiReplyRow(Base):
    """A reply being written for the OpenAI-compatible API. Such replies are not kept (they
    are no conversation of the user's): the row exists while one is written, so that the
    stream cap counts them with the page's, on every instance."""
    __tablename__ = "api_replies"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class UsageRow(Base):
    """The usage ledger: one row per finished reply, page or API, never changed or deleted
    with its conversation (``usage.py``). Token budgets and the operator's page read it."""
    __tablename__ = "usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(8))  # "page" or "api"
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    total_tokens: Mapped[int] = mapped_column(Integer)
    estimated: Mapped[bool] = mapped_column(Boolean)  # the vendor sent no counts: ours
    status: Mapped[str] = mapped_column(String(16))
    ttft_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)

    # A user's spending since a moment: what every budget check asks.
    __table_args__ = (Index("ix_usage_user_at", "user_id", "at"),)
