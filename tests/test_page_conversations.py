"""The conversation list (newest first, new, switch, rename, delete, search), the phone drawer,
and exporting a conversation."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import conversation_json, last_reply, send_message  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

PHONE = {"width": 390, "height": 844}


def start_conversations(page, *titles):
    """Conversations made through the API with this page's cookie, oldest first."""
    for title in titles:
        response = page.request.post("/chat", data={"message": title},
                                     headers={"Origin": page.url.split("/#")[0].rstrip("/")})
        assert response.ok, response.text()
    page.reload()


def titles(page):
    return page.locator("#conversations li:visible .conversation-open").all_text_contents()


def test_conversations_newest_first_switch_and_new_chat(open_page):
    page = open_page()
    start_conversations(page, "Alpha plan", "Beta notes", "Gamma log")
    expect(page.locator("#conversations li")).to_have_count(3)
    assert titles(page) == ["Gamma log", "Beta notes", "Alpha plan"]

    page.locator(".conversation-open", has_text="Alpha plan").click()
    expect(page.locator("article.message.user .body")).to_have_text("Alpha plan")
    expect(page.locator("#title")).to_have_text("Alpha plan")
    expect(page.locator(".conversation-open[aria-current=page]")).to_have_text("Alpha plan")
    # Writing in it makes it the newest.
    send_message(page, "More about alpha")
    expect(page.locator("#conversations li").first).to_contain_text("Alpha plan")
    assert titles(page) == ["Alpha plan", "Gamma log", "Beta notes"]
    # The address names it: a reload reopens it.
    page.reload()
    expect(page.locator("article.message.user")).to_have_count(2)

    page.click("#new-chat")
    expect(page.locator("article.message")).to_have_count(0)
    expect(page.locator("#title")).to_have_text("New chat")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator(".conversation-open[aria-current]")).to_have_count(0)
    expect(page.locator("#input")).to_be_focused()


def test_a_malformed_fragment_in_the_address_opens_the_chat_as_usual(open_page):
    page = open_page("/#%E0%A4%A")  # not percent-encoding: decoding it threw, nothing loaded
    send_message(page, "still here")
    expect(last_reply(page)).to_contain_text("still here")


def test_search_filters_conversations_by_title(open_page):
    page = open_page()
    start_conversations(page, "Printer on floor 3", "VPN password reset", "Printer toner")
    page.fill("#search", "printer")
    expect(page.locator("#conversations li:visible")).to_have_count(2)
    assert titles(page) == ["Printer toner", "Printer on floor 3"]
    page.fill("#search", "nothing like this")
    expect(page.locator("#conversations li:visible")).to_have_count(0)
    expect(page.locator("#no-conversations")).to_have_text("No conversation matches.")
    page.fill("#search", "")
    expect(page.locator("#conversations li:visible")).to_have_count(3)


def test_rename_a_conversation_in_place(open_page):
    page = open_page()
    start_conversations(page, "Old name")
    page.locator(".conversation-open", has_text="Old name").click()
    page.get_by_role("button", name="Rename “Old name”").click()
    field = page.get_by_role("textbox", name="New title for “Old name”")
    expect(field).to_be_focused()
    field.fill("Better name")
    field.press("Enter")
    expect(page.locator(".conversation-open")).to_have_text("Better name")
    expect(page.locator("#title")).to_have_text("Better name")
    # Esc gives up a rename.
    page.get_by_role("button", name="Rename “Better name”").click()
    page.get_by_role("textbox", name="New title for “Better name”").fill("Discarded")
    page.keyboard.press("Escape")
    page.reload()
    expect(page.locator(".conversation-open")).to_have_text("Better name")


def test_delete_asks_first_and_cancel_keeps_the_conversation(open_page):
    page = open_page()
    start_conversations(page, "Keep this", "Delete this")
    page.locator(".conversation-open", has_text="Delete this").click()
    expect(page.locator("article.message.user .body")).to_have_text("Delete this")
    page.get_by_role("button", name="Delete “Delete this”").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("“Delete this” and all its messages will be deleted.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe default
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#conversations li")).to_have_count(2)

    page.get_by_role("button", name="Delete “Delete this”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#conversations li")).to_have_count(1)
    expect(page.locator("article.message")).to_have_count(0)  # it was open: now a new chat
    listed = page.request.get("/api/conversations").json()["conversations"]
    assert [c["title"] for c in listed] == ["Keep this"]


def test_on_a_phone_the_list_folds_away(open_page):
    page = open_page(viewport=PHONE)
    start_conversations(page, "Phone chat")
    sidebar = page.locator("#sidebar")
    toggle = page.get_by_role("button", name="Show conversations")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    toggle.click()
    page.locator(".conversation-open", has_text="Phone chat").click()  # choosing one folds it
    expect(sidebar).to_be_hidden()
    expect(page.locator("article.message.user .body")).to_have_text("Phone chat")
    toggle.click()
    page.locator("#scrim").click(position={"x": 370, "y": 400})  # tapping beside it folds it
    expect(sidebar).to_be_hidden()


def test_on_a_desktop_the_list_is_always_there(open_page):
    page = open_page()
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.get_by_role("button", name="Show conversations")).to_be_hidden()


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_export_a_conversation(open_page, fmt):
    page = open_page()
    send_message(page, "Export me, 请")
    send_message(page, "Second turn", model="openai/reasoning")
    expect(page.locator("#export")).to_be_visible()
    page.locator("#export summary").click()
    with page.expect_download() as info:
        page.locator(f"#export [data-format={fmt}]").click()
    download = info.value
    text = open(download.path(), encoding="utf-8").read()
    if fmt == "markdown":
        assert download.suggested_filename == "Export me, 请.md"
        assert text.startswith("# Export me, 请\n\n## User\n\nExport me, 请\n\n"
                               "## Assistant (demo/offline)\n\n")
        assert "## User\n\nSecond turn\n\n## Assistant (openai/reasoning)\n\n" in text
        assert "> Let me think. Done thinking.\n\nAnswer." in text
    else:
        assert download.suggested_filename == "Export me, 请.json"
        exported = json.loads(text)
        assert exported == conversation_json(page)
        assert [m["role"] for m in exported["messages"]] == ["user", "assistant"] * 2
        assert exported["messages"][3]["usage"]["completion_tokens"] == 7


def test_export_is_offered_only_for_a_saved_conversation(open_page):
    page = open_page()
    expect(page.locator("#export")).to_be_hidden()
    send_message(page, "Now there is something")
    expect(page.locator("#export")).to_be_visible()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page).to_have_url(re.compile(r"#[0-9a-f]+$"))


def test_switching_away_waits_while_a_reply_is_written(open_page):
    page = open_page()
    start_conversations(page, "Other chat")
    send_message(page, "Count", model="openai/slow", wait=False)
    expect(last_reply(page).locator(".body")).to_contain_text("1 ")
    page.locator(".conversation-open", has_text="Other chat").click()
    expect(page.locator("#status")).to_have_text("A reply is being written: stop it first (Esc).")
    expect(page.locator("article.message.user .body")).to_have_text("Count")
    page.keyboard.press("Escape")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    page.locator(".conversation-open", has_text="Other chat").click()
    expect(page.locator("article.message.user .body")).to_have_text("Other chat")
