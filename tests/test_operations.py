"""What operators see: health, readiness, metrics across workers, and structured logs."""
from __future__ import annotations

import json
import re

import requests

from tests.conftest import AppServer, read_events

SECRET_WORDS = "the quarterly numbers are bad"


def metric(server, name: str, **labels) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(label in line for label in wanted):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total or 0.0


def log_entries(server, message: str) -> list[dict]:
    entries = []
    for line in server.lines:
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["message"] == message:
                entries.append(entry)
    return entries


def test_health_and_readiness(app_server):
    assert requests.get(f"{app_server.url}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{app_server.url}/readyz", timeout=10).json() == {
        "status": "ready", "checks": {"database": "ok"}}


def test_readiness_fails_when_redis_is_unreachable(tmp_path):
    server = AppServer({"REDIS_URL": "redis://127.0.0.1:9/0"}, tmp_path).start()
    try:
        response = requests.get(f"{server.url}/readyz", timeout=20)
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "ok", "redis": "unavailable"}
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def test_request_counts_are_summed_across_workers(app_server):
    before = metric(app_server, "streamdesk_http_requests_total", route="/api/models",
                    status="200")
    for _ in range(30):  # a new connection each time: the kernel spreads them over workers
        assert requests.get(f"{app_server.url}/api/models", timeout=10).status_code == 200
    after = metric(app_server, "streamdesk_http_requests_total", route="/api/models",
                   status="200")
    assert after - before == 30


def test_made_up_methods_make_no_new_metric_series(app_server):
    for number in range(20):
        requests.request(f"MADEUP{number}", f"{app_server.url}/api/models", timeout=10)
    text = requests.get(f"{app_server.url}/metrics", timeout=10).text
    methods = set(re.findall(r'^streamdesk_http_requests_total\{.*method="([^"]*)"', text,
                             re.MULTILINE))
    assert "other" in methods and not any(m.startswith("MADEUP") for m in methods)


def test_stream_metrics_tokens_ttft_and_upstream_errors(app_server, fresh_upstream):
    with requests.Session() as user:
        response = user.post(f"{app_server.url}/chat", stream=True, timeout=30,
                             json={"message": "wait", "model": "openai/hold"})
        assert fresh_upstream.held.wait(timeout=5)
        assert metric(app_server, "streamdesk_active_streams") == 1
        fresh_upstream.release.set()
        read_events(response)
        assert metric(app_server, "streamdesk_active_streams") == 0
        read_events(user.post(f"{app_server.url}/chat", timeout=30,
                              json={"message": "count me", "model": "openai/echo"}))
        read_events(user.post(f"{app_server.url}/chat", timeout=30,
                              json={"message": "fail", "model": "openai/status-401"}))
    assert metric(app_server, "streamdesk_tokens_total", provider="openai",
                  model="openai/echo", kind="completion") >= 7
    assert metric(app_server, "streamdesk_time_to_first_token_seconds_count",
                  model="openai/hold") >= 1
    assert metric(app_server, "streamdesk_upstream_errors_total", provider="openai",
                  code="auth") >= 1
    assert metric(app_server, "streamdesk_stream_duration_seconds_count",
                  outcome="complete") >= 2


def test_reply_log_line_is_json_with_request_id_and_no_content(app_server, fresh_upstream):
    with requests.Session() as user:
        response = user.post(f"{app_server.url}/chat", timeout=30,
                             headers={"X-Request-ID": "req-ops-test-1"},
                             json={"message": SECRET_WORDS, "model": "openai/echo"})
        assert response.headers["X-Request-ID"] == "req-ops-test-1"
        events = read_events(response)
    # The reply's line is written when the stream ends; the next request orders after it.
    requests.get(f"{app_server.url}/healthz", timeout=10)
    (entry,) = [e for e in log_entries(app_server, "reply finished")
                if e["request_id"] == "req-ops-test-1"]
    assert entry["provider"] == "openai" and entry["model"] == "openai/echo"
    assert entry["outcome"] == "complete" and entry["completion_tokens"] == 7
    assert entry["ttft_ms"] is not None and entry["duration_ms"] >= entry["ttft_ms"]
    assert entry["message_id"] == events[0][1]["message_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", entry["user"])
    assert SECRET_WORDS not in app_server.log and "sk-app-test-key" not in app_server.log
    assert not any(line.startswith("{") is False and line.strip() and "Traceback" in line
                   for line in app_server.lines)


def test_an_invalid_request_id_is_replaced(app_server):
    response = requests.get(f"{app_server.url}/healthz", timeout=10,
                            headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_content_logging_is_the_operators_choice(fresh_upstream, tmp_path):
    server = AppServer({"LOG_CONTENT": "1", "OPENAI_BASE_URL": fresh_upstream.url,
                        "OPENAI_MODELS": "echo"}, tmp_path).start()
    try:
        read_events(requests.post(f"{server.url}/chat", timeout=30,
                                  json={"message": SECRET_WORDS, "model": "openai/echo"}))
        requests.get(f"{server.url}/healthz", timeout=10)
        (entry,) = log_entries(server, "reply finished")
        assert entry["prompt"] == SECRET_WORDS and entry["reply"].startswith("Echo: ")
    finally:
        server.stop()


def test_a_server_open_beyond_loopback_without_allowed_hosts_warns_once(tmp_path):
    # The Procfile binds 0.0.0.0 (a platform's router in front): the warning is for it.
    for variables, warned in (({}, True), ({"ALLOWED_HOSTS": "chat.example.com"}, False)):
        server = AppServer(variables, tmp_path).start()
        try:
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
            assert server.log.count("without ALLOWED_HOSTS") == (1 if warned else 0)
        finally:
            server.stop()
