"""Replies that outlive their connection: where a reply is generated, what its events were,
and stop requests between workers.

- ``messages.owner``: the worker generating a streaming reply ("host:pid").
- ``messages.stream_index``: JSON with the reply's ``meta`` event, its event position and the
  segments of its event stream, so any worker can replay the events after any event id from
  the saved text (``streamdesk/chat/replay.py``).
- ``reply_stops``: stop requests, read by the generating worker when there is no Redis.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as messages:
        messages.add_column(sa.Column("owner", sa.String(64), nullable=True))
        messages.add_column(sa.Column("stream_index", sa.Text, nullable=True))
    op.create_table(
        "reply_stops",
        sa.Column("message_id", sa.String(32), primary_key=True),
        sa.Column("requested_at", sa.Float, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("reply_stops")
    with op.batch_alter_table("messages") as messages:
        messages.drop_column("stream_index")
        messages.drop_column("owner")
