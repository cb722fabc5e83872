"""The sample nginx configuration (deploy/nginx.conf) in front of the app, with a real nginx."""
from __future__ import annotations

import socket

import pytest
import requests

from providers.sse import SSEDecoder
from tests.nginx import running_nginx


@pytest.fixture(scope="module")
def nginx(app_server, tmp_path_factory):
    with running_nginx([app_server.port], tmp_path_factory.mktemp("nginx")) as url:
        yield url


def test_events_pass_through_nginx_as_they_are_written(nginx, fresh_upstream):
    response = requests.post(f"{nginx}/chat", stream=True, timeout=30,
                             json={"message": "wait", "model": "openai/hold"},
                             headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    reads = response.iter_content(chunk_size=None)
    raw = b""
    # The model has not said a word yet: meta and heartbeats arrive anyway, so nothing waits
    # in a buffer (with nginx's default buffering this would block until the end).
    while raw.count(b": ping") < 2:
        raw += next(reads)
    assert raw.startswith(b"id: 1\nevent: meta")
    fresh_upstream.release.set()
    events = SSEDecoder().feed(raw + b"".join(reads))
    assert [e.json()["text"] for e in events if e.event == "delta"] == ["released"]
    assert events[-1].event == "done"


def test_nginx_compresses_the_page_assets_but_never_the_stream(nginx):
    asset = requests.get(f"{nginx}/static/style.css", headers={"Accept-Encoding": "gzip"},
                         timeout=10)
    assert asset.status_code == 200 and asset.headers.get("Content-Encoding") == "gzip"
    stream = requests.post(f"{nginx}/chat", json={"message": "hi"}, timeout=30,
                           headers={"Accept-Encoding": "gzip"})
    assert stream.status_code == 200 and "Content-Encoding" not in stream.headers
    assert stream.text.rstrip().endswith('data: {"finish_reason":"stop","status":"complete"}')


def test_request_id_from_nginx_reaches_the_app_and_comes_back(nginx):
    response = requests.get(f"{nginx}/healthz", timeout=10)
    assert len(response.headers["X-Request-ID"]) == 32  # nginx's $request_id, kept by the app


def raw_get(url: str, path: str, source: str) -> int:
    """The status of GET ``path``, asked from the loopback address ``source``."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10,
                                  source_address=(source, 0)) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                           .encode())
        return int(connection.makefile("rb").readline().split()[1])


@pytest.mark.parametrize("path", ["/metrics", "/readyz"])
def test_the_sample_lets_only_the_monitoring_read_metrics_and_readiness(nginx, path):
    assert raw_get(nginx, path, "127.0.0.1") == 200
    assert raw_get(nginx, path, "127.0.0.2") == 403  # another address: refused by nginx
    assert raw_get(nginx, "/healthz", "127.0.0.2") == 200
