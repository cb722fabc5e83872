"""A stand-in OpenAI-compatible chat-completions server (docs/providers/openai.md).

It streams over HTTP/1.1 chunked encoding like the real services, and the model name picks
the behaviour, so one server can back both the provider tests and the app under gunicorn:

  echo (any unknown name)  "Echo: <last user text> [n messages]" in pieces, role-only first
                           delta, finish_reason, the usage chunk, [DONE]
  crlf                     the echo with CRLF line endings
  hard-framing             writes split inside JSON and inside a multi-byte character,
                           comments, blank lines, ``data:`` without a space
  reasoning / reasoning-vllm   thinking in delta.reasoning_content / delta.reasoning first
  slow                     one delta every 20 ms for 40 s (cancel tests)
  paced                    60 deltas 10 ms apart, then the end (resumption tests)
  hold                     headers, then silence until released or the client leaves
  status-<code>            that HTTP status with an OpenAI error body
  flaky-503                503 on the first request of each test, then the echo
  retry-after              429 with Retry-After: 0 on the first request, then the echo
  zhipu-1113               Zhipu's empty balance: HTTP 429 with business code "1113"
  context                  400 "maximum context length" error
  midstream-error          one delta, then a data line carrying an error object
  cut                      one delta, then the connection closes (no finish, no [DONE])
  stall                    one delta, then silence (idle-timeout tests)
  pause                    one delta, silence until released (or the client leaves), then the
                           rest and [DONE]
  finish-no-done           finish_reason but the stream ends without [DONE]
  xss                      a reply full of script-injection attempts (XSS_PAYLOADS)
  split-crlf               CRLF line breaks cut between two writes (a CR ends one, its LF starts
                           the next), JSON over two data lines, a CRLF across byte 512 of a write
  split-crlf-error         an "event: error" whose CRLF is cut between two writes; its words in
                           a top-level "message"
  surrogates               JSON escapes no text may hold: a surrogate pair split across two
                           deltas, a NUL, a lone low surrogate (SURROGATES_REPLY is the result)
  flood                    deltas of FLOOD_PIECE written without pause until the client leaves
  unchunked                a body neither chunked nor of known length (it ends when the server
                           closes): one delta, silence until released, then the rest
  malformed                one delta, then an event whose data is not JSON
  sets-cookie              the echo, its response setting a cookie (a load balancer's, say)
  then-hang-up             the echo, then the server closes the kept-alive connection
                           (``hung_up`` is set once it is closed)
  redirect                 307 to another path of this server (a redirect keeps the POST)
  wide                     "Wide: " then one delta of WIDE_PIECE (~15 KB: many reads' worth)
  chunk-framing            the echo, each HTTP chunk's size line (upper-case hexadecimal with
                           leading zeros and a chunk extension), data and end in writes of
                           their own, and a trailer field after the last chunk
  bad-chunk-size           one delta, then a chunk whose size is "-1A"
  endless-line             one delta, then a data line that never ends (64 KB a write) until
                           the client leaves

``OpenAIStandIn(tls=context)`` serves HTTPS with that context.
"""
from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

from . import LoopbackHTTPServer


class OpenAIStandIn(LoopbackHTTPServer):
    def __init__(self, tls: ssl.SSLContext | None = None):
        super().__init__(_Handler)
        if tls:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.requests: list[dict] = []  # every JSON body received, with its headers
        self.attempts: Counter = Counter()  # requests per model
        self.disconnected = threading.Event()  # a client left mid-stream
        self.disconnected_at = 0.0  # time.monotonic() when it was noticed
        self.release = threading.Event()  # ends a "hold"
        self.held = threading.Event()  # a "hold" request has started waiting
        self.hung_up = threading.Event()  # a "then-hang-up" connection is closed
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.attempts.clear()
        self.disconnected.clear()
        self.disconnected_at = 0.0
        self.release.clear()
        self.held.clear()
        self.hung_up.clear()


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    return {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0,
            "model": "standin",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


# What a hostile or compromised model might write: each tries to run window.__xss = N.
XSS_PAYLOADS = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    "[click me](javascript:window.__xss=3)",
    '<iframe src="javascript:window.__xss=4"></iframe>',
    '<svg onload="window.__xss = 5"><circle r=1></circle></svg>',
    "![pic](javascript:window.__xss=6)",
    '<a href="data:text/html,<script>parent.__xss=7</script>">data link</a>',
    '<details open ontoggle="window.__xss = 8">x</details>',
    "```html\n<script>window.__xss = 9</script>\n```",
    '<form action="javascript:window.__xss=10"><button>go</button></form>',
    '<object data="javascript:window.__xss=11"></object>',
    '<style>body{display:none}</style>',
    "$\\href{javascript:window.__xss=12}{math link}$",
]

# The "surrogates" reply as it must be shown and saved: the pair joined, the rest replaced.
SURROGATES_DELTAS = ["A\ud83d", "\ude00B", "C\x00D", "E\udc00F"]
SURROGATES_REPLY = "A\U0001f600BC\ufffdDE\ufffdF"
FLOOD_PIECE = "0123456789" * 10
WIDE_PIECE = " ".join(f"流式{i}" for i in range(2000))  # ~15 KB once JSON-escaped

USAGE = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIStandIn

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        model = body.get("model", "")
        with self.server.lock:
            self.server.requests.append({"body": body, "headers": dict(self.headers),
                                         "target": self.path,
                                         "client_port": self.client_address[1]})
            self.server.attempts[model] += 1
            attempt = self.server.attempts[model]
        try:
            self._answer(model, body, attempt)
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnected_at = self.server.disconnected_at or time.monotonic()
            self.server.disconnected.set()
            self.close_connection = True
        if model in ("cut", "stall", "midstream-error", "malformed", "cut-503"):
            self.close_connection = True  # these end without a well-formed response
        if model == "then-hang-up":  # as an upstream's idle timeout does, unannounced
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            self.server.hung_up.set()

    # -- behaviours -----------------------------------------------------------------------

    def _answer(self, model: str, body: dict, attempt: int) -> None:
        if model.startswith("status-"):
            return self._error(int(model.split("-")[1]), f"stand-in status {model}")
        if model == "flaky-503" and attempt == 1:
            return self._error(503, "The engine is currently overloaded")
        if model == "cut-503":  # its error body cut off: the connection drops first
            return self._error(503, "The engine is currently overloaded", cut=True)
        if model == "retry-after" and attempt == 1:
            return self._error(429, "Rate limit reached", headers={"Retry-After": "0"})
        if model == "zhipu-1113":
            return self._error(429, "余额不足或无可用资源包,请充值。", code="1113")
        if model == "context":
            return self._error(400, "This model's maximum context length is 8192 tokens.",
                               code="context_length_exceeded")
        if model == "unchunked":
            return self._unchunked()
        if model == "redirect":
            return self._error(307, "moved", headers={"Location": "/v1/elsewhere"})
        self._start_stream(
            {"Set-Cookie": "upstream_session=S3CR3T; Path=/"} if model == "sets-cookie" else {})
        if model == "hold":
            self.server.held.set()
            self._wait_for_release_or_departure()
            return self._events([chunk({"content": "released"}), chunk(finish="stop")], done=True)
        if model == "slow":
            for i in range(2000):
                self._events([chunk({"content": f"{i} "})])
                time.sleep(0.02)  # the stand-in's own pacing, as a real model has
            return self._events([chunk(finish="stop")], done=True)
        if model == "paced":
            for i in range(60):
                self._events([chunk({"content": f"{i} "})])
                time.sleep(0.01)
            return self._events([chunk(finish="stop"), chunk(usage={
                "prompt_tokens": 5, "completion_tokens": 60, "total_tokens": 65})], done=True)
        if model == "midstream-error":
            self._events([chunk({"content": "partial "})])
            return self._send(b'data: {"error": {"message": "server overloaded mid-stream", '
                              b'"type": "server_error"}}\n\n')
        if model == "cut":
            return self._events([chunk({"role": "assistant", "content": ""}),
                                 chunk({"content": "half a rep"})])
        if model == "stall":
            self._events([chunk({"content": "first "})])
            return self._wait_for_release_or_departure()
        if model == "pause":
            self._events([chunk({"role": "assistant", "content": ""}),
                          chunk({"content": "first "})])
            self.server.held.set()
            self._wait_for_release_or_departure()
            return self._events([chunk({"content": "then the rest"}), chunk(finish="stop")],
                                done=True)
        if model == "finish-no-done":
            self._events([chunk({"content": "complete"}), chunk(finish="stop")])
            return self._end()
        if model in ("reasoning", "reasoning-vllm"):
            field = "reasoning_content" if model == "reasoning" else "reasoning"
            return self._events([chunk({"role": "assistant", field: "Let me think. "}),
                                 chunk({field: "Done thinking."}),
                                 chunk({"content": "Answer."}), chunk(finish="stop"), USAGE],
                                done=True)
        if model == "hard-framing":
            return self._hard_framing()
        if model == "malformed":
            self._events([chunk({"content": "partial "})])
            return self._send(b"data: {this is not json\n\n")
        if model == "split-crlf":
            return self._split_crlf()
        if model == "split-crlf-error":
            self._events([chunk({"content": "partial "})], ending=b"\r\n")
            self._send(b"event: error\r")
            return self._send(b'\ndata: {"message": "quota used up mid-reply"}\r\n\r\n')
        if model == "surrogates":  # ensure_ascii: the escapes go out as \\uXXXX, as JSON allows
            return self._events([chunk({"content": piece}) for piece in SURROGATES_DELTAS]
                                + [chunk(finish="stop")], done=True, ensure_ascii=True)
        if model == "flood":
            piece = b"data: " + json.dumps(chunk({"content": FLOOD_PIECE})).encode() + b"\n\n"
            for _ in range(200_000):  # ~20 MB of text; the client leaves long before
                self._send(piece * 20)
            return self._end()
        if model == "xss":
            pieces = [p for payload in XSS_PAYLOADS for p in (payload, "\n\n")]
            return self._events([chunk({"content": p}) for p in pieces] + [chunk(finish="stop")],
                                done=True)
        if model == "chunk-framing":
            return self._chunk_framing(body)
        if model == "bad-chunk-size":
            self._events([chunk({"content": "partial "})])
            return self.wfile.write(b"-1A\r\n" + b"x" * 26 + b"\r\n")
        if model == "endless-line":
            self._events([chunk({"content": "partial "})])
            self._send(b'data: {"choices": [{"index": 0, "delta": {"content": "')
            for _ in range(2_000):  # ~128 MB; the client leaves long before
                self._send(b"x" * 65_536)
            return self._end()
        if model == "wide":
            return self._events([chunk({"role": "assistant", "content": ""}),
                                 chunk({"content": "Wide: "}), chunk({"content": WIDE_PIECE}),
                                 chunk(finish="stop")], done=True)
        ending = b"\r\n" if model == "crlf" else b"\n"
        self._events(self._echo(body), done=True, ending=ending)

    def _echo(self, body: dict) -> list[dict]:
        messages = body["messages"]
        text = f"Echo: {messages[-1]['content']} [{len(messages)} messages]"
        pieces = [text[i:i + 5] for i in range(0, len(text), 5)]
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces]
        events.append(chunk(finish="stop"))
        if body.get("stream_options", {}).get("include_usage"):
            events.append(USAGE)
        return events

    def _hard_framing(self) -> None:
        first = json.dumps(chunk({"role": "assistant", "content": ""})).encode()
        second = json.dumps(chunk({"content": "流式输出"}), ensure_ascii=False).encode()
        cut = second.index("式".encode()) + 1  # inside the bytes of one character
        third = json.dumps(chunk({"content": " ok\u2028done"}), ensure_ascii=False).encode()
        self._send(b": keep-alive\n\n")
        self._send(b"data:" + first[:20])  # no space after the colon; split inside JSON
        self._send(first[20:] + b"\n\n\n")
        self._send(b"data: " + second[:cut])
        self._send(second[cut:] + b"\r")  # CR and LF of one line break in two writes
        self._send(b"\n\r\n: comment\r\n")
        self._send(b"data: " + third + b"\r\n\r\n")
        self._send(b"data:" + json.dumps(chunk(finish="stop")).encode() + b"\n\n")
        self._send(b"data:" + json.dumps(USAGE).encode() + b"\n\ndata:[DONE]\n\n")
        self._end()

    def _chunk_framing(self, body: dict) -> None:
        for event in self._echo(body) + ["[DONE]"]:
            data = event if isinstance(event, str) else json.dumps(event)
            data = b"data: " + data.encode() + b"\n\n"
            self.wfile.write(b'%06X;name="value"\r\n' % len(data))
            self.wfile.write(data)
            self.wfile.write(b"\r\n")
        self.wfile.write(b"0\r\nX-Stand-In: trailer\r\n")
        self.wfile.write(b"\r\n")

    def _unchunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(b"data: " + json.dumps(chunk({"content": "first "})).encode() + b"\n\n")
        self.wfile.flush()
        self._wait_for_release_or_departure()
        for event in (chunk({"content": "then the rest"}), chunk(finish="stop")):
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def _split_crlf(self) -> None:
        first = json.dumps(chunk({"content": "two "})).encode()
        cut = first.index(b'"finish_reason"')
        head, tail = first[:cut], first[cut:]
        self._send(b"data: " + head + b"\r")  # the JSON goes on in a second data line
        self._send(b"\ndata: " + tail + b"\r\n\r\n")
        # One write in which a line's CR is byte 511 and its LF byte 512.
        lines = b"data: " + json.dumps(chunk({"content": "x"})).encode()
        padded = lines.replace(b'"x"', b'"' + b"x" * (511 - len(lines) + 1) + b'"')
        assert len(padded) == 511
        second = json.dumps(chunk(finish="stop")).encode()
        self._send(padded + b"\r\n\r\ndata: " + second + b"\r\n\r\n")
        self._send(b"data: [DONE]\r\n\r\n")
        self._end()

    # -- wire -----------------------------------------------------------------------------

    def _error(self, status: int, message: str, code=None, headers=None, cut=False) -> None:
        payload = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                        "param": None, "code": code}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if cut:  # announced, never sent
            payload = b""
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _start_stream(self, headers: dict | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _events(self, events: list[dict], done: bool = False, ending: bytes = b"\n",
                ensure_ascii: bool = False) -> None:
        for event in events:
            self._send(b"data: " + json.dumps(event, ensure_ascii=ensure_ascii).encode()
                       + ending * 2)
        if done:
            self._send(b"data: [DONE]" + ending * 2)
            self._end()

    def _wait_for_release_or_departure(self, limit: float = 60.0) -> None:
        """Silence until the test releases us or the client closes its end (seen as EOF)."""
        deadline = time.monotonic() + limit
        while not self.server.release.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.disconnected_at = time.monotonic()
                self.server.disconnected.set()
                raise ConnectionResetError
