"""Signing iFlytek Spark's WebSocket URL and opening the connection (providers.md section 3).

Spark authenticates the handshake itself: the URL carries an HMAC-SHA256 signature over the
host, an RFC 1123 date and the request line, and the service refuses a date more than 300 s
from its own clock. A refusal arrives as plain HTTP before the upgrade, so it is mapped here,
where the handshake happens.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import ssl
from urllib.parse import urlencode, urlsplit

import websocket

from .errors import (
    AuthError,
    ConfigurationError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    redact,
)

log = logging.getLogger(__name__)


def sign_url(url: str, api_key: str, api_secret: str, date: str) -> str:
    """The URL to open: ``url`` plus the authorization, date and host parameters.

    ``date`` is passed in (RFC 1123, GMT) so the function is pure and testable; the host is
    the URL's netloc, port included, exactly as the Host header will carry it.
    """
    parts = urlsplit(url)
    host, path = parts.netloc, parts.path or "/"
    # Three lines, no trailing newline: the service rebuilds this string byte for byte.
    origin = f"host: {host}\ndate: {date}\nGET {path} HTTP/1.1"
    digest = hmac.new(api_secret.encode("utf-8"), origin.encode("utf-8"), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode("ascii")
    authorization_origin = (f'api_key="{api_key}", algorithm="hmac-sha256", '
                            f'headers="host date request-line", signature="{signature}"')
    authorization = base64.b64encode(authorization_origin.encode("utf-8")).decode("ascii")
    query = urlencode({"authorization": authorization, "date": date, "host": host})
    return f"{parts.scheme}://{host}{path}?{query}"


def verified_tls_context() -> ssl.SSLContext:
    """Certificates and host names checked against the system's trust store (article 001
    switched this off; a signed URL sent to an impostor is a stolen credential)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def connect(signed_url: str, *, timeout: float, tls: ssl.SSLContext, label: str,
            secrets: tuple[str, ...]) -> websocket.WebSocket:
    """Open the socket with websocket-client's synchronous API: no thread per reply, and
    under gevent's monkey-patching every blocking step yields to other greenlets."""
    host = urlsplit(signed_url).netloc
    try:
        # redirect_limit=0: never carry the signed URL to another address.
        return websocket.create_connection(signed_url, timeout=timeout, sslopt={"context": tls},
                                           redirect_limit=0)
    except websocket.WebSocketBadStatusException as e:
        raise refusal_error(e.status_code, e.resp_body, label, secrets) from None
    except (websocket.WebSocketTimeoutException, TimeoutError):
        raise UpstreamTimeoutError(f"{label} did not accept the connection within "
                                   f"{timeout:g} s.") from None
    except ssl.SSLCertVerificationError as e:
        log.warning("TLS certificate of %s not verified: %s", host, e.verify_message)
        raise ConfigurationError(f"The TLS certificate of {host} could not be verified "
                                 f"({e.verify_message}); refusing to send credentials.") from None
    except websocket.WebSocketAddressException:
        raise UpstreamUnavailableError(f"Could not resolve the address of {host}.") from None
    except websocket.WebSocketException as e:
        raise UpstreamError(
            f"{label} answered the connection oddly: {redact(str(e), secrets)}") from None
    except OSError as e:  # refused, reset, unreachable, other TLS failures
        raise UpstreamUnavailableError(f"Could not connect to {label} at {host} "
                                       f"({e.strerror or type(e).__name__}).") from None


def refusal_error(status: int, body: bytes | None, label: str,
                  secrets: tuple[str, ...]) -> ProviderError:
    """A readable error for an HTTP refusal of the handshake (before the upgrade)."""
    said = redact(_service_message(body), secrets)
    log.info("%s refused the handshake: HTTP %s %s", label, status, said)
    lowered = said.lower()

    def explain(text: str) -> str:
        return f"{text} (Spark said: HTTP {status} {said})" if said else f"{text} (HTTP {status})"

    if status == 403 and "date" in lowered:
        return ConfigurationError(explain(
            f"{label} refused the connection because this server's clock is more than 5 minutes "
            "off. Ask the operator to fix the clock (enable NTP)."), upstream_code=status)
    if status == 403 and "ip" in lowered.split():
        return AuthError(explain(
            f"{label} does not accept requests from this server's IP address. Ask the operator "
            "to add it to the app's IP allow-list in the iFlytek console."), upstream_code=status)
    if status in (401, 403):
        return AuthError(explain(
            f"{label} refused the credentials (HMAC signature not accepted). Ask the operator to "
            "check the app's API key and API secret."), upstream_code=status)
    if status == 404:
        return ModelNotFoundError(explain(f"{label} has no chat endpoint at this URL."),
                                  upstream_code=status)
    if status == 429:
        return RateLimitError(explain(RateLimitError.default_message), upstream_code=status)
    if status >= 500:
        return UpstreamUnavailableError(explain(UpstreamUnavailableError.default_message),
                                        upstream_code=status)
    return UpstreamError(explain(f"{label} refused the connection."), upstream_code=status)


def _service_message(body: bytes | None) -> str:
    """Spark sends ``{"message": "..."}`` as the body of a refusal; anything else as text."""
    text = (body or b"").decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"]
    return text[:300]
