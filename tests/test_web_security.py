"""Browser-facing hardening in process: security headers, cross-site requests refused, CORS
only when configured. (That keys never reach a page, an answer, an error or the log is checked
against the real server's log in test_security.py.)"""
from __future__ import annotations

import re

import pytest

from tests.inprocess import events_of

PORTAL = "https://portal.example.com"
DONE = ("done", {"finish_reason": "stop", "status": "complete"})


def test_security_headers_on_every_answer(client):
    for path, status in (("/", 200), ("/api/models", 200), ("/static/style.css", 200),
                         ("/nope", 404)):
        response = client.get(path)
        assert response.status_code == status, path
        headers = response.headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split(
            "style-src-attr")[0]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"


def test_frame_ancestors_is_the_operators_choice(make_app):
    headers = make_app(FRAME_ANCESTORS=PORTAL).test_client().get("/").headers
    assert f"frame-ancestors {PORTAL}" in headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in headers


def test_the_page_has_no_inline_script(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
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
def test_cross_site_requests_are_refused(client, fake, headers, body, status, code):
    events_of(client.post("/chat", json={"message": "mine"}))  # the victim has a session
    response = client.post("/chat", data=body, headers=headers)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert "Access-Control-Allow-Origin" not in response.headers
    assert len(fake.requests) == 1  # only the victim's own message reached the model
    assert len(client.get("/api/conversations").json["conversations"]) == 1


def test_cross_site_delete_and_rename_are_refused(client):
    events = events_of(client.post("/chat", json={"message": "keep me"}))
    url = f"/api/conversations/{events[0][1]['conversation_id']}"
    evil = {"Origin": "https://evil.example"}
    for response in (client.delete(url, headers=evil),
                     client.patch(url, json={"title": "x"}, headers=evil)):
        assert response.status_code == 403 and response.json["error"]["code"] == "cross_site"
    assert client.get(url).json["title"] == "keep me"


def test_same_origin_requests_pass(client):
    response = client.post("/chat", json={"message": "hi"},
                           headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200
    assert events_of(response)[-1] == DONE


def test_no_cors_unless_configured(client):
    response = client.options("/chat", headers={
        "Origin": PORTAL, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers
    answer = client.get("/api/models", headers={"Origin": PORTAL})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_configured_cors_origin_is_allowed(make_app):
    client = make_app(CORS_ORIGINS=PORTAL).test_client()
    origin = {"Origin": PORTAL}
    preflight = client.options("/chat", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    response = client.post("/chat", json={"message": "hi"}, headers=origin)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert events_of(response)[-1] == DONE
    other = client.post("/chat", json={"message": "hi"},
                        headers={"Origin": "https://other.example"})
    assert other.status_code == 403 and other.json["error"]["code"] == "cross_site"
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("path", ["/metrics", "/readyz"])
def test_metrics_and_readiness_only_for_the_monitoring_addresses_when_set(make_app, path):
    client = make_app(METRICS_ALLOWED_FROM="10.0.0.0/8, 192.0.2.7").test_client()
    assert client.get(path, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    refused = client.get(path, environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code \
        == 200  # liveness stays open to the load balancer
    unset = make_app().test_client()
    assert unset.get(path, environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200


def test_with_allowed_hosts_other_host_names_are_refused_even_when_the_origin_agrees(make_app,
                                                                                    fake):
    client = make_app(ALLOWED_HOSTS="chat.example.com, localhost").test_client()
    ours = {"Host": "chat.example.com:8443"}
    assert client.get("/api/models", headers=ours).status_code == 200
    rebound = {"Host": "evil.example", "Origin": "http://evil.example"}
    refused = client.post("/chat", json={"message": "hi"}, headers=rebound)
    assert refused.status_code == 400 and refused.json["error"]["code"] == "unknown_host"
    for host in ("evil.example", "[::1", "chat.example.com.evil.example"):
        assert client.get("/api/models", headers={"Host": host}).status_code == 400, host
    assert fake.requests == []
    assert client.get("/healthz", headers={"Host": "10.0.0.9"}).status_code == 200  # probes
    assert make_app().test_client().get("/api/models", headers={
        "Host": "evil.example"}).status_code == 200  # unset: any name
