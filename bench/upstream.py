"""The bench's stand-in upstream: an OpenAI-compatible chat-completions server that streams
N chunks M ms apart, each carrying the moment it was written.

Run alone: ``python bench/upstream.py --port 8400`` (prints ``listening <port>``); with
``--tls CERT KEY`` it serves HTTPS on a second port too. With ``--reuse-port`` several of
these processes share the same ports (SO_REUSEPORT: the kernel spreads new connections among
them); each also answers ``GET /_stats`` for itself alone on a port of its own (printed as
``stats <port>``).

The scenario comes from the last user message, so the relayed request (the app forwards the
user's text) and the direct one (the bench client sends the same text itself) ask for the same
stream. The message is JSON:

  {"bench": "ticks", "chunks": 200, "interval_ms": 50}   content "~<seq>@<send ns>~ "
  ... "think_ms": 20                                     the headers at once, the first chunk
                                                         20 ms later (a model's time to its
                                                         first token; 0 by default)
  {"bench": "markdown", "tokens": 20000, "rate": 200}   the markdown document of markdown_doc.py
  anything else                                          20 ticks 50 ms apart

``<send ns>`` is ``time.monotonic_ns()`` taken just before the chunk is handed to the kernel.
CLOCK_MONOTONIC is one clock for every process on a Linux machine, so the client subtracts it
from its own receive time. Each chunk is scheduled on the event loop at start + seq x interval
(no drift); if the loop is late the stamp says so, and the lateness is not blamed on the relay.

Built for load: plain asyncio protocols (uvloop when installed), one timer handle per pending
chunk and no coroutine per stream, so 2,000 streams at 20 chunks/s cost well under a core.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from markdown_doc import markdown_tokens  # noqa: E402

_CHUNK_HEAD = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk",'
               b'"created":1700000000,'
               b'"model":"bench","choices":[{"index":0,"delta":{"content":')
_CHUNK_TAIL = b'},"finish_reason":null}]}\n\n'
_FINISH = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
           b'"model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
_DONE = b"data: [DONE]\n\n"
_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def _chunked(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)


class Stats:
    requests = 0
    active = 0
    completed = 0
    dropped = 0  # the reader left before the end (cancel, crash)


class Scenario:
    """What one request asked for: the content of each chunk (a callable of seq) and timing."""

    def __init__(self, message: str):
        try:
            spec = json.loads(message)
        except ValueError:
            spec = {}
        if not isinstance(spec, dict):
            spec = {}
        self.kind = spec.get("bench", "ticks")
        if self.kind == "markdown":
            self.tokens = markdown_tokens(int(spec.get("tokens", 20000)))
            self.chunks = len(self.tokens)
            self.interval = 1.0 / float(spec.get("rate", 200))
            self.encoded = [json.dumps(t).encode() for t in self.tokens]
        else:
            self.kind = "ticks"
            self.chunks = int(spec.get("chunks", 20))
            self.interval = float(spec.get("interval_ms", 50)) / 1000.0
            self.pad = b"x" * int(spec.get("pad", 0))
        self.think = float(spec.get("think_ms", 0)) / 1000.0

    def content(self, seq: int) -> bytes:
        if self.kind == "markdown":
            return self.encoded[seq]
        return b'"~%d@%d~ %s"' % (seq, time.monotonic_ns(), self.pad)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self):
        self.buffer = bytearray()
        self.transport = None
        self.timer = None
        self.streaming = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.streaming:
            Stats.active -= 1
            Stats.dropped += 1
            self.streaming = False

    def data_received(self, data):
        self.buffer += data
        if not self.streaming:
            self._try_request()

    def _try_request(self):
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        method, path, _ = (lines[0].split(" ") + ["", "", ""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        if method == "GET" and path.endswith("/healthz"):
            self._plain(200, b'{"status":"ok"}')
        elif method == "GET" and path.endswith("/_stats"):
            self._plain(200, json.dumps({k: getattr(Stats, k) for k in
                                         ("requests", "active", "completed", "dropped")}).encode())
        elif method == "POST" and path.endswith("/chat/completions"):
            self._start(body)
        else:
            self._plain(404, b'{"error":{"message":"not found"}}')

    def _plain(self, status: int, body: bytes):
        reason = b"OK" if status == 200 else b"Not Found"
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (status, reason, len(body), body))
        if self.buffer:
            self._try_request()

    def _start(self, body: bytes):
        try:
            request = json.loads(body)
            message = request["messages"][-1]["content"]
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        except (ValueError, KeyError, IndexError, TypeError):
            self._plain(404, b'{"error":{"message":"bad request"}}')
            return
        Stats.requests += 1
        Stats.active += 1
        self.streaming = True
        self.scenario = Scenario(message)
        self.include_usage = include_usage
        self.seq = 0
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time() + self.scenario.think
        self.transport.write(_HEADERS)
        if self.scenario.think:
            self.timer = self.loop.call_at(self.t0, self._send)
        else:
            self._send()  # the first chunk at once: time to first token is then all overhead

    def _send(self):
        self.timer = None
        scenario = self.scenario
        if self.seq < scenario.chunks:
            self.transport.write(_chunked(_CHUNK_HEAD + scenario.content(self.seq) + _CHUNK_TAIL))
            self.seq += 1
            if self.seq < scenario.chunks:
                self.timer = self.loop.call_at(self.t0 + self.seq * scenario.interval, self._send)
                return
        tail = _chunked(_FINISH)
        if self.include_usage:
            usage = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk",'
                     b'"created":1700000000,"model":"bench","choices":[],"usage":'
                     b'{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}\n\n'
                     % (scenario.chunks, scenario.chunks + 10))
            tail += _chunked(usage)
        self.transport.write(tail + _chunked(_DONE) + b"0\r\n\r\n")
        self.streaming = False
        Stats.active -= 1
        Stats.completed += 1
        if self.buffer:  # a pipelined next request on this keep-alive connection
            self._try_request()


async def serve(host: str, port: int, tls: ssl.SSLContext | None = None, tls_port: int = 0,
                reuse_port: bool = False) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096,
                                      reuse_address=True, reuse_port=reuse_port)
    servers = [server]
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    if tls is not None:  # the same streams over HTTPS, on a port of their own
        secure = await loop.create_server(UpstreamProtocol, host, tls_port, backlog=4096,
                                          reuse_address=True, reuse_port=reuse_port, ssl=tls)
        servers.append(secure)
        print(f"listening-tls {secure.sockets[0].getsockname()[1]}", flush=True)
    own = await loop.create_server(UpstreamProtocol, host, 0)  # this process's /_stats
    servers.append(own)
    print(f"stats {own.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-port", type=int, default=0,
                        help="with --tls: the HTTPS port (0: any free one)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="share the ports with other processes of this upstream")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                        help="also serve the same streams over HTTPS, as a model service "
                             "does, on a second port (printed as listening-tls <port>), with "
                             "this certificate and key (PEM files)")
    args = parser.parse_args()
    tls = None
    if args.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*args.tls)
    try:
        import uvloop
        runner = uvloop.run
    except (ImportError, AttributeError):
        runner = asyncio.run
    runner(serve(args.host, args.port, tls, args.tls_port, args.reuse_port))


if __name__ == "__main__":
    main()
