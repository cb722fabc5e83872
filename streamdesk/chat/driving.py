"""Which greenlet moves a reply forward: one at a time, and while the connection that asked
for the reply reads it, that connection's own.

A reply's relay (``relay.generate``) is a generator that comes back after each chunk of the
upstream. A greenlet of the reply's own starts it, so that the upstream is asked while
``POST /chat`` still writes its session and headers. Once that request has written all there
is and waits for more, it takes the relay over and reads the upstream itself, a step at a time
between its writes. A waiting greenlet holds ~10 KB (its saved C stack and the data stack its
Python frames live on), so an open reply costs one greenlet instead of two, and each chunk two
greenlet switches fewer (docs/benchmarks.md).

The relay goes back to a greenlet of the reply's own whenever the request cannot go on with
it: its connection is done (the reply outlives it), its client has taken no write for a whole
silence (``silent``), or the reply must be interrupted while the request is busy writing.
Interruptions (stop, the time limit, shutdown, an upstream gone silent) are raised only where
the relay waits, inside a step, never in the middle of a write to a client; while the request
holds the relay and the model is silent, a greenlet of its own writes the heartbeats.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event as Signal
from gevent.greenlet import Greenlet
from greenlet import greenlet

if TYPE_CHECKING:
    from .live import LiveReply


class Drive:
    __slots__ = ("_live", "_steps", "_on_end", "holder", "held_by_request", "inside", "done",
                 "_finished", "_wanted_by", "_pending", "_beat", "_beating")

    def __init__(self, live: LiveReply, steps: Generator[None, None, None],
                 on_end: Callable[[], object]):
        """``steps`` is the relay of ``live``; ``on_end`` is called once it has returned."""
        self._live = live
        self._steps = steps
        self._on_end = on_end
        self.holder: greenlet | None = None  # the greenlet that moves the relay
        self.held_by_request = False  # the holder is the request's greenlet, not the reply's
        self.inside = False  # the holder is in a step: waiting for the upstream, or its turn
        self.done = False  # the relay has returned: the reply is saved and told
        self._finished: Signal | None = None  # made for whoever waits for that
        self._wanted_by: greenlet | None = None  # the request, waiting to take the relay over
        self._pending: type[BaseException] | None = None  # raised at the next step
        self._beat: Callable[[], object] | None = None
        self._beating: Greenlet | None = None

    def start(self) -> None:
        """Runs the relay's first step here (it publishes the meta event and comes back before
        the upstream is asked: from then on an interruption lands where the relay handles it),
        then hands it to a greenlet of the reply's own."""
        self._step()
        if not self.done:
            self._own()

    @property
    def finished(self) -> Signal:
        """Set once the relay has returned (``done``): for ``wait`` and ``gevent.wait``."""
        if self._finished is None:
            self._finished = Signal()
            if self.done:
                self._finished.set()
        return self._finished

    def keep_alive(self, beat: Callable[[], object]) -> None:
        """``beat`` writes a heartbeat to the request's client, which it cannot write itself
        while it waits for the upstream; it may be called on another greenlet then."""
        self._beat = beat

    # The request's side -----------------------------------------------------------------------

    def step_here(self) -> bool:
        """For the request, when it has written everything: one step of the relay, once it
        holds it (from the end of the reply greenlet's current step). False when it must wait
        for the next events instead."""
        if self.holder is not gevent.getcurrent():
            if not self.done:
                self._wanted_by = gevent.getcurrent()
            return False
        self._step()
        return True

    def release(self) -> None:
        """The request is done with the reply (it ended, or the connection closed): the relay,
        if the request held it, goes on on a greenlet of the reply's own."""
        current = gevent.getcurrent()
        if self._wanted_by is current:
            self._wanted_by = None
        if self.holder is current and not self.done:
            self._own()

    # Anyone's side ----------------------------------------------------------------------------

    def interrupt(self, error: type[BaseException]) -> None:
        """Raise ``error`` in the relay where it waits; ignored once it saves its end."""
        gevent.get_hub().loop.run_callback(self._deliver, error)

    def silent(self) -> None:
        """On the hub, after each silence of the upstream while the request holds the relay:
        a heartbeat to its client, or, if it is stuck writing to that client, the relay back
        to a greenlet of the reply's own so the reply goes on meanwhile."""
        if not self.held_by_request or self.done:
            return
        if not self.inside:
            self._own()
        elif self._beat is not None and self._beating is None:
            self._beating = gevent.spawn(self._send_beat, self._beat)

    # Inside -----------------------------------------------------------------------------------

    def _step(self) -> None:
        error, self._pending = self._pending, None
        self.inside = True
        try:
            if error is None:
                next(self._steps)
            else:
                self._steps.throw(error)
        except StopIteration:
            self._end()
        except BaseException:
            self._end()
            raise
        finally:
            self.inside = False
        if self._beating is not None:  # its write ends before the request writes again
            self._beating.join()

    def _run(self) -> None:
        """The reply's own greenlet: steps until the relay returns or the request takes it."""
        while not self.done:
            wanted_by = self._wanted_by
            if wanted_by is not None:
                self._wanted_by = None
                self.holder, self.held_by_request = wanted_by, True
                self._live.wake()  # it waits for events: now it moves the relay itself
                return
            self._step()

    def _own(self) -> None:
        self.holder, self.held_by_request = gevent.spawn(self._run), False

    def _deliver(self, error: type[BaseException]) -> None:
        # On the hub: the holder cannot move between the look and the throw.
        if self.done or self._live.closing:  # saving its end: let it finish
            return
        if self.inside and self.holder is not None:
            self.holder.throw(error)
            return
        self._pending = error  # the reply's greenlet raises it at its next step
        if self.held_by_request:  # busy writing: the reply's own greenlet takes over now
            self._own()

    def _send_beat(self, beat: Callable[[], object]) -> None:
        try:
            if self.inside:  # still waiting: nothing else is being written
                beat()
        except OSError:  # the client left: its next write ends the request
            pass
        finally:
            self._beating = None

    def _end(self) -> None:
        if not self.done:
            self.done = True
            if self._finished is not None:
                self._finished.set()
            self._on_end()
