"""The whole path in a real Chromium: send, watch the reply grow, stop, reload, reopen."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import wait_until  # noqa: E402
from tests.conftest import AppServer  # noqa: E402


@pytest.fixture(scope="module")
def slow_demo_server(tmp_path_factory):
    # 20 ms a word: slow enough to watch the reply grow and to stop it half-way.
    server = AppServer({"DEMO_DELAY_MS": "20", "HEARTBEAT_SECONDS": "1"},
                       tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


def assistant_text(page):
    return page.locator("article.message.assistant .body").last


def test_send_watch_the_reply_grow_stop_reload_and_reopen(page, slow_demo_server):
    page.goto(slow_demo_server.url)
    expect(page.locator("#model option")).to_have_count(1)
    page.fill("#input", "Hello from Chromium 你好")
    page.press("#input", "Enter")

    expect(page.locator("article.message.user .body")).to_have_text("Hello from Chromium 你好")
    reply = assistant_text(page)
    expect(reply).to_contain_text("offline demo model")
    seen = len(reply.text_content())
    wait_until(page, "n => document.querySelector('article.message.assistant .body')"
                     ".textContent.length > n", seen)
    expect(page.locator("#stop")).to_be_visible()

    page.click("#stop")
    expect(page.locator("article.message.assistant .note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    stopped_at = reply.text_content()
    assert "The README lists every variable." not in stopped_at  # it really stopped early

    page.reload()
    entry = page.locator("#conversations button", has_text="Hello from Chromium 你好")
    expect(entry).to_have_count(1)
    entry.click()
    expect(page.locator("article.message.user .body")).to_have_text("Hello from Chromium 你好")
    expect(page.locator("article.message.assistant .note")).to_have_text("Stopped.")
    # aria-busy="false": the reply has been rendered.
    expect(page.locator("article.message.assistant")).to_have_attribute("aria-busy", "false")
    saved = assistant_text(page).text_content()
    assert saved.startswith(stopped_at[: len(stopped_at) // 2])
    assert len(saved) >= len(stopped_at) - 40


def test_shift_enter_is_a_newline_and_enter_while_composing_does_not_send(page, slow_demo_server):
    page.goto(slow_demo_server.url)
    page.fill("#input", "line one")
    page.press("#input", "Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#input") == "line one\nline two"
    # An IME candidate being picked with Enter: isComposing is true, nothing is sent.
    page.evaluate("""() => document.querySelector('#input').dispatchEvent(
        new KeyboardEvent('keydown', {key: 'Enter', isComposing: true, bubbles: true}))""")
    expect(page.locator("article.message")).to_have_count(0)
    page.press("#input", "Enter")
    expect(page.locator("article.message.user .body")).to_have_text("line one\nline two")
    expect(page.locator("article.message.assistant .note")).to_have_count(0)
    expect(page.locator("#send")).to_be_visible(timeout=15000)


def test_model_text_is_never_html(page, slow_demo_server):
    page.goto(slow_demo_server.url)
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    page.fill("#input", payload)
    page.press("#input", "Enter")
    expect(page.locator("#send")).to_be_visible(timeout=15000)
    # The demo quotes the message back: both bubbles hold it as text, no element was made.
    expect(page.locator("article.message.assistant .body")).to_contain_text("<img src=x")
    assert page.locator("article.message img, article.message script").count() == 0
    assert page.evaluate("window.pwned") is None
