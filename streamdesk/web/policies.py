"""Who may call a view, declared on the view itself.

Every route needs a signed-in user (or, with no sign-in configured, the anonymous user of the
browser) unless it says otherwise:

* ``@public``: reachable before signing in (the page itself, signing in);
* ``@no_identity``: files and probes, which need to know nobody;
* ``@api_key_only``: the OpenAI-compatible API, for a personal API key and nothing else (the
  session cookie is not read, so a page's session can never be used through it cross-site).

``identity.resolve_identity`` reads the mark of the view a request was routed to.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request

View = TypeVar("View", bound=Callable)


class Access(enum.Enum):
    SIGNED_IN = "signed in"
    PUBLIC = "public"
    NO_IDENTITY = "no identity"
    API_KEY = "API key"


def public(view: View) -> View:
    view.access = Access.PUBLIC  # type: ignore[attr-defined]
    return view


def no_identity(view: View) -> View:
    view.access = Access.NO_IDENTITY  # type: ignore[attr-defined]
    return view


def api_key_only(view: View) -> View:
    view.access = Access.API_KEY  # type: ignore[attr-defined]
    return view


def access_of_current_view() -> Access:
    view = current_app.view_functions.get(request.endpoint or "")
    # No view (404, 405): nothing to protect, and the error answer needs no identity.
    return getattr(view, "access", Access.SIGNED_IN) if view else Access.NO_IDENTITY
