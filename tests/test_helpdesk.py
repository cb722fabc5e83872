"""A company deployment under gunicorn: what needs the real server's two workers.

The access code, SSO through a trusted header, the locked assistant and the limits are tested
in process (test_web_identity.py); here, that the count of wrong guesses is shared by both
worker processes.
"""
from __future__ import annotations

import pytest
import requests

from tests.conftest import AppServer

CODE = "helpdesk-demo-7421"


@pytest.fixture
def coded_server(tmp_path, upstream):
    server = AppServer({"ACCESS_CODE": CODE, "OPENAI_BASE_URL": upstream.url,
                        "OPENAI_MODELS": "echo"}, tmp_path).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_guessing_the_code_locks_the_address_out(coded_server):
    server = coded_server
    # A new connection per guess spreads them over both workers: the count must be shared.
    guess = {"Connection": "close"}
    with requests.Session() as guesser:
        answers = [guesser.post(f"{server.url}/api/access", json={"code": f"guess-{n}"},
                                headers=guess, timeout=10) for n in range(5)]
        assert [a.status_code for a in answers] == [401] * 5
        assert answers[0].json()["error"]["code"] == "invalid_access_code"
        locked = guesser.post(f"{server.url}/api/access", json={"code": CODE}, timeout=10)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert "Try again in" in locked.json()["error"]["message"]
        assert guesser.get(f"{server.url}/api/conversations", timeout=10).status_code == 401
