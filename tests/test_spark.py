"""The Spark provider against a stand-in Spark server on loopback: signing, frames, history,
error codes, retries, timeouts, cancellation, TLS and configuration (providers.md section 3)."""
from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import websocket

from providers import errors, spark
from providers.base import ChatRequest, Chunk, Message, ModelEntry, ProviderSettings, Usage
from providers.config import load_config_file
from providers.retry import NO_RETRIES, RetryPolicy
from providers.spark_auth import sign_url
from streamdesk.chat.turn import fit_history
from tests.certificates import self_signed
from tests.standins.spark_server import (
    Drop,
    FrameError,
    HangHandshake,
    Refuse,
    Reply,
    Silent,
    SparkStandIn,
    Stall,
)

APP_ID, API_KEY, API_SECRET = "app-0001", "key-0123456789abcdef", "secret-fedcba9876543210"
FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def standin():
    with SparkStandIn(APP_ID, API_KEY, API_SECRET) as server:
        yield server


def make_provider(standin, path="/v3.5/chat", domain="generalv3.5", **options):
    options.setdefault("retry", NO_RETRIES)
    options.setdefault("api_key", API_KEY)
    options.setdefault("api_secret", API_SECRET)
    return spark.SparkProvider("spark", url=standin.url(path), domain=domain, app_id=APP_ID,
                               connect_timeout=5, idle_timeout=5, **options)


def request(provider, *turns, **fields):
    roles = ["user", "assistant"] * len(turns)
    messages = tuple(Message(role, text) for role, text in zip(roles, turns, strict=False))
    return ChatRequest(provider.domain, messages, **fields)


def sent_text(standin, index=-1):
    return [(t["role"], t["content"]) for t in standin.frames[index]["payload"]["message"]["text"]]


# --- signing -------------------------------------------------------------------------------

def test_signed_url_matches_an_independently_computed_vector():
    date = "Fri, 05 May 2023 10:43:39 GMT"
    # Computed once in a shell, not with sign_url:
    #   origin=$(printf 'host: spark-api.xf-yun.com\ndate: Fri, 05 May 2023 10:43:39 GMT\n'\
    #   'GET /v3.5/chat HTTP/1.1')
    #   printf '%s' "$origin" | openssl dgst -sha256 -hmac "secret-fedcba9876543210" -binary \
    #   | base64
    signature = "pPVHbYyYLjZC4c0SS+c5kKOqT+TQ8TtkkkHiVeurEv0="
    #   printf 'api_key="key-0123456789abcdef", algorithm="hmac-sha256", '\
    #   'headers="host date request-line", signature="%s"' "$signature" | base64 -w0
    authorization = ("YXBpX2tleT0ia2V5LTAxMjM0NTY3ODlhYmNkZWYiLCBhbGdvcml0aG09ImhtYWMtc2hhMjU2Ii"
                     "wgaGVhZGVycz0iaG9zdCBkYXRlIHJlcXVlc3QtbGluZSIsIHNpZ25hdHVyZT0icFBWSGJZeVlMal"
                     "pDNGMwU1MrYzVrS09xVCtUUThUdGtra0hpVmV1ckV2MD0i")
    url = sign_url("wss://spark-api.xf-yun.com/v3.5/chat", API_KEY, API_SECRET, date)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "spark-api.xf-yun.com", "/v3.5/chat")
    assert dict(parse_qsl(parts.query)) == {"authorization": authorization, "date": date,
                                            "host": "spark-api.xf-yun.com"}
    assert signature in base64.b64decode(authorization).decode()
    assert url == ("wss://spark-api.xf-yun.com/v3.5/chat?authorization=" + authorization
                   + "&date=Fri%2C+05+May+2023+10%3A43%3A39+GMT&host=spark-api.xf-yun.com")


def test_stand_in_refuses_an_unsigned_url(standin):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(standin.url(), timeout=5)
    assert caught.value.status_code == 401
    assert b'"Unauthorized"' in caught.value.resp_body


# --- replies and frames --------------------------------------------------------------------

def test_reply_streams_text_in_order_with_usage_from_the_last_frame(standin):
    standin.script(Reply(("Hel", "lo, ", "world")))
    chunks = list(make_provider(standin).stream(request(make_provider(standin), "Hi")))
    assert chunks == [Chunk(text="Hel"), Chunk(text="lo, "), Chunk(text="world"),
                      Chunk(usage=Usage(12, 7, 19)), Chunk(finish_reason="stop")]
    assert standin.problems == []


def test_reasoning_frames_become_reasoning_chunks(standin):
    standin.script(Reply(("42",), reasoning=("Thinking",)))
    provider = make_provider(standin, "/v1/x1", "x1")
    chunks = list(provider.stream(request(provider, "Answer?")))
    assert chunks[:2] == [Chunk(reasoning="Thinking"), Chunk(text="42")]


def test_multi_turn_history_is_sent_alternating_with_the_system_prompt_first(standin):
    provider = make_provider(standin)
    chunks = list(provider.stream(request(provider, "我叫小明", "你好，小明", "我叫什么？",
                                          system="Be brief.")))
    assert "".join(c.text for c in chunks) == "You said: 我叫什么？"
    assert sent_text(standin) == [("system", "Be brief."), ("user", "我叫小明"),
                                  ("assistant", "你好，小明"), ("user", "我叫什么？")]
    frame = standin.frames[-1]
    assert frame["header"]["app_id"] == APP_ID
    assert len(frame["header"]["uid"]) == 32
    assert standin.problems == []


def test_history_is_repaired_before_it_is_sent(standin):
    provider = make_provider(standin)
    messages = (Message("assistant", "Welcome!"), Message("user", "First"),
                Message("assistant", ""), Message("user", "Second"),
                Message("assistant", "Answer"), Message("assistant", "more"),
                Message("user", "Third"))
    list(provider.stream(ChatRequest("generalv3.5", messages)))
    assert sent_text(standin) == [("user", "First\n\nSecond"), ("assistant", "Answer\n\nmore"),
                                  ("user", "Third")]
    assert standin.problems == []


def test_history_is_trimmed_to_the_domain_budget(standin):
    # The turn is prepared once (streamdesk/chat/turn.py), with Spark's own message rules.
    provider = make_provider(standin, model=ModelEntry("generalv3.5", "Spark Max", 1024 + 120))
    turns = [f"turn {i} " + "x" * 160 for i in range(9)]
    fitted = fit_history(provider, "generalv3.5", list(request(provider, *turns).messages), None)
    list(provider.stream(ChatRequest("generalv3.5", tuple(fitted))))
    sent = sent_text(standin)
    assert sent == [(m.role, m.content) for m in fitted]
    assert sent[-1] == ("user", turns[-1]) and sent[0][0] == "user"
    assert len(sent) < len(turns)
    assert standin.problems == []


def test_lite_gets_the_system_prompt_in_its_first_turn_and_clamped_parameters(standin):
    provider = make_provider(standin, "/v1.1/chat", "lite")
    list(provider.stream(request(provider, "Hi", system="Be brief.", temperature=0,
                                 max_tokens=100000)))
    assert sent_text(standin) == [("user", "Be brief.\n\nHi")]
    chat = standin.frames[-1]["parameter"]["chat"]
    assert chat == {"domain": "lite", "temperature": 0.01, "max_tokens": 4096}
    assert standin.problems == []


def test_a_conversation_not_ending_with_the_user_is_refused_before_connecting(standin):
    provider = make_provider(standin)
    with pytest.raises(errors.BadRequestError):
        list(provider.stream(request(provider, "Hi", "Hello")))
    assert standin.handshakes == []


# --- handshake refusals --------------------------------------------------------------------

@pytest.mark.parametrize("key, secret, said", [
    (API_KEY, "wrong-secret", "HMAC signature does not match"),
    ("unknown-key", API_SECRET, "HMAC signature cannot be verified"),
])
def test_wrong_credentials_are_refused_and_reported_clearly(standin, key, secret, said):
    provider = make_provider(standin, api_key=key, api_secret=secret)
    with pytest.raises(errors.AuthError) as caught:
        list(provider.stream(request(provider, "Hi")))
    assert said in caught.value.message and "API secret" in caught.value.message
    assert secret not in caught.value.message
    assert standin.handshakes == [401]


def test_a_skewed_clock_is_reported_clearly(standin):
    provider = make_provider(standin, clock=lambda: time.time() - 400)
    with pytest.raises(errors.ConfigurationError) as caught:
        list(provider.stream(request(provider, "Hi")))
    assert "this server's clock is more than 5 minutes off" in caught.value.message
    assert standin.handshakes == [403]


def test_a_clock_within_five_minutes_is_accepted(standin):
    provider = make_provider(standin, clock=lambda: time.time() + 240)
    assert list(provider.stream(request(provider, "Hi")))[-1].finish_reason == "stop"


def test_an_ip_refusal_is_readable(standin):
    standin.script(Refuse(403, "Your IP address is not allowed"))
    provider = make_provider(standin)
    with pytest.raises(errors.AuthError) as caught:
        list(provider.stream(request(provider, "Hi")))
    assert "IP address" in caught.value.message and "allow-list" in caught.value.message


# --- frame errors and retries --------------------------------------------------------------

@pytest.mark.parametrize("code, error_class, error_code", [
    *[(c, errors.ContentRefusedError, "content_refused") for c in (10013, 10014, 10019, 10021)],
    (10907, errors.ContextLengthError, "context_length"),
    (11200, errors.ConfigurationError, "configuration"),
    (11201, errors.QuotaExceededError, "quota_exceeded"),
    *[(c, errors.RateLimitError, "rate_limited") for c in (11202, 11203, 10007)],
    *[(c, errors.UpstreamUnavailableError, "upstream_unavailable") for c in (10110, 10222)],
    *[(c, errors.BadRequestError, "bad_request") for c in (10003, 10004, 10005, 10163)],
    (12345, errors.UpstreamError, "upstream_error"),
])
def test_frame_error_codes_map_to_error_classes(standin, code, error_class, error_code):
    standin.script(FrameError(code, f"service says {code}"))
    provider = make_provider(standin)
    with pytest.raises(error_class) as caught:
        list(provider.stream(request(provider, "Hi")))
    assert caught.value.code == error_code and caught.value.upstream_code == code
    assert f"service says {code}" in caught.value.message
    assert standin.wait_until(lambda: standin.active == 0)


def test_the_service_message_is_kept_but_redacted(standin):
    standin.script(FrameError(10013, f"audit failed for key {API_KEY}"))
    provider = make_provider(standin)
    with pytest.raises(errors.ContentRefusedError) as caught:
        list(provider.stream(request(provider, "Hi")))
    assert "content refused by the provider" in caught.value.message.lower()
    assert "audit failed" in caught.value.message and API_KEY not in caught.value.message


def test_busy_codes_are_retried_with_backoff_before_the_first_chunk(standin):
    standin.script(FrameError(11202, "qps"), FrameError(10110, "busy"), Reply(("ok",)))
    provider = make_provider(standin, retry=FAST_RETRY)
    assert "".join(c.text for c in provider.stream(request(provider, "Hi"))) == "ok"
    assert standin.handshakes == [101, 101, 101]


def test_retries_stop_when_the_policy_gives_up(standin):
    standin.script(*[FrameError(11203, "concurrency")] * 3)
    provider = make_provider(standin, retry=FAST_RETRY)
    with pytest.raises(errors.RateLimitError):
        list(provider.stream(request(provider, "Hi")))
    assert len(standin.frames) == 3


def test_an_error_after_the_first_chunk_is_not_retried(standin):
    standin.script(FrameError(10110, "busy", after=("Partial",)))
    provider = make_provider(standin, retry=FAST_RETRY)
    received = []
    with pytest.raises(errors.UpstreamUnavailableError):
        for chunk in provider.stream(request(provider, "Hi")):
            received.append(chunk)
    assert received == [Chunk(text="Partial")] and len(standin.frames) == 1


# --- connection lifetime -------------------------------------------------------------------

def test_cancel_mid_reply_closes_the_socket(standin):
    standin.script(Stall(("Once upon",)))
    provider = make_provider(standin)
    stream = provider.stream(request(provider, "Tell me a story"))
    assert next(stream) == Chunk(text="Once upon")
    stream.close()
    assert standin.wait_until(lambda: "client closed mid-reply" in standin.endings)


def test_the_socket_is_closed_when_the_reply_ends(standin):
    standin.script(Reply(("Done",), server_closes=False))
    provider = make_provider(standin)
    assert list(provider.stream(request(provider, "Hi")))[-1] == Chunk(finish_reason="stop")
    assert standin.wait_until(lambda: "client closed after the reply" in standin.endings)


def test_a_socket_closed_before_the_last_frame_is_an_interruption(standin):
    standin.script(Drop(("Half a",)))
    provider = make_provider(standin)
    with pytest.raises(errors.StreamInterruptedError):
        list(provider.stream(request(provider, "Hi")))


def test_a_silent_service_times_out_and_the_socket_is_closed(standin):
    standin.script(Silent())
    provider = make_provider(standin)
    provider.idle_timeout = 0.3
    with pytest.raises(errors.UpstreamTimeoutError):
        list(provider.stream(request(provider, "Hi")))
    assert standin.wait_until(lambda: "client closed mid-reply" in standin.endings)


def test_a_watched_stream_still_times_the_wait_for_its_first_frame(standin):
    standin.script(Silent())
    provider = make_provider(standin)
    provider.idle_timeout = 0.3
    with pytest.raises(errors.UpstreamTimeoutError, match="sent nothing for 0.3 s"):
        list(provider.stream(request(provider, "Hi"), watched=True))


def test_an_unanswered_handshake_times_out(standin):
    standin.script(HangHandshake())
    provider = make_provider(standin)
    provider.connect_timeout = 0.3
    with pytest.raises(errors.UpstreamTimeoutError):
        list(provider.stream(request(provider, "Hi")))
    assert standin.wait_until(lambda: "client gave up on the handshake" in standin.endings)


def test_a_refused_connection_is_reported_as_unavailable():
    with SparkStandIn(APP_ID, API_KEY, API_SECRET) as closed:
        url = closed.url()
    provider = spark.SparkProvider("spark", url=url, domain="generalv3.5", app_id=APP_ID,
                                   api_key=API_KEY, api_secret=API_SECRET, retry=NO_RETRIES)
    with pytest.raises(errors.UpstreamUnavailableError):
        list(provider.stream(request(provider, "Hi")))


def test_many_replies_and_cancels_leave_no_thread_behind():
    before = set(threading.enumerate())  # other tests' stand-ins may still end some of theirs
    with SparkStandIn(APP_ID, API_KEY, API_SECRET) as server:
        provider = make_provider(server)
        for i in range(30):
            assert list(provider.stream(request(provider, f"Question {i}")))[-1].finish_reason
        for i in range(10):
            server.script(Stall((f"Story {i}",)))
            stream = provider.stream(request(provider, "Tell me a story"))
            next(stream)
            stream.close()
        assert server.wait_until(lambda: len(server.endings) == 40 and server.active == 0)
        assert server.endings.count("client closed mid-reply") == 10
        started = set(threading.enumerate()) - before
        assert [t for t in started if not t.name.startswith("spark-standin")] == []
    assert set(threading.enumerate()) - before == set()


GEVENT_CHILD = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import sys, gevent, gevent.event
    from providers.base import ChatRequest, Message
    from providers.retry import NO_RETRIES
    from providers.spark import SparkProvider
    url, app_id, key, secret = sys.argv[1:5]
    provider = SparkProvider("spark", url=url, domain="generalv3.5", app_id=app_id,
                             api_key=key, api_secret=secret, retry=NO_RETRIES)
    first = gevent.event.Event()
    def relay():
        for chunk in provider.stream(ChatRequest("generalv3.5", (Message("user", "Hi"),))):
            first.set()
    worker = gevent.spawn(relay)
    assert first.wait(timeout=10), "no first chunk"
    worker.kill(timeout=10)  # what the relay does when the browser goes away
    print("dead" if worker.dead else "alive", flush=True)
    sys.stdin.read()  # stay alive until the test has looked: exiting would close the socket too
""")


def test_a_killed_greenlet_closes_the_socket_under_gevent(standin):
    standin.script(Stall(("Once",)))
    child = subprocess.Popen([sys.executable, "-c", GEVENT_CHILD, standin.url(), APP_ID, API_KEY,
                              API_SECRET], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "dead", child.stderr.read()
        assert standin.wait_until(lambda: "client closed mid-reply" in standin.endings)
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == 0


# --- TLS -----------------------------------------------------------------------------------

def test_tls_certificates_are_verified(tmp_path):  # openssl: make os-packages
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with SparkStandIn(APP_ID, API_KEY, API_SECRET, tls=server_tls) as server:
        default = make_provider(server)
        assert default.tls.verify_mode == ssl.CERT_REQUIRED and default.tls.check_hostname
        with pytest.raises(errors.ConfigurationError) as caught:
            list(default.stream(request(default, "Hi")))
        assert "could not be verified" in caught.value.message
        assert server.frames == []
        trusting = make_provider(server, tls=ssl.create_default_context(cafile=str(cert)))
        assert "".join(c.text for c in trusting.stream(request(trusting, "Hi"))) == "You said: Hi"


# --- configuration -------------------------------------------------------------------------

CREDENTIALS = {"SPARK_APP_ID": APP_ID, "SPARK_API_KEY": API_KEY, "SPARK_API_SECRET": API_SECRET}


def test_from_env_is_off_without_spark_variables():
    assert spark.from_env({"OPENAI_API_KEY": "x"}) is None


def test_from_env_defaults_to_spark_max():
    provider = spark.from_env(CREDENTIALS)
    assert provider.url == spark.DEFAULT_URL and provider.domain == "generalv3.5"
    [info] = provider.models()
    assert (info.id, info.label, info.context_tokens) == ("spark/generalv3.5", "Spark Max", 8192)


@pytest.mark.parametrize("url, domain, label, tokens", [
    ("wss://spark-api.xf-yun.com/v4.0/chat", "4.0Ultra", "Spark 4.0 Ultra", 8192),
    ("wss://spark-api.xf-yun.com/chat/max-32k", "max-32k", "Spark Max-32K", 32768),
    ("wss://spark-api.xf-yun.com/chat/pro-128k", "pro-128k", "Spark Pro-128K", 131072),
    ("wss://spark-api.xf-yun.com/v1.1/chat", "lite", "Spark Lite", 8192),
])
def test_the_domain_label_and_budget_follow_the_url(url, domain, label, tokens):
    [info] = spark.from_env({**CREDENTIALS, "SPARK_URL": url}).models()
    assert (info.id, info.label, info.context_tokens) == (f"spark/{domain}", label, tokens)


def test_a_partial_set_of_credentials_names_the_missing_variable():
    with pytest.raises(errors.ConfigurationError, match="SPARK_API_SECRET"):
        spark.from_env({"SPARK_APP_ID": APP_ID, "SPARK_API_KEY": API_KEY})


def test_an_unknown_url_needs_spark_domain():
    env = {**CREDENTIALS, "SPARK_URL": "wss://spark-proxy.example.com/custom"}
    with pytest.raises(errors.ConfigurationError, match="SPARK_DOMAIN"):
        spark.from_env(env)
    assert spark.from_env({**env, "SPARK_DOMAIN": "custom"}).models()[0].id == "spark/custom"


def test_a_domain_that_does_not_match_its_url_is_refused():
    with pytest.raises(errors.ConfigurationError, match="SPARK_DOMAIN.*generalv3.5"):
        spark.from_env({**CREDENTIALS, "SPARK_DOMAIN": "lite"})


def test_plain_ws_is_only_accepted_for_loopback():
    with pytest.raises(errors.ConfigurationError, match="SPARK_URL.*wss://"):
        spark.from_env({**CREDENTIALS, "SPARK_URL": "ws://spark-api.xf-yun.com/v3.5/chat"})
    assert spark.from_env({**CREDENTIALS, "SPARK_URL": "ws://127.0.0.1:9/v3.5/chat"})


def test_several_versions_from_the_config_file(tmp_path):
    path = tmp_path / "streamdesk.toml"
    path.write_text(textwrap.dedent("""
        [providers.spark-max]
        type = "spark"
        app_id = "app-0001"
        api_key_env = "MY_SPARK_KEY"
        api_secret_env = "MY_SPARK_SECRET"

        [providers.spark-lite]
        type = "spark"
        app_id = "app-0001"
        api_key_env = "MY_SPARK_KEY"
        api_secret_env = "MY_SPARK_SECRET"
        url = "wss://spark-api.xf-yun.com/v1.1/chat"
        models = [{ name = "lite", label = "Spark Lite (free)" }]
        idle_timeout = 30
    """))
    env = {"MY_SPARK_KEY": API_KEY, "MY_SPARK_SECRET": API_SECRET}
    built = [spark.from_settings(s, env) for s in load_config_file(str(path)).values()]
    assert [(m.id, m.label) for p in built for m in p.models()] == [
        ("spark-max/generalv3.5", "Spark Max"), ("spark-lite/lite", "Spark Lite (free)")]
    assert built[1].idle_timeout == 30


def test_a_config_table_error_names_the_file_table_and_field():
    settings = ProviderSettings("spark-max", {"type": "spark", "app_id": APP_ID,
                                              "api_key": API_KEY}, source="streamdesk.toml")
    with pytest.raises(errors.ConfigurationError,
                       match=r"streamdesk.toml: \[providers.spark-max\] field 'api_secret'"):
        spark.from_settings(settings, {})
