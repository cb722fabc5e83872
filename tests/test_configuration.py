"""Start-up configuration: defaults, the development secret, cookies, and clear refusals."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import requests

from providers.errors import ConfigurationError
from providers.registry import build_registry
from streamdesk.settings import SettingsError, load_settings
from tests.conftest import ROOT, AppServer


def test_default_model_is_the_named_one_else_the_first_configured_else_the_demo():
    assert build_registry({}).default_model == "demo/offline"
    configured = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_MODELS": "first,second"}
    assert build_registry(configured).default_model == "openai/first"
    named = {**configured, "DEFAULT_MODEL": "openai/second"}
    assert build_registry(named).default_model == "openai/second"
    with pytest.raises(ConfigurationError) as caught:
        build_registry({**configured, "DEFAULT_MODEL": "openai/nope"})
    assert "DEFAULT_MODEL" in caught.value.message


def test_the_development_secret_is_generated_once_and_kept_private(tmp_path):
    here = {"INSTANCE_PATH": str(tmp_path)}
    first = load_settings(here).secret_key
    assert len(first) == 64 and load_settings(here).secret_key == first
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert load_settings({**here, "SECRET_KEY": "from-env"}).secret_key == "from-env"


def test_followers_and_stops_are_limited_by_default_and_configurable(tmp_path):
    here = {"INSTANCE_PATH": str(tmp_path)}
    default = load_settings(here)
    assert default.max_followers_per_user == 4 * default.max_streams_per_user == 12
    assert default.stop_rate_limit == "30/minute"
    assert load_settings({**here, "MAX_STREAMS_PER_USER": "5"}).max_followers_per_user == 20
    chosen = load_settings({**here, "MAX_FOLLOWERS_PER_USER": "3", "STOP_RATE_LIMIT": "5/minute"})
    assert (chosen.max_followers_per_user, chosen.stop_rate_limit) == (3, "5/minute")
    for name, value in (("MAX_FOLLOWERS_PER_USER", "0"), ("STOP_RATE_LIMIT", "often")):
        with pytest.raises(SettingsError, match=name):
            load_settings({**here, name: value})


def test_the_database_pool_keeps_15_connections_unless_configured(tmp_path):
    here = {"INSTANCE_PATH": str(tmp_path)}
    assert load_settings(here).database_pool_size == 15
    assert load_settings({**here, "DATABASE_POOL_SIZE": "40"}).database_pool_size == 40
    for value in ("0", "2.5", "many"):
        with pytest.raises(SettingsError, match="DATABASE_POOL_SIZE"):
            load_settings({**here, "DATABASE_POOL_SIZE": value})


def test_session_cookie_is_secure_when_configured(tmp_path):
    # (Without the setting it is not: tests/test_app_http.py.)
    server = AppServer({"SESSION_COOKIE_SECURE": "1"}, tmp_path).start()
    try:
        with requests.post(f"{server.url}/chat", json={"message": "hi"}, stream=True,
                           timeout=10) as first_message:  # a visitor's session starts here
            cookie = first_message.headers["Set-Cookie"]
    finally:
        server.stop()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "; Secure" in cookie


@pytest.mark.parametrize("setting, value, named", [
    ("STREAMDESK_CONFIG", "bad.toml", "[providers.glm] field 'base_url'"),
    ("RATE_LIMIT", "lots", "RATE_LIMIT"),
    ("HEARTBEAT_SECONDS", "60", "HEARTBEAT_SECONDS"),
    ("LOG_CONTENT", "maybe", "LOG_CONTENT"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
])
def test_bad_configuration_stops_start_up_with_one_clear_line(tmp_path, setting, value, named):
    (tmp_path / "bad.toml").write_text(
        '[providers.glm]\ntype = "openai"\nbase_url = "not a url"\nmodels = "glm-4"\n')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ERNIE_", "SPARK_"))}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PYTHON_DOTENV_DISABLED="1",
               **{setting: str(tmp_path / value) if setting == "STREAMDESK_CONFIG" else value})
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3  # gunicorn's arbiter stops instead of restarting the worker
    assert "StreamDesk cannot start:" in result.stderr and named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bundle", ["missing.pem", "not-a-bundle.pem"])
def test_a_ca_bundle_that_cannot_be_read_stops_start_up_with_one_clear_line(tmp_path, bundle):
    # It is read once, at start (providers/http.py): a bad one used to fail every reply.
    (tmp_path / "not-a-bundle.pem").write_text("not a certificate\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ERNIE_", "SPARK_"))}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PYTHON_DOTENV_DISABLED="1",
               OPENAI_BASE_URL="https://models.example.com/v1", OPENAI_MODELS="m",
               REQUESTS_CA_BUNDLE=str(tmp_path / bundle))
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "StreamDesk cannot start:" in result.stderr and "REQUESTS_CA_BUNDLE" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dotenv_file_beside_app_py_fills_in_what_the_environment_does_not_set(tmp_path):
    # A copy of app.py in a folder of its own, so the repository's own .env (if any) is not it.
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    (tmp_path / ".env").write_text(f"INSTANCE_PATH={tmp_path / 'instance'}\nLOG_LEVEL=LOUD\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOG_LEVEL", "INSTANCE_PATH", "PYTHON_DOTENV_DISABLED")}
    env["PYTHONPATH"] = str(ROOT)

    def start(**extra):
        return subprocess.run([sys.executable, "-c", "import app"], cwd=tmp_path,
                              env={**env, **extra}, capture_output=True, text=True, timeout=60)

    from_file = start()
    assert from_file.returncode == 3 and "LOG_LEVEL" in from_file.stderr  # read from .env
    assert start(LOG_LEVEL="INFO").returncode == 0  # the environment wins over the file
    assert start(PYTHON_DOTENV_DISABLED="1").returncode == 0  # and the file can be ignored


def _with_gunicorn_conf(script: str, *args: str) -> subprocess.CompletedProcess:
    """``script`` in a Python process of its own, in the checkout, without its .env: a script
    that loads gunicorn.conf.py, which replaces the logging set-up of whoever loads it."""
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT,
                          env={**os.environ, "PYTHON_DOTENV_DISABLED": "1"},
                          capture_output=True, text=True, timeout=60)


# gunicorn's logger as gunicorn.conf.py configures it, asked to log one request; in a process
# of its own, since the configuration replaces the logging set-up of whoever loads it.
_ACCESS_LOG_SCRIPT = """
import datetime, logging, runpy, sys, types
from gunicorn.config import Config

cfg = Config()
for name, value in runpy.run_path("gunicorn.conf.py").items():
    if name in cfg.settings:
        cfg.set(name, value)
log = cfg.logger_class(cfg)
if sys.argv[1] == "info":
    logging.getLogger("gunicorn.access").setLevel(logging.INFO)
# A request whose access-log fields cannot be built: building them is the waste.
request = response = None
if sys.argv[1] == "info":
    response = types.SimpleNamespace(status="200 OK", headers=[], sent=42)
    request = types.SimpleNamespace(headers=[])
environ = {"REQUEST_METHOD": "POST", "RAW_URI": "/chat", "SERVER_PROTOCOL": "HTTP/1.1"}
log.access(response, request, environ, datetime.timedelta(milliseconds=5))
print("logged")
"""


@pytest.mark.parametrize("level", ["default", "info"])
def test_gunicorn_builds_an_access_line_only_when_its_access_log_would_write_it(level):
    result = _with_gunicorn_conf(_ACCESS_LOG_SCRIPT, level)
    assert result.returncode == 0, result.stderr
    assert "logged" in result.stdout
    # The app writes its own line per request (streamdesk.access); gunicorn's stays quiet
    # unless an operator turns it on, and then it still comes.
    written = '"logger": "gunicorn.access"' in result.stderr and "POST /chat" in result.stderr
    assert written == (level == "info")


# gunicorn.conf.py's worker, as gunicorn runs it with several workers (it sets max_accept to
# 1), given six connections already waiting.
_ACCEPT_SCRIPT = """
import json, runpy, socket
import gevent, gevent.event, gevent.socket
from gunicorn.config import Config
from gunicorn.workers.ggevent import GeventWorker

conf = runpy.run_path("gunicorn.conf.py")
cfg = Config()
cfg.set("worker_class", conf["worker_class"])
listener = gevent.socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
waiting = [socket.create_connection(listener.getsockname()) for _ in range(6)]
taken, seen_by_each, all_in = [], [], gevent.event.Event()

def spawn(handle, *args):
    taken.append(args)
    return gevent.spawn(handle, *args)

def handle(sock, address):
    seen_by_each.append(len(taken))  # connections the worker had taken when this one ran
    if len(seen_by_each) == len(waiting):
        all_in.set()

server = conf["_BatchAcceptingServer"](listener, handle=handle, spawn=spawn)
server.max_accept = 1  # what gunicorn's GeventWorker.run sets with several workers
server.start()
all_in.wait(10)
print(json.dumps({"seen": seen_by_each, "gevent_worker": issubclass(cfg.worker_class, GeventWorker),
                  "per_turn": conf["ACCEPT_PER_TURN"]}))
"""


def test_a_worker_takes_waiting_connections_a_few_at_a_time():
    """With one connection per turn of its loop, a connection in a burst of new chats waited
    a turn for each one ahead of it (docs/benchmarks.md); two at a time, and still at most
    two, so that the other workers get their share."""
    result = _with_gunicorn_conf(_ACCEPT_SCRIPT)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["gevent_worker"] and outcome["per_turn"] == 2
    # Two were taken in each turn, both before either of them ran.
    assert outcome["seen"] == [2, 2, 4, 4, 6, 6]


# gunicorn.conf.py's server writing to a connection it took: small writes, as each event of a
# reply is, then one far larger than the kernel's buffers can take at once.
_WRITE_SCRIPT = """
import json, runpy
import gevent.socket

conf = runpy.run_path("gunicorn.conf.py")
big = bytes(range(256)) * 40_000  # 10 MB
events = [b"event: delta\\\\ndata: %d\\\\n\\\\n" % i for i in range(100)]
written = {}

def handle(sock, address):
    written["class"] = type(sock).__name__
    for event in events:
        sock.sendall(event)
    sock.sendall(memoryview(b"!" + big)[1:])
    sock.close()

listener = gevent.socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4)
server = conf["_BatchAcceptingServer"](listener, handle=handle)
server.start()
client = gevent.socket.create_connection(listener.getsockname())
received = bytearray()
while chunk := client.recv(1 << 20):
    received += chunk
expected = b"".join(events) + big
print(json.dumps({"class": written["class"], "length": len(received),
                  "expected_length": len(expected), "same": received == expected}))
"""


def test_a_worker_writes_every_byte_of_small_and_large_writes_in_order():
    """The worker's own connection class sends small writes at once and hands what does not
    fit to gevent: a body larger than the kernel's buffers still arrives whole."""
    result = _with_gunicorn_conf(_WRITE_SCRIPT)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["class"] == "_ClientSocket"
    assert outcome["length"] == outcome["expected_length"] and outcome["same"]
