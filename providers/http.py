"""One HTTP request to a model service, with connection failures turned into our errors.

The requests exception itself never goes further: its text carries the URL, and some URLs
carry secrets (ERNIE's access token travels in the query string).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

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


def upstream_session(base_url: str, max_connections: int,
                     headers: Mapping[str, str] | None = None) -> requests.Session:
    """A pooled session for one configured service. The environment's proxy variables
    (HTTPS_PROXY, NO_PROXY, ...) and CA bundle (REQUESTS_CA_BUNDLE) are read here, once: by
    default requests reads them again, and looks for a .netrc, on every request: about 5 % of
    a new chat's set-up (docs/benchmarks.md). A proxy set later needs a restart."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") \
        or True
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers or {})
    # Compressed event streams are buffered by some servers and proxies: ask for none.
    session.headers["Accept-Encoding"] = "identity"
    return session
