"""One turn from the page's side: the ids of its messages arrive in `meta`, so the page never
fetches the whole conversation again after a reply; the reply's final status is the one `done`
carries."""
from __future__ import annotations

import json
import re
import time
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import conversation_json, last_reply, send_message  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

CONVERSATION = re.compile(r"^/api/conversations/[^/]+$")


def record_gets(page) -> list[str]:
    """Paths of every GET the page itself makes from now on (page.request's are not counted)."""
    paths: list[str] = []
    page.on("request", lambda request: request.method == "GET"
            and paths.append(urlparse(request.url).path))
    return paths


def wait_for_list_fetches(page, paths: list[str], count: int) -> None:
    """The page refreshes the conversation list once a reply has ended: wait for the `count`th
    `GET /api/conversations`, so anything it fetched after the reply has been recorded."""
    deadline = time.monotonic() + 10
    while paths.count("/api/conversations") < count:
        assert time.monotonic() < deadline, f"the list was not refreshed: {paths}"
        page.wait_for_timeout(20)
    page.wait_for_timeout(200)  # a fetch after the list (none expected) would show by now


def test_a_reply_sets_both_ids_from_meta_without_fetching_the_conversation(open_page):
    page = open_page()
    gets = record_gets(page)
    send_message(page, "Which ids?")
    # New chat: the list is fetched when meta says the conversation exists, and after the reply.
    wait_for_list_fetches(page, gets, 2)
    assert not [path for path in gets if CONVERSATION.match(path)], gets

    user = page.locator("article.message.user")
    reply = last_reply(page)
    saved = conversation_json(page)["messages"]
    assert [m["role"] for m in saved] == ["user", "assistant"]
    expect(user).to_have_attribute("data-id", saved[0]["id"])
    expect(reply).to_have_attribute("data-id", saved[1]["id"])
    expect(reply).to_have_attribute("data-status", "complete")
    expect(page.locator("#title")).to_have_text("Which ids?")
    expect(page.locator("#conversations .conversation-open")).to_have_text(["Which ids?"])

    # The id is what edit and resend needs, straight away and without a reload.
    user.locator("[data-action=edit]").click()
    editor = user.locator(".edit-form textarea")
    expect(editor).to_have_value("Which ids?")
    editor.fill("Which ids now?")
    editor.press("Enter")
    expect(page.locator("#send")).to_be_visible()
    expect(last_reply(page)).to_have_attribute("aria-busy", "false")
    wait_for_list_fetches(page, gets, 3)
    assert not [path for path in gets if CONVERSATION.match(path)], gets

    expect(page.locator("#messages > article.message")).to_have_count(2)
    expect(user.locator(".body")).to_have_text("Which ids now?")
    expect(last_reply(page).locator(".body")).to_contain_text("Which ids now?")
    saved = conversation_json(page)["messages"]
    assert [m["content"] for m in saved if m["role"] == "user"] == ["Which ids now?"]
    expect(user).to_have_attribute("data-id", saved[0]["id"])
    expect(last_reply(page)).to_have_attribute("data-id", saved[1]["id"])


def test_regenerate_right_after_a_reply_needs_no_reload(open_page):
    page = open_page()
    gets = record_gets(page)
    send_message(page, "Once")
    send_message(page, "Twice")
    before = last_reply(page).get_attribute("data-id")
    last_reply(page).locator("[data-action=regenerate]").click()
    expect(last_reply(page)).not_to_have_attribute("data-id", before)
    expect(page.locator("#send")).to_be_visible()
    expect(last_reply(page)).to_have_attribute("aria-busy", "false")
    saved = conversation_json(page)["messages"]
    assert [m["content"] for m in saved if m["role"] == "user"] == ["Once", "Twice"]
    expect(page.locator("article.message.user").last).to_have_attribute("data-id", saved[2]["id"])
    expect(last_reply(page)).to_have_attribute("data-id", saved[3]["id"])
    assert not [path for path in gets if CONVERSATION.match(path)], gets


def sse(*events: tuple[str, dict]) -> str:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


META = ("meta", {"conversation_id": "c-made-up", "user_message_id": "m-user",
                 "message_id": "m-reply", "model": "demo/offline", "omitted_messages": 0})


@pytest.mark.parametrize("events, status", [
    # The server's word wins over anything the page could work out from the error code.
    ([META, ("delta", {"text": "Half"}), ("error", {"code": "upstream_error", "message": "x"}),
      ("done", {"finish_reason": "error", "status": "interrupted"})], "interrupted"),
    ([META, ("delta", {"text": "Half"}), ("error", {"code": "server_stopping", "message": "x"}),
      ("done", {"finish_reason": "error", "status": "error"})], "error"),
    # No done: the stream was cut off on the way.
    ([META, ("delta", {"text": "Half"})], "interrupted"),
])
def test_the_final_status_is_the_one_done_carries(open_page, events, status):
    page = open_page()
    page.route("**/chat", lambda route: route.fulfill(
        status=200, content_type="text/event-stream", body=sse(*events)))
    send_message(page, "Status?")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", status)
    expect(reply).to_have_attribute("data-id", "m-reply")
    expect(page.locator("article.message.user")).to_have_attribute("data-id", "m-user")
    expect(reply.locator("[data-action=retry]")).to_be_visible()
