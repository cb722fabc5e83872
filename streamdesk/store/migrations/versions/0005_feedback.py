"""Feedback on replies: the user's rating ("up" or "down") and an optional comment, and when it
was given (the operator's export reads them by that time).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as table:
        table.add_column(sa.Column("feedback_rating", sa.String(8), nullable=True))
        table.add_column(sa.Column("feedback_comment", sa.Text, nullable=True))
        table.add_column(sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_messages_feedback_at", "messages", ["feedback_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_feedback_at", "messages")
    with op.batch_alter_table("messages") as table:
        table.drop_column("feedback_at")
        table.drop_column("feedback_comment")
        table.drop_column("feedback_rating")
