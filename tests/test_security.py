"""Hardening: security headers, cross-site requests refused, CORS only when configured, and
keys that never leave the server."""
from __future__ import annotations

import json
import re

import pytest
import requests

from tests.conftest import AppServer, read_events

KEYS = {"OPENAI_API_KEY": "sk-live-SECRET-openai-0001", "ERNIE_API_KEY": "ernie-SECRET-ak-0002",
        "ERNIE_SECRET_KEY": "ernie-SECRET-sk-0003", "SPARK_APP_ID": "sparkapp01",
        "SPARK_API_KEY": "spark-SECRET-key-0004", "SPARK_API_SECRET": "spark-SECRET-0005"}


@pytest.fixture(scope="module")
def keyed(upstream, tmp_path_factory):
    """Every provider configured with a key; the upstreams are the stand-in or unreachable."""
    server = AppServer({**KEYS, "OPENAI_BASE_URL": upstream.url,
                        "OPENAI_MODELS": "echo,status-401,status-500",
                        "ERNIE_BASE_URL": "http://127.0.0.1:9",
                        "SPARK_URL": "ws://127.0.0.1:9/v3.5/chat",
                        "CORS_ORIGINS": "https://portal.example.com",
                        "FRAME_ANCESTORS": "https://portal.example.com"},
                       tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_security_headers_on_every_answer(app_server):
    for path in ("/", "/api/models", "/static/style.css", "/nope"):
        headers = requests.get(f"{app_server.url}{path}", timeout=10).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split(
            "style-src-attr")[0]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"


def test_frame_ancestors_is_the_operators_choice(keyed):
    headers = requests.get(keyed.url, timeout=10).headers
    assert "frame-ancestors https://portal.example.com" in headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in headers


def test_the_page_has_no_inline_script(app_server):
    page = requests.get(app_server.url, timeout=10).text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script is a file
    assert re.search(r"\son[a-z]+\s*=", page) is None  # no inline event handlers


@pytest.mark.parametrize("headers, body, status, code", [
    # A cross-site HTML form: urlencoded, foreign Origin.
    ({"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
     b"message=hi", 403, "cross_site"),
    # fetch() with text/plain skips the CORS preflight: still refused for its type.
    ({"Content-Type": "text/plain"}, b'{"message": "hi"}', 415, "unsupported_media_type"),
    ({"Origin": "https://evil.example", "Content-Type": "text/plain"}, b'{"message": "hi"}',
     403, "cross_site"),
    # JSON with a foreign Origin (a misconfigured proxy or a malicious page with CORS hopes).
    ({"Origin": "https://evil.example", "Content-Type": "application/json"},
     b'{"message": "hi"}', 403, "cross_site"),
    ({"Origin": "null", "Content-Type": "application/json"}, b'{"message": "hi"}', 403,
     "cross_site"),
    ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
     b'{"message": "hi"}', 403, "cross_site"),
])
def test_cross_site_requests_are_refused(app_server, headers, body, status, code):
    with requests.Session() as victim:
        victim.get(f"{app_server.url}/api/conversations", timeout=10)  # has a session cookie
        response = victim.post(f"{app_server.url}/chat", data=body, headers=headers, timeout=10)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert "Access-Control-Allow-Origin" not in response.headers


def test_cross_site_delete_and_rename_are_refused(app_server):
    with requests.Session() as victim:
        events = read_events(victim.post(f"{app_server.url}/chat", json={"message": "keep me"},
                                         timeout=30))
        url = f"{app_server.url}/api/conversations/{events[0][1]['conversation_id']}"
        evil = {"Origin": "https://evil.example"}
        assert victim.delete(url, headers=evil, timeout=10).status_code == 403
        assert victim.patch(url, json={"title": "x"}, headers=evil, timeout=10).status_code == 403
        assert victim.get(url, timeout=10).json()["title"] == "keep me"


def test_same_origin_requests_pass(app_server):
    response = requests.post(f"{app_server.url}/chat", json={"message": "hi"}, timeout=30,
                             headers={"Origin": app_server.url, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200


def test_no_cors_unless_configured(app_server):
    response = requests.options(f"{app_server.url}/chat", timeout=10, headers={
        "Origin": "https://portal.example.com", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_configured_cors_origin_is_allowed(keyed):
    origin = {"Origin": "https://portal.example.com"}
    preflight = requests.options(f"{keyed.url}/chat", timeout=10, headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://portal.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = requests.post(f"{keyed.url}/chat", json={"message": "hi"}, headers=origin,
                             timeout=30)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    other = requests.post(f"{keyed.url}/chat", json={"message": "hi"}, timeout=10,
                          headers={"Origin": "https://other.example"})
    assert other.status_code == 403


def test_keys_never_reach_a_page_an_answer_an_error_or_a_log(keyed):
    seen = []
    with requests.Session() as user:
        for path in ("/", "/api/models", "/api/session", "/api/conversations", "/metrics",
                     "/readyz", "/static/app.js"):
            seen.append(user.get(f"{keyed.url}{path}", timeout=10).text)
        models = user.get(f"{keyed.url}/api/models", timeout=10).json()["models"]
        for model in [m["id"] for m in models if m["provider"] != "demo"]:
            response = user.post(f"{keyed.url}/chat", json={"message": "hi", "model": model},
                                 timeout=60)
            seen.append(response.text)
            events = [json.loads(line[6:]) for line in response.text.splitlines()
                      if line.startswith("data: ")]
            seen.extend(json.dumps(e) for e in events)
    everything = "\n".join(seen) + keyed.log
    for name, key in KEYS.items():
        if "SECRET" in key:
            assert key not in everything, f"{name} leaked"
    assert "SECRET" not in everything
