"""The offline demo model: no network, no keys, a deterministic reply at a readable pace.

It exists so that the first command in the README shows a working streaming chat, and so
that tests of the web side have a provider that needs nothing. Its reply says what it received
and how to configure a real model.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping

from .base import ChatRequest, Chunk, ModelEntry, Provider, Usage
from .errors import ConfigurationError
from .history import estimate_tokens

TYPE = "demo"
MODEL = ModelEntry("offline", "Demo (offline)", context_tokens=4096)

_PIECES = re.compile(r"\S+\s*|\s+")


class DemoProvider(Provider):
    def __init__(self, delay_seconds: float = 0.03):
        super().__init__("demo", [MODEL])
        self.delay = delay_seconds

    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        reply = compose_reply(request)
        for piece in _PIECES.findall(reply):
            time.sleep(self.delay)
            yield Chunk(text=piece)
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        completion = estimate_tokens(reply)
        yield Chunk(usage=Usage(prompt, completion, prompt + completion))
        yield Chunk(finish_reason="stop")


def compose_reply(request: ChatRequest) -> str:
    question = request.messages[-1].content
    earlier = len(request.messages) - 1
    quoted = "\n".join("> " + line for line in question.splitlines()[:6])
    settings = []
    if request.system:
        settings.append(f"a system prompt of {len(request.system)} characters")
    if request.temperature is not None:
        settings.append(f"temperature {request.temperature:g}")
    if request.max_tokens is not None:
        settings.append(f"max tokens {request.max_tokens}")
    return (
        "**This is the offline demo model.** You wrote:\n\n"
        f"{quoted}\n\n"
        f"I saw {earlier} earlier message{'s' if earlier != 1 else ''} of this conversation"
        + (f", with {', '.join(settings)}" if settings else "")
        + ".\n\n"
        "To talk to a real model, set its variables and restart StreamDesk:\n\n"
        "- `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `OPENAI_MODELS` for any OpenAI-compatible "
        "service (OpenAI, DeepSeek, GLM, Qianfan v2, vLLM, Ollama);\n"
        "- `ERNIE_API_KEY` and `ERNIE_SECRET_KEY` for Baidu ERNIE;\n"
        "- `SPARK_APP_ID`, `SPARK_API_KEY` and `SPARK_API_SECRET` for iFlytek Spark;\n"
        "- or a TOML file named by `STREAMDESK_CONFIG` for several at once.\n\n"
        "The README lists every variable."
    )


def from_env(env: Mapping[str, str]) -> DemoProvider:
    try:
        delay_ms = float(env.get("DEMO_DELAY_MS", "30"))
    except ValueError:
        delay_ms = -1
    if not 0 <= delay_ms <= 10_000:
        raise ConfigurationError("environment variable DEMO_DELAY_MS: must be a number of "
                                 "milliseconds from 0 to 10000")
    return DemoProvider(delay_ms / 1000)
