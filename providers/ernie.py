"""Baidu ERNIE over Wenxin Workshop v1: an OAuth access token, then a JSON POST answered by SSE.

Protocol facts: docs/providers/ernie.md (SSE rules: providers/sse.py). What bites:
the token and both keys travel in query strings, so no URL and no ``str()`` of a requests error
may reach a message or a log; there is no ``[DONE]`` (``is_end`` ends a reply); errors arrive as
a plain JSON body with HTTP 200 even for ``stream: true``; and the message list must be odd,
alternating and start and end with ``user``, with the system prompt in its own field.
"""
from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import requests

from . import http
from .base import (
    DEFAULT_MAX_CONNECTIONS,
    ROLES,
    ChatRequest,
    Chunk,
    Message,
    ModelEntry,
    Provider,
    ProviderSettings,
    Usage,
)
from .config import Options
from .ernie_auth import TokenCache, shared_token_cache
from .errors import (
    AuthError,
    BadRequestError,
    ConfigurationError,
    ContentRefusedError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamUnavailableError,
    redact,
)
from .retry import RetryPolicy, retry_before_first_chunk
from .sse import MAX_EVENT_BYTES, EventTooLarge, read_events
from .watched import untime_response, untimed_after_first

TYPE = "ernie"
DEFAULT_BASE_URL = "https://aip.baidubce.com"
TOKEN_PATH = "/oauth/2.0/token"
CHAT_PATH = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
log = logging.getLogger(__name__)

# endpoint -> (label, context window, tokens kept free of history, largest max_output_tokens).
# ERNIE 4.0 and 3.5 8K take at most 5120 input tokens, so 3072 of the 8K stay free; we keep the
# same room on every 8K model. Custom endpoints get _CUSTOM.
ENDPOINTS = {
    "completions_pro": ("ERNIE 4.0", 8192, 3072, 2048),
    "completions": ("ERNIE 3.5", 8192, 3072, 2048),
    "ernie-3.5-128k": ("ERNIE 3.5 128K", 131072, 4096, 4096),
    "ernie_speed": ("ERNIE Speed", 8192, 3072, 2048),
    "ernie-speed-128k": ("ERNIE Speed 128K", 131072, 4096, 4096),
    "ernie-lite-8k": ("ERNIE Lite", 8192, 3072, 2048),
    "ernie-tiny-8k": ("ERNIE Tiny", 8192, 3072, 2048),
    "ernie-4.0-turbo-8k-preview": ("ERNIE 4.0 Turbo (preview)", 8192, 3072, 2048),
}
_CUSTOM = ("", 8192, 2048, 2048)
# Baidu's error codes -> what we raise and tell the user ({what} is "error N: their words").
# 110/111 (token invalid or expired) are handled apart: refresh once, replay once.
_CODES = [
    ({2, 336000, 336100}, UpstreamUnavailableError,
     "The {name} model service is unavailable right now ({what})."),
    ({4, 18, 336501, 336502}, RateLimitError,
     "The {name} model service is rate limiting us ({what}). Try again shortly."),
    ({17, 19}, QuotaExceededError,
     "The {name} quota is used up ({what}). Ask the operator to check the account's limits."),
    ({*range(336001, 336008), *range(336101, 336106)}, BadRequestError,
     "The {name} model service rejected the request ({what}). This is a StreamDesk bug."),
    ({6, 13, 14, 15}, ConfigurationError,
     "The {name} account may not use this model ({what}). Ask the operator to grant it."),
]
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TOKEN_LIKE = re.compile(r"\b\d+\.[0-9a-f]{16,}\.[\w.-]+")


class _TokenRejected(Exception):
    """Error 110/111: the caller refreshes the token and replays once."""


def repair_history(messages: Sequence[Message]) -> list[Message]:
    """Make stored turns acceptable to ERNIE: alternating, first and last from the user.

    Turns without text (a failed or cancelled reply) are dropped. Of turns in a row from the
    same side the newest is kept: a question left unanswered either failed (the user then asks
    again or rephrases) or was refused by ERNIE's moderation, and resending a refused question
    would get every later one refused too. Assistant turns at either end are dropped.
    """
    kept: list[Message] = []
    for message in messages:
        if message.role not in ROLES or not message.content.strip():
            continue
        if kept and kept[-1].role == message.role:
            kept[-1] = message
        else:
            kept.append(message)
    while kept and kept[0].role != "user":
        kept.pop(0)
    while kept and kept[-1].role != "user":
        kept.pop()
    return kept


class ErnieProvider(Provider):
    def __init__(self, name: str, models: list[ModelEntry], base_url: str, api_key: str,
                 secret_key: str, connect_timeout: float = 10.0, idle_timeout: float = 60.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep, tokens: TokenCache | None = None,
                 credentials_hint: str = "the API key and secret key"):
        super().__init__(name, models)
        self.token_url = base_url + TOKEN_PATH
        self.chat_url = base_url + CHAT_PATH
        self.timeout = (connect_timeout, idle_timeout)  # the read timeout bounds each silence
        self.idle_timeout = idle_timeout
        self.retry, self._sleep = retry, sleep
        self._api_key, self._secret_key = api_key, secret_key
        self._secrets = (api_key, secret_key)
        self._hint = credentials_hint
        self.tokens = tokens or shared_token_cache(self.token_url, api_key, secret_key)
        self.upstream = http.Upstream(base_url, max_connections)

    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        return retry_before_first_chunk(lambda: self._authorised(request, watched), self.retry,
                                        self._sleep)

    def close(self) -> None:
        self.upstream.close()

    def reply_reserve_tokens(self, model: str) -> int:
        return ENDPOINTS.get(model, _CUSTOM)[2]

    def acceptable_history(self, messages: list[Message]) -> list[Message]:
        return repair_history(messages)

    def request_body(self, request: ChatRequest) -> dict:
        if not self.has_model(request.model):  # the name becomes part of the URL path
            raise ModelNotFoundError(f"{self.name} has no model {request.model!r}.")
        turns = repair_history(request.messages)
        if not turns:
            raise BadRequestError("There is no question to send: the last message is empty.")
        max_output = ENDPOINTS.get(request.model, _CUSTOM)[3]
        body: dict = {"messages": [{"role": m.role, "content": m.content} for m in turns],
                      "stream": True}
        if request.system:
            body["system"] = request.system
        if request.temperature is not None:
            # ERNIE takes (0, 1]; ours is 0..2. Clamping keeps the common 0.1..1 unchanged.
            body["temperature"] = min(max(float(request.temperature), 0.01), 1.0)
        if request.max_tokens is not None:
            body["max_output_tokens"] = min(max(int(request.max_tokens), 2), max_output)
        return body

    def _authorised(self, request: ChatRequest, watched: bool) -> Iterator[Chunk]:
        body, url = self.request_body(request), self.chat_url + request.model
        token = self.tokens.get(self._fetch_token)
        try:
            yield from self._attempt(url, body, token, watched)
            return
        except _TokenRejected:
            log.info("%s rejected the cached access token; fetching a new one", self.name)
            self.tokens.invalidate(token)
        token = self.tokens.get(self._fetch_token)
        try:
            yield from self._attempt(url, body, token, watched)
        except _TokenRejected:
            raise AuthError(f"The {self.name} model service rejected a freshly issued access "
                            f"token. Ask the operator to check {self._hint}.") from None

    def _fetch_token(self) -> tuple[str, float]:
        params = {"grant_type": "client_credentials", "client_id": self._api_key,
                  "client_secret": self._secret_key}
        with self.upstream.post(self.token_url, f"the {self.name} token service",
                                params=params, timeout=self.timeout) as response:
            status = response.status_code
            try:
                payload = json.loads(response.content or b"null")
            except ValueError:
                payload = None
        payload = payload if isinstance(payload, dict) else {}
        token, expires_in = payload.get("access_token"), payload.get("expires_in")
        if isinstance(token, str) and token:
            log.info("%s: fetched an access token", self.name)
            if isinstance(expires_in, (int, float)) and expires_in > 0:
                return token, float(expires_in)
            return token, 2592000.0
        said = redact(str(payload.get("error_description") or payload.get("error") or ""),
                      self._secrets)
        rejected = payload.get("error") in ("invalid_client", "unauthorized_client")
        if rejected or status in (400, 401):
            log.warning("%s: the token service rejected the key pair (%s)", self.name, said)
            raise ConfigurationError(f"The {self.name} model service rejected the API key and "
                                     f"secret key ({said or f'HTTP {status}'}). Ask the operator "
                                     f"to check {self._hint}.")
        if status >= 500 or status == 429:
            raise UpstreamUnavailableError(
                f"The {self.name} token service is unavailable (HTTP {status}).")
        raise UpstreamError(f"The {self.name} token service sent no access token (HTTP {status}).")

    def _attempt(self, url: str, body: dict, token: str, watched: bool) -> Iterator[Chunk]:
        response = self.upstream.post(url, f"the {self.name} model service",
                                      params={"access_token": token}, json=body,
                                      timeout=self.timeout)
        secrets = self._secrets + (token,)
        try:
            chunks = self._read(response, secrets)
            yield from untimed_after_first(chunks, untime_response(response), watched)
            return
        except http.READ_ERRORS as e:
            timed_out = http.timed_out(e)
        finally:
            # Closing (not releasing) drops the socket, so Baidu stops generating. This runs
            # for GeneratorExit and for gevent's GreenletExit alike.
            response.close()
        if timed_out:
            raise self.went_silent()
        raise StreamInterruptedError(f"The connection to {self.name} broke mid-reply.")

    def _read(self, response: requests.Response, secrets: tuple[str, ...]) -> Iterator[Chunk]:
        is_json = "json" in response.headers.get("Content-Type", "").lower()
        if response.status_code != 200:
            raise self._status_error(response, secrets)
        # Raw reads; our decoder splits and decodes lines itself (providers.md section 4).
        reads = http.body_reads(response)
        head = b""  # the reads up to the first one that is not only whitespace
        for data in reads:
            head += data
            if data.strip():
                break
            if len(head) > MAX_EVENT_BYTES:  # blank lines and nothing else: hostile
                raise EventTooLarge()
        if not head.strip():
            raise StreamInterruptedError(f"{self.name} closed the connection without a reply.")
        if is_json or head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
            # Errors come as one plain JSON body, whatever the content type says.
            raw = head
            for data in reads:
                if len(raw) > 65536:
                    break
                raw += data
            payload = _json(raw, self.name)
            if not {"error_code", "need_clear_history", "result"} & payload.keys():
                raise UpstreamError(f"The {self.name} model service answered without a reply.")
            yield from self._chunks({"is_end": True, **payload}, secrets)
            return
        for event in read_events(itertools.chain((head,), reads)):
            payload = _json(event.data.encode(), self.name)
            yield from self._chunks(payload, secrets)
            if payload.get("is_end"):
                return
        raise StreamInterruptedError(f"The reply from {self.name} was cut off before it finished.")

    def _chunks(self, payload: dict, secrets: tuple[str, ...]) -> Iterator[Chunk]:
        if payload.get("error_code"):
            raise self._code_error(payload, secrets)
        if payload.get("need_clear_history"):
            raise ContentRefusedError("This input was refused by the model service. "
                                      "Rephrase it, or start a new chat.")
        text = payload.get("result")
        if isinstance(text, str) and text:
            yield Chunk(text=text)
        if not payload.get("is_end"):
            return
        usage = payload.get("usage")  # cumulative: only the last chunk's counts are final
        if isinstance(usage, dict):
            try:
                yield Chunk(usage=Usage(int(usage.get("prompt_tokens") or 0),
                                        int(usage.get("completion_tokens") or 0),
                                        int(usage.get("total_tokens") or 0)))
            except (TypeError, ValueError):
                log.warning("%s sent usage that is not numbers", self.name)
        truncated = payload.get("is_truncated") or payload.get("finish_reason") == "length"
        yield Chunk(finish_reason="length" if truncated else "stop")

    def _code_error(self, payload: dict, secrets: tuple[str, ...]) -> Exception:
        code = payload.get("error_code")
        code = int(code) if isinstance(code, (int, str)) and str(code).isdigit() else code
        said = _TOKEN_LIKE.sub("[redacted]", redact(str(payload.get("error_msg") or ""), secrets))
        what = f"error {code}: {said}" if said else f"error {code}"
        log.info("%s answered %s", self.name, what)
        if code in (110, 111):
            return _TokenRejected()
        for codes, error_class, message in _CODES:
            if code in codes:
                return error_class(message.format(name=self.name, what=what), upstream_code=code)
        return UpstreamError(f"The {self.name} model service reported {what}.", upstream_code=code)

    def _status_error(self, response: requests.Response, secrets: tuple[str, ...]) -> Exception:
        try:
            payload = json.loads(response.raw.read(65536, decode_content=True) or b"null")
        except (ValueError, OSError, *http.READ_ERRORS):
            payload = None
        if isinstance(payload, dict) and payload.get("error_code"):
            return self._code_error(payload, secrets)
        # Gateway failures: the reason is in headers, not the body.
        status, bce_code = response.status_code, response.headers.get("X-Bce-Error-Code", "")
        said = redact(response.headers.get("X-Bce-Error-Message", ""), secrets)
        what = ", ".join(part for part in (f"HTTP {status}", bce_code, said) if part)
        log.info("%s answered %s", self.name, what)
        if status == 429:
            return RateLimitError(f"The {self.name} model service is rate limiting us ({what}).")
        if status in (401, 403):
            return ConfigurationError(f"The {self.name} model service refused access ({what}). "
                                      f"Ask the operator to check {self._hint}.")
        if status == 408 or status >= 500:
            return UpstreamUnavailableError(
                f"The {self.name} model service is unavailable ({what}).")
        return UpstreamError(f"The {self.name} model service answered {what}.")


def _json(data: bytes, name: str) -> dict:
    try:
        payload = json.loads(data)
    except ValueError:
        log.warning("%s sent data that is not JSON (%d bytes)", name, len(data))
        raise UpstreamError(f"The {name} model service sent a malformed answer.") from None
    if not isinstance(payload, dict):
        raise UpstreamError(f"The {name} model service sent a malformed answer.")
    return payload


def _build(options: Options, hint: str) -> ErnieProvider:
    models = options.models(default=["completions_pro"],
                            labels={k: v[0] for k, v in ENDPOINTS.items()},
                            context_tokens={k: v[1] for k, v in ENDPOINTS.items()})
    for model in models:
        if not _ENDPOINT_NAME.fullmatch(model.name):
            raise options.fail("models", f"{model.name!r} is not an endpoint name "
                                         "(letters, digits, '_', '-' and '.')")
    return ErnieProvider(
        options.settings.name, models,
        base_url=options.url("base_url", DEFAULT_BASE_URL),
        api_key=options.secret("api_key").strip(),
        secret_key=options.secret("secret_key").strip(),
        connect_timeout=options.number("connect_timeout", 10.0, minimum=0.1),
        idle_timeout=options.number("idle_timeout", 60.0, minimum=0.1),
        max_connections=int(options.number("max_connections", DEFAULT_MAX_CONNECTIONS,
                                           minimum=1)),
        retry=RetryPolicy(max_retries=int(options.number("max_retries", 2, minimum=0))),
        credentials_hint=hint,
    )


def from_settings(settings: ProviderSettings, env: Mapping[str, str]) -> ErnieProvider:
    hint = f"api_key and secret_key in [providers.{settings.name}] of {settings.source}"
    return _build(Options(settings, env), hint)


def from_env(env: Mapping[str, str]) -> ErnieProvider | None:
    api_key = env.get("ERNIE_API_KEY", "").strip()
    secret_key = env.get("ERNIE_SECRET_KEY", "").strip()
    if not api_key and not secret_key:
        return None
    for name, value in (("ERNIE_API_KEY", api_key), ("ERNIE_SECRET_KEY", secret_key)):
        if not value:
            raise ConfigurationError(f"environment variable {name} is not set: ERNIE needs both "
                                     "ERNIE_API_KEY and ERNIE_SECRET_KEY.")
    options = {"api_key": api_key, "secret_key": secret_key,
               "base_url": env.get("ERNIE_BASE_URL") or DEFAULT_BASE_URL}
    if env.get("ERNIE_MODELS"):
        options["models"] = env["ERNIE_MODELS"]
    env_names = {"api_key": "ERNIE_API_KEY", "secret_key": "ERNIE_SECRET_KEY",
                 "base_url": "ERNIE_BASE_URL", "models": "ERNIE_MODELS"}
    return _build(Options(ProviderSettings("ernie", options), env, env_names),
                  "ERNIE_API_KEY and ERNIE_SECRET_KEY")
