"""One HTTP request to a model service, with connection failures turned into our errors, and
its streamed body read as it arrives.

The requests exception itself never goes further: its text carries the URL, and some URLs
carry secrets (ERNIE's access token travels in the query string).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

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


def body_reads(response: requests.Response, size: int = 65_536) -> Iterator[bytes]:
    """A streamed body's bytes as they arrive, whatever its framing: never waiting to fill a
    size or for the end. A chunked body comes chunk by chunk (``iter_content(None)``, the
    cheaper path: 3-4 µs a chunk less than ``read1``); any other is read with ``read1``,
    which returns what the connection has (``iter_content(None)`` would read it whole before
    returning anything). urllib3's errors come out as ``iter_content`` raises them."""
    raw = response.raw
    if raw.chunked:
        yield from response.iter_content(chunk_size=None)
        return
    try:
        while data := raw.read1(size):
            yield data
    except ProtocolError as e:
        raise requests.exceptions.ChunkedEncodingError(e) from e
    except DecodeError as e:
        raise requests.exceptions.ContentDecodingError(e) from e
    except ReadTimeoutError as e:
        raise requests.ConnectionError(e) from e
    except SSLError as e:
        raise requests.exceptions.SSLError(e) from e


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
