"""A stand-in for iFlytek Spark's WebSocket chat API on loopback (providers.md section 3).

It authenticates the handshake as the service does (HMAC-SHA256 over host, date and request
line, recomputed here with the known secret; a date more than 300 s from its own clock is
refused with 403), validates the request frame, then answers as scripted: frames with status
0/1/2 and usage, a frame error, a handshake refusal, a stall, a drop, silence, a malformed
frame, a pause until the test resumes it, or messages split over continuation frames. Unscripted
connections get an echo of the last question. It records the request frames and how each
connection ended, so tests can see a client hang up mid-reply.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from . import LoopbackHTTPServer

DATE_REFUSAL = ("HMAC signature cannot be verified, a valid date or x-date header is required "
                "for HMAC Authentication")
# path -> (domain, max_tokens): the versions table of the reference.
DOMAINS = {"/v1.1/chat": ("lite", 4096), "/v3.1/chat": ("generalv3", 8192),
           "/chat/pro-128k": ("pro-128k", 4096), "/v3.5/chat": ("generalv3.5", 8192),
           "/chat/max-32k": ("max-32k", 8192), "/v4.0/chat": ("4.0Ultra", 8192),
           "/v1/x1": ("x1", 8192)}
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Reply:
    pieces: tuple[str, ...] = ("Hello", ", ", "world")
    reasoning: tuple[str, ...] = ()  # sent before the pieces, as X1 does
    server_closes: bool = True  # False: wait for the client to close after the last frame
    escaped: bool = False  # JSON \\uXXXX escapes: a piece may end in half a surrogate pair


@dataclass(frozen=True)
class Fragmented:
    """A reply whose every message goes out as two frames (text, then continuation), cut
    between a CR and its LF (``at="crlf"``: the JSON has CRLF whitespace, and the handshake
    answer is written in two parts cut the same way) or inside a multi-byte character
    (``at="utf8"``)."""
    pieces: tuple[str, ...]
    at: str


@dataclass(frozen=True)
class Paused:
    first: tuple[str, ...]
    rest: tuple[str, ...]
    resume: threading.Event  # the rest is sent once it is set


@dataclass(frozen=True)
class Malformed:
    pieces: tuple[str, ...] = ("Half a",)  # then a text frame that is not JSON


@dataclass(frozen=True)
class FrameError:
    code: int
    message: str = "error"
    after: tuple[str, ...] = ()  # text frames sent before the error


@dataclass(frozen=True)
class Refuse:
    status: int
    message: str


@dataclass(frozen=True)
class Stall:
    pieces: tuple[str, ...] = ("Once upon",)  # then wait for the client to hang up


@dataclass(frozen=True)
class Drop:
    pieces: tuple[str, ...] = ("Half a",)  # then close the TCP connection without status 2


class Silent:
    """Read the request frame, then send nothing until the client hangs up."""


class HangHandshake:
    """Never answer the upgrade request."""


class SparkStandIn(LoopbackHTTPServer):
    def __init__(self, app_id: str, api_key: str, api_secret: str,
                 clock: Callable[[], float] = time.time, tls: ssl.SSLContext | None = None):
        super().__init__(_Handler)
        self._thread.name = "spark-standin-server"
        self.app_id, self.api_key, self.api_secret, self.clock = app_id, api_key, api_secret, clock
        self.scheme = "wss" if tls else "ws"
        if tls:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scripted: collections.deque = collections.deque()
        self.handshakes: list[int] = []  # HTTP status answered to each upgrade request
        self.frames: list[dict] = []  # request frames, in arrival order
        self.problems: list[str] = []  # request frames the service would reject
        self.endings: list[str] = []  # how each connection ended
        self.active = 0
        self.changed = threading.Condition()
        self._connection_threads: list[threading.Thread] = []

    def url(self, path: str = "/v3.5/chat") -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}{path}"

    def script(self, *steps) -> None:
        self.scripted.extend(steps)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def record(self, field: list, value) -> None:
        with self.changed:
            field.append(value)
            self.changed.notify_all()

    def check_auth(self, host_header: str | None, path: str, query: dict) -> tuple[int, str] | None:
        """The service's checks, in its order: present, fresh date, known key, signature."""
        authorization, date, host = (query.get(k) for k in ("authorization", "date", "host"))
        if not (authorization and date and host):
            return 401, "Unauthorized"
        try:
            skew = abs(self.clock() - parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            skew = float("inf")
        if skew > 300:
            return 403, DATE_REFUSAL
        try:
            text = base64.b64decode(authorization, validate=True).decode("utf-8")
        except ValueError:
            return 401, "HMAC signature cannot be verified"
        fields = dict(re.findall(r'(\w+)="([^"]*)"', text))
        if (fields.get("api_key") != self.api_key or fields.get("algorithm") != "hmac-sha256"
                or fields.get("headers") != "host date request-line"):
            return 401, "HMAC signature cannot be verified"
        origin = f"host: {host_header}\ndate: {date}\nGET {path} HTTP/1.1"
        expected = base64.b64encode(hmac.new(self.api_secret.encode(), origin.encode(),
                                             hashlib.sha256).digest()).decode()
        if host != host_header or not hmac.compare_digest(expected, fields.get("signature", "")):
            return 401, "HMAC signature does not match"
        return None

    def process_request(self, request, client_address):
        # Named, tracked threads: tests count the threads our code leaves behind, and
        # __exit__ joins these so the count settles without sleeping.
        thread = threading.Thread(target=self.process_request_thread, daemon=True,
                                  args=(request, client_address),
                                  name=f"spark-standin-conn-{len(self._connection_threads)}")
        self._connection_threads.append(thread)
        thread.start()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        for thread in self._connection_threads:
            thread.join(timeout=5)


def frame_problem(request: dict, domain: str, max_tokens: int,
                  app_id: str) -> tuple[int, str] | None:
    """What the service would reject in a request frame, as (code, message)."""
    try:
        chat = request["parameter"]["chat"]
        text = request["payload"]["message"]["text"]
        app = request["header"]["app_id"]
    except (KeyError, TypeError):
        return 10003, "invalid request structure"
    if app != app_id:
        return 10005, "app_id does not match"
    if chat.get("domain") != domain:
        return 10163, f"domain {chat.get('domain')!r} does not match this URL"
    temperature = chat.get("temperature", 0.5)
    if not isinstance(temperature, (int, float)) or not 0 < temperature <= 1:
        return 10163, "temperature must be in (0, 1]"
    if not 1 <= chat.get("max_tokens", 1) <= max_tokens:
        return 10163, f"max_tokens must be at most {max_tokens}"
    roles = [t.get("role") for t in text]
    if not all(isinstance(t.get("content"), str) and t["content"] for t in text):
        return 10003, "every message needs content"
    if roles[:1] == ["system"]:
        roles = roles[1:]
    expected = ["user", "assistant"] * len(roles)
    if not roles or roles != expected[:len(roles)] or roles[-1] != "user":
        return 10003, "roles must alternate user/assistant and end with user"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # no stand-in thread outlives a stuck test by long

    def log_message(self, *args):
        pass

    def do_GET(self):
        server: SparkStandIn = self.server
        self.close_connection = True
        with server.changed:
            server.active += 1
        try:
            server.record(server.endings, self._serve(server))
        except OSError:
            server.record(server.endings, "socket error")
        finally:
            with server.changed:
                server.active -= 1
                server.changed.notify_all()

    def _serve(self, server: SparkStandIn) -> str:
        parts = urlsplit(self.path)
        step = server.scripted.popleft() if server.scripted else None
        if isinstance(step, HangHandshake):
            self.rfile.read(1)  # until the client gives up
            return "client gave up on the handshake"
        refusal = server.check_auth(self.headers.get("Host"), parts.path,
                                    dict(parse_qsl(parts.query)))
        if refusal is None and isinstance(step, Refuse):
            refusal = step.status, step.message
        if refusal is None and parts.path not in DOMAINS:
            refusal = 404, "no Route matched with those values"
        if refusal is None and not self.headers.get("Sec-WebSocket-Key"):
            refusal = 400, "not a WebSocket upgrade"
        if refusal:
            return self._refuse(server, *refusal)
        server.record(server.handshakes, 101)
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + _GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        if isinstance(step, Fragmented) and step.at == "crlf":
            head = b"".join(self._headers_buffer) + b"\r\n"
            self._headers_buffer = []
            cut = head.index(b"\r\n") + 1
            for part in (head[:cut], head[cut:]):  # two writes, the CR in one, the LF in the other
                self.wfile.write(part)
                self.wfile.flush()
        else:
            self.end_headers()
        ws = _Frames(self.rfile, self.wfile, fragment_at=getattr(step, "at", None))
        message = ws.read_message()
        if message is None:
            return "client closed before the request"
        request = json.loads(message)
        server.record(server.frames, request)
        domain, max_tokens = DOMAINS[parts.path]
        problem = frame_problem(request, domain, max_tokens, server.app_id)
        if problem:
            server.record(server.problems, problem[1])
            step = FrameError(*problem)
        if step is None:
            step = Reply(("You said: ", request["payload"]["message"]["text"][-1]["content"]))
        return self._answer(ws, step)

    def _refuse(self, server: SparkStandIn, status: int, message: str) -> str:
        server.record(server.handshakes, status)
        body = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        return f"refused {status}"

    def _answer(self, ws: _Frames, step) -> str:
        if isinstance(step, FrameError):
            ws.send_pieces(step.after, last=False)
            ws.send_json({"header": {"code": step.code, "message": step.message,
                                     "sid": "cht000test", "status": 2}})
            ws.close()
            return "server closed after an error"
        if isinstance(step, Paused):
            ws.send_pieces(step.first, last=False)
            step.resume.wait(30)
            ws.send_pieces(step.rest, last=True)
            ws.close()
            return "server closed after the reply"
        if isinstance(step, Fragmented):
            ws.send_pieces(step.pieces, last=True)
            ws.close()
            return "server closed after the reply"
        if isinstance(step, Reply):
            ws.escaped = step.escaped
            ws.send_pieces(step.reasoning, last=False, field="reasoning_content")
            ws.send_pieces(step.pieces, last=True)
            if step.server_closes:
                ws.close()
                return "server closed after the reply"
            return ("client closed after the reply" if ws.wait_for_client_close()
                    else "client never closed")
        if isinstance(step, Drop):
            ws.send_pieces(step.pieces, last=False)
            return "server dropped mid-reply"
        if isinstance(step, Stall):
            ws.send_pieces(step.pieces, last=False)
        if isinstance(step, Malformed):
            ws.send_pieces(step.pieces, last=False)
            ws.send(0x1, b'{"header": {"code": 0, "status": 1}, "payload": ')
        return "client closed mid-reply" if ws.wait_for_client_close() else "client never closed"


class _Frames:
    """Just enough of RFC 6455 for a server: unmasked frames out, masked frames in."""

    def __init__(self, rfile, wfile, fragment_at: str | None = None):
        self.rfile, self.wfile = rfile, wfile
        self.seq = 0
        self.closed = False
        self.escaped = False
        self.fragment_at = fragment_at  # "crlf" or "utf8": each message in two frames

    def send(self, opcode: int, payload: bytes, final: bool = True) -> None:
        n = len(payload)
        head = bytes([(0x80 if final else 0) | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + n.to_bytes(2, "big")
        else:
            head += bytes([127]) + n.to_bytes(8, "big")
        self.wfile.write(head + payload)

    def send_json(self, data: dict) -> None:
        text = json.dumps(data, ensure_ascii=self.escaped)
        if self.fragment_at == "crlf":
            text = text.replace(", ", ",\r\n", 1)  # JSON whitespace may be CRLF
        payload = text.encode("utf-8")
        if self.fragment_at is None:
            return self.send(0x1, payload)
        if self.fragment_at == "crlf":
            cut = payload.index(b"\r\n") + 1
        else:  # just after the lead byte of the first multi-byte character
            cut = next(i for i, byte in enumerate(payload) if byte >= 0xC0) + 1
        self.send(0x1, payload[:cut], final=False)
        self.send(0x0, payload[cut:])  # the continuation frame

    def send_pieces(self, pieces, last: bool, field: str = "content") -> None:
        for i, piece in enumerate(pieces):
            final = last and i == len(pieces) - 1
            status = 2 if final else (0 if self.seq == 0 else 1)
            choices = {"status": status, "seq": self.seq,
                       "text": [{field: piece, "role": "assistant", "index": 0}]}
            payload: dict = {"choices": choices}
            if final:
                payload["usage"] = {"text": {"question_tokens": 4, "prompt_tokens": 12,
                                             "completion_tokens": 7, "total_tokens": 19}}
            self.send_json({"header": {"code": 0, "message": "Success", "sid": "cht000test",
                                       "status": status}, "payload": payload})
            self.seq += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.send(0x8, (1000).to_bytes(2, "big"))

    def read_frame(self) -> tuple[int, bytes] | None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n >= 126:
            n = int.from_bytes(self.rfile.read(2 if n == 126 else 8), "big")
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(n)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def read_message(self) -> str | None:
        """The next text message, answering pings; None when the client closes."""
        while True:
            frame = self.read_frame()
            if frame is None or frame[0] == 0x8:
                if frame is not None:
                    self.close()
                return None
            if frame[0] == 0x9:
                self.send(0xA, frame[1])
            elif frame[0] == 0x1:
                return frame[1].decode("utf-8")

    def wait_for_client_close(self) -> bool:
        try:
            while self.read_message() is not None:
                pass
        except TimeoutError:
            return False
        except OSError:  # reset: the client went away without a close frame
            pass
        return True
