"""Who is asking, in one place: the company's SSO proxy, a shared access code, or an
anonymous user per browser (docs/helpdesk.md).

``resolve_identity`` runs before every request. The session only identifies the user; history
lives in the store under the user id. On ``/v1`` the user is the holder of the personal API
key the request carries, and the session is not read. Everything here happens in the view,
before a streamed response starts: Flask saves the session when the headers go out, so a
generator must never write to it.
"""
from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import time
from urllib.parse import unquote

from flask import Flask, current_app, g, request, session

from .errors import ApiError
from .policies import Access, access_of_current_view
from .services import services

MAX_USER_NAME = 120
# A name is never cut or cleaned: two different names must never become one user. These are
# refused instead: control characters, half surrogates, and the comma of two headers joined.
_NOT_IN_A_NAME = re.compile("[\x00-\x1f\x7f,\ud800-\udfff]")
_RFC_8187 = re.compile("utf-8''", re.IGNORECASE)
# A returning user's session is saved again (its lifetime starting over) once a day, not on
# every request: flask's SESSION_REFRESH_EACH_REQUEST would write the session's file or Redis
# key for each /chat, each follow and each poll.
KEEP_ALIVE_SECONDS = 86400


def init_app(app: Flask) -> None:
    app.before_request(resolve_identity)


def client_address() -> str:
    """The browser's address: behind trusted proxies, the nearest untrusted hop of
    X-Forwarded-For; otherwise the peer itself. Forwarded headers from anyone else are lies."""
    peer = request.remote_addr or ""
    if not _is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_trusted_proxy(hop):
            return hop
    return peer


def _is_trusted_proxy(address: str) -> bool:
    return address_in(address, services().settings.trusted_proxies)


def address_in(address: str, networks: tuple) -> bool:
    """Whether ``address`` (as a request gives it) is in one of the ``ipaddress`` networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def resolve_identity() -> None:
    """Who this request is, or a 401 for a route that needs somebody.

    The SSO header wins when it comes from a trusted proxy; else an access-code session; else,
    when neither is configured, the anonymous user of this browser. With TRUSTED_USER_HEADER
    set there is no anonymous use: a request that went around the proxy is refused.
    """
    settings = services().settings
    g.user_id = None
    access = access_of_current_view()
    if access is Access.NO_IDENTITY:
        return
    if access is Access.API_KEY:
        g.user_id = _api_key_holder()
        return
    if settings.trusted_user_header:
        name = request.headers.get(settings.trusted_user_header, "").strip()
        if name and _is_trusted_proxy(request.remote_addr or ""):
            _sign_in(f"sso:{sso_name(name)}", "sso")
            return
    if settings.access_code:
        if session.get("kind") == "access_code":
            g.user_id = session.get("uid")
            _keep_alive()
            return
    elif not settings.trusted_user_header:
        g.user_id = session.get("uid")  # anonymous; made on first need
        if g.user_id:
            _keep_alive()
        return
    if access is Access.PUBLIC:
        return
    if settings.access_code:
        raise ApiError(401, "access_code_required", "Enter the access code to use this chat.")
    raise ApiError(401, "sign_in_required",
                   "Sign in through your company's portal to use this chat.")


def _api_key_holder() -> str:
    """The user whose personal key the request carries (``Authorization: Bearer sd-...``)."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    holder = None
    if scheme.lower() == "bearer" and secret.strip():
        holder = services().store.api_keys.holder(secret.strip())
    if holder is None:
        raise ApiError(401, "invalid_api_key",
                       "Missing, unknown or revoked API key. Make one in the chat page's "
                       "settings and send it as 'Authorization: Bearer sd-...'.")
    return holder.user_id


def sso_name(header: str) -> str:
    """The user the proxy named, as the proxy meant it. HTTP header values reach us as
    Latin-1: a proxy may send UTF-8 bytes as they are, percent-encoded, or in RFC 8187's
    ``UTF-8''...`` form; all three give the same name. A name that is too long, holds two
    names or a control character is refused, never shortened or cleaned."""
    if _RFC_8187.match(header):
        header = header[len("utf-8''"):]
    try:
        if "%" in header:
            name = unquote(header, errors="strict")
        else:
            name = header.encode("latin-1").decode("utf-8")
    except UnicodeError:
        name = header  # not UTF-8: a Latin-1 name, read as sent
    if len(name) > MAX_USER_NAME or _NOT_IN_A_NAME.search(name) or not name.strip():
        raise ApiError(403, "sso_name_refused",
                       "Your company's portal sent a user name StreamDesk cannot take "
                       f"(empty, over {MAX_USER_NAME} characters, two names, or a control "
                       "character). Ask its administrator.")
    return name


def current_groups() -> tuple[str, ...]:
    """The user's groups as the SSO proxy lists them (TRUSTED_GROUPS_HEADER, comma-separated),
    believed only from a trusted proxy; none on the API, which no proxy vouches for."""
    header = services().settings.trusted_groups_header
    if not header or access_of_current_view() is Access.API_KEY \
            or not _is_trusted_proxy(request.remote_addr or ""):
        return ()
    return tuple(g.strip() for g in request.headers.get(header, "").split(",") if g.strip())


def is_admin() -> bool:
    """An operator: an SSO name in ADMIN_USERS, or a session that entered ADMIN_CODE."""
    user_id = g.get("user_id") or ""
    if access_of_current_view() is Access.API_KEY:
        return False
    if user_id.startswith("sso:"):
        return user_id.removeprefix("sso:") in services().settings.admin_users
    return bool(user_id) and session.get("admin") is True


def check_admin_code(code: str) -> bool:
    expected = services().settings.admin_code or ""
    return bool(expected) and hmac.compare_digest(code.encode("utf-8", "surrogatepass"),
                                                  expected.encode())


def admit_as_admin() -> None:
    """The session that entered ADMIN_CODE: an operator from now on (and, with an access
    code set up, signed in too)."""
    if services().settings.access_code:
        admit_with_access_code()
    else:
        current_user_id()
    session["admin"] = True


def known_user_id() -> str | None:
    """The user, when this request already has one. Reading or changing what a user owns
    mints no anonymous user: a browser without a cookie owns nothing yet, and minting one
    would leave a session behind for every such request (a bot, a probe, a first page load)."""
    return g.get("user_id") or None


def owner_or(missing: ApiError) -> str:
    """The user whose things are asked for, or ``missing`` (the route's 404): a browser that is
    nobody yet owns nothing."""
    user_id = known_user_id()
    if user_id is None:
        raise missing
    return user_id


def current_user_id() -> str:
    """The user's id; the anonymous user of a browser gets one on first need (its first
    message)."""
    if g.get("user_id"):
        return g.user_id
    settings = services().settings
    if settings.access_code or settings.trusted_user_header:  # only open routes get here
        raise ApiError(401, "access_code_required", "Enter the access code to use this chat.")
    g.user_id = "anon:" + secrets.token_urlsafe(18)
    session["uid"], session["kind"] = g.user_id, "anonymous"
    session.permanent = True
    _keep_alive()
    return g.user_id


def check_access_code(code: str) -> bool:
    """Constant-time comparison: the time taken says nothing about how close a guess was."""
    expected = services().settings.access_code or ""
    # surrogatepass: a code with half a surrogate pair (sent as a JSON escape) is simply wrong.
    return bool(expected) and hmac.compare_digest(code.encode("utf-8", "surrogatepass"),
                                                  expected.encode())


def admit_with_access_code() -> None:
    returning = session.get("uid") if session.get("kind") == "access_code" else None
    _sign_in(returning or "code:" + secrets.token_urlsafe(18), "access_code")


def identity_kind() -> str:
    return session.get("kind", "anonymous") if g.get("user_id") else "none"


def _sign_in(user_id: str, kind: str) -> None:
    if session.get("uid") != user_id:
        session.clear()
        session["uid"], session["kind"] = user_id, kind
        session.permanent = True
        # A new identity gets a new session id, so a session id planted before sign-in
        # (session fixation) is worthless afterwards.
        current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
    g.user_id = user_id
    _keep_alive()


def _keep_alive() -> None:
    """Marks the session changed, so it is saved with a new expiry, when it was last saved
    on an earlier day (or never)."""
    day = int(time.time() // KEEP_ALIVE_SECONDS)
    if session.get("day") != day:
        session["day"] = day
