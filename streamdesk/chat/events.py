"""What a reply says while it is written, as typed events. The relay yields them; the web
layer decides how they travel (``streamdesk/web/sse.py`` writes them as server-sent events).

Order: ``Meta`` first, then ``Delta``/``UsageReport``/``Heartbeat`` as they come, ``Failed`` if
anything went wrong, ``Done`` last on every path the client can still hear.
"""
from __future__ import annotations

from dataclasses import dataclass

from providers import Usage

from ..store import ReplyStatus


@dataclass(frozen=True, slots=True)
class Meta:
    conversation_id: str
    user_message_id: str
    message_id: str  # the reply's
    model: str
    omitted_messages: int  # stored turns left out of what the model was sent


@dataclass(frozen=True, slots=True)
class Delta:
    field: str  # "text" or "reasoning"
    text: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Failed:
    code: str  # stable: providers/errors.py, or our own "internal" and "server_stopping"
    message: str  # fit for the user


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str
    status: ReplyStatus  # as the reply is saved, so no client has to work it out


class Heartbeat:
    """The upstream has been silent for a heartbeat interval."""

    __slots__ = ()


HEARTBEAT = Heartbeat()

Event = Meta | Delta | UsageReport | Failed | Done | Heartbeat
