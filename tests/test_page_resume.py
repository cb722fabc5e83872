"""Replies that outlive the page's connection: a reload follows the reply still being written,
a second tab shows it growing too and Stop in either tab stops both, and a broken stream is
resumed after the last event id received, with nothing repeated or missing.

The stand-in's `slow` model writes "0 1 2 3 …" (a number every 20 ms for 40 s): a repeated or
missing piece shows as a break in the count. `paced` writes "0 … 59" in 0.6 s and ends; `hold`
says nothing until the test releases it. A network drop is a real one: the page talks to the
app through a relay that the test cuts (every open connection closed, new ones refused) and
restores; Chromium's offline emulation leaves a stream that is already open untouched.
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import (  # noqa: E402
    SIZES,
    conversation_json,
    expect_being_written,
    last_reply,
    send_message,
    shoot,
    wait_until,
)
from tests.conftest import AppServer  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page: shared by all page tests

LAST_BODY = "#messages > article.assistant:last-child .body"


@pytest.fixture(scope="module")
def page_server(upstream, tmp_path_factory):
    """This module's app (open_page serves it): the stand-in's slow, paced and hold models, two
    workers as in production, so a follower may be served by the worker not writing the reply."""
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-page-test-key-0123456789",
        "OPENAI_MODELS": "slow,paced,hold",
        "DEFAULT_MODEL": "openai/slow",
        "HEARTBEAT_SECONDS": "1",
        "WEB_CONCURRENCY": "2",
    }, tmp_path_factory.mktemp("resume-instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


class Relay:
    """A TCP relay in front of the app, standing for the network: cut() closes every open
    connection and refuses new ones (each refusal sets `refused`), restore() lets them through."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.up = True
        self.refused = threading.Event()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            self.up = False
            self.refused.clear()
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def restore(self) -> None:
        with self.lock:
            self.up = True

    def close(self) -> None:
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                up = self.up
            if not up:
                client.close()
                self.refused.set()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def relay(page_server):
    relay = Relay(page_server.port)
    yield relay
    relay.close()


def body(page):
    return last_reply(page).locator(".body")


def count(text: str) -> int:
    """How far the slow model's count has got in `text`, checking that it is "0 1 2 … n-1"."""
    numbers = text.split()
    assert numbers, "no text"
    assert numbers == [str(i) for i in range(len(numbers))], f"not one unbroken count: {text!r}"
    return len(numbers)


def counted_to(page, n: int, timeout_ms: float = 15_000) -> int:
    """Wait until the last reply shows an unbroken count "0 1 2 …" that has reached `n`, and
    return how far it has got. (Checked in the page, in one go: the reply's element may be
    rendered anew meanwhile, as when a conversation is reopened.)"""
    return wait_until(page, f"""n => {{
        const numbers = (document.querySelector({LAST_BODY!r})?.textContent ?? '').split(/\\s+/)
            .filter(Boolean);
        return numbers.length > n && numbers.every((number, i) => number === String(i))
            && numbers.length;
    }}""", n, timeout_ms)


def saved_reply(page) -> dict:
    return conversation_json(page)["messages"][-1]


def assert_same_as_saved(page, status: str) -> dict:
    """The reply ended as `status`; its text on the page is the saved text, an unbroken count."""
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", status)
    expect(reply).to_have_attribute("aria-busy", "false")  # all of it rendered
    expect(page.locator("#send")).to_be_visible()
    saved = saved_reply(page)
    assert saved["status"] == status
    shown = body(page).text_content()
    assert shown.split() == saved["content"].split()
    if saved["content"]:  # (stopped before the model's first word, it has none)
        count(saved["content"])
    return saved


def test_a_reload_mid_reply_follows_it_live_to_the_end(open_page):
    page = open_page()
    send_message(page, "Count for me", model="openai/slow", wait=False)
    counted_to(page, 30)
    page.reload()
    expect_being_written(page)  # followed like a reply sent from here
    reply = last_reply(page)
    expect(page.locator("article.message.user .body")).to_have_text("Count for me")
    seen = counted_to(page, 60)
    # Still growing, live: what arrives after the text so far continues the count exactly.
    counted_to(page, seen + 50)
    page.click("#stop")
    expect(reply.locator(".note")).to_have_text("Stopped.")
    saved = assert_same_as_saved(page, "cancelled")
    assert count(saved["content"]) > seen + 50


def test_a_reload_while_the_model_is_silent_follows_the_reply_to_complete(open_page,
                                                                          fresh_upstream):
    page = open_page()
    send_message(page, "Wait for it", model="openai/hold", wait=False)
    assert fresh_upstream.held.wait(10)
    expect(page).to_have_url(re.compile(r"#.+"))  # meta has arrived: a reload reopens the chat
    page.reload()
    reply = last_reply(page)
    expect(page.locator("#stop")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "streaming")
    fresh_upstream.release.set()
    expect(reply.locator(".body")).to_have_text("released")
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".note")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("Reply complete.")
    expect(page.locator("#send")).to_be_visible()
    saved = saved_reply(page)
    assert (saved["status"], saved["content"]) == ("complete", "released")


def test_two_tabs_show_the_same_growing_reply_and_stop_in_either_stops_both(open_page):
    first = open_page()
    send_message(first, "Count for two tabs", model="openai/slow", wait=False)
    counted_to(first, 10)
    second = first.context.new_page()  # the same browser, so the same user
    errors: list[str] = []
    second.on("pageerror", lambda error: errors.append(str(error)))
    second.goto(first.url)  # the address names the conversation
    expect(second.locator("#stop")).to_be_visible()
    expect(last_reply(second)).to_have_attribute("aria-busy", "true")
    # Both grow, each an unbroken count.
    mark = counted_to(first, 10) + 60
    for tab in (first, second):
        counted_to(tab, mark)
    # Stop in the tab that did not send it: the server stops the reply, and both streams end
    # with its saved status.
    second.click("#stop")
    for tab in (first, second):
        expect(last_reply(tab).locator(".note")).to_have_text("Stopped.")
        expect(last_reply(tab).locator("[data-action=retry]")).to_be_visible()
        saved = assert_same_as_saved(tab, "cancelled")
    assert body(first).text_content().split() == body(second).text_content().split()
    assert count(saved["content"]) > mark
    assert not errors


def test_stop_before_meta_stops_the_reply_once_its_id_arrives(open_page):
    page = open_page()
    stops: list[tuple[str, str]] = []
    page.on("request", lambda request: request.url.endswith("/stop")
            and stops.append((request.method, request.headers.get("content-type", ""))))
    held = []
    page.route("**/chat", lambda route: held.append(route))  # POST /chat waits: no meta yet
    send_message(page, "Stop me at once", model="openai/slow", wait=False)
    expect(page.locator("#stop")).to_be_visible()
    deadline = time.monotonic() + 10
    while not held:  # Playwright hands the route over while it processes events
        assert time.monotonic() < deadline, "POST /chat never reached the route"
        page.wait_for_timeout(20)
    page.click("#stop")  # nothing to stop by id yet: the page remembers
    assert stops == []
    held[0].continue_()
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    assert stops == [("POST", "application/json")]
    saved = assert_same_as_saved(page, "cancelled")
    assert len(saved["content"].split()) < 100  # stopped as soon as meta came, not 2 s later


def test_a_dropped_network_is_resumed_after_the_last_event_received(open_page, relay):
    page = open_page(base_url=relay.url)
    resumed_from: list[str] = []
    page.on("request", lambda request: "/events" in request.url
            and resumed_from.append(request.headers.get("last-event-id", "")))
    send_message(page, "Count through the outage", model="openai/slow", wait=False)
    counted_to(page, 20)
    relay.cut()  # the stream of POST /chat breaks in the middle
    expect(page.locator("#status")).to_have_text("Connection lost: reconnecting…")
    assert relay.refused.wait(10)  # at least one try to resume found the network still down
    at_outage = counted_to(page, 20)
    relay.restore()
    counted_to(page, at_outage + 50)
    expect(page.locator("#status")).to_have_text("Writing…")
    expect(last_reply(page).locator(".note")).to_have_count(0)
    page.click("#stop")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    assert_same_as_saved(page, "cancelled")
    # Resumed after an event id, never from the start.
    assert resumed_from, "the stream was never followed again"
    assert all(value.isdigit() and int(value) > 1 for value in resumed_from), resumed_from


def sse_events(raw: bytes) -> list[bytes]:
    return [event for event in raw.split(b"\n\n") if event.strip()]


def test_a_stream_that_ends_early_is_resumed_from_its_last_complete_event(open_page):
    page = open_page()
    follows: list[dict] = []
    page.on("request", lambda request: "/events" in request.url and follows.append(request.headers))
    cut = {}

    def deliver_half(route):
        # The whole reply, then only its first 20 events and a piece of the next: the body
        # ends inside an event, without done.
        response = route.fetch()
        events = sse_events(response.body())
        kept = b"\n\n".join(events[:20]) + b"\n\n" + events[20][: len(events[20]) // 2]
        cut["last_id"] = events[19].split(b"\n")[0].removeprefix(b"id: ").decode()
        route.fulfill(response=response, body=kept)

    page.route("**/chat", deliver_half)
    send_message(page, "Count to sixty", model="openai/paced")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    assert [headers.get("last-event-id") for headers in follows] == [cut["last_id"]]
    saved = assert_same_as_saved(page, "complete")
    assert count(saved["content"]) == 60
    expect(reply.locator(".stats-tokens")).to_have_text("60 tokens")  # usage came after the cut


def test_a_network_down_for_good_ends_as_interrupted_with_retry(open_page, relay):
    page = open_page(base_url=relay.url)
    send_message(page, "Count into the void", model="openai/slow", wait=False)
    counted_to(page, 10)
    relay.cut()
    expect(page.locator("#status")).to_have_text("Connection lost: reconnecting…")
    # 0.5 + 1 + 2 + 4 s of tries, then the page gives up.
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "interrupted", timeout=15_000)
    expect(reply.locator(".note")).to_contain_text("The connection to StreamDesk was lost.")
    expect(reply.locator("[data-action=retry]")).to_be_visible()
    expect(page.locator("#send")).to_be_visible()
    count(body(page).text_content())
    # The network is back, and the reply is still being written on the server: Retry cannot
    # replace it (409), so the page shows the conversation as it is and follows the reply.
    relay.restore()
    reply.locator("[data-action=retry]").click()
    expect(page.locator("#status")).to_have_text(re.compile(
        r"^A reply after this message is still being written\. Stop it first"))
    expect(page.locator("#stop")).to_be_visible()
    expect(last_reply(page)).to_have_attribute("data-status", "streaming")
    counted_to(page, 300)  # beyond what the page had before the outage, still unbroken
    page.click("#stop")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    assert_same_as_saved(page, "cancelled")


@pytest.mark.parametrize("size", SIZES)
def test_screenshot_of_a_reply_followed_after_a_reload(open_page, size):
    page = open_page(viewport=SIZES[size])
    send_message(page, "Count while I reload", model="openai/slow", wait=False)
    counted_to(page, 20)
    page.reload()
    expect(page.locator("#stop")).to_be_visible()
    counted_to(page, 120)
    shoot(page, f"resume-{size}.png")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("Escape")  # Esc stops a followed reply too
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    assert_same_as_saved(page, "cancelled")
