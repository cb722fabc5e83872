"""Hostile text in a real Chromium: nothing a model or a user writes runs on the page, and the
page lives within its Content-Security-Policy."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import last_reply, send_message, wait_until_ready
from tests.conftest import AppServer

HOSTILE_ELEMENTS = "script, iframe, object, embed, form, style, img, svg, input, link, meta, base"
USER_PAYLOAD = ('<img src=x onerror="window.__xss=101"> <script>window.__xss=102</script> '
                '[x](javascript:window.__xss=103) <svg onload="window.__xss=104"></svg>')


@pytest.fixture(scope="module")
def hostile_server(upstream, tmp_path_factory):
    server = AppServer({"OPENAI_BASE_URL": upstream.url, "OPENAI_MODELS": "xss,echo",
                        "DEFAULT_MODEL": "openai/xss", "RATE_LIMIT": "4/minute",
                        # every page here is another user from 127.0.0.1: per user only
                        "IP_RATE_LIMIT": "1000/minute"},
                       tmp_path_factory.mktemp("instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture
def guarded_page(browser, hostile_server):
    """A page that records every CSP violation and every script error."""
    context = browser.new_context(base_url=hostile_server.url, locale="en-US")
    context.add_init_script("""
        window.__violations = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));""")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    wait_until_ready(page)
    yield page
    context.close()
    assert not errors, errors


def assert_nothing_ran(page):
    assert page.evaluate("window.__xss") is None
    # Inside the rendered text of every message (the page's own buttons carry SVG icons).
    texts = page.locator("#messages article.message .body")
    assert texts.count() >= 2
    assert texts.locator(HOSTILE_ELEMENTS).count() == 0
    assert page.evaluate("""() => [...document.querySelectorAll('#messages .body *')]
        .flatMap((e) => [...e.attributes])
        .filter((a) => a.name.startsWith('on') || /^\\s*(javascript|data):/i.test(a.value))
        .map((a) => a.name + '=' + a.value)""") == []
    # Nothing even tried: a sanitised page never trips its own policy.
    assert page.evaluate("window.__violations") == []


def test_hostile_model_output_never_runs(guarded_page):
    send_message(guarded_page, "tell me something", model="openai/xss")
    body = last_reply(guarded_page).locator(".body")
    # Every payload arrived (the tries were really made), as harmless text and markup.
    for visible in ("click me", "data link", "math link", "window.__xss = 9"):
        expect(body).to_contain_text(visible)
    assert_nothing_ran(guarded_page)


def test_hostile_user_input_never_runs_in_either_bubble(guarded_page):
    send_message(guarded_page, USER_PAYLOAD, model="openai/echo")
    expect(guarded_page.locator("article.message.user").last).to_contain_text("<script>")
    expect(last_reply(guarded_page)).to_contain_text("Echo:")
    assert_nothing_ran(guarded_page)


def test_hostile_history_reloaded_from_the_server_never_runs(guarded_page):
    send_message(guarded_page, "again", model="openai/xss")
    guarded_page.reload()
    wait_until_ready(guarded_page)
    expect(last_reply(guarded_page).locator(".body")).to_contain_text("math link")
    assert_nothing_ran(guarded_page)


def test_the_page_says_when_the_user_may_try_again(guarded_page):
    # The module's server allows 4 messages a minute per user: this new user sends 5.
    for n in range(4):
        send_message(guarded_page, f"message {n}", model="openai/echo")
    send_message(guarded_page, "one too many", model="openai/echo", wait=False)
    expect(guarded_page.get_by_text("Try again in")).to_be_visible()
    assert_nothing_ran(guarded_page)
