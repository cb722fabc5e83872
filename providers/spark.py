"""iFlytek Spark over a signed WebSocket (docs/providers/spark.md).

One connection per reply, opened with websocket-client's synchronous API rather than the
``WebSocketApp`` callbacks of article 001: under gunicorn's gevent workers the blocking
``recv`` yields to other greenlets, and no thread is started per reply. The socket is closed
in ``finally``: when the reply ends, on error, and when the relay closes the generator or
kills its greenlet because the browser went away (a close frame stops generation upstream).
The reply lives in the generator's locals, never in a global.
"""
from __future__ import annotations

import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlsplit

import websocket

from .base import ROLES, ChatRequest, Chunk, Message, ModelEntry, Provider, ProviderSettings, Usage
from .config import Options
from .errors import (
    BadRequestError,
    ConfigurationError,
    ContentRefusedError,
    ContextLengthError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    redact,
)
from .retry import RetryPolicy, retry_before_first_chunk
from .spark_auth import connect, sign_url, verified_tls_context
from .watched import untimed_after_first

TYPE = "spark"
DEFAULT_URL = "wss://spark-api.xf-yun.com/v3.5/chat"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    domain: str
    label: str
    context_tokens: int = 8192  # the whole text list, system prompt included
    max_tokens: int = 8192  # the largest reply the domain accepts
    system_role: bool = False  # the reference lists a system turn for Max and Ultra only


# URL path -> version. Looked up by path, so a proxy serving Spark's paths works too.
VERSIONS = {
    "/v1.1/chat": Version("lite", "Spark Lite", max_tokens=4096),
    "/v3.1/chat": Version("generalv3", "Spark Pro"),
    "/chat/pro-128k": Version("pro-128k", "Spark Pro-128K", 131072, 4096),
    "/v3.5/chat": Version("generalv3.5", "Spark Max", system_role=True),
    "/chat/max-32k": Version("max-32k", "Spark Max-32K", 32768, system_role=True),
    "/v4.0/chat": Version("4.0Ultra", "Spark 4.0 Ultra", system_role=True),
    "/v1/x1": Version("x1", "Spark X1"),
}
BY_DOMAIN = {v.domain: v for v in VERSIONS.values()}

_REFUSED = {10013, 10014, 10019, 10021}
_RATE_LIMITED = {11202, 11203, 10007}
_BUSY = {10110, 10222}
_MALFORMED = {10003, 10004, 10005, 10163}


class SparkProvider(Provider):
    """One Spark URL and its domain; several versions are several providers."""

    def __init__(self, name: str, *, url: str, domain: str, app_id: str, api_key: str,
                 api_secret: str, model: ModelEntry | None = None, connect_timeout: float = 10.0,
                 idle_timeout: float = 60.0, close_timeout: float = 1.0,
                 retry: RetryPolicy = RetryPolicy(), clock: Callable[[], float] = time.time,
                 tls: ssl.SSLContext | None = None):
        self.version = BY_DOMAIN.get(domain) or Version(domain, f"Spark {domain}")
        super().__init__(name, [model or ModelEntry(domain, self.version.label,
                                                    self.version.context_tokens)])
        self.url, self.domain, self.app_id = url, domain, app_id
        self.label = (model.label if model else "") or self.version.label
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self.close_timeout = close_timeout  # how long a close waits for the server's reply
        self.retry, self.clock = retry, clock
        self.tls = tls or verified_tls_context()
        self._api_key, self._api_secret = api_key, api_secret
        self._secrets = (api_key, api_secret)
        # uid lets Spark tell callers apart; a hash of our app, never the user's identity.
        self._uid = hashlib.sha256(f"streamdesk:{name}:{app_id}".encode()).hexdigest()[:32]

    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        return retry_before_first_chunk(lambda: self._attempt(request, watched), self.retry)

    def went_silent(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(f"{self.label} sent nothing for {self.idle_timeout:g} s.")

    def acceptable_history(self, messages: list[Message]) -> list[Message]:
        return repair_history(messages)

    def request_frame(self, request: ChatRequest) -> dict:
        turns = repair_history(request.messages)
        system = (request.system or "").strip()
        text = []
        if system and self.version.system_role:
            text.append({"role": "system", "content": system})
        elif system:  # no system turn on this domain: keep the prompt in front of the question
            turns[0] = Message("user", f"{system}\n\n{turns[0].content}")
        text += [{"role": m.role, "content": m.content} for m in turns]
        chat: dict = {"domain": self.domain}
        if request.temperature is not None:  # Spark accepts (0, 1]
            chat["temperature"] = min(max(float(request.temperature), 0.01), 1.0)
        if request.max_tokens is not None:
            chat["max_tokens"] = min(max(int(request.max_tokens), 1), self.version.max_tokens)
        return {"header": {"app_id": self.app_id, "uid": self._uid},
                "parameter": {"chat": chat},
                "payload": {"message": {"text": text}}}

    def _attempt(self, request: ChatRequest, watched: bool) -> Iterator[Chunk]:
        frame = json.dumps(self.request_frame(request), ensure_ascii=False)
        signed = sign_url(self.url, self._api_key, self._api_secret,
                          formatdate(self.clock(), usegmt=True))
        ws = connect(signed, timeout=self.connect_timeout, tls=self.tls, label=self.label,
                     secrets=self._secrets)
        try:
            # Bounds each wait between two frames, not the whole reply.
            ws.settimeout(self.idle_timeout)
            ws.send(frame)
            chunks = self._read_frames(ws)
            yield from untimed_after_first(chunks, lambda: ws.settimeout(None), watched)
        except (websocket.WebSocketTimeoutException, TimeoutError):
            raise self.went_silent() from None
        except (websocket.WebSocketConnectionClosedException, OSError):
            raise StreamInterruptedError(
                f"The connection to {self.label} broke mid-reply.") from None
        except websocket.WebSocketException as e:
            raise UpstreamError(f"{self.label} broke the WebSocket protocol: "
                                f"{redact(str(e), self._secrets)}") from None
        finally:
            # Also reached on GeneratorExit (close()) and GreenletExit (a killed greenlet).
            ws.close(timeout=self.close_timeout)

    def _read_frames(self, ws: websocket.WebSocket) -> Iterator[Chunk]:
        while True:
            raw = ws.recv()
            if not raw:  # a close frame before the last frame
                raise StreamInterruptedError(f"{self.label} closed the connection before the "
                                             "reply finished.")
            try:
                data = json.loads(raw)
                header = data.get("header") or {}
                payload = data.get("payload") or {}
                choices = payload.get("choices") or {}
                code = int(header.get("code") or 0)
            except (ValueError, TypeError, AttributeError):
                log.warning("%s sent a malformed frame (%d bytes)", self.name, len(raw))
                raise UpstreamError(f"{self.label} sent a malformed frame.") from None
            if code != 0:
                log.info("%s frame error %s (sid %s)", self.name, code, header.get("sid"))
                raise frame_error(code, redact(str(header.get("message") or ""), self._secrets),
                                  self.label)
            for item in choices.get("text") or ():
                if not isinstance(item, dict):
                    continue
                if item.get("reasoning_content"):  # X1 thinks aloud before answering
                    yield Chunk(reasoning=item["reasoning_content"])
                if item.get("content"):
                    yield Chunk(text=item["content"])
            if choices.get("status") == 2 or header.get("status") == 2:
                usage = (payload.get("usage") or {}).get("text")
                if isinstance(usage, dict):
                    yield Chunk(usage=Usage(int(usage.get("prompt_tokens") or 0),
                                            int(usage.get("completion_tokens") or 0),
                                            int(usage.get("total_tokens") or 0)))
                yield Chunk(finish_reason="stop")
                return


def repair_history(messages: tuple[Message, ...] | list[Message]) -> list[Message]:
    """Turns Spark accepts: user first, alternating, ending with the user. Empty turns (a
    failed reply) are dropped and consecutive same-role turns merged."""
    turns: list[Message] = []
    for m in messages:
        if m.role not in ROLES:
            raise BadRequestError(f"Spark cannot take a turn with role {m.role!r}.")
        if not m.content.strip():
            continue
        if turns and turns[-1].role == m.role:
            turns[-1] = Message(m.role, f"{turns[-1].content}\n\n{m.content}")
        else:
            turns.append(m)
    while turns and turns[0].role != "user":
        turns.pop(0)
    if not turns or turns[-1].role != "user":
        raise BadRequestError("The conversation must end with the user's question.")
    return turns


def frame_error(code: int, said: str, label: str) -> ProviderError:
    """Map a frame's ``header.code`` (providers.md section 3, error codes)."""
    def explain(text: str) -> str:
        return f"{text} (Spark said: {code} {said})" if said else f"{text} (Spark code {code})"

    if code in _REFUSED:
        error: ProviderError = ContentRefusedError(explain(
            "Content refused by the provider: Spark's content audit flagged the question "
            "or the reply."))
    elif code == 10907:
        error = ContextLengthError(explain(f"The conversation is too long for {label}. "
                                           "Start a new chat."))
    elif code == 11200:
        error = ConfigurationError(explain(f"This Spark app has no licence or quota for {label}. "
                                           "Ask the operator to enable it in the iFlytek console."))
    elif code == 11201:
        error = QuotaExceededError(explain(f"The daily limit of this Spark app for {label} is "
                                           "used up. Try again tomorrow."))
    elif code in _RATE_LIMITED:
        error = RateLimitError(explain(f"{label} is limiting how many requests we send. "
                                       "Try again shortly."))
    elif code in _BUSY:
        error = UpstreamUnavailableError(explain(f"{label} is busy. Try again shortly."))
    elif code in _MALFORMED:
        error = BadRequestError(explain(f"{label} rejected the request as malformed "
                                        "(a StreamDesk bug)."))
    else:
        error = UpstreamError(explain(f"{label} reported an error."))
    error.upstream_code = code
    return error


_ENV = {"app_id": "SPARK_APP_ID", "api_key": "SPARK_API_KEY", "api_secret": "SPARK_API_SECRET",
        "url": "SPARK_URL", "domain": "SPARK_DOMAIN"}
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _build(options: Options) -> SparkProvider:
    url = options.url("url", DEFAULT_URL, schemes=("wss", "ws"))
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.username:
        raise options.fail("url", "must be a plain URL: the signature is added as its query")
    if parts.scheme == "ws" and parts.hostname not in _LOOPBACK:
        # The signed URL would travel in clear text: allowed for a local stand-in only.
        raise options.fail("url", f"must use wss:// (ws:// only for loopback), not {url!r}")
    version = VERSIONS.get(parts.path)
    if version is None and not options.settings.options.get("domain"):
        known = ", ".join(f"{path} ({v.domain})" for path, v in VERSIONS.items())
        raise options.fail("domain", f"is required: the URL {url!r} is not a known Spark "
                                     f"version (known paths: {known})")
    domain = options.string("domain", version.domain if version else None)
    if version is not None and domain != version.domain:
        raise options.fail("domain", f"{domain!r} does not match the URL {url!r}, which serves "
                                     f"{version.domain!r}; Spark rejects the mismatch")
    described = BY_DOMAIN.get(domain) or Version(domain, f"Spark {domain}")
    entries = options.models(default=[domain], labels={domain: described.label},
                             context_tokens={domain: described.context_tokens})
    if len(entries) != 1 or entries[0].name != domain:
        raise options.fail("models", f"must list exactly this table's domain {domain!r} "
                                     "(one table per Spark version)")
    model = entries[0]
    return SparkProvider(
        options.settings.name, url=url, domain=domain, model=model,
        app_id=options.secret("app_id"), api_key=options.secret("api_key"),
        api_secret=options.secret("api_secret"),
        connect_timeout=options.number("connect_timeout", 10.0, minimum=0.1),
        idle_timeout=options.number("idle_timeout", 60.0, minimum=0.1),
        retry=RetryPolicy(max_retries=int(options.number("max_retries", 2, minimum=0))),
    )


def from_settings(settings: ProviderSettings, env: Mapping[str, str]) -> SparkProvider:
    return _build(Options(settings, env))


def from_env(env: Mapping[str, str]) -> SparkProvider | None:
    given = {field: env[var] for field, var in _ENV.items() if env.get(var)}
    if not given:
        return None
    missing = [_ENV[f] for f in ("app_id", "api_key", "api_secret") if f not in given]
    if missing:
        present = ", ".join(_ENV[f] for f in given)
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigurationError(f"environment variable {', '.join(missing)}: {verb} required to "
                                 f"use Spark ({present} set)")
    return _build(Options(ProviderSettings("spark", given), env, _ENV))
