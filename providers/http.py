"""One HTTP request to a model service, with connection failures turned into our errors, and
its streamed body read as it arrives.

The requests exception itself never goes further: its text carries the URL, and some URLs
carry secrets (ERNIE's access token travels in the query string).
"""
from __future__ import annotations

import datetime
import functools
import http.client
import os
import ssl
from collections.abc import Callable, Iterator, Mapping

import requests
import urllib3
import urllib3.exceptions
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.utils import get_encoding_from_headers, get_environ_proxies
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.util.ssl_ import create_urllib3_context

from .chunked import ChunkedBody
from .errors import (
    ConfigurationError,
    ProviderError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .idle_connections import closed_while_idle


class Upstream:
    """One configured service: a pool of kept-alive connections and the headers every request
    to it carries.

    Requests go straight to requests' ``HTTPAdapter``, not through a ``Session``, whose
    per-request merging (cookies, hooks, settings, redirects) cost ~0.15 ms of CPU per new
    chat (docs/benchmarks.md), and two of whose habits are wrong here: it keeps the cookies
    an upstream sets and sends them with every later request, whoever's reply it is; and it
    follows redirects to wherever the upstream points, where only the operator names URLs. A
    redirect is answered like any other unexpected status.

    The environment's proxy variables (HTTPS_PROXY, NO_PROXY, ...) and CA bundle
    (REQUESTS_CA_BUNDLE) are read once, here: a proxy set later needs a restart.

    An HTTPS service's connections share one TLS context, with the CA bundle loaded once.
    Left to requests and urllib3, each new connection made a context of its own and read the
    whole bundle into it: with certifi's ~150 certificates, 35 ms of CPU per connection and
    ~680 KB held for as long as it stayed open (docs/benchmarks.md), so a burst of new chats
    (a connection each) spent seconds loading certificates.
    """

    def __init__(self, base_url: str, max_connections: int,
                 headers: Mapping[str, str] | None = None):
        self.headers = {**requests.utils.default_headers(), **(headers or {}),
                        # Compressed event streams are buffered by some servers and proxies.
                        "Accept-Encoding": "identity"}
        self.proxies = get_environ_proxies(base_url)
        self.verify: str | bool = (os.environ.get("REQUESTS_CA_BUNDLE")
                                   or os.environ.get("CURL_CA_BUNDLE") or True)
        tls = tls_context(self.verify) if base_url.lower().startswith("https:") else None
        self.adapter = _Adapter(tls, pool_connections=1, pool_maxsize=max_connections,
                                max_retries=0)

    def post(self, url: str, service: str, *, timeout: tuple[float, float],
             json: object = None, params: Mapping[str, str] | None = None) -> requests.Response:
        """POST ``json`` to ``url`` (with ``params`` in its query); the response's body is the
        caller's to read and to close. ``service`` names the other end for the user ("the glm
        model service"). The requests exception itself never goes further: its text carries
        the URL, and some URLs carry secrets (ERNIE's access token is in the query string)."""
        failure: ProviderError
        try:
            prepared = requests.PreparedRequest()
            prepared.prepare_method("POST")
            prepared.prepare_url(url, params)
            prepared.prepare_headers(self.headers)
            prepared.prepare_body(None, None, json)
            prepared.prepare_hooks({})
            response = self.adapter.send(prepared, stream=True, timeout=timeout,
                                         verify=self.verify, cert=None, proxies=self.proxies)
            # Sent: the conversation it carried (often tens of KB) is not held by the response
            # for as long as the reply streams.
            prepared.body = None
            return response
        except requests.Timeout:
            failure = UpstreamTimeoutError(
                f"{service[:1].upper()}{service[1:]} did not answer in time.")
        except requests.RequestException:
            failure = UpstreamUnavailableError(f"Could not connect to {service}.")
        raise failure  # outside the except block, so the requests error is not chained to it

    def close(self) -> None:
        self.adapter.close()


# What reading a streamed body may raise: urllib3's errors as its reads raise them, and
# requests' for the same failures where requests read (a status error's body).
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)


def timed_out(error: BaseException) -> bool:
    """Whether a read error is the read timeout: the upstream went silent."""
    cause = error.args[0] if error.args else None
    return isinstance(error, (requests.Timeout, ReadTimeoutError)) \
        or isinstance(cause, ReadTimeoutError)


def body_reads(response: requests.Response, size: int = 65_536) -> Iterator[bytes]:
    """A streamed body's bytes as they arrive, whatever its framing: never waiting to fill a
    size or for the end; the caller catches READ_ERRORS. A chunked body is read straight
    from the socket and its framing undone here (``_arrivals``); one with a content
    coding, or on a SOCKS proxy's connection, chunk by chunk through urllib3's
    ``read_chunked``; any other is read with ``read1``, which returns what the connection has.
    Not a generator of its own: each generator between the socket and the relay is a step per
    chunk and a level (~0.5 KB) in the saved stack of every waiting reply
    (docs/benchmarks.md)."""
    raw = response.raw
    if _arrives_chunked(raw):
        return _arrivals(raw, size)
    if raw.chunked and raw.supports_chunked_reads():
        return raw.read_chunked(None, decode_content=True)
    return iter(functools.partial(raw.read1, size), b"")


class _PolledNow:
    """urllib3 checks that a kept-alive connection is still open before reusing it, with a
    poll() of timeout 0; gevent's poll() goes round the event loop even then, so the reply
    paused there while POST /chat wrote its session and response, and the upstream was asked
    only after (docs/benchmarks.md). The OS's own poll() answers at once."""

    sock: object

    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not closed_while_idle(self.sock)


# What one receive may bring of a streamed body: a few events. http.client's own buffer is
# 8 KB, held for as long as the reply streams; it was the largest single part of an open
# stream's memory (docs/benchmarks.md). A body read whole, or a burst of events, just takes
# more reads of this size.
READ_BUFFER_BYTES = 2048


class _LeanResponse(http.client.HTTPResponse):
    """http.client's response, reading its socket through a buffer of READ_BUFFER_BYTES."""

    def __init__(self, sock, *args, **kwargs):
        super().__init__(_SizedMakefile(sock), *args, **kwargs)


class _SizedMakefile:
    """The one thing ``HTTPResponse.__init__`` asks of its socket, with a smaller buffer."""

    __slots__ = ("sock",)

    def __init__(self, sock):
        self.sock = sock

    def makefile(self, mode: str):
        return self.sock.makefile(mode, buffering=READ_BUFFER_BYTES)


def _arrives_chunked(raw: urllib3.HTTPResponse) -> bool:
    """Whether ``_arrivals`` can read this body: chunked, with no content coding to undo,
    not read yet, on a connection of ours (a SOCKS proxy's pools have their own)."""
    raw._init_decoder()
    return (raw.chunked and raw._decoder is None and raw._fp is not None
            and raw._fp.fp is not None and isinstance(raw.connection, _PolledNow))


def _arrivals(raw: urllib3.HTTPResponse, size: int) -> Iterator[bytes]:
    """A chunked body's bytes, one receive from the socket at a time, its framing undone by
    ``ChunkedBody``, until the last chunk and the trailer; then the connection goes back to
    the pool. Through urllib3's ``read_chunked`` each chunk took a buffered read of its size
    line, two more of its data and its end, and a decoder step: 4-9 µs more CPU per relayed
    chunk under load (docs/benchmarks.md); and it waited for the whole of a chunk, where this
    passes on what came. urllib3's own ``_error_catcher`` turns what the socket raises into
    urllib3's errors (READ_ERRORS), as for its own reads, and drops the connection unless the
    body ended."""
    response, connection = raw._fp, raw.connection
    assert response is not None and connection is not None  # _arrives_chunked
    sock = connection.sock
    body = ChunkedBody()
    # http.client may have read the first bytes of the body with the headers: this one read1
    # empties its buffer (READ_BUFFER_BYTES, smaller than size), and every later read goes
    # to the socket itself, past http.client's layers.
    receive: Callable[[int], bytes] = response.fp.read1
    with raw._error_catcher():
        while not body.ended:
            data = receive(size)
            receive = sock.recv
            if not data:
                raise ProtocolError("Response ended before its last chunk")
            data = body.feed(data)
            if data:
                yield data
            if body.failure:
                raise body.failure
        if body.excess:  # bytes after the body: this connection is out of step
            connection.close()
        # Closed, the response hands its connection back to the pool as the catcher exits.
        response.close()


class _HTTPConnection(_PolledNow, HTTPConnection):
    response_class = _LeanResponse


class _HTTPSConnection(_PolledNow, HTTPSConnection):
    response_class = _LeanResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _StreamedResponse(requests.Response):
    """requests' response, without what it holds that nothing here reads, for as long as the
    reply streams: a copy of the headers (urllib3's own are already case-insensitive), a
    cookie jar (an upstream's cookies are never kept: ``Upstream``), and the request that was
    sent, with its own headers. ~2 KB of every open reply (docs/benchmarks.md)."""

    def __init__(self, request: requests.PreparedRequest, raw, adapter: HTTPAdapter):
        # Response.__init__ is not called: it would make the headers' copy and the jar.
        self._content = False  # type: ignore[assignment]  # requests' own "not read yet"
        self._content_consumed = False
        self._next = None
        self.status_code = raw.status
        self.headers = raw.headers  # a case-insensitive mapping too
        self.encoding = get_encoding_from_headers(self.headers)
        self.raw = raw
        self.reason = raw.reason
        self.url = request.url or ""  # always set: prepare_url
        self.history = []
        self.elapsed = _NOT_TIMED
        self.request = None  # type: ignore[assignment]
        self.connection = adapter

    @property
    def cookies(self) -> RequestsCookieJar:  # type: ignore[override]  # none kept: none to set
        return RequestsCookieJar()


_NOT_TIMED = datetime.timedelta(0)


@functools.cache
def tls_context(verify: str | bool) -> ssl.SSLContext:
    """urllib3's TLS context, trusting what requests would trust for ``verify``: the CA
    bundle file or directory it names, or certifi's bundle. urllib3 still checks the host
    name against the certificate on every connection. One per bundle in a process, shared
    by every HTTPS service (certifi's holds ~680 KB). A bundle that cannot be read stops
    start-up with one clear line, where it used to fail every reply."""
    context = create_urllib3_context()
    location = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    try:
        if os.path.isdir(location):
            context.load_verify_locations(capath=location)
        else:
            context.load_verify_locations(cafile=location)
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(f"the CA bundle {location} (REQUESTS_CA_BUNDLE) cannot be "
                                 f"read: {e.strerror or e}") from None
    return context


class _Adapter(HTTPAdapter):
    def __init__(self, tls: ssl.SSLContext | None, **kwargs):
        self.tls = tls  # shared by every HTTPS connection (Upstream)
        super().__init__(**kwargs)

    def _shares_tls(self, url: str, verify) -> bool:
        return self.tls is not None and bool(verify) and url.lower().startswith("https:")

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        if self._shares_tls(request.url, verify):
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self.tls
        return host_params, pool_kwargs

    def cert_verify(self, conn, url: str, verify, cert) -> None:
        if self._shares_tls(url, verify):
            # requests would name the bundle on the pool, and urllib3 load it into the shared
            # context again for every connection: it is in there already.
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)

    def build_response(self, req: requests.PreparedRequest, resp) -> requests.Response:
        return _StreamedResponse(req, resp, self)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager
