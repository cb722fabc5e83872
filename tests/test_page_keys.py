"""Keyboard: Enter sends, Shift+Enter is a new line, Esc stops, and an input method's Enter
never sends."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, wait_until  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests


def test_enter_sends_and_shift_enter_adds_a_line(open_page):
    page = open_page()
    page.locator("#input").press_sequentially("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(page.locator("article.message")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator("article.message.user .body")).to_have_text("first line\nsecond line")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#input")).to_have_value("")
    expect(page.locator("#input")).to_be_focused()


def test_enter_while_an_input_method_is_composing_does_not_send(open_page):
    page = open_page(locale="zh-CN")
    page.focus("#input")
    # A real composition through the browser's IME interface: pinyin "ni" being typed.
    ime = page.context.new_cdp_session(page)
    ime.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    page.keyboard.press("Enter")  # reaches the page with isComposing: picks, never sends
    ime.send("Input.insertText", {"text": "你好"})  # the candidate is chosen
    expect(page.locator("#input")).to_have_value("你好\n")
    expect(page.locator("article.message")).to_have_count(0)
    page.keyboard.press("Enter")  # composition over: now Enter sends
    expect(page.locator("article.message.user .body")).to_contain_text("你好")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def test_esc_stops_the_reply_from_anywhere_on_the_page(open_page):
    page = open_page()
    page.select_option("#model", "openai/slow")
    page.fill("#input", "Count")
    page.press("#input", "Enter")
    expect(last_reply(page).locator(".body")).to_contain_text("2 ")
    page.locator("#search").focus()
    page.keyboard.press("Escape")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()


def test_esc_while_an_input_method_is_composing_does_not_stop_the_reply(open_page):
    page = open_page(locale="zh-CN")
    page.select_option("#model", "openai/slow")
    page.fill("#input", "Count")
    page.press("#input", "Enter")
    expect(last_reply(page).locator(".body")).to_contain_text("2 ")
    page.focus("#input")
    ime = page.context.new_cdp_session(page)
    ime.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    page.keyboard.press("Escape")  # closes the input method's candidates only
    ime.send("Input.insertText", {"text": "你"})
    length = len(last_reply(page).locator(".body").text_content())
    wait_until(page, """n => [...document.querySelectorAll('article.message.assistant .body')]
        .pop().textContent.length > n""", length)  # still growing: it was not stopped
    expect(last_reply(page)).to_have_attribute("aria-busy", "true")
    page.keyboard.press("Escape")
    expect(last_reply(page).locator(".note")).to_have_text("已停止。")
