"""A small family of provider errors, each with a stable code and a message fit for a user.

Providers convert whatever their vendor sends into one of these at their boundary, keeping the
upstream's own words in ``message`` where they help. The relay turns them into ``error`` events;
``retryable`` tells ``providers.retry`` whether another attempt could succeed.
"""
from __future__ import annotations

import re


class ProviderError(Exception):
    code = "provider_error"
    retryable = False
    default_message = "The model service failed."

    def __init__(self, message: str | None = None, *, retryable: bool | None = None,
                 retry_after: float | None = None, upstream_code: str | int | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_code = upstream_code

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class BadRequestError(ProviderError):
    code = "bad_request"
    default_message = "The model service rejected the request."


class ContextLengthError(BadRequestError):
    code = "context_length"
    default_message = "The conversation is too long for this model. Start a new chat."


class AuthError(ProviderError):
    code = "auth"
    default_message = ("The model service refused our credentials. "
                       "Ask the operator to check the API key.")


class ModelNotFoundError(ProviderError):
    code = "model_not_found"
    default_message = "The model service does not know this model."


class RateLimitError(ProviderError):
    code = "rate_limited"
    retryable = True
    default_message = "The model service is rate limiting us. Try again shortly."


class QuotaExceededError(ProviderError):
    code = "quota_exceeded"
    default_message = "The quota for this model service is used up."


class UpstreamUnavailableError(ProviderError):
    code = "upstream_unavailable"
    retryable = True
    default_message = "The model service is unavailable right now."


class UpstreamTimeoutError(ProviderError):
    code = "timeout"
    retryable = True
    default_message = "The model service did not answer in time."


class UpstreamError(ProviderError):
    code = "upstream_error"
    default_message = "The model service reported an error."


class StreamInterruptedError(ProviderError):
    code = "interrupted"
    default_message = "The reply was cut off before it finished."


class ContentRefusedError(ProviderError):
    code = "content_refused"
    default_message = "The model service refused this input."


class ConfigurationError(ProviderError):
    """Raised at start-up for bad operator configuration, and at run time when the
    vendor says our configuration (licence, permissions) is wrong."""

    code = "configuration"
    default_message = "This model is not configured correctly. Ask the operator."



_KEY_LIKE = re.compile(r"\b(?:sk|bce-v3|ALTAK|Bearer)[-_/.*\w]{6,}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove our own keys, and anything shaped like a key, from text bound for a user or a
    log: vendors echo part of a rejected key back in their error messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)[:500]
