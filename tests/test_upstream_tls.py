"""The app under gunicorn relays a model service over HTTPS, its certificate checked: the
gevent-patched TLS socket read through the provider's own read buffer (providers/http.py).
The certificate is made with the openssl command (`make os-packages` installs it)."""
from __future__ import annotations

import ssl

import pytest
import requests

from providers.http import Upstream, body_reads
from tests.certificates import self_signed
from tests.conftest import AppServer, read_events, streamed_text
from tests.standins.openai_server import WIDE_PIECE, OpenAIStandIn


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_upstream(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with OpenAIStandIn(tls=context) as server:
        yield server


def start(https_upstream, tmp_path_factory, **env: str) -> AppServer:
    return AppServer({"OPENAI_BASE_URL": https_upstream.url, "OPENAI_API_KEY": "sk-tls-test",
                      "OPENAI_MODELS": "echo,wide", "DEFAULT_MODEL": "openai/echo", **env},
                     tmp_path_factory.mktemp("instance")).start()


def reply(server: AppServer, model: str) -> list[tuple[str, dict]]:
    response = requests.post(f"{server.url}/chat", json={"message": "over TLS", "model": model},
                             stream=True, timeout=30)
    assert response.status_code == 200, response.text
    return read_events(response)


def text(events) -> str:
    return "".join(data.get("text", "") for name, data in events if name == "delta")


def test_a_reply_over_https_arrives_whole_small_events_and_wide(https_upstream, certificate,
                                                                tmp_path_factory):
    server = start(https_upstream, tmp_path_factory, REQUESTS_CA_BUNDLE=str(certificate[0]))
    try:
        echoed = reply(server, "openai/echo")
        assert text(echoed) == "Echo: over TLS [1 messages]"
        assert echoed[-1] == ("done", {"finish_reason": "stop", "status": "complete"})
        wide = reply(server, "openai/wide")
        assert text(wide) == "Wide: " + WIDE_PIECE
        assert wide[-1] == ("done", {"finish_reason": "stop", "status": "complete"})
    finally:
        server.stop()
    server.assert_clean_log()


def test_a_certificate_nobody_vouches_for_is_refused(https_upstream, tmp_path_factory):
    server = start(https_upstream, tmp_path_factory)
    try:
        events = reply(server, "openai/echo")
        assert [name for name, _ in events][-2:] == ["error", "done"]
        assert events[-2][1]["code"] == "upstream_unavailable"
        assert text(events) == ""
    finally:
        server.stop()
    server.assert_clean_log()


def test_the_ca_bundle_is_read_once_for_every_connection(https_upstream, certificate, tmp_path,
                                                         monkeypatch):
    # Each connection used to read the whole bundle into a TLS context of its own: 35 ms of
    # CPU and ~680 KB held per connection with certifi's (docs/benchmarks.md). Read once, a
    # bundle replaced or removed after start changes nothing until a restart, as the README
    # says of REQUESTS_CA_BUNDLE.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(certificate[0].read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    upstream = Upstream(https_upstream.url, max_connections=4)
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{https_upstream.url}/chat/completions"
    try:
        first = upstream.post(url, "the test service", timeout=(5, 5), json=body)
        bundle.unlink()
        # The first reply is still open, so this one needs a connection of its own.
        second = upstream.post(url, "the test service", timeout=(5, 5), json=body)
        for response in (first, second):
            assert response.status_code == 200
            assert streamed_text(b"".join(body_reads(response))) == "Echo: hi [1 messages]"
            response.close()
    finally:
        upstream.close()

