"""Stand-in model services for the tests: real servers on loopback speaking each vendor's
protocol, including its error shapes. Nothing here is a mock of our own code."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port, run in a background thread.

    Use as a context manager. ``handler_class`` gets the server as ``self.server`` and can keep
    per-test state (scenarios, counters, events) on it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler_class)
        # A short poll interval keeps shutdown() (once per test) from waiting 0.5 s.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class UnansweredPort:
    """A loopback port that never completes a TCP handshake: its accept queue is full, so
    Linux drops further SYNs and a connect hangs until the client's connect timeout."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._fillers = []
        for _ in range(4):  # more than the queue holds: the rest hang unanswered too
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(self._listener.getsockname())
            self._fillers.append(filler)
        host, port = self._listener.getsockname()
        self.base_url = f"http://{host}:{port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for sock in self._fillers + [self._listener]:
            sock.close()
