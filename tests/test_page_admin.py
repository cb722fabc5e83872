"""The operator page and one's own usage in the page (#18): /admin shows an operator (who entered
ADMIN_CODE) usage by user, model and day, tokens per day as bars, errors and time to first token
by model, and the feedback, each with its CSV; anyone else is told the page is for operators.
The chat's settings dialog shows what the user spent and has left of their token budget, and a
message over budget is refused beside the message box, which keeps it."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    wait_until,
    wait_until_ready,
)
from tests.conftest import AppServer  # noqa: E402
from tests.test_page_a11y import axe_violations  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser: shared by all page tests

ADMIN_CODE = "operator-code-4821"
ACCESS_CODE = "chat-code-1357"
# An echo of the stand-in costs 18 tokens, less than the day's budget; a reply of the demo
# model costs over 150, crossing it from any point (the reply is written whole, the next refused).
BUDGET = "60/day"
CONFIG = """
[providers.desk]
type = "openai"
base_url = {base_url}
api_key = "sk-desk-test-key-0123456789"

[[providers.desk.models]]
name = "echo"
label = "Desk echo"
"""
# A comment is the user's own text: shown as text, never as markup.
COMMENT = 'It <b>ignored</b> my question & "floor 3"'
QUESTION = "How do I reset my password?"
FOR_OPERATORS = "This page is for operators"
ADMIN_LINK = "Usage and feedback"  # the chat page's link to /admin, for operators
CSV_HEADERS = {
    "by-user": "key,replies,prompt_tokens,completion_tokens,total_tokens,estimated_replies,"
               "failed_replies",
    "by-model": "key,replies,prompt_tokens,completion_tokens,total_tokens,estimated_replies,"
                "failed_replies",
    "by-day": "key,replies,prompt_tokens,completion_tokens,total_tokens,estimated_replies,"
              "failed_replies",
    "models": "model,replies,failed_replies,error_rate,ttft_median_ms,ttft_p95_ms",
    "feedback": "time,model,rating,comment,question,reply,user",
}
USAGE_FIELDS = ("replies", "prompt_tokens", "completion_tokens", "total_tokens",
                "estimated_replies", "failed_replies")


def start_app(upstream, tmp_path_factory, **env: str) -> AppServer:
    instance = tmp_path_factory.mktemp("operators-instance")
    config = instance / "streamdesk.toml"
    config.write_text(CONFIG.format(base_url=json.dumps(upstream.url)), encoding="utf-8")
    return AppServer({"STREAMDESK_CONFIG": str(config), "DEFAULT_MODEL": "desk/echo",
                      "ADMIN_CODE": ADMIN_CODE, "TOKEN_BUDGET": BUDGET, "DEMO_DELAY_MS": "1",
                      "HEARTBEAT_SECONDS": "1", **env}, instance).start()


@pytest.fixture(scope="module")
def ops_server(upstream, tmp_path_factory):
    """Anyone may chat (no access code); the operator enters ADMIN_CODE on /admin. The widget's
    panel is on too (/widget), for a portal that does not matter here."""
    server = start_app(upstream, tmp_path_factory, WIDGET_ORIGINS="https://portal.example.com")
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture(scope="module")
def gated_server(upstream, tmp_path_factory):
    """An access code for the chat, and the operator code: both entered in the access dialog."""
    server = start_app(upstream, tmp_path_factory, ACCESS_CODE=ACCESS_CODE)
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.fixture
def opener(browser):
    """opener(server, path="/", **context_options) -> a page of a new context (a new user)."""
    users = Users(browser)
    yield users.open
    users.close()


@pytest.fixture(scope="module")
def usage_made(browser, ops_server):
    """Two users chat on ops_server; the first rates both its replies, 👎 with a comment."""
    users = Users(browser)
    first = users.open(ops_server)
    wait_until_ready(first)
    send_message(first, QUESTION, model="desk/echo")
    send_message(first, "And the VPN?", model="demo/offline")  # crosses the budget
    echo_reply, demo_reply = [m["id"] for m in conversation_json(first)["messages"]
                              if m["role"] == "assistant"]
    put_feedback(first, echo_reply, {"rating": "down", "comment": COMMENT})
    put_feedback(first, demo_reply, {"rating": "up"})
    second = users.open(ops_server)
    wait_until_ready(second)
    send_message(second, "Where is the printer?", model="desk/echo")
    spent = [fetch_json(page, "/api/usage")[1]["spent"]["day"] for page in (first, second)]
    users.close()
    return {"replies": 3, "total_tokens": sum(spent)}


def put_feedback(page, message_id: str, feedback: dict) -> None:
    status = page.evaluate("""async ([id, feedback]) => (await fetch(
        `/api/messages/${id}/feedback`, { method: 'PUT', body: JSON.stringify(feedback),
        headers: { 'Content-Type': 'application/json' } })).status""", [message_id, feedback])
    assert status == 200


def fetch_json(page, url: str) -> tuple[int, dict]:
    """GET `url` from inside the page, as its own scripts would (its cookies, its origin)."""
    return tuple(page.evaluate("""async (url) => {
        const response = await fetch(url);
        return [response.status, await response.json()];
    }""", url))


def as_operator(page) -> None:
    """Enter the operator code where a visitor of /admin who is not one is offered it."""
    expect(page.get_by_role("heading", name=FOR_OPERATORS)).to_be_visible()
    code_field(page).fill(ADMIN_CODE)
    page.get_by_role("button", name="Enter").click()
    expect(page.get_by_role("heading", name="Usage by user")).to_be_visible()
    expect_loaded(page)


def field(page, label: str):
    return page.get_by_label(label, exact=True)


def code_field(page, label: str = "Operator code"):
    """The operator code's field of the notice (the access dialog, closed, has one too)."""
    return page.locator("#not-operator").get_by_label(label)


def expect_loaded(page) -> None:
    expect(page.locator("#report")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#admin-status")).to_contain_text("Showing")


def section(page, name: str):
    return page.locator(f'section[data-table="{name}"]')


def table_texts(page, name: str) -> dict:
    """A table's cells as shown: {"head": [...], "rows": [[...]], "totals": [...] or None}."""
    return page.evaluate("""(id) => {
        const table = document.getElementById(id);
        const texts = (row) => [...row.cells].map((c) => c.textContent);
        const foot = table.tFoot?.rows[0];
        return { head: texts(table.tHead.rows[0]), rows: [...table.tBodies[0].rows].map(texts),
                 totals: foot ? texts(foot) : null };
    }""", f"{name}-table")


def number(n: int) -> str:
    return f"{n:,}"  # as en-US writes it



def no_page_overflow(page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width


# -- who sees what -------------------------------------------------------------------------------

def test_a_visitor_who_is_no_operator_sees_no_figures(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    expect(page.get_by_role("heading", name=FOR_OPERATORS)).to_be_visible()
    expect(page.locator("#report")).to_be_hidden()
    expect(page.locator("table tbody tr")).to_have_count(0)  # nothing was drawn
    expect(page.get_by_role("link", name="Download CSV")).to_have_count(0)
    # The JSON behind the page refuses them too.
    status, answer = fetch_json(page, "/api/admin/usage?by=user")
    assert status == 403 and answer["error"]["code"] == "admins_only"
    assert fetch_json(page, "/api/admin/feedback")[0] == 403
    assert fetch_json(page, "/api/session")[1]["admin"] is False

    # A wrong code (or the chat's own) opens nothing.
    code_field(page).fill("not-the-code")
    page.get_by_role("button", name="Enter").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the operator code.")
    expect(code_field(page)).to_be_focused()
    expect(page.locator("#report")).to_be_hidden()

    # The way back to the chat.
    page.get_by_role("link", name="Back to the chat").first.click()
    wait_until_ready(page)
    expect(page).to_have_url(ops_server.url + "/")


def test_the_operator_sees_usage_by_user_model_and_day(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    as_operator(page)
    today = datetime.now(UTC).date()
    expect(field(page, "From")).to_have_value((today - timedelta(days=29)).isoformat())
    expect(field(page, "To")).to_have_value(today.isoformat())

    for by, key_head in (("user", "User"), ("model", "Model"), ("day", "Day")):
        status, answer = fetch_json(page, f"/api/admin/usage?by={by}")
        assert status == 200
        shown = table_texts(page, f"by-{by}")
        assert shown["head"] == [key_head, "Replies", "Prompt tokens", "Completion tokens",
                                 "Total tokens", "Estimated", "Failed"]
        assert len(shown["rows"]) == len(answer["rows"])
        for row, cells in zip(answer["rows"], shown["rows"], strict=True):
            assert cells[1:] == [number(row[field]) for field in USAGE_FIELDS]
            if by != "day":
                assert cells[0] == row["key"]
        # The totals row adds them up, as the server does.
        assert shown["totals"] == ["Total"] + [number(answer["totals"][f]) for f in USAGE_FIELDS]
        assert answer["totals"]["replies"] == usage_made["replies"]
        assert answer["totals"]["total_tokens"] == usage_made["total_tokens"]
    by_model = table_texts(page, "by-model")["rows"]
    assert sorted(row[0] for row in by_model) == ["demo/offline", "desk/echo"]
    assert len(table_texts(page, "by-user")["rows"]) == 2

    # Days: written as dates, keeping the day itself in <time datetime>.
    days = fetch_json(page, "/api/admin/usage?by=day")[1]["rows"]
    expect(section(page, "by-day").locator("tbody th time")).to_have_count(len(days))
    assert page.locator("#by-day-table tbody time").evaluate_all(
        "times => times.map(t => t.dateTime)") == [row["key"] for row in days]

    # The chart: one bar per day with replies, as tall as its share of the most.
    bars = page.locator("#chart rect.bar")
    expect(bars).to_have_count(len(days))
    heights = {bar.get_attribute("data-day"): float(bar.get_attribute("height"))
               for bar in bars.all()}
    assert set(heights) == {row["key"] for row in days}
    label = page.locator("#chart").get_attribute("aria-label")
    assert f"{number(usage_made['total_tokens'])} tokens on {len(days)} day" in label, label

    # Errors and time to first token, per model.
    models = fetch_json(page, "/api/admin/models")[1]["rows"]
    shown = table_texts(page, "models")
    assert shown["head"] == ["Model", "Replies", "Failed", "Error rate", "First token, median",
                             "First token, 95th percentile"]
    assert [row[:4] for row in shown["rows"]] == [
        [m["model"], number(m["replies"]), number(m["failed_replies"]), "0%"] for m in models]
    assert all(cell.endswith(" ms") for row in shown["rows"] for cell in row[4:])


def test_the_feedback_table_shows_comments_as_text(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    as_operator(page)
    feedback = section(page, "feedback")
    rows = feedback.locator("tbody tr")
    expect(rows).to_have_count(2)
    shown = table_texts(page, "feedback")
    assert shown["head"] == ["Time", "Model", "Rating", "Comment", "Question", "Reply", "User"]
    by_model = {row[1]: row for row in shown["rows"]}
    echo, demo = by_model["desk/echo"], by_model["demo/offline"]
    assert echo[3] == COMMENT  # the markup is literal text
    expect(feedback.locator("table b")).to_have_count(0)
    assert echo[4] == QUESTION and echo[5].startswith(f"Echo: {QUESTION}")
    assert demo[3] == "" and demo[4] == "And the VPN?"
    # 👍 and 👎 as the chat page draws them, named for those who do not see them.
    echo_row, demo_row = rows.filter(has_text="desk/echo"), rows.filter(has_text="demo/offline")
    expect(echo_row.get_by_role("img", name="Bad reply")).to_be_visible()
    expect(demo_row.get_by_role("img", name="Good reply")).to_be_visible()
    # The user is the server's hash, the same for both ratings (one user).
    assert echo[6] == demo[6] and not echo[6].startswith("anon:")

    # A long reply starts folded: its beginning, and "Show all" for the rest.
    saved = fetch_json(page, "/api/admin/feedback")[1]["rows"]
    (long_reply,) = [row["reply"] for row in saved if row["model"] == "demo/offline"]
    reply = demo_row.locator("td.cell-long").nth(2)
    expect(reply.locator(".full-text")).to_be_hidden()
    expect(reply.locator(".preview")).to_be_visible()
    assert long_reply.startswith(reply.locator(".preview").inner_text().rstrip("…").rstrip())
    reply.get_by_text("Show all").click()
    expect(reply.locator(".full-text")).to_be_visible()
    assert reply.locator(".full-text").text_content() == long_reply
    expect(reply.locator(".preview")).to_be_hidden()
    reply.get_by_text("Show less").click()
    expect(reply.locator(".full-text")).to_be_hidden()


def test_each_table_downloads_as_csv(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    as_operator(page)
    for name, header in CSV_HEADERS.items():
        link = section(page, name).get_by_role("link", name="Download CSV")
        source = "usage" if name.startswith("by-") else name
        href = link.get_attribute("href")
        assert href.startswith(f"/api/admin/{source}?") and href.endswith("&format=csv"), href
        with page.expect_download() as download:
            link.click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == header, (name, lines[:2])
        assert download.value.suggested_filename.startswith("streamdesk-")
        assert download.value.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        if name == "feedback":
            assert COMMENT in [row["comment"] for row in rows]
        elif name == "by-model":
            assert sum(int(row["total_tokens"]) for row in rows) == usage_made["total_tokens"]


def test_the_period_picker(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    as_operator(page)
    today = datetime.now(UTC).date()
    page.get_by_role("button", name="Last 7 days").click()
    expect(field(page, "From")).to_have_value((today - timedelta(days=6)).isoformat())
    expect_loaded(page)
    expect(page).to_have_url(f"{ops_server.url}/admin?from={today - timedelta(days=6)}&to={today}")
    expect(section(page, "by-model").locator("tfoot")).to_contain_text(
        number(usage_made["total_tokens"]))

    # A period without replies: every table says so, and the chart has no bar.
    field(page, "From").fill("2020-01-01")
    field(page, "To").fill("2020-01-31")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#admin-status")).to_have_text("Showing Jan 1, 2020 to Jan 31, 2020.")
    expect(page.locator("td.empty-row")).to_have_count(5)
    expect(page.locator("td.empty-row").first).to_have_text("Nothing in this period.")
    expect(page.locator("#chart rect.bar")).to_have_count(0)
    expect(page.locator("#chart")).to_have_attribute(
        "aria-label", "No tokens were used from Jan 1, 2020 to Jan 31, 2020.")
    # The CSV links follow the period.
    expect(section(page, "by-day").get_by_role("link", name="Download CSV")).to_have_attribute(
        "href", "/api/admin/usage?from=2020-01-01&to=2020-01-31&by=day&format=csv")
    # Kept by a reload (it is in the address).
    page.reload()
    expect_loaded(page)
    expect(field(page, "From")).to_have_value("2020-01-01")
    expect(page.locator("td.empty-row")).to_have_count(5)

    # From after To: said, and nothing asked.
    field(page, "From").fill("2020-02-10")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#admin-status")).to_have_text("“From” must not be after “To”.")
    page.get_by_role("button", name="Last 30 days").click()
    expect_loaded(page)
    expect(page.locator("#chart rect.bar")).not_to_have_count(0)


def test_the_access_dialog_takes_the_operator_code(gated_server, opener):
    page = opener(gated_server, "/admin")
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_contain_text("Enter the operator code to see this page.")
    dialog.get_by_label("Operator code").fill(ADMIN_CODE)
    dialog.get_by_role("button", name="Enter").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="Usage by user")).to_be_visible()
    expect_loaded(page)
    assert fetch_json(page, "/api/session")[1]["admin"] is True

    # The chat's own access code signs in, but this page is not theirs; the notice then takes
    # the operator code.
    page = opener(gated_server, "/admin")
    dialog = page.get_by_role("dialog", name="Sign in")
    dialog.get_by_label("Operator code").fill(ACCESS_CODE)
    dialog.get_by_role("button", name="Enter").click()
    expect(dialog).to_be_hidden()
    as_operator(page)


def test_the_chat_page_links_operators_and_no_one_else_to_their_page(ops_server, opener):
    visitor = opener(ops_server)
    wait_until_ready(visitor)
    expect(visitor.get_by_role("link", name=ADMIN_LINK)).to_have_count(0)
    expect(visitor.locator("#open-admin")).to_be_hidden()
    visitors_session = fetch_json(visitor, "/api/session")[1]
    assert visitors_session["admin"] is False

    operator = opener(ops_server, "/admin")
    as_operator(operator)
    operator.goto("/")
    wait_until_ready(operator)
    link = operator.get_by_role("link", name=ADMIN_LINK)
    expect(link).to_be_visible()
    assert axe_violations(operator) == []
    # All the server tells is `admin` in GET /api/session: the page is the same for both, and
    # so is the rest of the session's answer.
    operators_session = fetch_json(operator, "/api/session")[1]
    assert operators_session == {**visitors_session, "admin": True}
    assert visitor.request.get("/").text() == operator.request.get("/").text()

    operator.select_option("#language", "zh-CN")
    expect(operator.get_by_role("link", name="用量与反馈")).to_be_visible()
    operator.select_option("#language", "en")
    link.click()
    expect(operator).to_have_url(f"{ops_server.url}/admin")
    expect(operator.get_by_role("heading", name="Usage by user")).to_be_visible()

    # On a phone, in the conversations drawer beside the API keys.
    operator.set_viewport_size(SIZES["phone"])
    operator.goto("/")
    wait_until_ready(operator)
    expect(link).to_be_hidden()
    operator.get_by_role("button", name="Show conversations").click()
    expect(link).to_be_visible()
    assert axe_violations(operator) == []
    # Never in the widget's panel, an operator's or not.
    operator.goto("/widget")
    wait_until_ready(operator)
    expect(operator.locator("#open-admin")).to_have_count(0)


def test_sso_operators_are_named_in_admin_users(upstream, tmp_path_factory, opener):
    server = start_app(upstream, tmp_path_factory, TRUSTED_USER_HEADER="X-Forwarded-User",
                       TRUSTED_PROXIES="127.0.0.1", ADMIN_USERS="alice")
    try:
        # Someone else behind the portal: no code can make them one, so none is asked.
        page = opener(server, "/admin", extra_http_headers={"X-Forwarded-User": "bob"})
        expect(page.get_by_role("heading", name=FOR_OPERATORS)).to_be_visible()
        expect(page.get_by_text("ask its administrator to add your name (bob)")).to_be_visible()
        expect(page.locator(".operator-code")).to_be_hidden()
        expect(page.locator("#report")).to_be_hidden()
        assert fetch_json(page, "/api/admin/models")[0] == 403
        page.goto("/")
        wait_until_ready(page)
        expect(page.get_by_role("link", name=ADMIN_LINK)).to_have_count(0)
        assert fetch_json(page, "/api/session")[1]["admin"] is False
        # An operator by name sees the figures at once.
        page = opener(server, "/admin", extra_http_headers={"X-Forwarded-User": "alice"})
        expect(page.get_by_role("heading", name="Usage by user")).to_be_visible()
        expect_loaded(page)
        expect(page.get_by_role("heading", name=FOR_OPERATORS)).to_be_hidden()
        expect(page.locator("#by-user-table td.empty-row")).to_have_text("Nothing in this period.")
        page.goto("/")
        wait_until_ready(page)
        expect(page.get_by_role("link", name=ADMIN_LINK)).to_be_visible()
    finally:
        server.stop()
    server.assert_clean_log()


# -- one's own usage and budget ------------------------------------------------------------------

def open_settings(page):
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    expect(dialog).to_be_visible()
    return dialog.locator("#usage")


def resets_at(page) -> str:
    """When today's budget resets, as the page writes it (the browser's time zone)."""
    iso = fetch_json(page, "/api/usage")[1]["budgets"][0]["resets_at"]
    return page.evaluate("""(iso) => new Date(iso).toLocaleString('en-US',
        { dateStyle: 'medium', timeStyle: 'short' })""", iso)


def test_the_settings_show_ones_usage_and_a_spent_budget_refuses(gated_server, opener):
    page = opener(gated_server, "/", timezone_id="Asia/Shanghai")
    dialog = page.get_by_role("dialog", name="Sign in")
    dialog.get_by_label("Access code").fill(ACCESS_CODE)
    dialog.get_by_role("button", name="Enter").click()
    wait_until_ready(page)

    usage = open_settings(page)
    expect(usage.get_by_role("heading", name="Your usage")).to_be_visible()
    expect(usage.locator(".usage-spent")).to_have_text("Today: 0 tokens · This month: 0 tokens")
    resets = resets_at(page)
    expect(usage.get_by_role("listitem")).to_have_text(
        f"60 of 60 tokens left today · resets {resets}")
    page.keyboard.press("Escape")

    send_message(page, QUESTION)
    spent = fetch_json(page, "/api/usage")[1]["spent"]["day"]
    assert 0 < spent < 60
    usage = open_settings(page)
    expect(usage.locator(".usage-spent")).to_have_text(
        f"Today: {spent} tokens · This month: {spent} tokens")
    expect(usage.get_by_role("listitem")).to_have_text(
        f"{60 - spent} of 60 tokens left today · resets {resets}")
    shoot(page.get_by_role("dialog", name="Conversation settings"), "admin-settings-usage.png")
    page.keyboard.press("Escape")

    # The reply that crosses the budget is written whole; the next is refused.
    send_message(page, "And the VPN?", model="demo/offline")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    usage = open_settings(page)
    spent = fetch_json(page, "/api/usage")[1]["spent"]["day"]
    assert spent > 60
    expect(usage.locator(".usage-spent")).to_have_text(
        f"Today: {spent} tokens · This month: {spent} tokens")
    expect(usage.get_by_role("listitem")).to_have_text(
        f"0 of 60 tokens left today · resets {resets}")
    page.keyboard.press("Escape")

    articles = page.locator("article.message")
    expect(articles).to_have_count(4)
    page.fill("#input", "One more question, please")
    page.press("#input", "Enter")
    status = page.locator("#status")
    expect(status).to_contain_text("You have used this day's budget of 60 tokens. It resets at ")
    # The server's own words, beside the message box, which keeps the text.
    refusal = page.evaluate("""async () => (await (await fetch('/chat', { method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ message: 'x', model: 'desk/echo' }) })).json()).error""")
    assert refusal["code"] == "budget_exceeded"
    expect(status).to_have_text(refusal["message"])
    expect(page.locator("#input")).to_have_value("One more question, please")
    expect(articles).to_have_count(4)  # the refused turn is not shown
    shoot(page, "admin-budget-refused.png")


def test_the_settings_usage_in_chinese(gated_server, opener):
    page = opener(gated_server, "/", locale="zh-CN")
    dialog = page.get_by_role("dialog", name="登录")
    dialog.get_by_label("访问码").fill(ACCESS_CODE)
    dialog.get_by_role("button", name="进入").click()
    wait_until_ready(page)
    page.get_by_role("button", name="设置").click()
    usage = page.locator("#usage")
    expect(usage.get_by_role("heading", name="你的用量")).to_be_visible()
    expect(usage.locator(".usage-spent")).to_have_text("今天：0 个 token · 本月：0 个 token")
    expect(usage.get_by_role("listitem")).to_contain_text("今天还剩 60 / 60 个 token · ")
    assert axe_violations(page) == []


# -- look, languages, accessibility --------------------------------------------------------------

@pytest.mark.parametrize(("size", "scheme", "language"), [
    ("desktop", "light", "en"), ("phone", "dark", "en"), ("phone", "light", "zh"),
    ("desktop", "dark", "zh")])
def test_axe_and_screenshots(ops_server, usage_made, opener, size, scheme, language):
    zh = language == "zh"
    page = opener(ops_server, "/admin", viewport=SIZES[size], color_scheme=scheme,
                  locale="zh-CN" if zh else "en-US", reduced_motion="reduce")
    expect(page.get_by_role("heading", name="此页面仅供运营人员使用" if zh else FOR_OPERATORS)
           ).to_be_visible()
    no_page_overflow(page)
    assert axe_violations(page) == []
    if size == "phone" and scheme == "dark":
        shoot(page, f"admin-not-operator-{size}-{language}.png")

    code_field(page, "运营码" if zh else "Operator code").fill(ADMIN_CODE)
    page.get_by_role("button", name="进入" if zh else "Enter").click()
    expect(page.locator("#report")).to_be_visible()
    expect(page.locator("#report")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#admin-status")).to_contain_text("显示" if zh else "Showing")
    expect(page.locator("#chart rect.bar")).not_to_have_count(0)
    if zh:
        expect(page.get_by_role("heading", name="按用户统计")).to_be_visible()
        expect(page.locator("#by-day-table tbody time").first).to_contain_text("年")
    no_page_overflow(page)
    assert axe_violations(page) == []
    shoot(page, f"admin-{size}-{scheme}-{language}.png", full_page=True)
    # Wide tables scroll inside their own box; the keyboard scrolls it too.
    table = page.locator('section[data-table="feedback"] .table-scroll')
    if size == "phone":
        assert table.evaluate("e => e.scrollWidth > e.clientWidth")
        table.focus()
        page.keyboard.press("ArrowRight")
        wait_until(page, """() => document.querySelector(
            'section[data-table="feedback"] .table-scroll').scrollLeft > 0""")
        no_page_overflow(page)


def test_the_language_switch_rewrites_the_figures(ops_server, usage_made, opener):
    page = opener(ops_server, "/admin")
    as_operator(page)
    page.select_option("#language", "zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="按模型统计")).to_be_visible()
    expect(page).to_have_title("StreamDesk · 运营")
    expect(page.locator("#by-model-table thead th").first).to_have_text("模型")
    expect(page.locator("#by-model-table tfoot th")).to_have_text("合计")
    expect(section(page, "feedback").get_by_role("link", name="下载 CSV：反馈")).to_be_visible()
    expect(page.locator("#admin-status")).to_contain_text("年")
    assert "每日 token 用量" in page.locator("#chart").get_attribute("aria-label")
