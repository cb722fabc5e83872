"""The schema is versioned with Alembic: databases made before migrations existed are adopted
with nothing lost, on SQLite and on PostgreSQL, and the models match the newest migration."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from streamdesk.store import ReplyStatus, Store
from streamdesk.store.engine import make_engines
from streamdesk.store.schema import current_revision, head_revision
from streamdesk.store.tables import Base
from tests.fakes import start_turn

EARLIER = datetime(2026, 1, 1, tzinfo=UTC)


def legacy_metadata(*, first_release: bool = False) -> sa.MetaData:
    """The tables exactly as the code before migrations made them (``create_all`` of its
    models), or as its first release did, before columns were added to them."""
    metadata = sa.MetaData()
    settings = [] if first_release else [sa.Column("system", sa.Text), sa.Column(
        "temperature", sa.Float), sa.Column("max_tokens", sa.Integer)]
    sa.Table("conversations", metadata,
             sa.Column("id", sa.String(32), primary_key=True),
             sa.Column("user_id", sa.String(128), nullable=False, index=True),
             sa.Column("title", sa.String(200), nullable=False),
             sa.Column("model", sa.String(200), nullable=False), *settings,
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
             sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True))
    sa.Table("messages", metadata,
             sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("id", sa.String(32), nullable=False, unique=True),
             sa.Column("conversation_id", sa.String(32),
                       sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False,
                       index=True),
             sa.Column("role", sa.String(16), nullable=False),
             sa.Column("content", sa.Text, nullable=False),
             sa.Column("reasoning", sa.Text, nullable=False),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("model", sa.String(200)), sa.Column("finish_reason", sa.String(32)),
             sa.Column("error_code", sa.String(64)), sa.Column("error_message", sa.Text),
             sa.Column("prompt_tokens", sa.Integer), sa.Column("completion_tokens", sa.Integer),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
             *([] if first_release else [
                 sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)]))
    if not first_release:
        sa.Table("rate_limits", metadata,
                 sa.Column("key", sa.String(255), primary_key=True),
                 sa.Column("count", sa.Integer, nullable=False),
                 sa.Column("expires_at", sa.Float, nullable=False))
    return metadata


def fill_legacy_database(url: str, *, first_release: bool = False) -> None:
    engine, _ = make_engines(url)
    metadata = legacy_metadata(first_release=first_release)
    metadata.create_all(engine)
    conversations, messages = metadata.tables["conversations"], metadata.tables["messages"]
    settings = {} if first_release else {"system": "Be brief.", "temperature": 0.3,
                                         "max_tokens": 500}
    touched = {} if first_release else {"updated_at": EARLIER}
    with engine.begin() as db:
        db.execute(conversations.insert(), [
            {"id": "c1", "user_id": "alice", "title": "Old chat", "model": "demo/offline",
             "created_at": EARLIER, "updated_at": EARLIER, **settings},
            {"id": "c2", "user_id": "bob", "title": "Bob's", "model": "openai/gpt-4o-mini",
             "created_at": EARLIER, "updated_at": EARLIER, **settings}])
        rows = [
            {"id": "m1", "conversation_id": "c1", "role": "user", "content": "你好 hello",
             "reasoning": "", "status": "complete", "created_at": EARLIER, **touched},
            {"id": "m2", "conversation_id": "c1", "role": "assistant", "content": "Hi!",
             "reasoning": "greeting", "status": "complete", "model": "demo/offline",
             "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 2,
             "created_at": EARLIER, **touched},
            {"id": "m3", "conversation_id": "c2", "role": "user", "content": "q",
             "reasoning": "", "status": "complete", "created_at": EARLIER, **touched},
            {"id": "m4", "conversation_id": "c2", "role": "assistant", "content": "partial",
             "reasoning": "", "status": "error", "error_code": "rate_limited",
             "error_message": "Slow down.", "created_at": EARLIER, **touched}]
        for row in rows:  # one by one: the rows have different columns
            db.execute(messages.insert().values(**row))
        if not first_release:
            db.execute(metadata.tables["rate_limits"].insert(),
                       [{"key": "streamdesk/chat-user/alice", "count": 2, "expires_at": 1e12}])
    engine.dispose()


def assert_nothing_lost(store: Store, *, first_release: bool = False) -> None:
    assert current_revision(store.engine) == head_revision()
    alice = store.get_conversation("alice", "c1")
    assert (alice.title, alice.model) == ("Old chat", "demo/offline")
    expected_settings = {"system": None, "temperature": None, "max_tokens": None} \
        if first_release else {"system": "Be brief.", "temperature": 0.3, "max_tokens": 500}
    assert alice.settings == expected_settings
    question, answer = store.conversation_messages("alice", "c1")
    assert (question.content, answer.content, answer.reasoning) == ("你好 hello", "Hi!",
                                                                     "greeting")
    assert (answer.prompt_tokens, answer.completion_tokens, answer.finish_reason) == (5, 2,
                                                                                      "stop")
    assert store.get_conversation("alice", "c2") is None  # owners kept
    _, failed = store.conversation_messages("bob", "c2")
    assert (failed.status, failed.error_code, failed.content) == (ReplyStatus.ERROR,
                                                                  "rate_limited", "partial")
    # And the adopted database works like a new one.
    _, reply_id = start_turn(store, "alice", "c1", "again")
    assert store.active_streams("alice") == 1
    store.finish_turn(reply_id, content="done", reasoning="", status=ReplyStatus.COMPLETE,
                      finish_reason="stop")
    assert len(store.conversation_messages("alice", "c1")) == 4


def schema_differences(store: Store) -> list:
    with store.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'streamdesk.sqlite3'}"
    return request.getfixturevalue("empty_postgres_database")


def test_a_new_database_is_created_at_the_newest_revision(database_url):
    store = Store(database_url)
    store.migrate()
    assert current_revision(store.engine) == head_revision() == "0007"
    assert schema_differences(store) == []
    store.migrate()  # at start-up every worker runs it: the second run changes nothing
    assert store.list_conversations("nobody") == []


@pytest.mark.parametrize("first_release", [False, True], ids=["last-release", "first-release"])
def test_a_database_made_before_migrations_is_adopted_with_nothing_lost(database_url,
                                                                         first_release):
    fill_legacy_database(database_url, first_release=first_release)
    store = Store(database_url)
    assert current_revision(store.engine) is None
    store.migrate()
    assert_nothing_lost(store, first_release=first_release)
    if not first_release:
        assert schema_differences(store) == []


def test_db_upgrade_runs_the_migrations_by_hand(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    url = f"sqlite:///{tmp_path / 'streamdesk.sqlite3'}"
    fill_legacy_database(url)
    env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path),
           "PYTHON_DOTENV_DISABLED": "1"}
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    result = subprocess.run([flask, "--app", "app", "db", "current"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"newest: {head_revision()}" in result.stdout
    result = subprocess.run([flask, "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"schema at revision {head_revision()}" in result.stdout
    assert_nothing_lost(Store(url))
