"""The fault matrix: each way an upstream fails, for each provider (OpenAI-compatible, ERNIE,
Spark), through the app under gunicorn as the Procfile starts it (provider, relay, store),
against the vendors' stand-ins.

Every cell ends as the browser needs it: ``done`` last, after an ``error`` with a stable code
when the reply failed, and the text the browser was shown is exactly the text saved.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import AppServer, EventStream, deltas, free_port
from tests.standins import ernie_server as ernie
from tests.standins import spark_server as spark
from tests.standins.openai_server import SURROGATES_DELTAS, SURROGATES_REPLY

UP_MODELS = ("status-401, status-429, status-500, hold, stall, cut, malformed, midstream-error, "
             "paced, split-crlf, hard-framing, surrogates")
SPARK_KEYS = {"app_id": "app-fault-01", "api_key": "key-fault-0123456789",
              "api_secret": "secret-fault-9876543210"}


@dataclass(frozen=True)
class Cell:
    column: str
    fault: str
    model: str
    code: str | None  # the error it must end with; None: a complete reply
    text: str | None  # the text saved, or None where "exactly what was shown" is enough
    ernie: dict | None = None  # the ERNIE stand-in's answer
    spark: object = None  # the Spark stand-in's step

    @property
    def id(self) -> str:
        return f"{self.column}: {self.fault}"


WX, XF = "wx/completions_pro", "xf/generalv3.5"
CELLS = [
    # OpenAI-compatible: the stand-in's model name picks the answer.
    Cell("openai", "connect refused", "down/echo", "upstream_unavailable", ""),
    Cell("openai", "401", "up/status-401", "auth", ""),
    Cell("openai", "429", "up/status-429", "rate_limited", ""),
    Cell("openai", "5xx", "up/status-500", "upstream_unavailable", ""),
    Cell("openai", "timeout before the first byte", "up/hold", "timeout", ""),
    Cell("openai", "stall mid-reply", "up/stall", "timeout", "first "),
    Cell("openai", "drop mid-reply", "up/cut", "interrupted", "half a rep"),
    Cell("openai", "malformed frame", "up/malformed", "upstream_error", "partial "),
    Cell("openai", "in-band error", "up/midstream-error", "upstream_error", "partial "),
    Cell("openai", "CRLF split across reads", "up/split-crlf", None, None),
    Cell("openai", "split multi-byte character", "up/hard-framing", None, "流式输出 ok\u2028done"),
    Cell("openai", "split surrogate pair", "up/surrogates", None, SURROGATES_REPLY),
    # ERNIE: a token request, then SSE; errors as JSON bodies, gateway failures as headers.
    Cell("ernie", "connect refused", "wxdown/completions_pro", "upstream_unavailable", ""),
    Cell("ernie", "401", "wxbadkey/completions_pro", "configuration", ""),  # invalid_client
    Cell("ernie", "429", WX, "rate_limited", "",
         ernie=ernie.gateway(429, "Throttling", "QPS limit reached")),
    Cell("ernie", "5xx", WX, "upstream_unavailable", "",
         ernie=ernie.gateway(502, "ServiceUnavailable", "bad gateway")),
    Cell("ernie", "timeout before the first byte", WX, "timeout", "", ernie=ernie.hold()),
    Cell("ernie", "stall mid-reply", WX, "timeout", "开始，", ernie=ernie.stall("开始，")),
    Cell("ernie", "drop mid-reply", WX, "interrupted", "半句",
         ernie=ernie.cut("半句", abrupt=True)),
    Cell("ernie", "malformed frame", WX, "upstream_error", "半句", ernie=ernie.malformed("半句")),
    Cell("ernie", "in-band error", WX, "upstream_unavailable", "半句",
         ernie=ernie.midstream_error(336100, "internal error", "半句")),
    Cell("ernie", "CRLF split across reads", WX, None, "第一行，第二行。",
         ernie=ernie.reply("第一行，", "第二行。", crlf=True)),
    Cell("ernie", "split multi-byte character", WX, None, "流式输出",
         ernie=ernie.reply("流式", "输出")),
    Cell("ernie", "split surrogate pair", WX, None, SURROGATES_REPLY,
         ernie=ernie.reply(*SURROGATES_DELTAS, escaped=True)),
    # Spark: a signed WebSocket; refusals are HTTP answers to the handshake, errors are frames.
    Cell("spark", "connect refused", "xfdown/generalv3.5", "upstream_unavailable", ""),
    Cell("spark", "401", XF, "auth", "",
         spark=spark.Refuse(401, "HMAC signature does not match")),
    Cell("spark", "429", XF, "rate_limited", "", spark=spark.Refuse(429, "Too Many Requests")),
    Cell("spark", "5xx", XF, "upstream_unavailable", "", spark=spark.Refuse(502, "Bad Gateway")),
    Cell("spark", "timeout before the first byte", XF, "timeout", "", spark=spark.Silent()),
    Cell("spark", "stall mid-reply", XF, "timeout", "Once upon ",
         spark=spark.Stall(("Once upon ",))),
    Cell("spark", "drop mid-reply", XF, "interrupted", "Half a ", spark=spark.Drop(("Half a ",))),
    Cell("spark", "malformed frame", XF, "upstream_error", "Half a ",
         spark=spark.Malformed(("Half a ",))),
    Cell("spark", "in-band error", XF, "content_refused", "Half a ",
         spark=spark.FrameError(10013, "content audit", after=("Half a ",))),
    Cell("spark", "CRLF split across reads", XF, None, "Line one. Line two.",
         spark=spark.Fragmented(("Line one. ", "Line two."), at="crlf")),
    Cell("spark", "split multi-byte character", XF, None, "流式输出",
         spark=spark.Fragmented(("流式", "输出"), at="utf8")),
    Cell("spark", "split surrogate pair", XF, None, SURROGATES_REPLY,
         spark=spark.Reply(tuple(SURROGATES_DELTAS), escaped=True)),
]


@pytest.fixture(scope="module")
def ernie_standin():
    with ernie.ErnieStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def spark_standin():
    with spark.SparkStandIn(**SPARK_KEYS) as server:
        yield server


@pytest.fixture
def standins(fresh_upstream, ernie_standin, spark_standin):
    ernie_standin.script.clear()
    spark_standin.scripted.clear()
    yield ernie_standin, spark_standin
    fresh_upstream.release.set()


@pytest.fixture(scope="module")
def server(upstream, ernie_standin, spark_standin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-matrix")
    config = folder / "streamdesk.toml"
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    ernie_keys = f'api_key = "{ernie.API_KEY}"\nsecret_key = "{ernie.SECRET_KEY}"'
    spark_keys = "\n".join(f'{field} = "{value}"' for field, value in SPARK_KEYS.items())
    quick = "idle_timeout = 1\nmax_retries = 0"
    config.write_text(f"""
[providers.up]
type = "openai"
base_url = "{upstream.url}"
{quick}
models = "{UP_MODELS}"

[providers.down]
type = "openai"
base_url = "http://{dead}/v1"
{quick}
models = "echo"

[providers.wx]
type = "ernie"
base_url = "{ernie_standin.base_url}"
{ernie_keys}
{quick}

[providers.wxbadkey]
type = "ernie"
base_url = "{ernie_standin.base_url}"
api_key = "{ernie.API_KEY}"
secret_key = "not-the-secret-key"
{quick}

[providers.wxdown]
type = "ernie"
base_url = "http://{dead}"
{ernie_keys}
{quick}

[providers.xf]
type = "spark"
url = "{spark_standin.url("/v3.5/chat")}"
{spark_keys}
{quick}

[providers.xfdown]
type = "spark"
url = "ws://{dead}/v3.5/chat"
{spark_keys}
{quick}
""")
    server = AppServer({"STREAMDESK_CONFIG": str(config), "DEFAULT_MODEL": "up/paced"},
                       folder).start()
    yield server
    server.stop()
    server.assert_clean_log()


def saved_reply(browser, server, events) -> dict:
    conversation_id = next(data for _, name, data in events if name == "meta")["conversation_id"]
    return browser.get(f"{server.url}/api/conversations/{conversation_id}",
                       timeout=10).json()["messages"][-1]


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_every_failure_ends_with_done_and_the_text_shown_is_saved(server, standins, cell):
    ernie_standin, spark_standin = standins
    if cell.ernie:
        ernie_standin.script.append(cell.ernie)
    if cell.spark:
        spark_standin.script(cell.spark)
    with requests.Session() as browser:
        response = browser.post(f"{server.url}/chat", json={"message": "hi", "model": cell.model},
                                stream=True, timeout=30)
        assert response.status_code == 200
        events = EventStream(response).read()
        saved = saved_reply(browser, server, events)
    names = [name for _, name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1
    done = events[-1][2]
    if cell.code is None:
        assert done == {"finish_reason": "stop", "status": "complete"} and "error" not in names
    else:
        assert names[-2] == "error" and events[-2][2]["code"] == cell.code, events[-2:]
        assert done["finish_reason"] == "error"
    assert saved["status"] == done["status"]
    assert saved["content"] == deltas(events)  # what was shown is what was saved
    if cell.text is not None:
        assert saved["content"] == cell.text


def _paced_openai(standins, resume) -> tuple[str, str]:
    return "up/paced", "".join(f"{n} " for n in range(60))


def _paused_ernie(standins, resume) -> tuple[str, str]:
    standins[0].script.append(ernie.paused(("一", "二", "三"), ("四", "五"), resume))
    return WX, "一二三四五"


def _paused_spark(standins, resume) -> tuple[str, str]:
    standins[1].script(spark.Paused(("one ", "two ", "three "), ("four ", "five"), resume))
    return XF, "one two three four five"


GONE: dict[str, Callable] = {"openai": _paced_openai, "ernie": _paused_ernie,
                             "spark": _paused_spark}


@pytest.mark.parametrize("column", GONE)
def test_a_browser_that_leaves_mid_reply_leaves_it_running_to_the_end(server, standins, column):
    """Each column's "client gone" cell: the reply goes on upstream and is saved whole."""
    resume = threading.Event()  # ERNIE and Spark hold the rest until the browser has left
    model, whole = GONE[column](standins, resume)
    with requests.Session() as browser:
        response = browser.post(f"{server.url}/chat", json={"message": "count", "model": model},
                                stream=True, timeout=30)
        first = EventStream(response).read(
            until=lambda e: sum(name == "delta" for _, name, _ in e) >= 3)
        response.close()  # the browser leaves after three pieces
        resume.set()
        message_id = next(data for _, name, data in first if name == "meta")["message_id"]
        followed = browser.get(f"{server.url}/api/messages/{message_id}/events", stream=True,
                               timeout=30)  # from the start, to the end, wherever it is
        events = EventStream(followed).read()
        saved = saved_reply(browser, server, events)
    assert events[-1][1:] == ("done", {"finish_reason": "stop", "status": "complete"})
    assert saved["content"] == deltas(events) == whole
