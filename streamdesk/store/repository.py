"""Conversations and messages, kept apart from the session (which only says who the user is).

Writes are short transactions and append-style: each turn is its own row, so two tabs of one
user streaming into the same conversation add rows instead of overwriting a shared list (the
flask-session #71 failure mode). An assistant row is created with status ``streaming`` and
updated as text arrives, so whatever the user saw survives a reload, a crash or a drop.

Every read and write that takes a conversation id also takes the user id: ownership is checked
in the query itself, so no caller can forget it. Reads return frozen records (``records.py``).
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Integer,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from providers import Message, Usage

from ..settings import DEFAULT_MAX_REPLY_SECONDS, DEFAULT_POOL_SIZE
from .api_keys import ApiKeys
from .engine import make_engines
from .records import (
    STALE_STREAMING_SECONDS,
    Conversation,
    Feedback,
    FeedbackEntry,
    NewConversation,
    NotAReply,
    Progress,
    ReplyInProgress,
    ReplyStatus,
    StoredMessage,
    StoredReply,
    StreamCapReached,
    UsageEntry,
    effective_status,
    utc,
)
from .schema import migrate
from .sqlite_lane import SqliteLane
from .tables import (
    SETTINGS_FIELDS,
    ApiReplyRow,
    ConversationRow,
    MessageRow,
    ReplyStopRow,
    now,
)
from .usage import UsageLedger, insert_entry

STOP_REQUESTS_KEPT_SECONDS = 60
_STOPS_SINCE = "SELECT message_id, requested_at FROM reply_stops WHERE requested_at >= {}"


def _conversation(row: ConversationRow) -> Conversation:
    settings = {field: getattr(row, field) for field in SETTINGS_FIELDS}
    return Conversation(row.id, row.title, row.model, row.updated_at, settings)


def _reply(row: MessageRow, moment) -> StoredReply:
    status = effective_status(row.status, row.updated_at or row.created_at, moment)
    return StoredReply(row.id, row.conversation_id, status, row.content, row.reasoning,
                       row.model, row.finish_reason, row.error_code, row.error_message,
                       row.prompt_tokens, row.completion_tokens, row.owner, row.stream_index)


def _message(row: MessageRow, moment) -> StoredMessage:
    status = effective_status(row.status, row.updated_at or row.created_at, moment)
    feedback = Feedback(row.feedback_rating, row.feedback_comment) if row.feedback_rating \
        else None
    return StoredMessage(row.id, row.role, row.content, status, row.model, row.reasoning,
                         row.finish_reason, row.error_code, row.error_message,
                         row.prompt_tokens, row.completion_tokens, feedback)


class Store:
    def __init__(self, database_url: str, *, sqlite_lane: bool = False,
                 pool_size: int = DEFAULT_POOL_SIZE,
                 longest_reply_seconds: float = DEFAULT_MAX_REPLY_SECONDS):
        """``sqlite_lane``: in a gevent worker, SQLite's periodic bulk writes (progress
        saves, log checkpoints) go to a native thread (``sqlite_lane.py``). Not for
        PostgreSQL, whose driver already lets the loop run while it waits. ``pool_size``:
        the connections kept to a database server (engine.py). ``longest_reply_seconds``:
        MAX_REPLY_SECONDS, how long ago a reply still being written may have started."""
        # Write transactions go to ``writer`` (engine.py: on SQLite it waits for the write
        # lock without stopping the worker); reads to ``engine``.
        self.engine, self.writer = make_engines(database_url, pool_size)
        # The stream cap reads the user's conversations touched since a reply being written
        # now could have started (each start touches its conversation), a minute to spare.
        self._replies_started_within = timedelta(
            seconds=longest_reply_seconds + STALE_STREAMING_SECONDS)
        qmark = self.engine.dialect.paramstyle == "qmark"
        self._stops_since = _STOPS_SINCE.format("?" if qmark else "%(moment)s")
        self._postgresql = self.engine.dialect.name == "postgresql"
        self.api_keys = ApiKeys(self.engine, self.writer)
        self.usage = UsageLedger(self.engine)
        self.lane: SqliteLane | None = None  # see sqlite_lane.py
        if sqlite_lane and self.engine.dialect.name == "sqlite" \
                and self.engine.url.database not in (None, "", ":memory:"):  # a file
            self.lane = SqliteLane(self.engine)
            self.lane.take_over_checkpoints(self.engine)
            self.lane.take_over_checkpoints(self.writer)
            self.lane.start()

    @property
    def progress_saves_hold_the_loop(self) -> bool:
        """Whether the worker's other greenlets wait while ``save_progress_batches`` writes. Not
        on the lane (a native thread). PostgreSQL's driver yields only where gevent has
        patched it (in a worker, not in the tests), so it counts as holding."""
        return self.lane is None

    def close(self) -> None:
        if self.lane is not None:
            self.lane.stop()
        self.engine.dispose()
        self.writer.dispose()

    def _one_statement(self):
        """A connection for a write that is one statement. On PostgreSQL it runs in
        autocommit, without the BEGIN and COMMIT round trips; SQLite's writer needs its
        transaction to take the write lock cooperatively (engine.py)."""
        if self._postgresql:
            return self.writer.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.writer.begin()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (``schema.py``)."""
        migrate(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    # Conversations -----------------------------------------------------------------------

    def create_conversation(self, user_id: str, title: str, model: str,
                            settings: dict | None = None) -> Conversation:
        with Session(self.writer) as db, db.begin():
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
        with Session(self.writer) as db, db.begin():
            owned = ConversationRow.id == conversation_id, ConversationRow.user_id == user_id
            if not values:
                return db.scalar(select(ConversationRow.id).where(*owned)) is not None
            result = db.execute(update(ConversationRow).where(*owned).values(**values))
            return cast(CursorResult, result).rowcount == 1

    def delete_conversation(self, user_id: str, conversation_id: str) -> bool:
        with Session(self.writer) as db, db.begin():
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
        both replace the conversation from that message on. A reply still being written in
        that range is never deleted under its writer: ``ReplyInProgress``."""
        with Session(self.writer) as db, db.begin():
            seq = db.scalar(select(MessageRow.seq).join(ConversationRow).where(
                MessageRow.id == message_id, MessageRow.role == "user",
                MessageRow.conversation_id == conversation_id, ConversationRow.user_id == user_id))
            if seq is None:
                return False
            live = db.scalar(select(MessageRow.id).where(
                MessageRow.conversation_id == conversation_id, MessageRow.seq > seq,
                *_BEING_WRITTEN).limit(1), {"b_fresh": _fresh(now())})
            if live is not None:
                raise ReplyInProgress(live)
            db.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id,
                                                MessageRow.seq >= seq))
            return True

    def start_turn(self, user_id: str, conversation_id: str, user_text: str, model: str, *,
                   user_message_id: str, message_id: str, owner: str,
                   stream_index: str | None, max_streams: int | None = None,
                   new_conversation: NewConversation | None = None) -> None:
        """Save the user's message and an empty assistant message in ``streaming`` state,
        before anything is sent upstream, unless the user already has ``max_streams``
        replies being written (``StreamCapReached``). The count and the insert are one
        transaction that concurrent requests of the user take in turn; a turn that starts a
        conversation (``new_conversation``) creates it in that transaction too, so a refused
        turn leaves none behind. Core statements built once, not the ORM: this is every
        message's set-up, before the upstream is asked (docs/benchmarks.md)."""
        moment = now()
        with self.writer.begin() as connection:
            # SQLite's writer took the database's write lock at BEGIN (engine.py), so the count
            # below sees every committed turn. PostgreSQL needs a lock per user: the statement
            # that touches or makes the conversation takes it (no round trip of its own).
            locked = {"b_user": user_id} if self._postgresql else {}
            if new_conversation is None:
                connection.execute(_TOUCH_CONVERSATION_LOCKED if locked else _TOUCH_CONVERSATION,
                                   {"b_id": conversation_id, "b_model": model,
                                    "b_moment": moment, **locked})
            else:
                connection.execute(
                    _INSERT_CONVERSATION_LOCKED if locked else _INSERT_CONVERSATION, {
                        "id": conversation_id, "user_id": user_id, "model": model,
                        "title": new_conversation.title, "created_at": moment,
                        "updated_at": moment, **dict.fromkeys(SETTINGS_FIELDS),
                        **new_conversation.settings, **locked})
            if max_streams is not None and self._count_being_written(
                    connection, user_id, moment) >= max_streams:
                raise StreamCapReached(max_streams)
            common = {"conversation_id": conversation_id, "reasoning": "",
                      "created_at": moment, "updated_at": moment}
            connection.execute(_INSERT_MESSAGE, [
                {**common, "id": user_message_id, "role": "user", "content": user_text,
                 "status": ReplyStatus.COMPLETE, "model": None, "owner": None,
                 "stream_index": None},
                {**common, "id": message_id, "role": "assistant", "content": "",
                 "status": ReplyStatus.STREAMING, "model": model, "owner": owner,
                 "stream_index": stream_index}])

    def start_api_reply(self, user_id: str, reply_id: str, max_streams: int) -> None:
        """Count a reply of the OpenAI-compatible API as being written (it keeps no message
        row), unless the user already has ``max_streams`` replies, page and API together,
        being written (``StreamCapReached``): one transaction, as in ``start_turn``."""
        moment = now()
        with self.writer.begin() as connection:
            if self._postgresql:
                connection.execute(select(_USER_LOCK), {"b_user": user_id})
            if self._count_being_written(connection, user_id, moment) >= max_streams:
                raise StreamCapReached(max_streams)
            connection.execute(insert(_API_REPLIES), {"id": reply_id, "user_id": user_id,
                                                      "updated_at": moment})

    def touch_api_reply(self, reply_id: str) -> None:
        """Still being written: a row untouched for STALE_STREAMING_SECONDS stops counting
        (its worker died)."""
        with self._one_statement() as connection:
            connection.execute(update(_API_REPLIES).where(_API_REPLIES.c.id == reply_id)
                               .values(updated_at=now()))

    def end_api_reply(self, reply_id: str, cost: UsageEntry | None = None) -> None:
        """The API's reply is no longer written; ``cost`` goes into the usage ledger."""
        with self.writer.begin() if cost else self._one_statement() as connection:
            if cost:
                insert_entry(connection, cost)
            connection.execute(delete(_API_REPLIES).where(_API_REPLIES.c.id == reply_id))

    def active_streams(self, user_id: str) -> int:
        """Replies of this user being written now, on any instance."""
        with self.engine.connect() as connection:
            return self._count_being_written(connection, user_id, now())

    def _count_being_written(self, connection: Connection, user_id: str,
                             moment: datetime) -> int:
        return connection.execute(_COUNT_BEING_WRITTEN, {
            "b_user": user_id, "b_fresh": _fresh(moment),
            "b_started": moment - self._replies_started_within}).scalar_one()

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

    def save_progress(self, message_id: str, content: str, reasoning: str,
                      stream_index: str) -> None:
        """A growing reply's whole text so far (as ``save_progress_batches``)."""
        (failure,) = self.save_progress_batches(
            [[Progress(message_id, 0, content, 0, reasoning, stream_index)]])
        if failure is not None:
            raise failure

    def save_progress_batches(self, batches: list[list[Progress]]) -> list[Exception | None]:
        """Growing replies, each batch in a transaction of its own; what each batch failed
        with, None where it was saved. Rows no longer ``streaming`` are left alone (their
        finish_turn has the last word). Core, not an ORM Session: this runs for every open
        reply every save interval. On SQLite's lane (``sqlite_lane.py``) only the calling
        greenlet waits, and only once for all the batches."""
        moment = now()
        if self.lane is not None:
            return self.lane.save_progress(batches, moment)
        failures: list[Exception | None] = []
        for rows in batches:
            try:
                with self.writer.begin() as connection:
                    connection.execute(_SAVE_PROGRESS, [
                        {"b_id": row.message_id, "b_content_from": row.content_from,
                         "b_content": row.content, "b_reasoning_from": row.reasoning_from,
                         "b_reasoning": row.reasoning, "b_index": row.stream_index,
                         "b_moment": moment} for row in rows])
            except Exception as error:
                failures.append(error)
            else:
                failures.append(None)
        return failures

    def finish_turn(self, message_id: str, *, content: str, reasoning: str,
                    status: ReplyStatus, finish_reason: str | None,
                    error: tuple[str, str] | None = None, usage: Usage | None = None,
                    stream_index: str | None = None, cost: UsageEntry | None = None) -> None:
        """The reply's last word. ``error`` is (code, message); what is not given keeps its
        value (a reply row starts with no error, no usage and its first stream index). ``cost``
        goes into the usage ledger in the same transaction."""
        with self.writer.begin() if cost else self._one_statement() as connection:
            if cost:
                insert_entry(connection, cost)
            connection.execute(_FINISH_REPLY, {
                "b_id": message_id, "b_content": content, "b_reasoning": reasoning,
                "b_status": status, "b_finish_reason": finish_reason, "b_index": stream_index,
                "b_error_code": error[0] if error else None,
                "b_error_message": error[1] if error else None,
                "b_prompt_tokens": usage.prompt_tokens if usage else None,
                "b_completion_tokens": usage.completion_tokens if usage else None,
                "b_moment": now()})

    # Replies being written ----------------------------------------------------------------

    def reply(self, user_id: str, message_id: str) -> StoredReply | None:
        """An assistant message of this user, or None (someone else's answers the same)."""
        with Session(self.engine) as db:
            row = db.scalar(select(MessageRow).join(ConversationRow).where(
                MessageRow.id == message_id, MessageRow.role == "assistant",
                ConversationRow.user_id == user_id))
            return _reply(row, now()) if row else None

    def replies(self, message_ids: list[str]) -> dict[str, StoredReply]:
        """Assistant messages by id, whoever owns them: for followers already owner-checked."""
        with Session(self.engine) as db:
            rows = db.scalars(select(MessageRow).where(MessageRow.id.in_(message_ids),
                                                       MessageRow.role == "assistant"))
            moment = now()
            return {row.id: _reply(row, moment) for row in rows}

    def interrupt_abandoned(self, message_id: str, owner: str, message: str,
                            stream_index: str | None) -> bool:
        """Its writer died: the reply reads ``interrupted``, with its text so far."""
        with Session(self.writer) as db, db.begin():
            result = db.execute(update(MessageRow).where(
                MessageRow.id == message_id, MessageRow.owner == owner,
                MessageRow.status == ReplyStatus.STREAMING).values(
                status=ReplyStatus.INTERRUPTED, finish_reason="error", owner=None,
                error_code="interrupted", error_message=message, stream_index=stream_index))
            return cast(CursorResult, result).rowcount == 1

    # Feedback ----------------------------------------------------------------------------

    def set_feedback(self, user_id: str, message_id: str,
                     feedback: Feedback | None) -> StoredMessage | None:
        """Rate a reply of this user (None clears the rating); the message as now saved, or
        None when this user has no such message. ``NotAReply`` for the user's own message,
        ``ReplyInProgress`` while the reply is being written."""
        with Session(self.writer) as db, db.begin():
            row = db.scalar(select(MessageRow).join(ConversationRow).where(
                MessageRow.id == message_id, ConversationRow.user_id == user_id))
            if row is None:
                return None
            if row.role != "assistant":
                raise NotAReply()
            moment = now()
            message = _message(row, moment)
            if message.status == ReplyStatus.STREAMING:
                raise ReplyInProgress(message_id)
            row.feedback_rating = feedback.rating if feedback else None
            row.feedback_comment = feedback.comment if feedback else None
            row.feedback_at = moment if feedback else None
            return _message(row, moment)

    def feedback_since(self, moment: datetime,
                       until: datetime | None = None) -> list[FeedbackEntry]:
        """Every rated reply, rated at or after ``moment`` (and before ``until``), oldest
        first, with the question it answered: the user message just before it."""
        question = aliased(MessageRow)
        asked = (select(question.content)
                 .where(question.conversation_id == MessageRow.conversation_id,
                        question.seq < MessageRow.seq, question.role == "user")
                 .order_by(question.seq.desc()).limit(1).scalar_subquery())
        with Session(self.engine) as db:
            rows = db.execute(
                select(MessageRow.feedback_at, ConversationRow.user_id, MessageRow.model,
                       MessageRow.feedback_rating, MessageRow.feedback_comment, asked,
                       MessageRow.content)
                .join(ConversationRow)
                .where(MessageRow.feedback_at >= moment,
                       MessageRow.feedback_at < (until or datetime.max.replace(tzinfo=UTC)))
                .order_by(MessageRow.feedback_at, MessageRow.seq))
            return [FeedbackEntry(utc(at), user_id, model, rating, comment, question_text or "",
                                  reply)
                    for at, user_id, model, rating, comment, question_text, reply in rows]

    def request_stop(self, message_id: str) -> None:
        """For the worker writing the reply, when no Redis can tell it at once."""
        moment = time.time()
        with Session(self.writer) as db, db.begin():
            db.execute(delete(ReplyStopRow).where(
                ReplyStopRow.requested_at < moment - STOP_REQUESTS_KEPT_SECONDS))
            db.merge(ReplyStopRow(message_id=message_id, requested_at=moment))

    def stop_requests_since(self, moment: float) -> list[tuple[str, float]]:
        # Plain SQL: each writing worker asks this 20 times a second, and the answer is
        # nearly always nothing; the ORM's statement building would be most of the cost.
        with self.engine.connect() as connection:
            parameters = (moment,) if "?" in self._stops_since else {"moment": moment}
            return [(row[0], row[1]) for row in connection.exec_driver_sql(
                self._stops_since, parameters)]


_MESSAGES = cast(Table, MessageRow.__table__)
_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_TOUCH_CONVERSATION = (update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("b_id"))
                       .values(updated_at=bindparam("b_moment"), model=bindparam("b_model")))
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
_INSERT_MESSAGE = insert(_MESSAGES)
_FINISH_REPLY = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("b_id")).values(
    content=bindparam("b_content"), reasoning=bindparam("b_reasoning"),
    status=bindparam("b_status"), finish_reason=bindparam("b_finish_reason"), owner=None,
    **{column: func.coalesce(bindparam(f"b_{name}"), _MESSAGES.c[column]) for column, name in (
        ("stream_index", "index"), ("error_code", "error_code"),
        ("error_message", "error_message"), ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"))},
    updated_at=bindparam("b_moment"))
# PostgreSQL: the user's transaction lock, taken by the statement that touches or makes the
# conversation, so concurrent turns of one user count their streams one after the other.
_USER_LOCK = func.pg_advisory_xact_lock(func.hashtextextended(bindparam("b_user"), 0))
_TOUCH_CONVERSATION_LOCKED = _TOUCH_CONVERSATION.returning(_USER_LOCK)
_INSERT_CONVERSATION_LOCKED = _INSERT_CONVERSATION.returning(_USER_LOCK)
# An assistant row being written now, on any instance: still ``streaming`` and touched since
# ``b_fresh`` (``_fresh``). The status is a literal, not a parameter: only then may SQLite use
# the partial index of migration 0003.
_BEING_WRITTEN = (_MESSAGES.c.status == literal_column("'streaming'"),
                  _MESSAGES.c.updated_at > bindparam("b_fresh"))
_API_REPLIES = cast(Table, ApiReplyRow.__table__)
# Page replies and API replies together: MAX_STREAMS_PER_USER counts both. A page reply's
# conversation was touched when the reply started (``start_turn``), since ``b_started`` if it
# is still being written: the count reads those conversations only (index of 0007), however
# many the user has.
_COUNT_BEING_WRITTEN = select(
    select(func.count()).select_from(_MESSAGES.join(_CONVERSATIONS))
    .where(_CONVERSATIONS.c.user_id == bindparam("b_user"),
           _CONVERSATIONS.c.updated_at > bindparam("b_started"), *_BEING_WRITTEN)
    .scalar_subquery()
    + select(func.count()).select_from(_API_REPLIES)
    .where(_API_REPLIES.c.user_id == bindparam("b_user"),
           _API_REPLIES.c.updated_at > bindparam("b_fresh")).scalar_subquery())


def _grown(column, name: str):
    """The column's first ``<name>_from`` characters, then ``<name>``: a field's saved copy
    brought up to date (``Progress``)."""
    kept = func.substr(column, 1, bindparam(f"{name}_from", type_=Integer), type_=Text)
    return kept.concat(bindparam(name, type_=Text))


_SAVE_PROGRESS = (update(_MESSAGES)
                  .where(_MESSAGES.c.id == bindparam("b_id"),
                         _MESSAGES.c.status == ReplyStatus.STREAMING)
                  .values(content=_grown(_MESSAGES.c.content, "b_content"),
                          reasoning=_grown(_MESSAGES.c.reasoning, "b_reasoning"),
                          stream_index=bindparam("b_index"), updated_at=bindparam("b_moment")))


def _fresh(moment: datetime) -> datetime:
    return moment - timedelta(seconds=STALE_STREAMING_SECONDS)
