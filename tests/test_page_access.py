"""A company deployment's page: the access code asked first, the operator's locked prompt."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, send_message, wait_until_ready  # noqa: E402
from tests.conftest import AppServer  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser: shared by all page tests

CODE = "open-sesame-42"


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    server = AppServer({"ACCESS_CODE": CODE, "LOCK_SYSTEM_PROMPT": "1",
                        "SYSTEM_PROMPT": "You are the helpdesk.", "DEMO_DELAY_MS": "1"},
                       tmp_path_factory.mktemp("locked-instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture
def locked_page(browser, locked_server):
    context = browser.new_context(base_url=locked_server.url, locale="en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    yield page
    context.close()
    assert not errors, errors


def test_the_access_code_is_asked_before_anything_else(locked_page):
    page = locked_page
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Enter the access code")
    expect(page.locator("#model option")).to_have_count(0)  # nothing loaded behind it
    page.keyboard.press("Escape")  # it cannot be dismissed
    expect(dialog).to_be_visible()
    field = dialog.get_by_label("Access code")
    expect(field).to_be_focused()
    field.fill("wrong guess")
    field.press("Enter")
    expect(dialog.get_by_role("alert")).to_have_text("That access code is not right.")
    field.fill(CODE)
    field.press("Enter")
    expect(dialog).to_be_hidden()
    wait_until_ready(page)
    send_message(page, "Signed in")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.reload()  # the browser stays signed in
    wait_until_ready(page)
    expect(dialog).to_be_hidden()


def test_a_locked_system_prompt_is_not_offered(locked_page):
    page = locked_page
    page.get_by_label("Access code").fill(CODE)
    page.get_by_label("Access code").press("Enter")
    wait_until_ready(page)
    page.click("#open-settings")
    settings = page.locator("#settings-dialog")
    expect(settings.get_by_label("System prompt")).to_be_hidden()
    expect(settings).to_contain_text("The system prompt is set by the administrator.")
    expect(settings.get_by_label("Temperature")).to_be_focused()
    settings.get_by_label("Temperature").fill("0.2")
    settings.get_by_role("button", name="Save").click()
    expect(settings).to_be_hidden()
    send_message(page, "Hello")  # no user system prompt is sent: the server would refuse it
    expect(last_reply(page).locator(".body")).to_contain_text("temperature 0.2")
