"""The OpenAI-compatible provider against a stand-in server on loopback."""
import json
import logging
import socket
import threading

import pytest

from providers import ChatRequest, Message
from providers.base import ModelEntry
from providers.errors import ProviderError
from providers.openai_compat import OpenAICompatProvider, from_env
from providers.registry import build_registry
from providers.retry import RetryPolicy
from tests.standins.openai_server import OpenAIStandIn
from tests.standins.openai_server import chunk as standin_chunk

KEY = "sk-test-secret-key-0123456789"
FAST_RETRIES = RetryPolicy(initial_delay=0.01, max_delay=0.02)


@pytest.fixture
def upstream():
    with OpenAIStandIn() as server:
        yield server


def make_provider(upstream, **options):
    options.setdefault("retry", FAST_RETRIES)
    return OpenAICompatProvider("test", [ModelEntry("echo")], upstream.url, api_key=KEY, **options)


def ask(model, text="hello", history=(), system=None):
    return ChatRequest(model, tuple(history) + (Message("user", text),), system=system,
                       temperature=0.3, max_tokens=50)


def collect(chunks):
    text, reasoning, usage, finish = [], [], None, None
    for chunk in chunks:
        text.append(chunk.text)
        reasoning.append(chunk.reasoning)
        usage = chunk.usage or usage
        finish = chunk.finish_reason or finish
    return "".join(text), "".join(reasoning), usage, finish


def failure(provider, model) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        collect(provider.stream(ask(model)))
    return caught.value


def test_streams_text_usage_and_finish_reason(upstream):
    text, _, usage, finish = collect(make_provider(upstream).stream(ask("echo")))
    assert text == "Echo: hello [1 messages]"
    assert usage.total_tokens == 18 and finish == "stop"


def test_sends_system_history_parameters_key_and_usage_option(upstream):
    history = (Message("user", "first"), Message("assistant", "reply"))
    collect(make_provider(upstream).stream(ask("echo", "second", history, system="Be brief.")))
    sent = upstream.requests[0]
    assert [m["role"] for m in sent["body"]["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["body"]["stream"] is True and sent["body"]["temperature"] == 0.3
    assert sent["body"]["max_tokens"] == 50
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"


def test_include_usage_can_be_switched_off(upstream):
    _, _, usage, _ = collect(make_provider(upstream, include_usage=False).stream(ask("echo")))
    assert "stream_options" not in upstream.requests[0]["body"] and usage is None


def test_crlf_line_endings(upstream):
    assert collect(make_provider(upstream).stream(ask("crlf")))[0] == "Echo: hello [1 messages]"


def test_hard_framing_split_json_split_character_comments_and_no_space(upstream):
    text, _, usage, finish = collect(make_provider(upstream).stream(ask("hard-framing")))
    assert text == "流式输出 ok\u2028done"
    assert usage.total_tokens == 18 and finish == "stop"


def test_crlf_cut_between_two_reads_is_one_line_break(upstream):
    """requests' iter_lines() read these as two line breaks: the first event was dispatched
    half-way (a malformed event), as was the next one, whose CRLF straddles byte 512."""
    text, _, _, finish = collect(make_provider(upstream).stream(ask("split-crlf")))
    padding = text.removeprefix("two ")
    assert set(padding) == {"x"} and finish == "stop"
    # all of the 511-byte line came through, its CR the 512th byte of the read
    assert len(b"data: " + json.dumps(standin_chunk({"content": padding})).encode()) == 511


def test_a_body_that_is_not_chunked_is_still_read_as_it_arrives(fresh_upstream):
    # Read to its end before anything came back, the first delta would wait for the release
    # below, which comes only after it: the read times out instead.
    chunks = make_provider(fresh_upstream, idle_timeout=5).stream(ask("unchunked"))
    assert next(chunks).text == "first "
    fresh_upstream.release.set()
    assert collect(chunks)[0] == "then the rest"


def test_an_error_event_cut_between_two_reads_keeps_its_kind_and_words(upstream):
    error = failure(make_provider(upstream), "split-crlf-error")
    assert error.code == "upstream_error"
    assert "quota used up mid-reply" in error.message


@pytest.mark.parametrize("model", ["reasoning", "reasoning-vllm"])
def test_reasoning_deltas_from_either_field(upstream, model):
    text, reasoning, _, _ = collect(make_provider(upstream).stream(ask(model)))
    assert reasoning == "Let me think. Done thinking." and text == "Answer."


@pytest.mark.parametrize("model, code", [
    ("status-400", "bad_request"), ("context", "context_length"), ("status-401", "auth"),
    ("status-403", "auth"), ("status-404", "model_not_found"), ("status-429", "rate_limited"),
    ("status-500", "upstream_unavailable"), ("status-503", "upstream_unavailable"),
    ("status-418", "upstream_error"), ("midstream-error", "upstream_error"),
    ("cut", "interrupted"), ("zhipu-1113", "quota_exceeded"),
])
def test_errors_map_to_stable_codes_keeping_the_upstream_message(upstream, model, code):
    error = failure(make_provider(upstream), model)
    assert error.code == code
    if model.startswith("status-"):
        assert f"stand-in status {model}" in error.message


def test_503_then_200_is_retried_once_invisibly(upstream):
    text, *_ = collect(make_provider(upstream).stream(ask("flaky-503")))
    assert text.startswith("Echo: hello") and upstream.attempts["flaky-503"] == 2


def test_retry_after_is_honoured(upstream):
    collect(make_provider(upstream).stream(ask("retry-after")))
    assert upstream.attempts["retry-after"] == 2


@pytest.mark.parametrize("model", ["status-400", "status-401", "status-403", "status-404",
                                   "zhipu-1113"])
def test_never_retried(upstream, model):
    failure(make_provider(upstream), model)
    assert upstream.attempts[model] == 1


def test_retries_at_most_twice(upstream):
    error = failure(make_provider(upstream), "status-503")
    assert error.code == "upstream_unavailable" and upstream.attempts["status-503"] == 3


def test_an_error_status_whose_body_breaks_off_is_still_that_status(upstream):
    # urllib3's own read error, while the body of the 503 was read for its message, used to
    # escape the provider and reach the user as StreamDesk's internal failure.
    error = failure(make_provider(upstream), "cut-503")
    assert error.code == "upstream_unavailable" and upstream.attempts["cut-503"] == 3


def test_errors_after_the_first_chunk_are_not_retried(upstream):
    failure(make_provider(upstream), "midstream-error")
    assert upstream.attempts["midstream-error"] == 1


def test_finish_reason_without_done_still_completes(upstream):
    assert collect(make_provider(upstream).stream(ask("finish-no-done")))[3] == "stop"


def test_idle_timeout_between_chunks(upstream):
    provider = make_provider(upstream, idle_timeout=0.3)
    chunks = provider.stream(ask("stall"))
    assert next(chunks).text == "first "
    with pytest.raises(ProviderError) as caught:
        next(chunks)
    assert caught.value.code == "timeout"
    upstream.release.set()


def test_a_watched_stream_leaves_the_silences_after_its_first_chunk_to_the_caller(upstream):
    provider = make_provider(upstream, idle_timeout=0.2)
    chunks = provider.stream(ask("stall"), watched=True)
    assert next(chunks).text == "first "
    ended: list[str] = []
    reader = threading.Thread(target=lambda: ended.append(failure_code(chunks)))
    reader.start()
    reader.join(timeout=1.0)  # five idle timeouts: the relay would have ended it by now
    assert reader.is_alive() and not ended
    upstream.release.set()  # the stand-in then ends the stream without finishing it
    reader.join(timeout=10)
    assert ended == ["interrupted"]


def test_a_watched_stream_still_times_the_wait_for_its_first_chunk(upstream):
    provider = make_provider(upstream, idle_timeout=0.2, retry=RetryPolicy(max_retries=0))
    assert failure_code(provider.stream(ask("hold"), watched=True)) == "timeout"
    upstream.release.set()


def failure_code(chunks) -> str:
    try:
        collect(chunks)
    except ProviderError as error:
        return error.code
    return "none"


def test_connection_refused_is_upstream_unavailable():
    provider = OpenAICompatProvider("test", [ModelEntry("echo")], "http://127.0.0.1:9/v1",
                                    retry=RetryPolicy(max_retries=0))
    assert failure(provider, "echo").code == "upstream_unavailable"


def test_client_that_stops_after_first_delta_closes_the_upstream_connection(upstream):
    chunks = make_provider(upstream).stream(ask("slow"))
    assert next(chunks).text == "0 "
    chunks.close()
    assert upstream.disconnected.wait(timeout=5)


def test_key_never_in_error_messages_or_logs(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    for model in ("status-401", "status-500", "midstream-error"):
        error = failure(make_provider(upstream, retry=RetryPolicy(max_retries=0)), model)
        assert KEY not in error.message
    assert KEY not in caplog.text


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def proxy_environment(monkeypatch):
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_the_proxy_of_the_environment_at_start_carries_every_request(upstream,
                                                                     proxy_environment):
    # The stand-in plays the company's forward proxy: a plain-HTTP proxy is sent the whole
    # URL as the request target.
    proxy_environment.setenv("HTTP_PROXY", upstream.base_url)
    provider = OpenAICompatProvider("test", [ModelEntry("echo")], "http://model.invalid/v1",
                                    api_key=KEY, retry=FAST_RETRIES)
    proxy_environment.delenv("HTTP_PROXY")  # read once, at start
    text, *_ = collect(provider.stream(ask("echo")))
    assert text == "Echo: hello [1 messages]"
    assert upstream.requests[-1]["target"] == "http://model.invalid/v1/chat/completions"


def test_no_proxy_of_the_environment_is_honoured(upstream, proxy_environment):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    proxy_environment.setenv("HTTP_PROXY", nowhere)
    proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    text, *_ = collect(make_provider(upstream).stream(ask("echo")))
    assert text == "Echo: hello [1 messages]"
    assert upstream.requests[-1]["target"] == "/v1/chat/completions"


def test_a_cookie_set_by_the_upstream_is_never_sent_with_a_later_request(upstream):
    # One pool serves every user's replies: a cookie kept from one reply would travel with
    # the next user's.
    provider = make_provider(upstream)
    collect(provider.stream(ask("sets-cookie")))
    text, *_ = collect(provider.stream(ask("echo")))
    assert text == "Echo: hello [1 messages]"
    assert "Cookie" not in upstream.requests[-1]["headers"]


def test_a_redirect_is_an_error_and_is_not_followed(upstream):
    # Only the operator names upstream URLs; a redirect would send the key and the
    # conversation wherever the upstream pointed.
    error = failure(make_provider(upstream), "redirect")
    assert error.code == "upstream_error" and "HTTP 307" in error.message
    assert [r["target"] for r in upstream.requests] == ["/v1/chat/completions"]


def test_chunk_extensions_a_trailer_and_framing_in_writes_of_its_own_are_read_whole(upstream):
    provider = make_provider(upstream)
    text, _, usage, finish = collect(provider.stream(ask("chunk-framing")))
    assert text == "Echo: hello [1 messages]" and usage.total_tokens == 18 and finish == "stop"
    collect(provider.stream(ask("echo")))  # the trailer read, the connection is in step
    assert len({r["client_port"] for r in upstream.requests}) == 1


def test_a_chunk_size_that_is_not_a_number_breaks_the_reply_off(upstream):
    chunks = make_provider(upstream).stream(ask("bad-chunk-size"))
    assert next(chunks).text == "partial "
    with pytest.raises(ProviderError) as caught:
        collect(chunks)
    assert caught.value.code == "interrupted"
    assert str(caught.value) == "The connection to test broke mid-reply."


def test_connections_are_reused_between_replies(upstream):
    provider = make_provider(upstream)
    for _ in range(3):
        collect(provider.stream(ask("echo")))
    assert len({r["client_port"] for r in upstream.requests}) == 1


def test_a_kept_alive_connection_the_upstream_closed_is_not_reused(upstream):
    provider = make_provider(upstream, retry=RetryPolicy(max_retries=0))
    collect(provider.stream(ask("then-hang-up")))
    assert upstream.hung_up.wait(5)
    text, *_ = collect(provider.stream(ask("echo")))  # on a new connection, not the dead one
    assert text == "Echo: hello [1 messages]"
    assert len({r["client_port"] for r in upstream.requests}) == 2


def test_environment_configuration():
    provider = from_env({"OPENAI_API_KEY": KEY, "OPENAI_MODELS": "gpt-4o, deepseek/chat"})
    assert [m.id for m in provider.models()] == ["openai/gpt-4o", "openai/deepseek/chat"]
    assert provider.url == "https://api.openai.com/v1/chat/completions"
    assert from_env({}) is None


def test_toml_file_configures_several_endpoints(tmp_path, upstream):
    config = tmp_path / "streamdesk.toml"
    config.write_text(f"""
[providers.glm]
type = "openai"
base_url = "{upstream.url}"
api_key_env = "GLM_KEY"
include_usage = false
idle_timeout = 5
headers = {{ "X-Team" = "helpdesk" }}
models = [{{ name = "glm-4-flash", label = "GLM-4 Flash" }}]

[providers.local]
type = "openai"
base_url = "{upstream.url}"
models = "qwen2.5, llama3.1"
""")
    registry = build_registry({"STREAMDESK_CONFIG": str(config), "GLM_KEY": KEY})
    assert [(m.id, m.label) for m in registry.models()] == [
        ("glm/glm-4-flash", "GLM-4 Flash"), ("local/qwen2.5", "qwen2.5"),
        ("local/llama3.1", "llama3.1"), ("demo/offline", "Demo (offline)")]
    provider, model = registry.resolve("glm/glm-4-flash")
    collect(provider.stream(ask(model)))
    sent = upstream.requests[0]
    assert sent["headers"]["X-Team"] == "helpdesk"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert "stream_options" not in sent["body"]


@pytest.mark.parametrize("table, message", [
    ('type = "openai"\nbase_url = "ftp://x"\nmodels = "a"', "[providers.bad] field 'base_url'"),
    ('type = "openai"\nmodels = []', "[providers.bad] field 'models'"),
    ('type = "openai"\nmodels = "a"\nidle_timeout = "soon"',
     "[providers.bad] field 'idle_timeout'"),
    ('type = "openai"\nmodels = "a"\napi_key_env = "NOPE"', "[providers.bad] field 'api_key_env'"),
    ('type = "carrier-pigeon"', "[providers.bad] field 'type'"),
    ('models = "a"', "[providers.bad] field 'type'"),
])
def test_invalid_file_names_file_table_and_field(tmp_path, table, message):
    config = tmp_path / "bad.toml"
    config.write_text(f"[providers.bad]\n{table}\n")
    with pytest.raises(ProviderError) as caught:
        build_registry({"STREAMDESK_CONFIG": str(config)})
    assert str(config) in caught.value.message and message in caught.value.message


def test_connect_timeout_is_reported_as_timeout():
    from tests.standins import UnansweredPort
    with UnansweredPort() as port:
        provider = OpenAICompatProvider("test", [ModelEntry("echo")], port.base_url + "/v1",
                                        connect_timeout=0.3, retry=RetryPolicy(max_retries=0))
        error = failure(provider, "echo")
    assert error.code == "timeout" and error.retryable
