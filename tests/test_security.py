"""Keys never leave the server: not in a page, an answer, an error or the real server's log.
(Security headers, cross-site refusals and CORS are tested in process: test_web_security.py.)"""
from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import AppServer

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
