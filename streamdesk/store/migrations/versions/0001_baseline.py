"""Baseline: the schema as it stood when migrations were introduced.

On an empty database this creates the three tables. A database made before migrations existed
(by ``create_all`` and the additive column upgrade that came before Alembic) is adopted as it
is: missing tables are created and columns that older versions lacked are added, nullable, as
the old upgrade did. The tables are spelled out here, not imported from ``tables.py``: a
migration must keep meaning the same thing when the models change later.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

metadata = sa.MetaData()
conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("system", sa.Text, nullable=True),
    sa.Column("temperature", sa.Float, nullable=True),
    sa.Column("max_tokens", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
messages = sa.Table(
    "messages", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("conversation_id", sa.String(32),
              sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("reasoning", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("finish_reason", sa.String(32), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=True),
    sa.Column("completion_tokens", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    metadata.create_all(bind, checkfirst=True)
    for table in metadata.sorted_tables:
        if table.name in present:
            _add_missing_columns(bind, table)


def _add_missing_columns(bind, table: sa.Table) -> None:
    """What the pre-Alembic upgrade did: old rows get no value, so the column is nullable."""
    present = {column["name"] for column in sa.inspect(bind).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))


def downgrade() -> None:
    metadata.drop_all(op.get_bind())


