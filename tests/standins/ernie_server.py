"""A stand-in for Baidu's Wenxin Workshop v1 on loopback: the OAuth token endpoint and the chat
endpoint, with the rules and error shapes docs/providers/ernie.md describes.

Tests steer it through attributes: ``script`` (answers for the next chat requests, made with the
functions below; an empty script means a normal reply), ``expires_in``, ``expire_tokens()``,
``reject_all_tokens``, ``token_hold``, ``refuse_word``; and read what it saw: ``token_requests``,
``chat_requests`` (endpoint, token and JSON body of each), ``disconnected`` (set when a write to
a client fails, i.e. the client went away mid-reply).
"""
from __future__ import annotations

import collections
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from . import LoopbackHTTPServer

API_KEY = "ErnieTestApiKey4f1a9c"
SECRET_KEY = "ErnieTestSecretKey77d2be"
TOKEN_PATH = "/oauth/2.0/token"
CHAT_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
DEFAULT_REPLY = ("你好，", "我是文心一言。", "很高兴为你服务！")


# Scripted answers -----------------------------------------------------------------------------

def error(code: int, message: str = "scripted error", content_type: str = "application/json",
          status: int = 200) -> dict:
    """Baidu's plain JSON error body; HTTP 200 and application/json unless told otherwise."""
    return {"kind": "error", "code": code, "message": message, "content_type": content_type,
            "status": status}


def reply(*pieces: str, crlf: bool = False, truncated: bool = False,
          escaped: bool = False) -> dict:
    """A whole reply, each event cut in two writes (see ``_split``). ``escaped``: JSON with
    ``\\uXXXX`` escapes for everything beyond ASCII, so a piece may end in half a surrogate
    pair, as JSON allows and some servers send."""
    return {"kind": "reply", "pieces": pieces or DEFAULT_REPLY, "crlf": crlf,
            "truncated": truncated, "escaped": escaped}


def paused(first: tuple[str, ...], rest: tuple[str, ...], resume: threading.Event) -> dict:
    """The ``first`` pieces, then nothing until ``resume`` is set, then ``rest`` and the end."""
    return {"kind": "paused", "first": first, "rest": rest, "resume": resume}


def hold() -> dict:
    """Read the request, then send nothing at all (not even headers) until the client leaves."""
    return {"kind": "hold"}


def malformed(*pieces: str) -> dict:
    """Some pieces, then a data line that is not JSON."""
    return {"kind": "malformed", "pieces": pieces or ("半句",)}


def midstream_error(code: int, message: str, *pieces: str) -> dict:
    """Some pieces, then an ``error_code`` event in the stream, as Baidu ends a failed reply."""
    return {"kind": "midstream_error", "code": code, "message": message,
            "pieces": pieces or ("半句",)}


def refuse() -> dict:
    """need_clear_history: the input was judged unsafe."""
    return {"kind": "refuse"}


def cut(*pieces: str, abrupt: bool = False) -> dict:
    """Some pieces, then the body ends (or the socket drops) without an is_end chunk."""
    return {"kind": "cut", "pieces": pieces or ("半句",), "abrupt": abrupt}


def endless() -> dict:
    """Keeps generating until the client goes away (or ``release`` is set)."""
    return {"kind": "endless"}


def blank() -> dict:
    """Blank lines, 64 KB a write, and nothing else until the client goes away."""
    return {"kind": "blank"}


def stall(*pieces: str) -> dict:
    """Some pieces, then silence until ``release`` is set."""
    return {"kind": "stall", "pieces": pieces or ("开始",)}


def gateway(status: int, bce_code: str, message: str) -> dict:
    """A failure at Baidu's gateway: non-200, reason in X-Bce-Error-* headers, empty body."""
    return {"kind": "gateway", "status": status, "bce_code": bce_code, "message": message}


def check_messages(body: dict, endpoint: str = "completions_pro") -> tuple[int, str] | None:
    """Baidu's rules for the request body; (error_code, error_msg) for the first one broken."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 336003, "messages can not be empty"
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != expected:
            which = "even" if index % 2 == 0 else "odd"
            allowed = "user or function" if index % 2 == 0 else "assistant"
            return 336006, (f"the role of message with {which} index in the messages "
                            f"must be {allowed}")
        if not isinstance(message.get("content"), str) or not message["content"]:
            return 336003, "message content can not be empty"
    if len(messages) % 2 == 0:
        return 336006, "the length of messages must be an odd number"
    if "system" in body and not isinstance(body["system"], str):
        return 336003, "system must be a string"
    temperature = body.get("temperature", 0.8)
    if not isinstance(temperature, (int, float)) or not 0 < temperature <= 1:
        return 336003, "temperature range is (0, 1.0]"
    ceiling = 4096 if endpoint.endswith("128k") else 2048
    max_output = body.get("max_output_tokens", 2)
    if not isinstance(max_output, int) or not 2 <= max_output <= ceiling:
        return 336003, f"max_output_tokens range is [2, {ceiling}]"
    return None


class _Gone(Exception):
    """The client closed its connection while we were writing."""


class ErnieStandIn(LoopbackHTTPServer):
    request_queue_size = 128  # a hundred clients connect at once in the concurrency tests

    def __init__(self, api_key: str = API_KEY, secret_key: str = SECRET_KEY,
                 expires_in: int = 2592000):
        super().__init__(_Handler)
        self.api_key, self.secret_key, self.expires_in = api_key, secret_key, expires_in
        self.lock = threading.Lock()
        self.tokens: dict[str, bool] = {}  # issued token -> still valid
        self.token_requests = 0
        self.chat_requests: list[dict] = []
        self.script: collections.deque[dict] = collections.deque()
        self.reject_all_tokens = False  # answer 111 to every chat request
        self.refuse_word = "违禁"  # any message containing it is refused (need_clear_history)
        self.token_hold = 0.0  # a token request waits this long for an overlapping one
        self._rival_token_request = threading.Event()
        self._token_requests_open = 0
        self.disconnected = threading.Event()
        self.release = threading.Event()

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = False

    @property
    def issued_tokens(self) -> list[str]:
        with self.lock:
            return list(self.tokens)

    def __exit__(self, *exc):
        self.release.set()  # let stalled handlers finish
        return super().__exit__(*exc)

    def handle_error(self, request, client_address):
        pass  # clients that hang up are part of the tests, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked replies, like Baidu's
    server: ErnieStandIn

    def log_message(self, format, *args):
        pass  # the request line holds tokens and keys; keep test output clean too

    def do_POST(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if parts.path == TOKEN_PATH:
                self._token(query)
            elif parts.path.startswith(CHAT_PREFIX):
                self._chat(parts.path[len(CHAT_PREFIX):], query, raw)
            else:
                self._json(404, {"error_code": 3, "error_msg": "Unsupported openapi method"})
        except _Gone:
            self.server.disconnected.set()
            self.close_connection = True

    # token endpoint --------------------------------------------------------------------------

    def _token(self, query: dict) -> None:
        server = self.server
        with server.lock:
            server.token_requests += 1
            number = server.token_requests
            server._token_requests_open += 1
            if server._token_requests_open > 1:
                server._rival_token_request.set()
        try:
            if server.token_hold:  # keep the fetch open so that rivals, if any, overlap it
                server._rival_token_request.wait(server.token_hold)
        finally:
            with server.lock:
                server._token_requests_open -= 1
        if query.get("grant_type") != "client_credentials":
            return self._json(400, {
                "error": "unsupported_grant_type",
                "error_description": "The authorization grant type is not supported"})
        if query.get("client_id") != server.api_key:
            return self._json(401, {"error": "invalid_client",
                                    "error_description": "unknown client id"})
        if query.get("client_secret") != server.secret_key:
            return self._json(401, {"error": "invalid_client",
                                    "error_description": "Client authentication failed"})
        token = f"24.{secrets.token_hex(16)}.{server.expires_in}.{number}-standin"
        with server.lock:
            server.tokens[token] = True
        self._json(200, {"access_token": token, "expires_in": server.expires_in,
                         "refresh_token": "25." + secrets.token_hex(16), "scope": "public",
                         "session_key": secrets.token_hex(8),
                         "session_secret": secrets.token_hex(8)})

    # chat endpoint ---------------------------------------------------------------------------

    def _chat(self, endpoint: str, query: dict, raw: bytes) -> None:
        server = self.server
        try:
            body = json.loads(raw)
        except ValueError:
            return self._json(200, {"error_code": 336002, "error_msg": "Invalid JSON"})
        token = query.get("access_token")
        with server.lock:
            server.chat_requests.append({"endpoint": endpoint, "token": token, "body": body})
            valid = server.tokens.get(token)
        if valid is None:
            return self._json(200, {"error_code": 110,
                                    "error_msg": "Access token invalid or no longer valid"})
        if valid is False or server.reject_all_tokens:
            return self._json(200, {"error_code": 111, "error_msg": "Access token expired"})
        problem = check_messages(body, endpoint)
        if problem:
            return self._json(200, {"error_code": problem[0], "error_msg": problem[1]})
        if server.refuse_word and any(server.refuse_word in m["content"] for m in body["messages"]):
            answer = refuse()  # moderation reads the whole input, history included
        else:
            answer = server.script.popleft() if server.script else reply()
        getattr(self, "_answer_" + answer["kind"])(answer, body)

    def _answer_error(self, answer: dict, body: dict) -> None:
        # "{access_token}" / "{api_key}" in a scripted message: a vendor echoing what it got.
        token = parse_qs(urlsplit(self.path).query).get("access_token", [""])[0]
        message = answer["message"].replace("{access_token}", token)
        payload = {"error_code": answer["code"],
                   "error_msg": message.replace("{api_key}", self.server.api_key)}
        self._json(answer["status"], payload, answer["content_type"])

    def _answer_gateway(self, answer: dict, body: dict) -> None:
        self.send_response(answer["status"])
        self.send_header("X-Bce-Error-Code", answer["bce_code"])
        self.send_header("X-Bce-Error-Message", answer["message"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer_reply(self, answer: dict, body: dict) -> None:
        pieces, newline = answer["pieces"], "\r\n" if answer["crlf"] else "\n"
        prompt = sum(len(m["content"]) for m in body["messages"]) + len(body.get("system", ""))
        self._start_stream()
        for index, piece in enumerate(pieces):
            end = index == len(pieces) - 1
            completion = sum(len(p) for p in pieces[:index + 1])
            event = _event(index, piece, end, newline, is_truncated=end and answer["truncated"],
                           escaped=answer["escaped"],
                           usage={"prompt_tokens": prompt, "completion_tokens": completion,
                                  "total_tokens": prompt + completion})
            for part in _split(event):
                self._write(part)
        self._end_stream()

    def _answer_paused(self, answer: dict, body: dict) -> None:
        self._start_stream()
        pieces = answer["first"] + answer["rest"]
        for index, piece in enumerate(pieces):
            if index == len(answer["first"]):
                answer["resume"].wait(30)
            self._write(_event(index, piece, index == len(pieces) - 1, "\n"))
        self._end_stream()

    def _answer_hold(self, answer: dict, body: dict) -> None:
        self.rfile.read(1)  # returns when the client closes its connection
        self.close_connection = True

    def _answer_malformed(self, answer: dict, body: dict) -> None:
        self._start_stream()
        for index, piece in enumerate(answer["pieces"]):
            self._write(_event(index, piece, False, "\n"))
        self._write(b'data: {"id": "as-standin", "result": \n\n')
        self._end_stream()

    def _answer_midstream_error(self, answer: dict, body: dict) -> None:
        self._start_stream()
        for index, piece in enumerate(answer["pieces"]):
            self._write(_event(index, piece, False, "\n"))
        error = {"error_code": answer["code"], "error_msg": answer["message"]}
        self._write(f"data: {json.dumps(error)}\n\n".encode())
        self._end_stream()

    def _answer_refuse(self, answer: dict, body: dict) -> None:
        self._start_stream()
        self._write(_event(0, "", True, "\n", need_clear_history=True, ban_round=-1))
        self._end_stream()

    def _answer_cut(self, answer: dict, body: dict) -> None:
        self._start_stream()
        for index, piece in enumerate(answer["pieces"]):
            self._write(_event(index, piece, False, "\n"))
        if answer["abrupt"]:
            self.close_connection = True  # no terminating chunk: the socket just closes
        else:
            self._end_stream()

    def _answer_endless(self, answer: dict, body: dict) -> None:
        self._start_stream()
        index = 0
        while not self.server.release.wait(0.01):  # paces the stand-in, not the test
            self._write(_event(index, "字", False, "\n"))
            index += 1
        self._end_stream()

    def _answer_blank(self, answer: dict, body: dict) -> None:
        self._start_stream()
        for _ in range(2_000):  # ~128 MB; the client leaves long before
            self._write(b"\n" * 65_536)
        self._end_stream()

    def _answer_stall(self, answer: dict, body: dict) -> None:
        self._start_stream()
        for index, piece in enumerate(answer["pieces"]):
            self._write(_event(index, piece, False, "\n"))
        self.server.release.wait(30)
        self.close_connection = True

    # writing ---------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict, content_type: str = "application/json") -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write(self, data: bytes) -> None:
        """One HTTP chunk, so the client sees exactly this piece in one read."""
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:  # BrokenPipe, ConnectionReset: the client hung up
            raise _Gone from None

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            raise _Gone from None


def _event(index: int, result: str, is_end: bool, newline: str, escaped: bool = False,
           **extra) -> bytes:
    payload = {"id": "as-standin", "object": "chat.completion", "created": 1700000000,
               "sentence_id": index, "is_end": is_end, "is_truncated": False, "result": result,
               "need_clear_history": False, "finish_reason": "normal"}
    payload.update(extra)
    return f"data: {json.dumps(payload, ensure_ascii=escaped)}{newline}{newline}".encode()


def _split(event: bytes) -> list[bytes]:
    """Two writes: cut inside the first multi-byte character, and between a CR and its LF."""
    cuts = []
    for position, byte in enumerate(event):
        if byte >= 0xC0:  # the lead byte of a multi-byte UTF-8 character
            cuts.append(position + 1)
            break
    crlf = event.find(b"\r\n")
    if crlf >= 0:
        cuts.append(crlf + 1)
    cuts = sorted(set(cuts)) or [len(event) // 2]
    parts, start = [], 0
    for position in cuts:
        parts.append(event[start:position])
        start = position
    parts.append(event[start:])
    return [part for part in parts if part]
