"""Auto-scroll follows a growing reply only while the reader is at the bottom."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, send_message, wait_until  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

GAP = ("() => { const m = document.getElementById('messages'); "
       "return m.scrollHeight - m.scrollTop - m.clientHeight; }")
GROWS_BY = """([px, from]) => document.getElementById('messages').scrollHeight > from + px"""


def scroll_height(page) -> int:
    return page.evaluate("document.getElementById('messages').scrollHeight")


def test_auto_scroll_follows_only_at_the_bottom_with_a_jump_to_latest(open_page):
    page = open_page(viewport={"width": 1280, "height": 600})
    jump = page.get_by_role("button", name="Jump to latest")
    # A long question fills the screen; the slow model's answer then grows below it.
    question = "\n".join(f"line {n}" for n in range(60))
    send_message(page, question, model="openai/slow", wait=False)
    expect(last_reply(page).locator(".body")).to_contain_text("1 ")

    # At the bottom: it follows.
    wait_until(page, GROWS_BY, [40, scroll_height(page)])
    assert page.evaluate(GAP) <= 48
    expect(jump).to_be_hidden()

    # The reader scrolls up to read: it stays where they are, and offers the way back.
    page.locator("#messages").hover()
    page.mouse.wheel(0, -600)
    wait_until(page, f"() => ({GAP})() > 300")
    expect(jump).to_be_visible()
    top = page.evaluate("document.getElementById('messages').scrollTop")
    wait_until(page, GROWS_BY, [60, scroll_height(page)])
    assert page.evaluate("document.getElementById('messages').scrollTop") == top
    expect(jump).to_be_visible()

    # Jump to latest: back at the bottom, and following again.
    jump.click()
    expect(jump).to_be_hidden()
    assert page.evaluate(GAP) <= 48
    wait_until(page, GROWS_BY, [40, scroll_height(page)])
    assert page.evaluate(GAP) <= 48
    expect(page.locator("#messages")).to_be_focused()  # keyboard focus was not lost

    page.click("#stop")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")


def test_sending_scrolls_to_the_bottom_even_after_reading_up(open_page):
    page = open_page(viewport={"width": 1280, "height": 600})
    send_message(page, "\n".join(f"row {n}" for n in range(80)), model="openai/echo")
    page.evaluate("document.getElementById('messages').scrollTop = 0")
    expect(page.get_by_role("button", name="Jump to latest")).to_be_visible()
    send_message(page, "And now?")
    assert page.evaluate(GAP) <= 48
