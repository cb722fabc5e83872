"""Event ids that any worker can resume from: positions in the reply's stream.

An event's id is the reply's position after it. ``meta`` moves the position by 1, a ``delta``
by the number of characters it carries, ``usage``, ``error`` and ``done`` by 1 each; so ids
increase within a reply, and a client that saw up to id N has exactly the first N units.
The index records where each run of one kind of event starts (segments), plus the ``meta``
and ``usage`` payloads. Saved beside the reply's text, it lets a worker that never saw the
reply rebuild exactly the events after any id from the database (``replay``), however the
original deltas were cut: a resumed stream may join several deltas into one, never repeat
or skip a character.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from providers import Usage

from ..store import ReplyStatus, StoredReply
from .events import Delta, Done, Event, Failed, Meta, UsageReport

INTERRUPTED = Failed("interrupted", "The server writing this reply stopped before it finished.")


class StreamIndex:
    __slots__ = ("meta", "position", "segments", "usage", "_kind")

    def __init__(self, meta: Meta):
        self.meta = meta
        self.position = 0
        self.segments: list[list] = []  # [kind, position before the run's first event]
        self.usage: Usage | None = None
        self._kind = ""

    def advance_text(self, field: str, length: int) -> int:
        """Account for a delta of ``length`` characters and return its id. On the per-chunk
        path: keep it cheap."""
        if field != self._kind:
            self._start(field)
        self.position += length
        return self.position

    def advance(self, event: Event) -> int:
        """Account for ``event`` (any but a delta: ``advance_text``) and return its id."""
        kind = _KINDS[type(event)]
        self._start(kind)
        if kind == "usage":
            self.usage = event.usage  # type: ignore[union-attr]
        self.position += 1
        return self.position

    def _start(self, kind: str) -> None:
        self.segments.append([kind, self.position])
        self._kind = kind

    def to_json(self) -> str:
        meta = self.meta
        return json.dumps({
            "meta": [meta.conversation_id, meta.user_message_id, meta.message_id, meta.model,
                     meta.omitted_messages],
            "position": self.position, "segments": self.segments,
            "usage": self.usage.as_dict() if self.usage else None,
        }, separators=(",", ":"))


_KINDS = {Meta: "meta", UsageReport: "usage", Failed: "error", Done: "done"}


@dataclass(frozen=True)
class _Saved:
    meta: Meta
    position: int
    segments: list
    usage: Usage | None
    abandoned: bool = False  # its writer died: followers may have seen more than this


def replay(reply: StoredReply, after: int = 0) -> list[tuple[int, Event]]:
    """The events of a saved reply after event id ``after``, as a follower receives them.
    A reply still being written yields what was saved so far (its end is still to come)."""
    saved = _saved_index(reply)
    ended = reply.status != ReplyStatus.STREAMING
    bounds = [*saved.segments, ["", saved.position]]
    offsets = {"text": 0, "reasoning": 0}
    sources = {"text": reply.content, "reasoning": reply.reasoning}
    events: list[tuple[int, Event]] = []
    for (kind, start), (_, end) in zip(bounds, bounds[1:], strict=False):
        if kind in offsets:
            first = offsets[kind]
            offsets[kind] += end - start
            if end > after:
                skip = max(0, after - start)
                events.append((end, Delta(kind, sources[kind][first + skip:first + end - start])))
        elif end > after:
            if kind == "meta":
                events.append((end, saved.meta))
            elif kind == "usage" and saved.usage:
                events.append((end, UsageReport(saved.usage)))
    if ended:
        failure = Failed(reply.error_code, reply.error_message or "") if reply.error_code \
            else INTERRUPTED if reply.status == ReplyStatus.INTERRUPTED else None
        ending: list[Event] = [failure] if failure else []
        ending.append(Done(reply.finish_reason or "error", reply.status))
        position = saved.position
        if saved.abandoned and after > position:
            # The writer died between two saves, and the follower saw more than was saved.
            # It still hears how the reply ended, numbered after what it has.
            position = after
        for event in ending:
            position += 1
            if position > after:
                events.append((position, event))
    return events


def _saved_index(reply: StoredReply) -> _Saved:
    if reply.stream_index:
        data = json.loads(reply.stream_index)
        usage = Usage(**data["usage"]) if data.get("usage") else None
        return _Saved(Meta(*data["meta"]), data["position"], data["segments"], usage,
                      bool(data.get("abandoned")))
    # A reply saved before event ids existed: its events in the usual order.
    segments, position = [["meta", 0]], 1
    for kind, text in (("reasoning", reply.reasoning), ("text", reply.content)):
        if text:
            segments.append([kind, position])
            position += len(text)
    usage = None
    if reply.completion_tokens is not None:
        prompt = reply.prompt_tokens or 0
        usage = Usage(prompt, reply.completion_tokens, prompt + reply.completion_tokens)
        segments.append(["usage", position])
        position += 1
    meta = Meta(reply.conversation_id, "", reply.id, reply.model or "", 0)
    return _Saved(meta, position, segments, usage)


def abandoned(stream_index: str | None) -> str | None:
    """The index of a reply whose writer died, marked so (see ``replay``)."""
    if not stream_index:
        return None
    data = json.loads(stream_index)
    data["abandoned"] = True
    return json.dumps(data, separators=(",", ":"))
