"""Where conversations, messages and rate-limit counters are kept (SQLAlchemy, migrated by
Alembic). ``Store`` is the repository; it returns the frozen records of ``records.py``."""
from .api_keys import ApiKey, KeyHolder, TooManyKeys
from .rate_limits import DatabaseLimitStorage
from .records import (
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
)
from .repository import Store

__all__ = ["ApiKey", "Conversation", "DatabaseLimitStorage", "Feedback", "FeedbackEntry",
           "KeyHolder", "NewConversation", "NotAReply", "Progress", "ReplyInProgress",
           "ReplyStatus", "Store", "StoredMessage", "StoredReply", "StreamCapReached",
           "TooManyKeys", "UsageEntry"]
