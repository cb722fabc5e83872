"""Shared fixtures: the app as the Procfile starts it, and the OpenAI-compatible stand-in."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from providers.sse import SSEDecoder
from tests.standins.openai_server import OpenAIStandIn

# Shared fixtures: real PostgreSQL and Redis; Chromium through Playwright; the in-process app.
pytest_plugins = ("tests.services", "tests.browser", "tests.inprocess")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


_PROVIDER_PREFIXES = ("OPENAI_", "ERNIE_", "SPARK_")
_APP_VARIABLES = {"STREAMDESK_CONFIG", "DATABASE_URL", "REDIS_URL", "DEFAULT_MODEL", "SECRET_KEY",
                  "SYSTEM_PROMPT", "LOCK_SYSTEM_PROMPT", "ACCESS_CODE", "RATE_LIMIT",
                  "API_KEYS"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(port: int) -> list[str]:
    """The Procfile's web command, word for word, with $PORT filled in."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    (line,) = [text for text in lines if text.startswith("web:")]
    words = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    words[0] = str(BIN / words[0])  # the gunicorn of this virtual environment
    return words


class AppServer:
    """gunicorn running the app in a subprocess; its log is collected line by line."""

    def __init__(self, env: dict[str, str], instance: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "INSTANCE_PATH": str(instance), "DEMO_DELAY_MS": "1",
                    "PYTHON_DOTENV_DISABLED": "1",  # a developer's .env must not reach tests
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env}
        # The machine's own configuration must not leak into a test's app.
        for name in list(self.env):
            if name not in env and (name.startswith(_PROVIDER_PREFIXES) or name in _APP_VARIABLES):
                del self.env[name]
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.process: subprocess.Popen | None = None

    def start(self) -> AppServer:
        self.process = subprocess.Popen(procfile_command(self.port), cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        threading.Thread(target=self._collect, daemon=True).start()
        # Once the master listens, connections wait in its backlog until a worker is up.
        if not self.listening.wait(timeout=30):
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + self.log)
        return self

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if "Listening at:" in line:
                self.listening.set()
        self.listening.set()  # the process ended: don't leave start() waiting

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def assert_clean_log(self) -> None:
        """No request of a test may leave a traceback in the server's log."""
        # gevent warns when it patches after ssl-using modules were imported: never here.
        assert "MonkeyPatchWarning" not in self.log, self.log[:5000]
        where = self.log.find("Traceback")
        assert where == -1, ("traceback in the server log:\n"
                             + self.log[max(0, where - 300):where + 4000])

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0


@pytest.fixture(scope="session")
def upstream():
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def fresh_upstream(upstream):
    upstream.reset()
    yield upstream
    upstream.release.set()  # never leave a stand-in handler waiting


@pytest.fixture(scope="module")
def app_server(upstream, tmp_path_factory):
    """The app under gunicorn, with the stand-in's scenario names as OpenAI models."""
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-app-test-key-0123456789",
        "OPENAI_MODELS": "echo,slow,paced,hold,midstream-error,cut,status-401,reasoning",
        "DEFAULT_MODEL": "demo/offline",
        "HEARTBEAT_SECONDS": "0.3",
        "SAVE_INTERVAL_SECONDS": "0",
    }, tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def read_events(response: requests.Response) -> list[tuple[str, dict]]:
    """All events of an SSE response, decoded with our own spec-following decoder."""
    decoder = SSEDecoder()
    events = []
    for data in response.iter_content(chunk_size=None):
        events += [(e.event, e.json()) for e in decoder.feed(data)]
    return events


def streamed_text(raw: bytes) -> str:
    """The content of the OpenAI-style chunks in ``raw``, read with our own SSE decoder."""
    chunks = [json.loads(e.data) for e in SSEDecoder().feed(raw) if e.data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


class EventStream:
    """An SSE answer read bit by bit, keeping each event's id: (id, event, data)."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.reads = response.iter_content(chunk_size=None)
        self.decoder = SSEDecoder()
        self.events: list[tuple[int, str, dict]] = []

    def read(self, until=None) -> list[tuple[int, str, dict]]:
        """The events until ``until(events read by this call)`` holds, else to the end."""
        start = len(self.events)
        for data in self.reads:
            for event in self.decoder.feed(data):
                self.events.append((int(event.id), event.event, event.json()))
            if until and until(self.events[start:]):
                break
        return self.events[start:]


def deltas(events: list[tuple[int, str, dict]]) -> str:
    """The reply text in events read by ``EventStream``."""
    return "".join(data.get("text", "") for _, name, data in events if name == "delta")
