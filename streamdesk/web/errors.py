"""Errors are data too: every error answer is ``{"error": {"code", "message"}}``, and on the
OpenAI-compatible API (``/v1``) OpenAI's ``{"error": {"message", "type", "param", "code"}}``,
which its SDKs read."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..chat.turn import STREAM_CAP_RETRY_SECONDS, TurnRefused

log = logging.getLogger(__name__)

# Stable codes for the HTTP errors Flask raises itself.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type", 429: "rate_limited"}
# The HTTP status of each reason a turn can be refused for (``streamdesk/chat/turn.py``).
_REFUSAL_STATUS = {"conversation_not_found": 404, "message_not_found": 404,
                   "unknown_model": 400, "too_many_streams": 429, "reply_in_progress": 409}


OPENAI_PREFIX = "/v1/"
# OpenAI's error types by status (its SDKs choose the exception class by the status alone).
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 429: "rate_limit_error"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def json_error(status: int, code: str, message: str):
    if request.path.startswith(OPENAI_PREFIX):
        kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status,
                                                                       "invalid_request_error")
        error = {"message": message, "type": kind, "param": None, "code": code}
    else:
        error = {"code": code, "message": message}
    response = jsonify({"error": error})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(TurnRefused)
    def turn_refused(refusal: TurnRefused):
        response = json_error(_REFUSAL_STATUS[refusal.code], refusal.code, refusal.message)
        if refusal.code == "too_many_streams":
            response.headers["Retry-After"] = str(STREAM_CAP_RETRY_SECONDS)
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        response = json_error(error.status, error.code, error.message)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        response = json_error(status, _HTTP_CODES.get(status, "http_error"),
                              error.description or error.name)
        allowed = getattr(error, "valid_methods", None)  # only on 405
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")  # a bug of ours: the traceback is for us, not the user
        return json_error(500, "internal", "Something went wrong on our side.")
