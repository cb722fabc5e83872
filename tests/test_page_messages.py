"""One message at a time: copy, regenerate, edit and resend, failures with Retry, the numbers
and reasoning under a reply, the model picker and the conversation's settings."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import conversation_json, last_reply, send_message, wait_until  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests


def articles(page):
    return page.locator("#messages > article.message")


def test_copy_a_message_copies_its_markdown(open_page):
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    send_message(page, "Copy *this*")
    page.locator("article.message.user [data-action=copy]").click()
    expect(page.locator("#status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == "Copy *this*"
    last_reply(page).locator("[data-action=copy]").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("**This is the offline demo model.** You wrote:\n\n> Copy *this*")


def test_regenerate_replaces_the_last_reply(open_page):
    page = open_page()
    send_message(page, "First question")
    send_message(page, "Second question")
    first_id = last_reply(page).get_attribute("data-id")
    # Only the last reply offers Regenerate.
    expect(page.locator("[data-action=regenerate]:visible")).to_have_count(1)
    last_reply(page).locator("[data-action=regenerate]").click()
    expect(last_reply(page)).to_have_attribute("aria-busy", "false")
    expect(page.locator("#send")).to_be_visible()
    expect(articles(page)).to_have_count(4)
    expect(last_reply(page)).not_to_have_attribute("data-id", first_id or "")
    expect(last_reply(page).locator(".body")).to_contain_text("Second question")
    saved = conversation_json(page)["messages"]
    assert [m["role"] for m in saved] == ["user", "assistant"] * 2
    assert saved[2]["content"] == "Second question" and saved[3]["id"] != first_id


def test_edit_a_message_and_resend_replaces_the_later_turns(open_page):
    page = open_page()
    send_message(page, "Original question")
    send_message(page, "A follow-up")
    first = page.locator("article.message.user").first
    expect(first).to_have_attribute("data-id", re.compile(r".+"))
    first.locator("[data-action=edit]").click()
    editor = first.locator(".edit-form textarea")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Original question")
    editor.fill("Edited question")
    editor.press("Enter")
    expect(page.locator("#send")).to_be_visible()
    expect(articles(page)).to_have_count(2)
    expect(page.locator("article.message.user .body")).to_have_text("Edited question")
    expect(last_reply(page).locator(".body")).to_contain_text("I saw 0 earlier messages")
    saved = conversation_json(page)["messages"]
    assert [m["content"] for m in saved if m["role"] == "user"] == ["Edited question"]


def test_esc_cancels_an_edit_without_sending(open_page):
    page = open_page()
    send_message(page, "Keep me")
    page.locator("article.message.user [data-action=edit]").click()
    page.locator(".edit-form textarea").fill("Changed my mind")
    page.keyboard.press("Escape")
    expect(page.locator(".edit-form")).to_have_count(0)
    expect(page.locator("article.message.user .body")).to_have_text("Keep me")
    expect(page.locator("article.message.user [data-action=edit]")).to_be_focused()


@pytest.mark.parametrize("model, status, reason", [
    ("openai/midstream-error", "error", "The model service failed."),
    ("openai/cut", "interrupted", "The model service cut the reply off."),
])
def test_a_failed_reply_says_why_and_retry_replaces_it(open_page, model, status, reason):
    page = open_page()
    send_message(page, "Please answer", model=model)
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", status)
    expect(reply.locator(".note")).to_contain_text(reason)
    expect(reply.locator(".body")).to_contain_text("partial" if status == "error" else "half a rep")
    page.select_option("#model", "openai/echo")
    reply.locator("[data-action=retry]").click()
    expect(page.locator("#send")).to_be_visible()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page).locator(".body")).to_have_text("Echo: Please answer [1 messages]")
    expect(articles(page)).to_have_count(2)
    # Saved the same way: a reload shows the reply that replaced the failed one.
    page.reload()
    expect(last_reply(page).locator(".body")).to_have_text("Echo: Please answer [1 messages]")
    expect(page.locator(".note")).to_have_count(0)


def test_a_stopped_reply_says_so_and_offers_retry_also_after_reload(open_page):
    page = open_page()
    send_message(page, "Count slowly", model="openai/slow", wait=False)
    expect(last_reply(page).locator(".body")).to_contain_text("3 ")
    page.keyboard.press("Escape")  # Esc stops, wherever the focus is
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    expect(last_reply(page).locator("[data-action=retry]")).to_be_visible()
    page.reload()
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")
    expect(last_reply(page).locator("[data-action=retry]")).to_be_visible()


def test_reasoning_is_collapsed_above_the_answer_with_the_numbers_below(open_page):
    page = open_page()
    send_message(page, "Think first", model="openai/reasoning")
    reply = last_reply(page)
    reasoning = reply.locator("details.reasoning")
    expect(reasoning).not_to_have_attribute("open", "")
    expect(reasoning.locator("summary")).to_have_text("Reasoning")
    expect(reasoning.locator(".reasoning-text")).to_be_hidden()
    assert reply.evaluate("r => r.querySelector('details').compareDocumentPosition("
                          "r.querySelector('.body')) & Node.DOCUMENT_POSITION_FOLLOWING")
    reasoning.locator("summary").click()
    expect(reasoning.locator(".reasoning-text")).to_have_text("Let me think. Done thinking.")
    expect(reply.locator(".body")).to_have_text("Answer.")
    # Tokens from usage (the stand-in reports 7), time to first token, tokens per second.
    expect(reply.locator(".stats-tokens")).to_have_text("7 tokens")
    expect(reply.locator(".stats-firstToken")).to_have_text(
        re.compile(r"^first token \d+\.\d\d s$"))
    expect(reply.locator(".stats-speed")).to_have_text(re.compile(r"^\d+\.\d tokens/s$"))
    # Reloaded: the saved usage only; timings were never saved.
    page.reload()
    reply = last_reply(page)
    expect(reply.locator("details.reasoning")).not_to_have_attribute("open", "")
    expect(reply.locator(".stats-tokens")).to_have_text("7 tokens")
    expect(reply.locator(".stats-firstToken")).to_have_count(0)


def test_tokens_are_estimated_when_the_provider_reports_no_usage(open_page):
    page = open_page()
    send_message(page, "Guess my length", model="openai/slow", wait=False)
    expect(last_reply(page).locator(".body")).to_contain_text("5 ")
    page.click("#stop")
    expect(last_reply(page).locator(".stats-tokensEstimated")).to_have_text(
        re.compile(r"^≈\d+ tokens$"))


def test_the_model_picker_groups_models_by_provider(open_page):
    page = open_page()
    groups = page.locator("#model optgroup")
    expect(groups).to_have_count(2)
    assert groups.evaluate_all("gs => gs.map(g => g.label)") == ["openai", "demo"]
    expect(groups.nth(0).locator("option")).to_have_count(5)
    expect(page.locator("#model")).to_have_value("demo/offline")  # the server's default


def test_settings_apply_to_the_conversation_and_are_kept(open_page):
    page = open_page()
    page.click("#open-settings")
    dialog = page.locator("#settings-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".settings-new-chat")).to_be_visible()
    dialog.get_by_label("System prompt").fill("Be brief.")
    dialog.get_by_label("Temperature").fill("0.5")
    dialog.get_by_label("Max tokens").fill("100")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#open-settings")).to_have_class(re.compile("customised"))
    send_message(page, "Hello")
    expect(last_reply(page).locator(".body")).to_contain_text(
        "with a system prompt of 9 characters, temperature 0.5, max tokens 100")
    # Kept on the conversation: the next turn uses them without sending them again.
    send_message(page, "Again")
    expect(last_reply(page).locator(".body")).to_contain_text("temperature 0.5, max tokens 100")
    assert conversation_json(page)["settings"] == {"system": "Be brief.", "temperature": 0.5,
                                                   "max_tokens": 100}
    # After a reload the dialog shows them; clearing one stores null.
    page.reload()
    expect(last_reply(page)).to_have_attribute("aria-busy", "false")  # the conversation is open
    page.click("#open-settings")
    expect(dialog.get_by_label("System prompt")).to_have_value("Be brief.")
    expect(dialog.get_by_label("Temperature")).to_have_value("0.5")
    dialog.get_by_label("Temperature").fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#status")).to_have_text("Settings saved.")
    assert conversation_json(page)["settings"]["temperature"] is None
    send_message(page, "Third")
    expect(last_reply(page).locator(".body")).to_contain_text(
        "with a system prompt of 9 characters, max tokens 100.")


def test_settings_out_of_range_are_refused_in_the_dialog(open_page):
    page = open_page()
    page.click("#open-settings")
    dialog = page.locator("#settings-dialog")
    dialog.get_by_label("Temperature").fill("3")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_visible()  # the browser's own validation keeps it open
    assert dialog.get_by_label("Temperature").evaluate("input => !input.validity.valid")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_a_refused_message_gives_its_text_back_with_the_reason(open_page):
    page = open_page()
    # The server refuses before streaming (here: its rate limit), so nothing was saved.
    page.route("**/chat", lambda route: route.fulfill(
        status=429, content_type="application/json", headers={"Retry-After": "30"},
        body='{"error": {"code": "rate_limited", '
             '"message": "Too many messages: try again in 30 s."}}'))
    send_message(page, "Will be refused", wait=False)
    expect(page.locator("#status")).to_have_text("Too many messages: try again in 30 s.")
    expect(page.locator("article.message")).to_have_count(0)
    expect(page.locator("#input")).to_have_value("Will be refused")
    expect(page.locator("#send")).to_be_visible()


def test_a_reply_still_being_written_elsewhere_is_followed_live_and_settles(open_page):
    writer = open_page()
    send_message(writer, "Count for both tabs", model="openai/slow", wait=False)
    expect(last_reply(writer).locator(".body")).to_contain_text("60 ")  # saved at least once
    reader = writer.context.new_page()  # a second tab of the same browser
    errors = []
    reader.on("pageerror", lambda error: errors.append(str(error)))
    reader.goto(writer.url)  # the address names the conversation
    reply = last_reply(reader)
    # Followed live (tests/test_page_resume.py has the details): growing, with Stop, no note.
    expect(reply).to_have_attribute("aria-busy", "true")
    expect(reader.locator("#stop")).to_be_visible()
    expect(reply.locator(".body")).to_contain_text("1 2 3")
    length = len(reply.locator(".body").text_content())
    wait_until(reader, """n => document.querySelector(
        '#messages > article.assistant:last-child .body').textContent.length > n""", length)
    expect(reply.locator(".note")).to_have_count(0)
    expect(reply.locator("[data-action=retry]")).to_have_count(0)
    writer.click("#stop")
    # The reader's stream ends with the saved status: no polling, no reload.
    expect(last_reply(reader).locator(".note")).to_have_text("Stopped.")
    expect(reader.locator("#send")).to_be_visible()
    assert not errors
