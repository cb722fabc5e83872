"""OpenAI-compatible chat completions over SSE: OpenAI, DeepSeek, Zhipu GLM, Qianfan v2,
Spark's HTTP endpoint, vLLM, Ollama and the rest of the dialect.

Protocol facts: docs/providers/openai.md. One connection pool per provider
(``http.Upstream``) keeps connections alive between replies.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping

import requests

from . import http
from .base import (
    DEFAULT_MAX_CONNECTIONS,
    ChatRequest,
    Chunk,
    ModelEntry,
    Provider,
    ProviderSettings,
    Usage,
)
from .config import Options
from .errors import (
    AuthError,
    BadRequestError,
    ContextLengthError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamUnavailableError,
    redact,
)
from .retry import RetryPolicy, retry_before_first_chunk
from .sse import Event, SSEDecoder
from .watched import untime_response

TYPE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger(__name__)

# Zhipu answers an empty balance with HTTP 429 and business code 1113: waiting will not help.
_NOT_RETRYABLE_BUSINESS_CODES = {"1113"}


class OpenAICompatProvider(Provider):
    def __init__(self, name: str, models: list[ModelEntry], base_url: str, api_key: str = "",
                 include_usage: bool = True, connect_timeout: float = 10.0,
                 idle_timeout: float = 60.0, headers: Mapping[str, str] | None = None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 retry: RetryPolicy = RetryPolicy()):
        super().__init__(name, models)
        self.url = f"{base_url}/chat/completions"
        self.include_usage = include_usage
        # (connect, read): the read timeout bounds each wait between two chunks.
        self.timeout = (connect_timeout, idle_timeout)
        self.idle_timeout = idle_timeout
        self.retry = retry
        self._secrets = (api_key,)
        authorization = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.upstream = http.Upstream(base_url, max_connections, {
            **(headers or {}), "Accept": "text/event-stream", **authorization})

    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        return retry_before_first_chunk(lambda: self._attempt(request, watched), self.retry)

    def close(self) -> None:
        self.upstream.close()

    def request_body(self, request: ChatRequest) -> dict:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict = {"model": request.model, "messages": messages, "stream": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _attempt(self, request: ChatRequest, watched: bool) -> Iterator[Chunk]:
        """One try at the reply's chunks. Raw bytes, each read as it arrives, split into lines
        and events by our decoder, all in this one generator: each generator more between the
        socket and the relay was a step per chunk and a level in the saved stack of every
        waiting reply (docs/benchmarks.md). requests' iter_lines() is wrong for SSE: a CR
        ending one read and the LF starting the next become two line breaks (a blank line that
        dispatches half an event), and decode_unicode splits at U+2028 inside JSON strings.
        With ``watched`` the reads are untimed as the first chunk goes out: from then on the
        caller's timer bounds the silences (``Provider.stream``)."""
        response = self.upstream.post(self.url, f"the {self.name} model service",
                                      json=self.request_body(request), timeout=self.timeout)
        try:
            if response.status_code != 200:
                raise self._status_error(response)
            untime = untime_response(response) if watched else None
            finish_reason = None
            decoder = SSEDecoder()
            reads = http.body_reads(response)
            for data in reads:
                for event in decoder.feed(data):
                    if event.data == "[DONE]":
                        _drain(reads)
                        yield Chunk(finish_reason=finish_reason or "stop")
                        return
                    chunks, finish_reason = self._chunks(event, finish_reason)
                    if chunks:
                        if untime is not None:
                            untime()
                            untime = None
                        yield from chunks
            if finish_reason is None:
                raise StreamInterruptedError(
                    f"The reply from {self.name} was cut off before it finished.")
            yield Chunk(finish_reason=finish_reason)
        except http.READ_ERRORS as e:
            # requests wraps a read timeout mid-stream in a ConnectionError.
            if http.timed_out(e):
                raise self.went_silent() from None
            raise StreamInterruptedError(
                f"The connection to {self.name} broke mid-reply.") from None
        finally:
            # Closing (not releasing) the response drops the socket, so a cancelled reply
            # stops upstream too: a local vLLM or Ollama notices and stops generating.
            response.close()

    def _chunks(self, event: Event, finish_reason: str | None
                ) -> tuple[list[Chunk], str | None]:
        """The chunks of one event, and the finish reason as it now stands."""
        try:
            payload = json.loads(event.data)
        except ValueError:
            log.warning("%s sent an event that is not JSON (%d bytes)", self.name,
                        len(event.data))
            raise UpstreamError(
                f"The {self.name} model service sent a malformed event.") from None
        if event.event == "error" or (isinstance(payload, dict) and payload.get("error")):
            raise UpstreamError(self._upstream_message(payload)
                                or UpstreamError.default_message)
        chunks: list[Chunk] = []
        if not isinstance(payload, dict):
            return chunks, finish_reason
        for choice in payload.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                chunks.append(Chunk(reasoning=reasoning))
            if delta.get("content"):
                chunks.append(Chunk(text=delta["content"]))
            finish_reason = choice.get("finish_reason") or finish_reason
        usage = payload.get("usage")
        if isinstance(usage, dict) and "total_tokens" in usage:
            chunks.append(Chunk(usage=Usage(int(usage.get("prompt_tokens") or 0),
                                            int(usage.get("completion_tokens") or 0),
                                            int(usage["total_tokens"]))))
        return chunks, finish_reason

    def _upstream_message(self, payload) -> str:
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            text = error.get("message") or ""
        elif isinstance(error, str):
            text = error
        else:  # an in-band error event may carry its words at the top level
            text = payload.get("message") if isinstance(payload, dict) else ""
        return redact(str(text or ""), self._secrets)

    def _status_error(self, response: requests.Response) -> ProviderError:
        status = response.status_code
        try:
            payload = json.loads(response.raw.read(65536, decode_content=True) or b"null")
        except (ValueError, OSError, *http.READ_ERRORS):
            payload = None
        said = self._upstream_message(payload)
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        business_code = str(code) if code is not None else None
        log.info("%s answered HTTP %s (code %s)", self.name, status, business_code)

        def explain(default: str) -> str:
            return f"{default} ({self.name} said: {said})" if said else default

        if status == 400:
            lowered = said.lower()
            if "context" in lowered or "maximum" in lowered and "token" in lowered:
                return ContextLengthError(explain(ContextLengthError.default_message))
            return BadRequestError(explain(BadRequestError.default_message))
        if status in (401, 403):
            return AuthError(explain(AuthError.default_message))
        if status == 404:
            return ModelNotFoundError(explain(ModelNotFoundError.default_message))
        if business_code in _NOT_RETRYABLE_BUSINESS_CODES:
            return QuotaExceededError(explain(QuotaExceededError.default_message),
                                      upstream_code=business_code)
        retry_after = _retry_after(response.headers)
        if status == 429:
            return RateLimitError(explain(RateLimitError.default_message), retry_after=retry_after)
        if status in (408, 409) or status >= 500:
            return UpstreamUnavailableError(explain(UpstreamUnavailableError.default_message),
                                            retry_after=retry_after)
        return UpstreamError(explain(f"The {self.name} model service answered HTTP {status}."))


def _drain(reads: Iterator[bytes]) -> None:
    """Read what follows [DONE] (normally just the end of the chunked body): a response read
    to its end goes back to the pool, one closed early loses its connection."""
    try:
        for _ in reads:
            pass
    except http.READ_ERRORS:
        pass  # the reply is complete; the connection is simply not reused


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None  # an HTTP date: rare from these services, use our own backoff
    return None


def _build(options: Options) -> OpenAICompatProvider:
    name = options.settings.name
    return OpenAICompatProvider(
        name,
        options.models(default=["gpt-4o-mini"]),
        base_url=options.url("base_url", DEFAULT_BASE_URL),
        api_key=options.secret("api_key", required=False),
        include_usage=options.boolean("include_usage", True),
        connect_timeout=options.number("connect_timeout", 10.0, minimum=0.1),
        idle_timeout=options.number("idle_timeout", 60.0, minimum=0.1),
        headers=options.headers(),
        max_connections=int(options.number("max_connections", DEFAULT_MAX_CONNECTIONS,
                                           minimum=1)),
        retry=RetryPolicy(max_retries=int(options.number("max_retries", 2, minimum=0))),
    )


def from_settings(settings: ProviderSettings, env: Mapping[str, str]) -> OpenAICompatProvider:
    return _build(Options(settings, env))


def from_env(env: Mapping[str, str]) -> OpenAICompatProvider | None:
    if not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL"):
        return None
    options = {"api_key": env.get("OPENAI_API_KEY", ""),
               "base_url": env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL}
    if env.get("OPENAI_MODELS"):
        options["models"] = env["OPENAI_MODELS"]
    env_names = {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL",
                 "models": "OPENAI_MODELS"}
    return _build(Options(ProviderSettings("openai", options), env, env_names))
