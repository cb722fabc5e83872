"""An index of the replies being written, for the stream cap counted at every message.

``Store.start_turn`` counts the user's replies in ``streaming`` state before each message.
Without this index that count read every message of every conversation of the user; with it,
each of the user's conversations costs one probe of an index holding only the replies being
written now (a few per user, a few thousand on a busy instance at most).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STREAMING = sa.text("status = 'streaming'")


def upgrade() -> None:
    op.create_index("ix_messages_being_written", "messages", ["conversation_id"],
                    sqlite_where=_STREAMING, postgresql_where=_STREAMING)


def downgrade() -> None:
    op.drop_index("ix_messages_being_written", "messages")
