"""Greeting, starters and feedback in the page (#17): an empty chat shows the selected model's
greeting and starter questions (a click sends one), and every finished reply can be rated 👍 or
👎, with an optional comment after 👎, saved on the server and shown again when the conversation
is opened."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import (  # noqa: E402
    SIZES,
    Users,
    conversation_json,
    last_reply,
    send_message,
    shoot,
    wait_until_ready,
)
from tests.conftest import AppServer  # noqa: E402
from tests.test_page_a11y import axe_violations, focused, tab_to  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser: shared by all page tests

# Operator text: shown as text, its line break kept, never as markup.
GREETING = '你好！I am the IT helpdesk.\nAsk me <b>anything</b> <img src=x onerror="window.__x=1">'
STARTERS = ["How do I reset my password?", "VPN does not connect", "打印机卡纸了怎么办？"]
PRINTER_GREETING = "Printers only, please."
PRINTER_STARTERS = ["Paper jam on floor 3"]
CONFIG = """
[providers.helpdesk]
type = "openai"
base_url = {base_url}
api_key = "sk-helpdesk-test-key-0123456789"
greeting = {greeting}
starters = {starters}

[[providers.helpdesk.models]]
name = "echo"
label = "Helpdesk"

[[providers.helpdesk.models]]
name = "printer"
label = "Printer desk"
greeting = {printer_greeting}
starters = {printer_starters}

[[providers.helpdesk.models]]
name = "midstream-error"

[[providers.helpdesk.models]]
name = "status-400"

[[providers.helpdesk.models]]
name = "slow"
"""
GOOD, BAD = "Good reply", "Bad reply"
# The Chinese fonts of the page's font stack (static/style.css).
CJK_FONTS = {"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC",
             "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei"}
COMMENT_LABEL = "What was wrong with this reply? (optional)"


@pytest.fixture(scope="module")
def helpdesk_server(upstream, tmp_path_factory):
    """The app with a configured helpdesk: a greeting and starters for its models (any model
    name the stand-in does not know echoes), and the demo model, which has neither."""
    instance = tmp_path_factory.mktemp("helpdesk-instance")
    config = instance / "streamdesk.toml"
    config.write_text(CONFIG.format(
        base_url=json.dumps(upstream.url), greeting=json.dumps(GREETING),
        starters=json.dumps(STARTERS), printer_greeting=json.dumps(PRINTER_GREETING),
        printer_starters=json.dumps(PRINTER_STARTERS)), encoding="utf-8")
    server = AppServer({"STREAMDESK_CONFIG": str(config), "DEFAULT_MODEL": "helpdesk/echo",
                        "DEMO_DELAY_MS": "1", "HEARTBEAT_SECONDS": "1"}, instance).start()
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture
def open_helpdesk(browser, helpdesk_server):
    """open_helpdesk(**context_options) -> the page, in a new context (a new user)."""
    users = Users(browser)

    def open_(**options):
        page = users.open(helpdesk_server, **options)
        wait_until_ready(page)
        return page

    yield open_
    users.close()


def starters(page):
    return page.get_by_role("group", name="Suggested questions").get_by_role("button")


def feedback_put(page):
    """Wait for the next PUT of a reply's feedback (use as a context manager)."""
    return page.expect_response(lambda r: r.url.endswith("/feedback")
                                and r.request.method == "PUT")


def saved_feedback(page) -> dict | None:
    (reply,) = [m for m in conversation_json(page)["messages"] if m["role"] == "assistant"]
    return reply["feedback"]



# -- greeting and starters ----------------------------------------------------------------------

def test_an_empty_chat_shows_the_models_greeting_and_starters(open_helpdesk):
    page = open_helpdesk()
    greeting = page.locator("#empty .greeting")
    expect(greeting).to_have_text(GREETING)  # markup in it is text
    expect(page.locator("#empty b, #empty img")).to_have_count(0)
    assert "\n" in greeting.inner_text()  # its line break is shown
    assert page.evaluate("window.__x") is None
    expect(page.get_by_text("Start a conversation")).to_be_hidden()
    expect(starters(page)).to_have_text(STARTERS)

    # Another model of the picker: its own greeting and starters.
    page.select_option("#model", "helpdesk/printer")
    expect(greeting).to_have_text(PRINTER_GREETING)
    expect(starters(page)).to_have_text(PRINTER_STARTERS)
    # A model with neither: the page's own empty chat, as before.
    page.select_option("#model", "demo/offline")
    expect(greeting).to_be_hidden()
    expect(page.get_by_text("Start a conversation")).to_be_visible()
    expect(page.get_by_role("group", name="Suggested questions")).to_be_hidden()
    page.select_option("#model", "helpdesk/echo")
    expect(greeting).to_have_text(GREETING)
    expect(starters(page)).to_have_count(len(STARTERS))


def test_a_starter_is_sent_as_the_users_message(open_helpdesk):
    page = open_helpdesk()
    page.select_option("#model", "helpdesk/printer")
    starters(page).get_by_text("Paper jam on floor 3").click()
    expect(page.locator("article.message.user .body")).to_have_text("Paper jam on floor 3")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(last_reply(page).locator(".body")).to_contain_text("Echo: Paper jam on floor 3")
    expect(page.locator("#input")).to_be_focused()
    # Gone once the chat has a message, and after a reload of the conversation.
    expect(page.locator("#empty")).to_be_hidden()
    expect(page.get_by_role("group", name="Suggested questions")).to_be_hidden()
    saved = conversation_json(page)
    assert saved["model"] == "helpdesk/printer"
    assert [m["content"] for m in saved["messages"] if m["role"] == "user"] == [
        "Paper jam on floor 3"]
    page.reload()
    wait_until_ready(page)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#empty")).to_be_hidden()
    # A new chat greets again, for the model selected.
    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#empty .greeting")).to_have_text(PRINTER_GREETING)
    expect(starters(page)).to_have_text(PRINTER_STARTERS)


# -- feedback -----------------------------------------------------------------------------------

def test_a_rating_is_saved_changed_with_a_comment_and_cleared(open_helpdesk):
    page = open_helpdesk()
    send_message(page, "Is the printer fixed?")
    reply = last_reply(page)
    good, bad = reply.get_by_role("button", name=GOOD), reply.get_by_role("button", name=BAD)
    expect(good).to_have_attribute("aria-pressed", "false")
    expect(bad).to_have_attribute("aria-pressed", "false")

    # 👍 right after the reply streamed in: its id came with the stream.
    with feedback_put(page) as put:
        good.click()
    assert put.value.status == 200 and put.value.request.post_data_json == {"rating": "up"}
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#status")).to_have_text("Thanks for your feedback.")
    expect(reply.get_by_label(COMMENT_LABEL)).to_have_count(0)  # a comment is asked after 👎 only

    # Still pressed when the conversation is opened again.
    page.reload()
    wait_until_ready(page)
    reply = last_reply(page)
    good, bad = reply.get_by_role("button", name=GOOD), reply.get_by_role("button", name=BAD)
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(bad).to_have_attribute("aria-pressed", "false")

    # 👎 instead, with a comment.
    bad.click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(good).to_have_attribute("aria-pressed", "false")
    comment = reply.get_by_label(COMMENT_LABEL)
    expect(comment).to_be_focused()
    assert saved_feedback(page)["rating"] == "down"  # saved before any comment
    comment.fill("x" * 1200)
    expect(comment).to_have_value("x" * 1000)  # the most the server keeps
    comment.fill("It <b>ignored</b> floor 3.")
    with feedback_put(page) as put:
        reply.get_by_role("button", name="Send").click()
    assert put.value.status == 200
    assert put.value.request.post_data_json == {"rating": "down",
                                                "comment": "It <b>ignored</b> floor 3."}
    expect(comment).to_have_count(0)
    expect(bad).to_be_focused()
    expect(page.locator("#status")).to_have_text("Thanks: your comment was sent.")
    assert saved_feedback(page) == {"rating": "down", "comment": "It <b>ignored</b> floor 3."}

    # Opened from the list after another chat: still 👎.
    page.get_by_role("button", name="New chat").click()
    page.locator(".conversation-open").first.click()
    expect(last_reply(page).get_by_role("button", name=BAD)).to_have_attribute(
        "aria-pressed", "true")

    # A click on the pressed rating clears it.
    reply = last_reply(page)
    with feedback_put(page) as put:
        reply.get_by_role("button", name=BAD).click()
    assert put.value.request.post_data_json == {"rating": None}
    expect(reply.get_by_role("button", name=BAD)).to_have_attribute("aria-pressed", "false")
    expect(reply.get_by_role("button", name=GOOD)).to_have_attribute("aria-pressed", "false")
    expect(reply.get_by_label(COMMENT_LABEL)).to_have_count(0)
    expect(page.locator("#status")).to_have_text("Rating removed.")
    assert (saved_feedback(page) or {}).get("rating") is None


def test_finished_replies_with_text_can_be_rated_and_no_other(open_helpdesk):
    page = open_helpdesk()
    # Failed before any text: nothing to rate (Retry is offered).
    send_message(page, "No answer", model="helpdesk/status-400")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.get_by_role("button", name="Retry")).to_be_visible()
    expect(reply.get_by_role("group", name="Rate this reply")).to_be_hidden()
    # Failed after some text: that can be rated (a 👎 is what it may deserve).
    send_message(page, "Fail after a word", model="helpdesk/midstream-error")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "error")
    with feedback_put(page) as put:
        reply.get_by_role("button", name=BAD).click()
    assert put.value.status == 200, put.value.text()
    expect(reply.get_by_role("button", name=BAD)).to_have_attribute("aria-pressed", "true")
    # Being written: no rating; stopped with some text: rated like any other.
    send_message(page, "Count", model="helpdesk/slow", wait=False)
    writing = last_reply(page)
    expect(writing.locator(".body")).to_contain_text("2 ")
    expect(writing.get_by_role("group", name="Rate this reply")).to_be_hidden()
    page.get_by_role("button", name="Stop").click()
    expect(writing).to_have_attribute("data-status", "cancelled")
    with feedback_put(page) as put:
        writing.get_by_role("button", name=GOOD).click()
    assert put.value.status == 200, put.value.text()
    expect(writing.get_by_role("button", name=GOOD)).to_have_attribute("aria-pressed", "true")
    ratings = [(m["status"], (m["feedback"] or {}).get("rating"))
               for m in conversation_json(page)["messages"] if m["role"] == "assistant"]
    assert ratings == [("error", None), ("error", "down"), ("cancelled", "up")]


def test_feedback_from_the_keyboard_alone(open_helpdesk):
    page = open_helpdesk()
    # A starter, from the keyboard.
    tab_to(page, lambda e: e["text"] == "VPN does not connect")
    page.keyboard.press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#input")).to_be_focused()
    reply = last_reply(page)
    bad = reply.get_by_role("button", name=BAD)

    # 👎 opens the comment field; Esc closes it, the 👎 stays and focus goes back to it.
    tab_to(page, lambda e: e["text"] == BAD, key="Shift+Tab")
    page.keyboard.press("Enter")
    comment = reply.get_by_label(COMMENT_LABEL)
    expect(comment).to_be_focused()
    page.keyboard.type("Too vague")
    page.keyboard.press("Escape")
    expect(comment).to_have_count(0)
    expect(bad).to_be_focused()
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")  # Esc stopped nothing
    assert saved_feedback(page) == {"rating": "down", "comment": None}

    # Space on the pressed 👎 clears it; Enter presses it again, and Enter sends the comment.
    with feedback_put(page):
        page.keyboard.press("Space")
    expect(bad).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Enter")
    expect(comment).to_be_focused()
    page.keyboard.type("Too vague. Which VPN?")
    with feedback_put(page) as put:
        page.keyboard.press("Enter")
    assert put.value.status == 200
    expect(comment).to_have_count(0)
    expect(bad).to_be_focused()
    assert saved_feedback(page) == {"rating": "down", "comment": "Too vague. Which VPN?"}

    # 👍 is the next stop, and replaces the 👎.
    page.keyboard.press("Shift+Tab")
    assert focused(page)["text"] == GOOD
    with feedback_put(page):
        page.keyboard.press("Enter")
    expect(reply.get_by_role("button", name=GOOD)).to_have_attribute("aria-pressed", "true")
    expect(bad).to_have_attribute("aria-pressed", "false")
    assert saved_feedback(page)["rating"] == "up"


# -- Chinese, screenshots, axe-core --------------------------------------------------------------

def rendered_fonts(page, selector: str) -> list[str]:
    """The fonts Chromium really drew `selector`'s text with (DevTools' "Rendered Fonts")."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return [font["familyName"] for font in fonts]


@pytest.mark.parametrize(("size", "language"), [("desktop", "en"), ("phone", "zh"),
                                                ("desktop", "zh"), ("phone", "en")])
def test_screenshots_and_axe_with_greeting_and_comment_field(open_helpdesk, size, language):
    zh = language == "zh"
    page = open_helpdesk(viewport=SIZES[size], locale="zh-CN" if zh else "en-US",
                         reduced_motion="reduce")
    group = page.get_by_role("group", name="推荐问题" if zh else "Suggested questions")
    expect(group.get_by_role("button")).to_have_text(STARTERS)
    # Chinese is drawn with a Chinese font, not boxes or a Japanese fallback.
    fonts = rendered_fonts(page, "#empty .greeting")
    assert set(fonts) & CJK_FONTS, (
        f"Chinese drawn with {fonts}: install fonts-noto-cjk (make os-packages)")
    width = SIZES[size]["width"]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    for button in group.get_by_role("button").all():
        box = button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    shoot(page, f"starters-{size}-{language}.png")
    assert axe_violations(page) == []

    group.get_by_role("button").last.click()
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    reply.get_by_role("button", name="坏回复" if zh else BAD).click()
    comment = reply.get_by_label("这条回复有什么问题？（选填）" if zh else COMMENT_LABEL)
    expect(comment).to_be_focused()
    page.keyboard.type("没有回答我的问题。" if zh else "It did not answer my question.")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    shoot(page, f"feedback-{size}-{language}.png")
    assert axe_violations(page) == []
