"""Who is asking. The session only identifies the user; history lives in the store.

Call ``current_user_id()`` in the view, before a streamed response starts: Flask saves the
session when the response headers go out, so a generator must never write to it.
"""
from __future__ import annotations

import secrets

from flask import session


def current_user_id() -> str:
    user_id = session.get("uid")
    if not user_id:
        user_id = "anon:" + secrets.token_urlsafe(18)
        session["uid"] = user_id
        session.permanent = True
    return user_id
