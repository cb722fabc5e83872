"""The page and the limits on replies it follows and stops. Reloading never reaches the cap on
followers (MAX_FOLLOWERS_PER_USER), and a page refused as one follower too many says so instead
of trying again and again (the reply, still being written, is not marked as cut off). A Stop
past STOP_RATE_LIMIT says so and leaves the reply shown as it is, not as stopped.

One worker, since the cap is counted by each worker, and heartbeats 15 s apart, so only the
watch on a follower's socket can tell the server at once that a reloaded page left.
"""
from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import expect_being_written, last_reply, send_message  # noqa: E402
from tests.conftest import AppServer, EventStream  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page

CAP = 2


@pytest.fixture(scope="module")
def page_server(upstream, tmp_path_factory):
    """This module's app (open_page serves it)."""
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-page-follow-limit-test",
        "OPENAI_MODELS": "hold", "DEFAULT_MODEL": "openai/hold",
        "WEB_CONCURRENCY": "1", "HEARTBEAT_SECONDS": "15",
        "MAX_FOLLOWERS_PER_USER": str(CAP), "STOP_RATE_LIMIT": "1/minute",
    }, tmp_path_factory.mktemp("reply-limits-instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_reloads_never_reach_the_cap_and_a_refused_page_says_why(open_page, page_server,
                                                                 fresh_upstream):
    page = open_page()
    send_message(page, "Wait for it", wait=False)
    assert fresh_upstream.held.wait(10)
    expect(page).to_have_url(re.compile(r"#.+"))  # meta has arrived: a reload reopens the chat
    for _ in range(CAP + 2):  # each reload follows the reply anew, the model silent
        page.reload()
        expect_being_written(page)
    # The tab goes elsewhere, and other tabs of the same user (here, with the page's cookie)
    # take the whole cap meanwhile.
    message_id = last_reply(page).get_attribute("data-id")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    conversation = page.url
    page.goto("about:blank")
    with requests.Session() as tabs:
        tabs.cookies.update(cookies)
        url = f"{page_server.url}/api/messages/{message_id}/events"
        others = [admitted(tabs, url) for _ in range(CAP)]
        page.goto(conversation)  # back: its follower is one too many
        reply = last_reply(page)
        note = reply.locator(".note")
        expect(note).to_have_text("Still being written, but open in too many tabs or windows "
                                  "to show here: close some, then reload.")
        expect(reply).to_have_attribute("data-status", "streaming")  # not "cut off"
        expect(reply).to_have_attribute("aria-busy", "false")
        expect(reply.locator("button.retry")).to_have_count(0)
        expect(page.locator("#send")).to_be_visible()
        expect(page.locator("#status")).not_to_have_text("Connection lost: reconnecting…")
        others[0].response.close()  # a tab closes: a reload follows the reply again
        page.reload()
        expect_being_written(page)
        for other in others[1:]:
            other.response.close()


def admitted(user, url) -> EventStream:
    """A follower of `url`, once the server has let one in (a tab that has just left may still
    hold its place for a moment)."""
    deadline = time.monotonic() + 5
    while (response := user.get(url, stream=True, timeout=30)).status_code == 429:
        response.close()
        assert time.monotonic() < deadline, "no place among the followers came free"
        time.sleep(0.05)
    assert response.status_code == 200, response.text
    return EventStream(response)


def test_a_stop_past_the_rate_limit_says_so_and_the_reply_goes_on(open_page, fresh_upstream):
    page = open_page()
    send_message(page, "First", wait=False)
    assert fresh_upstream.held.wait(10)
    page.click("#stop")
    expect(last_reply(page)).to_have_attribute("data-status", "cancelled")
    send_message(page, "Second", wait=False)
    expect(page).to_have_url(re.compile(r"#.+"))
    expect(last_reply(page)).to_have_attribute("data-id", re.compile(".+"))  # meta has come
    page.click("#stop")  # one stop a minute: this one is refused
    expect(page.locator("#status")).to_contain_text("Too many requests")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")  # not shown as stopped
    expect(page.locator("#stop")).to_be_visible()
    fresh_upstream.release.set()
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".body")).to_have_text("released")
