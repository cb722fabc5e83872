"""The naive relay, written the way source article 003 does it, for comparison only.

What it keeps from the article: Flask's development server (threaded, Flask's default: one
OS thread per connection), a new HTTP client (``requests.Session``) for every /chat, the
upstream read with ``iter_lines(decode_unicode=True, chunk_size=1)`` (one byte per read), each
``data:`` line parsed and re-encoded as an OpenAI-shaped event with ``json.dumps``, and the
client closed in ``finally``.

One thing it does better than the article, so that the comparison flatters it rather than
the other way round: the article's ``stream_chat`` appends every line to a buffer and only
processes the buffer when it contains a newline, which ``iter_lines`` never yields -- so the
article's relay sends the whole reply at the end. Here each ``data:`` line is relayed as soon
as it is read.

Environment: NAIVE_UPSTREAM (base URL ending in /v1), NAIVE_PORT.
"""
from __future__ import annotations

import json
import logging
import os

import requests
from flask import Flask, Response, request

UPSTREAM = os.environ.get("NAIVE_UPSTREAM", "http://127.0.0.1:8000/v1")
app = Flask(__name__)


class GLMStreamingClient:
    """The article's client: a fresh Session per conversation turn."""

    def __init__(self, base_url: str = UPSTREAM):
        self.api_url = f"{base_url}/chat/completions"
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json",
                                     "Accept": "text/event-stream"})

    def stream_chat(self, messages: list, model: str = "bench", timeout: int = 60):
        payload = {"model": model, "messages": messages, "stream": True}
        response = self.session.post(self.api_url, json=payload, stream=True, timeout=timeout)
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True, chunk_size=1):
            if line and line.startswith("data: "):
                data_str = line[6:]
                if data_str == "[DONE]":
                    return
                data = json.loads(data_str)
                if "choices" in data and data["choices"]:
                    content = data["choices"][0].get("delta", {}).get("content", "")
                    if content:
                        yield content

    def close(self):
        self.session.close()


@app.route("/healthz")
def healthz():
    return {"status": "ok"}


@app.route("/chat", methods=["POST"])
def chat():
    data = request.json
    user_message = data.get("message", "")
    client = GLMStreamingClient()
    messages = [{"role": "user", "content": user_message}]

    def generate():
        try:
            for chunk in client.stream_chat(messages):
                data = {"choices": [{"delta": {"content": chunk}, "finish_reason": None}]}
                yield f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            client.close()

    return Response(generate(), mimetype="text/event-stream")


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per stream
    # The article runs app.run(debug=True); the debugger and reloader are left out here.
    app.run(host="127.0.0.1", port=int(os.environ.get("NAIVE_PORT", "5001")), threaded=True)
