"""The sample nginx configuration (deploy/nginx.conf) in front of the app, with a real nginx."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
import requests

from providers.sse import SSEDecoder
from tests.conftest import ROOT

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def nginx(app_server, tmp_path_factory):
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed: run the README's test command, which installs it.")
    prefix = tmp_path_factory.mktemp("nginx")
    # We bind the listening socket and hand it to nginx (its NGINX variable, the mechanism of
    # its binary upgrade): connections wait in the backlog until nginx is up, so no test has
    # to poll for it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    sample = (ROOT / "deploy" / "nginx.conf").read_text()
    site = sample.replace("server 127.0.0.1:5000;", f"server 127.0.0.1:{app_server.port};") \
                 .replace("listen 80;", f"listen 127.0.0.1:{port};")
    assert site != sample
    (prefix / "site.conf").write_text(site)
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp folders
    (prefix / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
""")
    subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                   check=True, capture_output=True)
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                               pass_fds=(listener.fileno(),),
                               env={**os.environ, "NGINX": f"{listener.fileno()};"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    listener.close()


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
    assert raw.startswith(b"event: meta")
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
