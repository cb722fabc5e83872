"""One HTTP request to a model service, with connection failures turned into our errors.

The requests exception itself never goes further: its text carries the URL, and some URLs
carry secrets (ERNIE's access token travels in the query string).
"""
from __future__ import annotations

import requests

from .errors import ProviderError, UpstreamTimeoutError, UpstreamUnavailableError


def post(session: requests.Session, url: str, service: str, **options) -> requests.Response:
    """``session.post``; ``service`` names the other end for the user ("the glm model service")."""
    failure: ProviderError
    try:
        return session.post(url, **options)
    except requests.Timeout:
        failure = UpstreamTimeoutError(
            f"{service[:1].upper()}{service[1:]} did not answer in time.")
    except requests.RequestException:
        failure = UpstreamUnavailableError(f"Could not connect to {service}.")
    raise failure  # outside the except block, so the requests error is not chained to it
