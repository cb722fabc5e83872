"""gunicorn settings for StreamDesk; the Procfile and ``python app.py`` both use this file.

Why gevent: every open reply is a long-lived request that mostly waits on an upstream socket.
The default sync worker serves one request at a time and kills it after ``timeout``; gthread
caps concurrency at workers x threads. A gevent worker holds thousands of waiting streams.

gevent must monkey-patch sockets and ssl before ``requests`` is imported. gunicorn's gevent
worker patches in each worker before it imports ``app`` -- so never set ``preload_app``, which
would import the app (and requests) in the master first. This file imports gunicorn's gevent
worker, as gunicorn's master does anyway to start workers of that class, and nothing that
loads requests.
"""
import logging
import os
import shutil
import tempfile

from dotenv import load_dotenv
from gevent.socket import socket as GeventSocket
from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.workers import ggevent

# The same .env as app.py, read here too so WEB_CONCURRENCY and the rest apply to gunicorn.
load_dotenv(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env"))

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
preload_app = False

# With gevent, ``timeout`` is how long a worker may block its event loop, not a cap on a
# request: a reply streaming for an hour is never cut by it.
timeout = 30
# On SIGTERM a worker stops accepting and lets running replies finish for this long; then the
# rest are saved as interrupted (streamdesk/chat/lifecycle.py) and their browsers told so.
# 25 s leaves room inside the 30 s that Procfile platforms allow before SIGKILL.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "25"))
keepalive = 5

# gunicorn's control socket lives at one fixed path per user, which two instances on one
# machine would fight over; StreamDesk does not use it.
control_socket_disable = True

# The app writes one JSON line per request itself (with its request id); gunicorn's own
# messages go to stderr as JSON lines too.
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "streamdesk.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                # A logging configuration turns gunicorn's access log on whatever accesslog
                # says; the app's own line (streamdesk.access) already has each request.
                "gunicorn.access": {"handlers": ["stderr"], "level": "WARNING",
                                    "propagate": False},
                # Every worker checks the schema at start: Alembic's own lines say so each
                # time; streamdesk/store/schema.py writes one line when a migration ran.
                "alembic": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}


class _Logger(glogging.Logger):
    """gunicorn's logger, except that a request's access-log line is not built when
    ``gunicorn.access`` would drop it (it does: see logconfig_dict). gunicorn decides from its
    settings alone, and any logging configuration counts as an access log to it: every
    request, a ``POST /chat`` included, built a dict of ~20 fields and one per environ key
    for nothing (~1 % of a new chat's CPU, docs/benchmarks.md)."""

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = _Logger

# How many waiting connections a worker takes at once, in one turn of its event loop.
ACCEPT_PER_TURN = 2


class _BatchAcceptingServer(ggevent.StreamServer):
    """gevent's server, taking up to ACCEPT_PER_TURN waiting connections per turn of the loop,
    each a ``_ClientSocket``.

    With several workers gunicorn sets ``max_accept`` to 1, so that no worker takes every
    waiting connection for itself. When many people start chats at once, a connection then
    waited in the kernel's queue for one turn per connection ahead of it, each turn also
    relaying every stream whose upstream had written. Two per turn, 1,000 streams opening
    over 2 s: first token p99 1.7-2.5 s instead of 2.9-4.2 s and a little less CPU, while
    the chunks of streams already open wait about as long as before (chunk p99 245-310 ms
    against 251-322); four per turn gave the first tokens of a burst of 1,000 ~10 % sooner,
    but those chunks ~100-200 ms later. A worker alone (WEB_CONCURRENCY=1) takes two too,
    where gevent's 100 had it set up a hundred chats before it relayed any first token
    (docs/benchmarks.md, ninth round)."""

    @property
    def max_accept(self) -> int:
        return ACCEPT_PER_TURN

    @max_accept.setter
    def max_accept(self, _value: int) -> None:
        pass  # gunicorn's 1 for several workers: the batch above replaces it

    def do_read(self):
        """gevent's own, with the browser's connection a ``_ClientSocket``."""
        listener = self.socket
        try:
            fd, address = listener._accept()
        except BlockingIOError:
            if not listener.timeout:
                return None  # another worker took it
            raise
        return _ClientSocket(listener.family, listener.type, listener.proto, fileno=fd), address


class _ClientSocket(GeventSocket):
    """A browser's connection. Before every write, gevent's ``sendall`` asks the kernel for
    the socket's send-buffer size (a system call), to cut a large write into pieces; every
    event of a reply is one small write. This one sends at once, and leaves to gevent only
    what did not fit: ~2 µs less per event (docs/benchmarks.md, tenth round)."""

    __slots__ = ()

    def sendall(self, data, flags=0):
        try:
            sent = self._sock.send(data, flags)
        except BlockingIOError:  # the kernel's buffer is full: gevent waits for room
            sent = 0
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker, accepting connections in batches (_BatchAcceptingServer)."""

    def run(self):
        # gunicorn's run() builds its servers from this module name; this is the worker's own
        # process, after the fork.
        ggevent.StreamServer = _BatchAcceptingServer
        super().run()


worker_class = GeventWorker


def _json_error(sock, status_int, reason, mesg):
    """gunicorn answers the requests it cannot parse itself (a request line over 4094 bytes:
    414, over 100 headers or one over 8190 bytes: 431, a malformed line: 400) before the app
    sees them; in HTML by default. The same answers as JSON, shaped like every error of the
    API (streamdesk/web/errors.py). ``mesg`` may quote the request: it is not repeated."""
    import json

    body = json.dumps({"error": {"code": _ERROR_CODES.get(status_int, "bad_request"),
                                 "message": f"The server could not read this request "
                                            f"({status_int} {reason})."}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


_ERROR_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long",
                417: "expectation_failed", 431: "headers_too_large", 500: "internal",
                501: "not_implemented"}
gunicorn_util.write_error = _json_error  # the function gunicorn's workers call for these

# Metrics from every worker are written to one directory and summed by /metrics
# (prometheus-client's multiprocess mode). It must exist before the workers start.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="streamdesk-metrics-")


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)  # values of a previous run would be summed in
    os.makedirs(directory, exist_ok=True)
    # Reachable beyond this machine, the app should know the names it answers for.
    public = [address for address in server.cfg.bind
              if not address.startswith(("127.", "localhost", "[::1]", "unix:"))]
    if public and not os.environ.get("ALLOWED_HOSTS"):
        server.log.warning("listening on %s without ALLOWED_HOSTS: requests for any host name "
                           "are answered; set it to the names of this chat (docs/deploy.md)",
                           ", ".join(public))


def post_worker_init(worker):
    """On SIGTERM, also end this worker's live replies cleanly before the master's SIGKILL
    (see streamdesk/chat/lifecycle.py). Then take the app's own objects out of the garbage
    collector's sight."""
    import gc
    import signal

    from streamdesk.chat import lifecycle

    def handle_term(signum, frame):
        worker.handle_exit(signum, frame)  # gunicorn's own: stop accepting, finish requests
        lifecycle.schedule_interruption(worker.cfg.graceful_timeout)

    signal.signal(signal.SIGTERM, handle_term)

    # A full collection stops every stream of the worker while it walks all objects; ~100,000
    # of them are the modules, Flask and SQLAlchemy loaded at start, which live for ever.
    # Frozen, they are never walked: the longest pause at 500 streams went from 108-176 ms
    # to 66-81 ms (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    # Young collections every 10,000 allocations instead of 700: each new chat allocates
    # thousands of objects that mostly die young anyway. Over three bursts (2,200 new chats)
    # a worker collected ~640 times and spent 465-520 ms collecting, start-up included; with
    # this, ~45 times and 275-295 ms (docs/benchmarks.md).
    gc.set_threshold(10_000, 20, 20)

    # gevent records who spawned each greenlet, and the stack it was spawned from, for its
    # debugging tools; StreamDesk reads none of it, and it was ~1.8 KB of every open reply.
    import gevent
    gevent.config.track_greenlet_tree = False

    # Name lookups without a native thread for each new connection (streamdesk/name_lookups.py).
    from streamdesk.name_lookups import Resolver
    hub = gevent.get_hub()
    hub.resolver = Resolver(hub)

    # Each request's application code on a greenlet that ends with it, so that an open
    # reply's connection keeps only the shallow stack of writing its body (streamdesk/apart.py).
    from streamdesk.apart import each_request_apart
    worker.wsgi = each_request_apart(worker.wsgi)

    # How late this worker's loop runs, for /metrics (streamdesk/loop_lag.py).
    from streamdesk.loop_lag import LoopWatch
    LoopWatch().start()


def worker_exit(server, worker):
    """Replies run on their own greenlets, which gunicorn does not wait for: wait for them,
    since they are interrupted and saved before the master's deadline anyway."""
    from streamdesk.chat import lifecycle
    lifecycle.wait_for_replies(worker.cfg.graceful_timeout)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
