"""A user's conversations by the time they were last touched, for the stream cap.

``Store.start_turn`` counts the user's replies being written before each message. Each of the
user's conversations cost one probe of ``ix_messages_being_written`` (0003), so the count
grew with the user's history: ~1 ms more per message at 3,000 conversations on SQLite. A
reply being written started within the longest time a reply may run (MAX_REPLY_SECONDS), and
its start touched its conversation, so the count now reads only the conversations touched
since then, found through this index. It also serves the sidebar's list (a user's
conversations, newest first). It replaces the index on the user alone, which is its prefix.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conversations_user_updated", "conversations", ["user_id", "updated_at"])
    op.drop_index("ix_conversations_user_id", "conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_user_id", "conversations", ["user_id"])
    op.drop_index("ix_conversations_user_updated", "conversations")
