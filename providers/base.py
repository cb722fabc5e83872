"""The provider contract: what every model backend implements and what it yields.

A provider turns one chat request into an iterator of small immutable chunks. It knows its
vendor's wire protocol and nothing about Flask, storage or our own event stream; the relay
around it owns persistence, heartbeats and framing (the shape of simonw/llm's ``Model.execute``).
"""
from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .errors import ProviderError, UpstreamTimeoutError

ROLES = ("user", "assistant")
# Idle upstream connections a provider keeps for reuse, per worker. As many as the worker's
# open replies (WORKER_CONNECTIONS): with fewer, each reply past the pool opens and drops its
# own connection, and urllib3 warns "Connection pool is full" every time.
DEFAULT_MAX_CONNECTIONS = 1000
REPLY_RESERVE_TOKENS = 1024  # room left in the model's window for its answer
IDLE_TIMEOUT = 60.0  # seconds of silence after which a reply fails (each vendor's ``idle_timeout``)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


# Not frozen: one is made for every piece of every reply, and a frozen dataclass's __init__
# sets each field through object.__setattr__, at ~3x the cost (docs/benchmarks.md).
@dataclass(slots=True)
class Chunk:
    """One piece of a reply. Usually exactly one field is set. Treat it as read-only."""

    text: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A provider-neutral turn: storage knows roles and text, providers know their formats."""

    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str  # the provider's own model name: the part of the id after "<provider>/"
    messages: tuple[Message, ...]  # oldest first, ends with the new user turn
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str  # "<provider>/<model>"
    provider: str
    label: str
    context_tokens: int = 8192  # budget for the history sent upstream
    greeting: str | None = None  # shown in an empty chat, with the starters as buttons
    starters: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"id": self.id, "provider": self.provider, "label": self.label,
                "greeting": self.greeting, "starters": list(self.starters)}


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A model as the operator configured it: its name upstream and how it is shown."""

    name: str
    label: str = ""
    context_tokens: int = 8192
    system_prompt: str | None = None  # the operator's, for every conversation on this model
    greeting: str | None = None  # the operator's words to an empty chat
    starters: tuple[str, ...] = ()  # questions offered as buttons in an empty chat


class Provider(abc.ABC):
    """One configured backend. ``name`` is the prefix of its model ids."""

    idle_timeout = IDLE_TIMEOUT  # the longest wait for the next piece, the first one included

    def __init__(self, name: str, models: list[ModelEntry]):
        self.name = name
        self._models = {m.name: m for m in models}

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(f"{self.name}/{m.name}", self.name, m.label or m.name, m.context_tokens,
                      m.greeting, m.starters)
            for m in self._models.values()
        ]

    def has_model(self, model: str) -> bool:
        return model in self._models

    def context_tokens(self, model: str) -> int:
        entry = self._models.get(model)
        return entry.context_tokens if entry else 8192

    def reply_reserve_tokens(self, model: str) -> int:
        """Tokens of the window kept free of history, for the reply."""
        return REPLY_RESERVE_TOKENS

    def acceptable_history(self, messages: list[Message]) -> list[Message]:
        """The stored turns this vendor accepts, before the history is fitted to the budget
        (ERNIE and Spark want strictly alternating turns). By default, all of them."""
        return messages

    def operator_system_prompt(self, model: str) -> str | None:
        entry = self._models.get(model)
        return entry.system_prompt if entry else None

    @abc.abstractmethod
    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        """Yield the reply as it arrives; raise a ``ProviderError`` on failure.

        The returned iterator must be a generator (or support ``close()``): closing it
        early must release the upstream connection at once, so the vendor stops generating.

        ``watched``: the caller bounds the silences between pieces itself, by
        ``idle_timeout``, and raises ``went_silent()`` (the relay does, with the timer it
        keeps for heartbeats). The provider then reads without a timeout once the first piece
        is out: under gevent every read with a timeout that has to wait starts and cancels a
        timer, the largest per-piece cost of relaying. Until the first piece it times its own
        reads, since retries before it are its own business too.
        """

    def went_silent(self) -> ProviderError:
        """The failure of a reply whose upstream sent nothing for ``idle_timeout`` seconds."""
        return UpstreamTimeoutError(
            f"The {self.name} model service sent nothing for {self.idle_timeout:g} s.")

    def close(self) -> None:  # noqa: B027 (optional: most providers hold nothing to release)
        """Release pooled connections (called when the app shuts down)."""


@dataclass(frozen=True)
class ProviderSettings:
    """What the registry hands a provider factory: one table of operator configuration."""

    name: str
    options: Mapping[str, object] = field(default_factory=dict)
    source: str = "environment"  # where the options came from, for error messages
