"""The ERNIE provider against a stand-in Wenxin Workshop v1 server on loopback.

Everything goes over real HTTP; the stand-in enforces Baidu's message rules and answers Baidu's
error shapes (tests/standins/ernie_server.py). Retries use a recording sleep, so backoff costs
no time; synchronisation is by events and queues, never by sleeping.
"""
from __future__ import annotations

import logging
import socket
import threading
import uuid

import pytest
import requests
from greenlet import GreenletExit

from providers.base import ChatRequest, Message, ModelEntry, ProviderSettings
from providers.ernie import ErnieProvider, TokenCache, from_env, from_settings, repair_history
from providers.errors import ConfigurationError, ProviderError
from providers.history import estimate_tokens
from providers.retry import RetryPolicy
from streamdesk.chat.turn import fit_history
from tests.standins.ernie_server import (
    API_KEY,
    CHAT_PREFIX,
    DEFAULT_REPLY,
    SECRET_KEY,
    TOKEN_PATH,
    ErnieStandIn,
    blank,
    cut,
    endless,
    error,
    gateway,
    refuse,
    reply,
    stall,
)

U, A = "user", "assistant"


@pytest.fixture
def server():
    with ErnieStandIn() as standin:
        yield standin


_opened: list[ErnieProvider] = []


@pytest.fixture(autouse=True)
def _close_providers():
    yield
    while _opened:
        _opened.pop().close()


def make_provider(server, *, api_key=API_KEY, secret_key=SECRET_KEY, models=None, **kwargs):
    kwargs.setdefault("sleep", [].append)  # backoff recorded, not slept
    kwargs.setdefault("retry", RetryPolicy(max_retries=2))
    # Its own token cache: a stand-in may reuse an earlier one's port, and the shared cache is
    # keyed by base URL and key pair (test_providers_with_one_key_pair_share_one_token).
    kwargs.setdefault("tokens", TokenCache())
    provider = ErnieProvider("ernie", models or [ModelEntry("completions_pro", "ERNIE 4.0", 8192)],
                             base_url=server.base_url, api_key=api_key, secret_key=secret_key,
                             **kwargs)
    _opened.append(provider)
    return provider


def ask(*turns, model="completions_pro", **kwargs) -> ChatRequest:
    if len(turns) == 1 and isinstance(turns[0], str):
        turns = ((U, turns[0]),)
    return ChatRequest(model, tuple(Message(role, text) for role, text in turns), **kwargs)


def collect(provider, request):
    chunks = list(provider.stream(request))
    text = "".join(c.text for c in chunks)
    usage = [c.usage for c in chunks if c.usage]
    finish = [c.finish_reason for c in chunks if c.finish_reason]
    return text, usage, finish


def failure(provider, request) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        collect(provider, request)
    return caught.value


def sent_bodies(server):
    return [r["body"] for r in server.chat_requests]


# Conversations -------------------------------------------------------------------------------

def test_multi_turn_history_with_system_prompt_goes_in_system_field(server):
    provider = make_provider(server)
    request = ask((U, "北京有什么好吃的？"), (A, "烤鸭。"), (U, "哪家最好？"), (A, "全聚德。"),
                  (U, "谢谢，还有呢？"), system="你是一位美食向导。")
    text, usage, finish = collect(provider, request)
    assert text == "".join(DEFAULT_REPLY)
    assert finish == ["stop"]
    body = sent_bodies(server)[-1]
    assert body["system"] == "你是一位美食向导。"
    assert body["stream"] is True
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        (m.role, m.content) for m in request.messages]


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_chinese_reply_split_inside_characters_streams_whole_with_final_usage(server, crlf):
    server.script.append(reply("第一句，", "第二句。", "完。", crlf=crlf))
    chunks = list(make_provider(server).stream(ask("你好")))
    assert [c.text for c in chunks if c.text] == ["第一句，", "第二句。", "完。"]
    usages = [c.usage for c in chunks if c.usage]
    assert len(usages) == 1  # only the is_end chunk's counts are final
    assert usages[0].completion_tokens == len("第一句，第二句。完。")
    assert usages[0].total_tokens == usages[0].prompt_tokens + usages[0].completion_tokens
    assert chunks[-1].finish_reason == "stop"


def test_truncated_reply_finishes_with_length(server):
    server.script.append(reply("很长的回答", truncated=True))
    assert collect(make_provider(server), ask("写一本书"))[2] == ["length"]


def test_temperature_and_max_tokens_are_mapped_into_ernie_ranges(server):
    provider = make_provider(server)
    for temperature, max_tokens in ((0.0, 1), (2.0, 100000), (0.7, 500)):
        text, _, _ = collect(provider, ask("hi", temperature=temperature, max_tokens=max_tokens))
        assert text  # the stand-in rejects values outside Baidu's ranges with 336003
    sent = [(b["temperature"], b["max_output_tokens"]) for b in sent_bodies(server)]
    assert sent == [(0.01, 2), (1.0, 2048), (0.7, 500)]


def test_max_tokens_ceiling_is_4096_on_128k_models(server):
    models = [ModelEntry("ernie-speed-128k", context_tokens=131072)]
    provider = make_provider(server, models=models)
    collect(provider, ask("hi", model="ernie-speed-128k", max_tokens=10**6))
    assert sent_bodies(server)[0]["max_output_tokens"] == 4096
    assert server.chat_requests[0]["endpoint"] == "ernie-speed-128k"


def test_models_are_labelled_from_the_endpoint_table():
    provider = from_env({"ERNIE_API_KEY": "k", "ERNIE_SECRET_KEY": "s",
                         "ERNIE_MODELS": "completions_pro, ernie-speed-128k, my-deployment"})
    labels = {m.id: (m.label, m.context_tokens) for m in provider.models()}
    assert labels == {"ernie/completions_pro": ("ERNIE 4.0", 8192),
                      "ernie/ernie-speed-128k": ("ERNIE Speed 128K", 131072),
                      "ernie/my-deployment": ("my-deployment", 8192)}
    provider.close()


# Access tokens -------------------------------------------------------------------------------

def test_token_is_fetched_once_and_reused(server):
    provider = make_provider(server)
    for _ in range(3):
        collect(provider, ask("hi"))
    assert server.token_requests == 1
    assert len({r["token"] for r in server.chat_requests}) == 1


def test_providers_with_one_key_pair_share_one_token():
    api_key, secret_key = f"ErnieShared{uuid.uuid4().hex}", f"Secret{uuid.uuid4().hex}"
    with ErnieStandIn(api_key=api_key, secret_key=secret_key) as standin:
        env = {"ERNIE_API_KEY": api_key, "ERNIE_SECRET_KEY": secret_key,
               "ERNIE_BASE_URL": standin.base_url}
        settings = ProviderSettings("baidu", {"type": "ernie", "api_key": api_key,
                                              "secret_key": secret_key,
                                              "base_url": standin.base_url})
        for provider in (from_env(env), from_settings(settings, {})):
            _opened.append(provider)
            collect(provider, ask("hi"))
        assert standin.token_requests == 1


def test_refresh_on_111_fetches_exactly_one_new_token(server):
    provider = make_provider(server)
    collect(provider, ask("第一个问题"))
    server.expire_tokens()
    text, _, finish = collect(provider, ask("第二个问题"))
    assert text == "".join(DEFAULT_REPLY) and finish == ["stop"]
    assert server.token_requests == 2
    first, expired, replay = server.chat_requests
    assert expired["token"] == first["token"] != replay["token"]
    assert replay["body"] == expired["body"]


def test_unknown_token_110_is_refreshed_once_too(server):
    tokens = TokenCache()
    tokens.get(lambda: ("24.not-issued-by-this-server", 2592000.0))
    assert collect(make_provider(server, tokens=tokens), ask("hi"))[0]
    assert server.token_requests == 1
    assert len(server.chat_requests) == 2


def test_token_rejected_after_refresh_fails_without_looping(server):
    server.reject_all_tokens = True
    error_ = failure(make_provider(server), ask("hi"))
    assert error_.code == "auth"
    assert server.token_requests == 2 and len(server.chat_requests) == 2


def test_token_is_refreshed_ahead_of_expiry_without_an_error(server):
    now = [1000.0]
    server.expires_in = 1000  # refreshed 100 s (10 %) ahead
    provider = make_provider(server, tokens=TokenCache(clock=lambda: now[0]))
    collect(provider, ask("hi"))
    now[0] += 899
    collect(provider, ask("hi"))
    assert server.token_requests == 1
    now[0] += 2
    collect(provider, ask("hi"))
    assert server.token_requests == 2
    assert len(server.chat_requests) == 3  # no request ever met an expired token


def _in_parallel(provider, count):
    start = threading.Barrier(count)
    results: list = []

    def one():
        start.wait()
        try:
            results.append(collect(provider, ask("同时提问"))[0])
        except ProviderError as e:
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_first_requests_share_one_token_fetch(server):
    server.token_hold = 0.5  # the first fetch stays open until a rival one arrives (or 0.5 s)
    provider = make_provider(server)
    results = _in_parallel(provider, 100)
    assert results == ["".join(DEFAULT_REPLY)] * 100
    assert server.token_requests == 1


def test_concurrent_111_answers_cause_one_refresh(server):
    provider = make_provider(server)
    collect(provider, ask("hi"))
    server.expire_tokens()
    server.token_hold = 0.5
    results = _in_parallel(provider, 50)
    assert results == ["".join(DEFAULT_REPLY)] * 50
    assert server.token_requests == 2


def test_concurrent_requests_with_a_bad_key_pair_make_one_token_request(server):
    server.token_hold = 0.5
    provider = make_provider(server, secret_key="WrongSecretValue123")
    results = _in_parallel(provider, 20)
    assert [getattr(r, "code", r) for r in results] == ["configuration"] * 20
    assert server.token_requests == 1  # the waiters share the failure instead of queueing fetches


# History repair --------------------------------------------------------------------------------

def test_broken_history_is_repaired_so_ernie_accepts_it(server):
    broken = ask((A, "欢迎！"), (U, "第一个问题"), (A, ""), (U, "第一个问题"), (U, "补充一句"),
                 (A, "回答"), (A, "   "), (U, "最后的问题"))
    text, _, _ = collect(make_provider(server), broken)
    assert text == "".join(DEFAULT_REPLY)
    assert [(m["role"], m["content"]) for m in sent_bodies(server)[0]["messages"]] == [
        (U, "补充一句"), (A, "回答"), (U, "最后的问题")]


def test_a_refused_question_does_not_get_the_next_one_refused(server):
    provider = make_provider(server)
    assert failure(provider, ask("一个违禁的问题")).code == "content_refused"
    # The refused turn stays in the stored history, unanswered.
    text, _, _ = collect(provider, ask((U, "一个违禁的问题"), (U, "换个话题：今天天气如何？")))
    assert text == "".join(DEFAULT_REPLY)


def test_stand_in_rejects_history_that_breaks_ernie_rules(server):
    token = requests.post(server.base_url + TOKEN_PATH, timeout=5, params={
        "grant_type": "client_credentials", "client_id": API_KEY,
        "client_secret": SECRET_KEY}).json()["access_token"]
    url = f"{server.base_url}{CHAT_PREFIX}completions_pro"
    user, assistant, system = ({"role": r, "content": r} for r in (U, A, "system"))
    cases = [([], 336003), ([user, assistant], 336006), ([assistant], 336006),
             ([system, user, assistant, user, assistant], 336006), ([user, user, user], 336006),
             ([user, assistant, user], None)]
    for messages, code in cases:
        answer = requests.post(url, params={"access_token": token}, timeout=5,
                               json={"messages": messages, "stream": True})
        if code is None:
            assert answer.headers["Content-Type"].startswith("text/event-stream")
        else:
            assert answer.json()["error_code"] == code, messages


def test_repair_drops_empty_and_leading_assistant_turns():
    turns = [Message(A, "hello"), Message(U, "q1"), Message(A, ""), Message(U, "q2")]
    assert repair_history(turns) == [Message(U, "q2")]


def test_repair_keeps_the_newest_of_two_questions_in_a_row():
    turns = [Message(U, "q"), Message(A, "a"), Message(U, "failed"), Message(U, "asked again")]
    assert repair_history(turns) == [Message(U, "q"), Message(A, "a"), Message(U, "asked again")]


def test_repair_drops_a_trailing_assistant_turn_and_unknown_roles():
    turns = [Message(U, "q"), Message("system", "x"), Message(A, "a")]
    assert repair_history(turns) == [Message(U, "q")]
    assert repair_history([Message(A, "only me")]) == []


def test_valid_history_is_unchanged():
    turns = [Message(U, "q1"), Message(A, "a1"), Message(U, "q2")]
    assert repair_history(turns) == turns


def test_long_history_is_trimmed_oldest_first_with_ernies_own_reply_reserve(server):
    # The turn is prepared once (streamdesk/chat/turn.py) with the provider's own reserve:
    # 2,048 tokens for a custom endpoint's reply, so 200 remain for history here.
    models = [ModelEntry("my-endpoint", "Custom", context_tokens=2048 + 200)]
    provider = make_provider(server, models=models)
    turns = []
    for i in range(20):
        turns += [(U, f"问题{i}" + "字" * 30), (A, f"回答{i}" + "字" * 30)]
    turns.append((U, "最新的问题"))
    history = [Message(role, text) for role, text in turns]
    fitted = fit_history(provider, "my-endpoint", history, None)
    collect(provider, ChatRequest("my-endpoint", tuple(fitted)))
    sent = [(m["role"], m["content"]) for m in sent_bodies(server)[0]["messages"]]
    assert 1 < len(sent) < len(turns)
    assert sent == turns[-len(sent):]  # the newest turns, in order, exactly what was fitted
    assert sent == [(m.role, m.content) for m in fitted] and sent[0][0] == U
    assert sum(estimate_tokens(text) for _, text in sent) <= 200


def test_unconfigured_model_is_refused_without_calling_ernie(server):
    error_ = failure(make_provider(server), ask("hi", model="../../oauth/2.0/token"))
    assert error_.code == "model_not_found"
    assert server.chat_requests == [] and server.token_requests == 0


def test_empty_question_is_a_bad_request_without_calling_ernie(server):
    error_ = failure(make_provider(server), ask((U, "  ")))
    assert error_.code == "bad_request"
    assert server.chat_requests == []


# Errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, expected, attempts", [
    *[(c, "upstream_unavailable", 3) for c in (2, 336000, 336100)],
    *[(c, "rate_limited", 3) for c in (4, 18, 336501, 336502)],
    *[(c, "quota_exceeded", 1) for c in (17, 19)],
    *[(c, "bad_request", 1) for c in (*range(336001, 336008), *range(336101, 336106))],
    *[(c, "configuration", 1) for c in (6, 13, 14, 15)],
    (999, "upstream_error", 1),
])
def test_error_codes_map_to_error_classes_and_retries(server, code, expected, attempts):
    server.script.extend([error(code, f"scripted {code}")] * 3)
    slept: list = []
    error_ = failure(make_provider(server, sleep=slept.append), ask("hi"))
    assert error_.code == expected
    assert f"error {code}: scripted {code}" in error_.message
    assert len(server.chat_requests) == attempts
    assert len(slept) == attempts - 1


def test_retryable_error_then_success_streams_the_reply(server):
    server.script.extend([error(336100, "high load"),
                          error(18, "Open api qps request limit reached")])
    slept: list = []
    text, _, _ = collect(make_provider(server, sleep=slept.append), ask("hi"))
    assert text == "".join(DEFAULT_REPLY)
    assert len(server.chat_requests) == 3 and len(slept) == 2
    assert server.token_requests == 1


def test_error_body_without_json_content_type_is_detected_by_its_first_brace(server):
    server.script.append(error(17, "Open api daily request limit reached",
                               content_type="text/event-stream"))
    error_ = failure(make_provider(server), ask("hi"))
    assert error_.code == "quota_exceeded"
    assert "daily request limit" in error_.message


def test_error_code_body_with_an_http_error_status_is_mapped_by_its_code(server):
    server.script.append(error(17, "Open api daily request limit reached", status=400))
    error_ = failure(make_provider(server), ask("hi"))
    assert error_.code == "quota_exceeded"
    assert "error 17" in error_.message


def test_need_clear_history_is_shown_as_refused_input(server):
    server.script.append(refuse())
    error_ = failure(make_provider(server), ask("不安全的问题"))
    assert error_.code == "content_refused"
    assert "this input was refused" in error_.message.lower()
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("abrupt", [False, True], ids=["ended", "socket-dropped"])
def test_stream_without_is_end_is_reported_as_interrupted(server, abrupt):
    server.script.append(cut("前半句", abrupt=abrupt))
    stream = make_provider(server).stream(ask("hi"))
    assert next(stream).text == "前半句"
    with pytest.raises(ProviderError) as caught:
        list(stream)
    assert caught.value.code == "interrupted"


def test_a_body_of_blank_lines_alone_is_given_up_at_1_mib(server):
    server.script.append(blank())
    error_ = failure(make_provider(server), ask("hi"))
    assert error_.code == "upstream_error" and "larger than 1 MiB" in error_.message
    assert server.disconnected.wait(5)


@pytest.mark.parametrize("status, expected, attempts", [
    (429, "rate_limited", 3), (503, "upstream_unavailable", 3), (403, "configuration", 1)])
def test_gateway_failures_are_mapped_from_status_and_headers(server, status, expected, attempts):
    server.script.extend([gateway(status, "Gateway.Denied", "gateway said no")] * 3)
    error_ = failure(make_provider(server), ask("hi"))
    assert error_.code == expected
    assert "gateway said no" in error_.message
    assert len(server.chat_requests) == attempts


def test_bad_key_pair_is_a_clear_configuration_error(server):
    env = {"ERNIE_API_KEY": API_KEY, "ERNIE_SECRET_KEY": "WrongSecretValue123",
           "ERNIE_BASE_URL": server.base_url}
    provider = from_env(env)
    _opened.append(provider)
    error_ = failure(provider, ask("hi"))
    assert isinstance(error_, ConfigurationError)
    assert "Client authentication failed" in error_.message
    assert "ERNIE_API_KEY and ERNIE_SECRET_KEY" in error_.message
    assert "WrongSecretValue123" not in error_.message and API_KEY not in error_.message
    assert error_.__cause__ is None and error_.__context__ is None  # no chained traceback
    assert server.token_requests == 1 and server.chat_requests == []


def test_unreachable_service_is_reported_without_url_or_keys():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = ErnieProvider("ernie", [ModelEntry("completions_pro")], f"http://127.0.0.1:{port}",
                             API_KEY, SECRET_KEY, sleep=[].append)
    error_ = failure(provider, ask("hi"))
    assert error_.code == "upstream_unavailable"
    assert "token service" in error_.message
    assert str(port) not in error_.message and SECRET_KEY not in error_.message
    assert error_.__context__ is None


def test_idle_timeout_mid_reply_is_reported(server):
    server.script.append(stall("开始"))
    stream = make_provider(server, idle_timeout=0.3).stream(ask("hi"))
    assert next(stream).text == "开始"
    with pytest.raises(ProviderError) as caught:
        list(stream)
    assert caught.value.code == "timeout"


def test_a_watched_stream_leaves_the_silences_after_its_first_piece_to_the_caller(server):
    server.script.append(stall("开始"))
    stream = make_provider(server, idle_timeout=0.2).stream(ask("hi"), watched=True)
    assert next(stream).text == "开始"
    ended: list[str] = []
    reader = threading.Thread(target=lambda: ended.append(
        pytest.raises(ProviderError, list, stream).value.code))
    reader.start()
    reader.join(timeout=1.0)  # five idle timeouts: the relay would have ended it by now
    assert reader.is_alive() and not ended
    server.release.set()  # the stand-in then closes the connection mid-reply
    reader.join(timeout=10)
    assert ended == ["interrupted"]


# Cancellation ---------------------------------------------------------------------------------

def test_cancel_closes_upstream_connection(server):
    server.script.append(endless())
    stream = make_provider(server).stream(ask("写一首长诗"))
    assert next(stream).text == "字"
    stream.close()
    assert server.disconnected.wait(5)


def test_killed_greenlet_still_closes_upstream_connection(server):
    server.script.append(endless())
    stream = make_provider(server).stream(ask("写一首长诗"))
    next(stream)
    with pytest.raises(GreenletExit):
        stream.throw(GreenletExit())  # what gevent raises at the blocking read
    assert server.disconnected.wait(5)


# Secrets ---------------------------------------------------------------------------------------

def test_no_key_or_token_in_error_messages_or_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # whatever level the app left it at
    provider = make_provider(server)
    messages = []
    collect(provider, ask("hi"))
    server.expire_tokens()
    collect(provider, ask("hi"))
    server.script.extend([error(336003, "bad token {access_token}"),
                          error(6, "no permission for {api_key}")])
    for _ in range(2):
        messages.append(failure(provider, ask("hi")).message)
    messages.append(failure(make_provider(server, secret_key="AnotherWrongSecret9"),
                            ask("hi")).message)
    assert "/oauth/2.0/token" in caplog.text  # urllib3's request lines were captured
    secrets_ = [API_KEY, SECRET_KEY, "AnotherWrongSecret9", *server.issued_tokens]
    for secret in secrets_:
        assert secret not in caplog.text
        assert all(secret not in message for message in messages)


# Configuration --------------------------------------------------------------------------------

def test_from_env_is_none_without_keys():
    assert from_env({}) is None


@pytest.mark.parametrize("present, missing", [("ERNIE_API_KEY", "ERNIE_SECRET_KEY"),
                                              ("ERNIE_SECRET_KEY", "ERNIE_API_KEY")])
def test_from_env_with_half_a_key_pair_names_the_missing_variable(present, missing):
    with pytest.raises(ConfigurationError) as caught:
        from_env({present: "value"})
    assert f"environment variable {missing} is not set" in caught.value.message


def test_from_env_defaults_and_bad_values_name_the_variable():
    provider = from_env({"ERNIE_API_KEY": "k", "ERNIE_SECRET_KEY": "s"})
    assert provider.name == "ernie"
    assert [m.id for m in provider.models()] == ["ernie/completions_pro"]
    assert provider.chat_url == "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
    assert provider.token_url == "https://aip.baidubce.com/oauth/2.0/token"
    for variable, value in (("ERNIE_BASE_URL", "ftp://x"), ("ERNIE_MODELS", "../../etc")):
        with pytest.raises(ConfigurationError) as caught:
            from_env({"ERNIE_API_KEY": "k", "ERNIE_SECRET_KEY": "s", variable: value})
        assert f"environment variable {variable}" in caught.value.message


def test_from_settings_reads_a_config_table(server):
    settings = ProviderSettings("baidu", {
        "type": "ernie", "api_key_env": "MY_ERNIE_AK", "secret_key": SECRET_KEY,
        "base_url": server.base_url,
        "models": ["completions", {"name": "ernie_speed", "label": "Fast"}],
        "connect_timeout": 3, "idle_timeout": 30}, source="streamdesk.toml")
    provider = from_settings(settings, {"MY_ERNIE_AK": API_KEY})
    _opened.append(provider)
    assert [(m.id, m.label) for m in provider.models()] == [
        ("baidu/completions", "ERNIE 3.5"), ("baidu/ernie_speed", "Fast")]
    assert provider.timeout == (3.0, 30.0)
    assert collect(provider, ask("hi", model="completions"))[0] == "".join(DEFAULT_REPLY)


def test_from_settings_errors_name_the_file_table_and_field():
    with pytest.raises(ConfigurationError) as caught:
        from_settings(ProviderSettings("baidu", {"type": "ernie", "api_key": "k"},
                                       source="streamdesk.toml"), {})
    assert "streamdesk.toml: [providers.baidu] field 'secret_key'" in caught.value.message
    with pytest.raises(ConfigurationError) as caught:
        from_settings(ProviderSettings("baidu", {"type": "ernie", "api_key": "k",
                                                 "secret_key_env": "NOT_SET"},
                                       source="streamdesk.toml"), {})
    assert "field 'secret_key_env': names NOT_SET, which is not set" in caught.value.message


def test_connect_timeout_is_reported_as_timeout():
    from tests.standins import UnansweredPort
    with UnansweredPort() as port:
        provider = make_provider(port, connect_timeout=0.3, retry=RetryPolicy(max_retries=0))
        error = failure(provider, ask("hello"))
    assert error.code == "timeout"
