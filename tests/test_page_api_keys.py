"""Personal API keys in the page (#16): made, shown once, copied, used against /v1, listed
without the secret, revoked after a confirmation; nowhere on the page when the operator turned
them off (API_KEYS=off)."""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import SIZES, shoot, wait_until_ready  # noqa: E402
from tests.conftest import AppServer  # noqa: E402
from tests.test_page_a11y import axe_violations  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

# A name is the user's own text: shown exactly as typed, never as markup.
NAME = 'Laptop <b>script</b> & "tools"'
SECRET = re.compile(r"sd-[A-Za-z0-9_-]{20,}")


def open_keys(page):
    """Open the API keys dialog as a user does (on a phone, from the drawer)."""
    if page.viewport_size["width"] <= 760:
        page.get_by_role("button", name="Show conversations").click()
    page.get_by_role("button", name="API keys").click()
    dialog = page.get_by_role("dialog", name="API keys")
    expect(dialog).to_be_visible()
    return dialog


def create_key(dialog, name: str) -> str:
    dialog.get_by_label("Name", exact=True).fill(name)
    dialog.get_by_role("button", name="Create key").click()
    secret = dialog.get_by_label("New key")
    expect(secret).to_be_focused()
    key = secret.input_value()
    assert SECRET.fullmatch(key), key
    return key


def models_with(page_server, key: str) -> requests.Response:
    return requests.get(page_server.url + "/v1/models",
                        headers={"Authorization": "Bearer " + key}, timeout=10)


def everything_on_the_page(page) -> str:
    """The page's HTML and what its fields hold (a field's value is not in its HTML)."""
    values = page.evaluate("""() => [...document.querySelectorAll('input, textarea')]
        .map(e => e.value).join('\\n')""")
    return page.content() + "\n" + values


def wait_until_forgotten(page, key: str) -> None:
    """The page forgets the key on the dialog's ``close`` event, a task queued after the
    dialog is hidden: wait for it (up to 5 s) rather than race it."""
    page.wait_for_function("""key => !document.documentElement.outerHTML.includes(key)
        && ![...document.querySelectorAll('input, textarea')].some(e => e.value.includes(key))""",
                           arg=key, timeout=5000)


def test_a_key_is_shown_once_copied_works_and_is_revoked(open_page, page_server):
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    opener = page.get_by_role("button", name="API keys")
    dialog = open_keys(page)
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    expect(dialog.locator(".key-base-url")).to_have_text(page_server.url + "/v1")
    expect(dialog.get_by_text("No keys yet.")).to_be_visible()

    key = create_key(dialog, NAME)
    expect(dialog).to_contain_text("Copy it now: it will not be shown again.")
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    keys = dialog.get_by_role("listitem")
    expect(keys).to_have_count(1)
    expect(keys.locator(".key-name")).to_have_text(NAME)
    expect(keys).to_contain_text("Never used")
    expect(keys.locator("b")).to_have_count(0)
    expect(dialog.get_by_text("No keys yet.")).to_be_hidden()

    # The key works as a Bearer token against the OpenAI-compatible API.
    answer = models_with(page_server, key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"], answer.text

    # Shown once: closed, the dialog forgets it; Esc gave focus back to the button.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    wait_until_forgotten(page, key)
    assert key not in everything_on_the_page(page)
    dialog = open_keys(page)
    expect(dialog.get_by_label("New key")).to_be_hidden()
    assert key not in everything_on_the_page(page)

    # A reload lists the key by name, with the time it was last used, and never its secret.
    page.reload()
    wait_until_ready(page)
    dialog = open_keys(page)
    keys = dialog.get_by_role("listitem")
    expect(keys.locator(".key-name")).to_have_text(NAME)
    expect(keys).to_contain_text("Last used")
    assert key not in everything_on_the_page(page)

    # Revoke asks first; Cancel (the focused choice) keeps the key.
    keys.get_by_role("button", name=f"Revoke “{NAME}”").click()
    confirm = page.get_by_role("dialog", name="Revoke this key?")
    expect(confirm).to_contain_text(f"Programs using “{NAME}” will stop working at once.")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(dialog).to_be_visible()  # Esc closed the confirmation only
    expect(keys).to_have_count(1)
    expect(keys.get_by_role("button", name="Revoke")).to_be_focused()
    assert models_with(page_server, key).status_code == 200

    keys.get_by_role("button", name="Revoke").click()
    confirm.get_by_role("button", name="Revoke").click()
    expect(keys).to_have_count(0)
    expect(dialog.get_by_text("No keys yet.")).to_be_visible()
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    assert models_with(page_server, key).status_code == 401
    page.reload()
    wait_until_ready(page)
    dialog = open_keys(page)
    expect(dialog.get_by_text("No keys yet.")).to_be_visible()


def test_a_key_is_made_and_copied_from_the_keyboard_alone(open_page, page_server):
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    opener = page.get_by_role("button", name="API keys")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="API keys")
    name = dialog.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    page.keyboard.type("CI pipeline")
    page.keyboard.press("Enter")
    secret = dialog.get_by_label("New key “CI pipeline”")
    expect(secret).to_be_focused()
    expect(name).to_have_value("")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Copy")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    key = secret.input_value()
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert models_with(page_server, key).status_code == 200
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()


def test_a_refused_key_shows_the_servers_message(open_page):
    page = open_page()
    origin = {"Origin": page.url.split("/#")[0].rstrip("/")}
    for number in range(20):  # the most a user may have
        made = page.request.post("/api/keys", data={"name": f"key {number}"}, headers=origin)
        assert made.status == 201, made.text()
    dialog = open_keys(page)
    expect(dialog.get_by_role("listitem")).to_have_count(20)
    expect(dialog.get_by_role("listitem").first.locator(".key-name")).to_have_text("key 19")
    dialog.get_by_label("Name", exact=True).fill("one too many")
    with page.expect_response(lambda r: r.url.endswith("/api/keys")
                              and r.request.method == "POST") as refused:
        dialog.get_by_role("button", name="Create key").click()
    assert refused.value.status == 409
    message = refused.value.json()["error"]["message"]
    expect(dialog.get_by_role("alert")).to_have_text(message)
    expect(dialog.get_by_label("New key")).to_be_hidden()
    expect(dialog.get_by_role("listitem")).to_have_count(20)
    # A name of spaces only is the server's to refuse too, with its own words.
    dialog.get_by_label("Name", exact=True).fill("   ")
    with page.expect_response(lambda r: r.url.endswith("/api/keys")
                              and r.request.method == "POST") as refused:
        dialog.get_by_role("button", name="Create key").click()
    assert refused.value.status == 400
    expect(dialog.get_by_role("alert")).to_have_text(refused.value.json()["error"]["message"])


def test_the_dialog_is_in_chinese_for_a_chinese_reader(open_page):
    page = open_page(locale="zh-CN")
    page.get_by_role("button", name="API 密钥").click()
    dialog = page.get_by_role("dialog", name="API 密钥")
    expect(dialog.get_by_role("button", name="创建密钥")).to_be_visible()
    dialog.get_by_label("名称").fill("测试")
    dialog.get_by_role("button", name="创建密钥").click()
    expect(dialog).to_contain_text("请现在复制：它不会再次显示。")
    expect(dialog.get_by_role("listitem")).to_contain_text("从未使用")
    dialog.get_by_role("button", name="吊销“测试”").click()
    expect(page.get_by_role("dialog", name="吊销这个密钥？")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_open_dialog_fits_and_passes_axe(open_page, size, scheme):
    page = open_page(viewport=SIZES[size], color_scheme=scheme, reduced_motion="reduce",
                     permissions=["clipboard-read", "clipboard-write"])
    dialog = open_keys(page)
    create_key(dialog, "Helpdesk bot")
    create_key(dialog, NAME)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    width = SIZES[size]["width"]
    box = dialog.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    # Every control is whole inside the dialog: nothing cut off or pushed out by a long name.
    copy = dialog.get_by_role("button", name=re.compile(r"^Cop(y|ied)$"))
    for control in (dialog.get_by_label("New key"), copy,
                    dialog.get_by_role("button", name="Create key"),
                    dialog.get_by_role("button", name="Revoke").first):
        inner = control.bounding_box()
        assert inner and box["x"] <= inner["x"]
        assert inner["x"] + inner["width"] <= box["x"] + box["width"]
    overflowing = dialog.locator(".key-list li > *").evaluate_all(
        "items => items.filter(e => e.scrollWidth > e.clientWidth).map(e => e.textContent)")
    assert overflowing == []
    shoot(page, f"api-keys-{size}-{scheme}.png")
    assert axe_violations(page) == []
    dialog.get_by_role("button", name="Revoke").first.click()
    expect(page.get_by_role("dialog", name="Revoke this key?")).to_be_visible()
    assert axe_violations(page) == []


@pytest.fixture(scope="module")
def keys_off_server(tmp_path_factory):
    server = AppServer({"API_KEYS": "off", "DEMO_DELAY_MS": "1"},
                       tmp_path_factory.mktemp("keys-off-instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_nothing_of_api_keys_is_shown_when_they_are_off(browser, keys_off_server, size):
    context = browser.new_context(base_url=keys_off_server.url, locale="en-US",
                                  viewport=SIZES[size])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/")
        wait_until_ready(page)
        if size == "phone":
            page.get_by_role("button", name="Show conversations").click()
            expect(page.locator("#theme")).to_be_visible()
        expect(page.locator("#theme")).to_be_visible()  # the settings it would sit beside
        expect(page.get_by_role("button", name="API keys")).to_have_count(0)
        expect(page.get_by_role("dialog", name="API keys")).to_have_count(0)
        expect(page.get_by_text("API keys")).to_have_count(0)
    finally:
        context.close()
    assert not errors, errors
