"""Conversations and messages, kept apart from the session (which only says who the user is).

Writes are short transactions and append-style: each turn is its own row, so two tabs of one
user streaming into the same conversation add rows instead of overwriting a shared list (the
flask-session #71 failure mode). An assistant row is created with status ``streaming`` and
updated as text arrives, so whatever the user saw survives a reload, a crash or a drop.

Every read and write that takes a conversation id also takes the user id: ownership is checked
in the query itself, so no caller can forget it.
"""
from __future__ import annotations

import fcntl
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import (DateTime, Float, ForeignKey, Integer, String, Text, bindparam,
                        create_engine, delete, event, func, inspect, select, text, update)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from providers.base import Message

STATUSES = ("streaming", "complete", "cancelled", "error", "interrupted")
# A reply touched by nobody for this long lost its process (SIGKILL, OOM, power): it reads as
# interrupted. Live relays touch their row at least every heartbeat (at most 15 s).
STALE_STREAMING_SECONDS = 60
_SCHEMA_LOCK_KEY = 0x5D5C4E3A  # PostgreSQL advisory lock id for schema creation


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    title: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    # Per-conversation settings; None means the model's own default.
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class MessageRow(Base):
    __tablename__ = "messages"
    # seq orders the turns (timestamps can tie); id is what the API shows.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=_new_id)
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                                 onupdate=_now)


SETTINGS_FIELDS = ("system", "temperature", "max_tokens")


class RateLimitRow(Base):
    """Fixed-window counters for rate limits when there is no Redis (streamdesk.limit_storage)."""
    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    model: str
    updated_at: str
    settings: dict  # system, temperature, max_tokens

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "model": self.model,
                "updated_at": self.updated_at}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we only store UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def _conversation(row: ConversationRow) -> Conversation:
    settings = {field: getattr(row, field) for field in SETTINGS_FIELDS}
    return Conversation(row.id, row.title, row.model, _iso(row.updated_at), settings)


def _status(row: MessageRow) -> str:
    if row.status == "streaming":
        updated = row.updated_at or row.created_at  # rows older than the column have none
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=timezone.utc)
        if (_now() - updated).total_seconds() > STALE_STREAMING_SECONDS:
            return "interrupted"
    return row.status


def _message_dict(row: MessageRow) -> dict:
    data = {"id": row.id, "role": row.role, "content": row.content, "status": _status(row)}
    if row.role == "assistant":
        data.update(model=row.model, reasoning=row.reasoning, finish_reason=row.finish_reason)
        if row.error_code:
            data["error"] = {"code": row.error_code, "message": row.error_message or ""}
        if row.completion_tokens is not None:
            data["usage"] = {"prompt_tokens": row.prompt_tokens,
                             "completion_tokens": row.completion_tokens,
                             "total_tokens": (row.prompt_tokens or 0) + row.completion_tokens}
    return data


def engine_url(database_url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, which waits cooperatively under gevent
    (psycopg2 would block every stream of the worker during each query)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    return database_url


class Store:
    def __init__(self, database_url: str):
        database_url = engine_url(database_url)
        # A ping before every checkout guards against dropped server connections; a SQLite
        # file cannot drop, and the extra query would run for every progress save.
        options = {"pool_pre_ping": not database_url.startswith("sqlite")}
        if database_url.startswith("sqlite"):
            # One engine serves every greenlet of a worker; SQLite's own thread check would
            # refuse that, and its default 5 s busy wait is short for several workers.
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(database_url, **options)
        if database_url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        """Create missing tables. Every worker of every instance runs this at start-up, so
        they take turns: otherwise two see a table missing and both try to create it."""
        if self.engine.dialect.name == "sqlite":
            # SQLite's own locks do not cover switching to WAL, so workers queue on a file.
            with _file_lock(self.engine.url.database):
                with self.engine.begin() as connection:
                    # WAL: readers never wait for the streaming writers. Kept in the file.
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                    _create_and_upgrade(connection)
            return
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _SCHEMA_LOCK_KEY})
            _create_and_upgrade(connection)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    # Conversations -----------------------------------------------------------------------

    def create_conversation(self, user_id: str, title: str, model: str,
                            settings: dict | None = None) -> Conversation:
        with Session(self.engine) as db, db.begin():
            row = ConversationRow(user_id=user_id, title=title, model=model, **(settings or {}))
            db.add(row)
            db.flush()
            return _conversation(row)

    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation | None:
        with Session(self.engine) as db:
            row = db.scalar(select(ConversationRow).where(
                ConversationRow.id == conversation_id, ConversationRow.user_id == user_id))
            return _conversation(row) if row else None

    def list_conversations(self, user_id: str) -> list[Conversation]:
        with Session(self.engine) as db:
            rows = db.scalars(select(ConversationRow).where(ConversationRow.user_id == user_id)
                              .order_by(ConversationRow.updated_at.desc(), ConversationRow.id))
            return [_conversation(row) for row in rows]

    def conversation_messages(self, user_id: str, conversation_id: str) -> list[dict] | None:
        with Session(self.engine) as db:
            if not db.scalar(select(ConversationRow.id).where(
                    ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)):
                return None
            rows = db.scalars(select(MessageRow).where(
                MessageRow.conversation_id == conversation_id).order_by(MessageRow.seq))
            return [_message_dict(row) for row in rows]

    def update_conversation(self, user_id: str, conversation_id: str, *,
                            title: str | None = None, settings: dict | None = None) -> bool:
        values = dict(settings or {})
        if title is not None:
            values["title"] = title
        with Session(self.engine) as db, db.begin():
            owned = ConversationRow.id == conversation_id, ConversationRow.user_id == user_id
            if not values:
                return db.scalar(select(ConversationRow.id).where(*owned)) is not None
            return db.execute(update(ConversationRow).where(*owned).values(**values)).rowcount == 1

    def delete_conversation(self, user_id: str, conversation_id: str) -> bool:
        with Session(self.engine) as db, db.begin():
            owned = db.scalar(select(ConversationRow.id).where(
                ConversationRow.id == conversation_id, ConversationRow.user_id == user_id))
            if not owned:
                return False
            db.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
            db.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))
            return True

    # Turns -------------------------------------------------------------------------------

    def truncate_from(self, user_id: str, conversation_id: str, message_id: str) -> bool:
        """Delete a user message and every later turn: "edit and resend" and "regenerate"
        both replace the conversation from that message on."""
        with Session(self.engine) as db, db.begin():
            seq = db.scalar(select(MessageRow.seq).join(ConversationRow).where(
                MessageRow.id == message_id, MessageRow.role == "user",
                MessageRow.conversation_id == conversation_id, ConversationRow.user_id == user_id))
            if seq is None:
                return False
            db.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id,
                                                MessageRow.seq >= seq))
            return True

    def start_turn(self, conversation_id: str, user_text: str, model: str) -> tuple[str, str]:
        """Save the user's message and an empty assistant message in ``streaming`` state,
        before anything is sent upstream. Returns (user message id, assistant message id)."""
        with Session(self.engine) as db, db.begin():
            user = MessageRow(conversation_id=conversation_id, role="user", content=user_text,
                              status="complete")
            assistant = MessageRow(conversation_id=conversation_id, role="assistant", content="",
                                   status="streaming", model=model)
            db.add_all([user, assistant])
            db.execute(update(ConversationRow).where(ConversationRow.id == conversation_id)
                       .values(updated_at=_now(), model=model))
            db.flush()
            return user.id, assistant.id

    def active_streams(self, user_id: str) -> int:
        """Replies of this user being written now, on any instance."""
        fresh = _now() - timedelta(seconds=STALE_STREAMING_SECONDS)
        with Session(self.engine) as db:
            return db.scalar(select(func.count()).select_from(MessageRow).join(ConversationRow)
                             .where(ConversationRow.user_id == user_id,
                                    MessageRow.status == "streaming",
                                    MessageRow.updated_at > fresh))

    def history(self, conversation_id: str) -> list[Message]:
        """The turns to send upstream: every user turn, and every assistant turn that has
        text (a partial reply the user saw counts; one still streaming in another tab not)."""
        with Session(self.engine) as db:
            rows = db.scalars(select(MessageRow).where(
                MessageRow.conversation_id == conversation_id).order_by(MessageRow.seq))
            return [Message(row.role, row.content) for row in rows
                    if row.role == "user" or (row.content and _status(row) != "streaming")]

    def save_progress(self, message_id: str, content: str, reasoning: str) -> None:
        # Core, not an ORM Session: this runs every SAVE_INTERVAL_SECONDS for every open
        # reply, and blocks the worker's event loop while it runs.
        with self.engine.begin() as connection:
            connection.execute(update(MessageRow).where(MessageRow.id == message_id)
                               .values(content=content, reasoning=reasoning))

    def save_progress_many(self, rows: list[tuple[str, str, str]]) -> None:
        """(message id, content, reasoning) of many growing replies in one transaction; rows
        no longer ``streaming`` are left alone (their finish_turn has the last word)."""
        table = MessageRow.__table__
        statement = (update(table)
                     .where(table.c.id == bindparam("b_id"), table.c.status == "streaming")
                     .values(content=bindparam("b_content"), reasoning=bindparam("b_reasoning")))
        with self.engine.begin() as connection:
            connection.execute(statement, [{"b_id": i, "b_content": c, "b_reasoning": r}
                                           for i, c, r in rows])

    def finish_turn(self, message_id: str, *, content: str, reasoning: str, status: str,
                    finish_reason: str | None, error: dict | None = None,
                    usage: dict | None = None) -> None:
        values = {"content": content, "reasoning": reasoning, "status": status,
                  "finish_reason": finish_reason}
        if error:
            values.update(error_code=error["code"], error_message=error["message"])
        if usage:
            values.update(prompt_tokens=usage["prompt_tokens"],
                          completion_tokens=usage["completion_tokens"])
        with Session(self.engine) as db, db.begin():
            db.execute(update(MessageRow).where(MessageRow.id == message_id).values(**values))

    def interrupt_streaming(self, message_ids: list[str] | None = None) -> int:
        """Mark replies still ``streaming`` as ``interrupted`` (their text stays)."""
        statement = update(MessageRow).where(MessageRow.status == "streaming")
        if message_ids is not None:
            statement = statement.where(MessageRow.id.in_(message_ids))
        with Session(self.engine) as db, db.begin():
            return db.execute(statement.values(status="interrupted",
                                               finish_reason="interrupted")).rowcount


def _create_and_upgrade(connection) -> None:
    """Create missing tables, then add columns that later versions gave existing tables
    (``create_all`` never alters a table). Added columns are nullable: old rows have no value,
    and the code reading them allows for that. Only additive changes are made this way."""
    Base.metadata.create_all(connection)
    inspector = inspect(connection)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


def _sqlite_pragmas(connection, _record):
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # per connection, unlike journal_mode
    # In WAL mode NORMAL syncs at checkpoints instead of at every commit: a crash of the app
    # loses nothing, a power cut at most the last saves. Each commit no longer waits on fsync
    # while the whole worker (every stream on it) waits with it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def _file_lock(database_path: str | None):
    if not database_path or database_path == ":memory:":
        yield
        return
    with open(database_path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
