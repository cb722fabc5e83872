"""Chinese and English, dark and light: chosen from the browser and the system, switched and
remembered."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, send_message, wait_until_ready  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

WHITE = "rgb(255, 255, 255)"
DARK = "rgb(21, 23, 27)"


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_chinese_browser_gets_the_chinese_page(open_page):
    page = open_page(locale="zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#new-chat")).to_have_text("新对话")
    expect(page.locator("#input")).to_have_attribute(
        "placeholder", "给模型发消息。Enter 发送，Shift+Enter 换行。")
    expect(page.get_by_role("button", name="设置")).to_be_visible()
    expect(page.locator("#language")).to_have_value("zh-CN")
    send_message(page, "你好")
    expect(last_reply(page).locator("[data-action=copy]")).to_have_attribute("aria-label", "复制")
    expect(last_reply(page).locator(".stats-tokens")).to_contain_text("个 token")


def test_the_language_switch_translates_everything_and_is_remembered(open_page):
    page = open_page(locale="en-US")
    expect(page.locator("#new-chat")).to_have_text("New chat")
    send_message(page, "Hello")
    page.select_option("#language", "zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#new-chat")).to_have_text("新对话")
    # What the page made before the switch follows it too.
    expect(last_reply(page).locator("[data-action=regenerate]")).to_have_attribute(
        "aria-label", "重新生成")
    expect(page.locator(".conversation-open + .icon-button")).to_have_attribute(
        "aria-label", "重命名“Hello”")
    page.reload()
    wait_until_ready(page)
    expect(page.locator("#new-chat")).to_have_text("新对话")
    expect(page.locator("#language")).to_have_value("zh-CN")
    page.select_option("#language", "en")
    page.reload()
    expect(page.locator("#new-chat")).to_have_text("New chat")


def test_the_theme_follows_the_system(open_page):
    dark = open_page(color_scheme="dark")
    expect(dark.locator("#theme")).to_have_value("system")
    assert background(dark) == DARK
    light = open_page(color_scheme="light")
    assert background(light) == WHITE


@pytest.mark.parametrize("system, chosen, colour",
                         [("dark", "light", WHITE), ("light", "dark", DARK)])
def test_the_theme_switch_overrides_the_system_and_is_remembered(open_page, system, chosen, colour):
    page = open_page(color_scheme=system)
    page.select_option("#theme", chosen)
    expect(page.locator("html")).to_have_attribute("data-theme", chosen)
    assert background(page) == colour
    page.reload()
    # boot.js applies it before the first paint, before any module runs.
    assert page.evaluate("document.documentElement.dataset.theme") == chosen
    expect(page.locator("#theme")).to_have_value(chosen)
    assert background(page) == colour
    page.select_option("#theme", "system")
    page.reload()
    expect(page.locator("html")).not_to_have_attribute("data-theme", chosen)
    assert background(page) == (DARK if system == "dark" else WHITE)
