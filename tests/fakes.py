"""A provider for tests of everything above the providers, in the manner of simonw/llm's
``MockModel``: queue the replies it should give, then read what it was asked.

    fake = FakeProvider()
    fake.enqueue(["Hel", "lo"])             # text pieces, then usage and "stop"
    fake.enqueue([Chunk(text="a"), BadRequestError("refused")])  # chunks, then a failure
    fake.enqueue(["a", gate, "b"])          # silent until the gevent Event ``gate`` is set
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from gevent.event import Event

from providers import ChatRequest, Chunk, Provider, Usage
from providers.base import ModelEntry
from providers.errors import ProviderError

ReplyPart = str | Chunk | ProviderError | Event


class FakeProvider(Provider):
    def __init__(self, name: str = "fake", models: Iterable[ModelEntry] = (
            ModelEntry("model", "Fake model"),), *, reserve: int = 1024):
        super().__init__(name, list(models))
        self.replies: deque[list[ReplyPart]] = deque()
        self.requests: list[ChatRequest] = []
        self.closed = 0  # streams closed, finished or not
        self.reserve = reserve

    def enqueue(self, parts: Iterable[ReplyPart]) -> None:
        self.replies.append(list(parts))

    def reply_reserve_tokens(self, model: str) -> int:
        return self.reserve

    def stream(self, request: ChatRequest, *, watched: bool = False) -> Iterator[Chunk]:
        self.requests.append(request)
        parts = self.replies.popleft() if self.replies else ["OK"]
        return self._play(parts)

    def _play(self, parts: list[ReplyPart]) -> Iterator[Chunk]:
        try:
            texts = 0
            for part in parts:
                if isinstance(part, ProviderError):
                    raise part
                if isinstance(part, Event):
                    part.wait()
                    continue
                if isinstance(part, str):
                    texts += len(part)
                    yield Chunk(text=part)
                else:
                    yield part
            if not any(isinstance(part, Chunk) for part in parts):
                yield Chunk(usage=Usage(3, texts, 3 + texts))
                yield Chunk(finish_reason="stop")
        finally:
            self.closed += 1


def start_turn(store, user_id: str, conversation_id: str, text: str,
               model: str = "demo/offline", **options) -> tuple[str, str]:
    """Save a question and an empty reply as a turn does; (user message id, reply id)."""
    from streamdesk.store.tables import new_id
    user_message_id, message_id = new_id(), new_id()
    store.start_turn(user_id, conversation_id, text, model, user_message_id=user_message_id,
                     message_id=message_id, owner="test-host:1", stream_index=None, **options)
    return user_message_id, message_id
