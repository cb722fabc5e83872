"""Signing in with the access code, and what the page needs to know about this session."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request, session

from ..errors import ApiError
from ..identity import (
    admit_as_admin,
    admit_with_access_code,
    check_access_code,
    check_admin_code,
    is_admin,
)
from ..limits import limit_code_guesses
from ..policies import public
from ..services import services
from ..validation import read_json_object

bp = Blueprint("access", __name__, url_prefix="/api")


@bp.get("/session")
@public
def session_info():
    settings = services().settings
    signed_in = bool(g.get("user_id")) or not (settings.access_code or settings.trusted_user_header)
    kind = session.get("kind") if g.get("user_id") else ("anonymous" if signed_in else None)
    return jsonify({
        "signed_in": signed_in,
        "user": {"kind": kind,
                 "name": g.user_id.removeprefix("sso:") if kind == "sso" else None},
        "access_code_required": bool(settings.access_code) and not signed_in,
        "system_prompt_locked": settings.lock_system_prompt,
        "api_keys": settings.api_keys,
        "admin": is_admin(),
    })


@bp.post("/access")
@public
@limit_code_guesses
def enter_code():
    code = read_json_object(request).get("code")
    if isinstance(code, str) and check_admin_code(code):  # ADMIN_CODE: the operator page's
        admit_as_admin()
        return "", 204
    if not isinstance(code, str) or not check_access_code(code):
        raise ApiError(401, "invalid_access_code", "That access code is not right.")
    admit_with_access_code()
    return "", 204
