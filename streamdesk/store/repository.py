"""Conversations and messages, kept apart from the session (which only says who the user is).

Writes are short transactions and append-style: each turn is its own row, so two tabs of one
user streaming into the same conversation add rows instead of overwriting a shared list (the
flask-session #71 failure mode). An assistant row is created with status ``streaming`` and
updated as text arrives, so whatever the user saw survives a reload, a crash or a drop.

Every read and write that takes a conversation id also takes the user id: ownership is checked
in the query itself, so no caller can forget it. Reads return frozen records (``records.py``).
"""
from __future__ import annotations

from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from providers import Message, Usage

from .engine import make_engine
from .records import (
    STALE_STREAMING_SECONDS,
    Conversation,
    ReplyStatus,
    StoredMessage,
    effective_status,
)
from .schema import migrate
from .tables import SETTINGS_FIELDS, ConversationRow, MessageRow, now


def _conversation(row: ConversationRow) -> Conversation:
    settings = {field: getattr(row, field) for field in SETTINGS_FIELDS}
    return Conversation(row.id, row.title, row.model, row.updated_at, settings)


def _message(row: MessageRow, moment) -> StoredMessage:
    status = effective_status(row.status, row.updated_at or row.created_at, moment)
    return StoredMessage(row.id, row.role, row.content, status, row.model, row.reasoning,
                         row.finish_reason, row.error_code, row.error_message,
                         row.prompt_tokens, row.completion_tokens)


class Store:
    def __init__(self, database_url: str):
        self.engine = make_engine(database_url)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (``schema.py``)."""
        migrate(self.engine)

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

    def conversation_messages(self, user_id: str,
                              conversation_id: str) -> list[StoredMessage] | None:
        with Session(self.engine) as db:
            if not db.scalar(select(ConversationRow.id).where(
                    ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)):
                return None
            rows = db.scalars(select(MessageRow).where(
                MessageRow.conversation_id == conversation_id).order_by(MessageRow.seq))
            moment = now()
            return [_message(row, moment) for row in rows]

    def update_conversation(self, user_id: str, conversation_id: str, *,
                            title: str | None = None, settings: dict | None = None) -> bool:
        values = dict(settings or {})
        if title is not None:
            values["title"] = title
        with Session(self.engine) as db, db.begin():
            owned = ConversationRow.id == conversation_id, ConversationRow.user_id == user_id
            if not values:
                return db.scalar(select(ConversationRow.id).where(*owned)) is not None
            result = db.execute(update(ConversationRow).where(*owned).values(**values))
            return cast(CursorResult, result).rowcount == 1

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
                              status=ReplyStatus.COMPLETE)
            assistant = MessageRow(conversation_id=conversation_id, role="assistant", content="",
                                   reasoning="", status=ReplyStatus.STREAMING, model=model)
            db.add_all([user, assistant])
            db.execute(update(ConversationRow).where(ConversationRow.id == conversation_id)
                       .values(updated_at=now(), model=model))
            db.flush()
            return user.id, assistant.id

    def active_streams(self, user_id: str) -> int:
        """Replies of this user being written now, on any instance."""
        fresh = now() - timedelta(seconds=STALE_STREAMING_SECONDS)
        with Session(self.engine) as db:
            return db.scalar(select(func.count()).select_from(MessageRow).join(ConversationRow)
                             .where(ConversationRow.user_id == user_id,
                                    MessageRow.status == ReplyStatus.STREAMING,
                                    MessageRow.updated_at > fresh)) or 0

    def history(self, conversation_id: str) -> list[Message]:
        """The turns to send upstream: every user turn, and every assistant turn that has
        text (a partial reply the user saw counts; one still streaming in another tab not)."""
        with Session(self.engine) as db:
            rows = db.scalars(select(MessageRow).where(
                MessageRow.conversation_id == conversation_id).order_by(MessageRow.seq))
            moment = now()
            return [Message(row.role, row.content) for row in rows
                    if row.role == "user" or (row.content and effective_status(
                        row.status, row.updated_at or row.created_at, moment)
                        != ReplyStatus.STREAMING)]

    def save_progress(self, message_id: str, content: str, reasoning: str) -> None:
        self.save_progress_many([(message_id, content, reasoning)])

    def save_progress_many(self, rows: list[tuple[str, str, str]]) -> None:
        """(message id, content, reasoning) of many growing replies in one transaction; rows
        no longer ``streaming`` are left alone (their finish_turn has the last word).
        Core, not an ORM Session: this runs for every open reply every save interval, and
        blocks the worker's event loop while it runs."""
        table = cast(Table, MessageRow.__table__)
        statement = (update(table)
                     .where(table.c.id == bindparam("b_id"),
                            table.c.status == ReplyStatus.STREAMING)
                     .values(content=bindparam("b_content"), reasoning=bindparam("b_reasoning"),
                             updated_at=now()))
        with self.engine.begin() as connection:
            connection.execute(statement, [{"b_id": i, "b_content": c, "b_reasoning": r}
                                           for i, c, r in rows])

    def finish_turn(self, message_id: str, *, content: str, reasoning: str,
                    status: ReplyStatus, finish_reason: str | None,
                    error: tuple[str, str] | None = None, usage: Usage | None = None) -> None:
        """The reply's last word. ``error`` is (code, message)."""
        values: dict = {"content": content, "reasoning": reasoning, "status": status,
                        "finish_reason": finish_reason}
        if error:
            values.update(error_code=error[0], error_message=error[1])
        if usage:
            values.update(prompt_tokens=usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens)
        with Session(self.engine) as db, db.begin():
            db.execute(update(MessageRow).where(MessageRow.id == message_id).values(**values))
