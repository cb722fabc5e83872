"""Driving the real page in Debian's Chromium through Playwright."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Chromium's background services try to reach Google; this machine has no network for them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


# The two widths every page test that looks at the layout uses.
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# Screenshots for a person to look at (git ignores the folder).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def shoot(page, name: str, **options) -> Path:
    """A screenshot of ``page`` (or of a locator) into ``test-artifacts/``; its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=path, **options)
    return path


_playwright = {"instance": None, "users": 0}


@pytest.fixture(scope="session")
def browser():
    # One Playwright driver for the whole run, however many modules define this fixture
    # (importing it into a test module makes a fixture of that module): a second sync driver
    # cannot start while one runs.
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run the README's test command, "
                    "which installs it from the OS packages.")
    if _playwright["instance"] is None:
        _playwright["instance"] = sync_playwright().start()
    _playwright["users"] += 1
    browser = _playwright["instance"].chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    _playwright["users"] -= 1
    if not _playwright["users"]:
        _playwright["instance"].stop()
        _playwright["instance"] = None


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    errors, console = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}; console: {console}"


# -- the chat page's own tests (tests/test_page_*.py) ----------------------------------------

PAGE_MODELS = "echo,slow,midstream-error,cut,reasoning"


@pytest.fixture(scope="session")
def page_server(upstream, tmp_path_factory):
    """One app for every page test: the demo model (default) and the stand-in's scenarios.

    Each Playwright context is a new anonymous user, so tests never see each other's chats.
    """
    from tests.conftest import AppServer
    server = AppServer({
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-page-test-key-0123456789",
        "OPENAI_MODELS": PAGE_MODELS,
        "DEFAULT_MODEL": "demo/offline",
        "DEMO_DELAY_MS": "2",
        "HEARTBEAT_SECONDS": "1",
        "MAX_MESSAGE_CHARS": "200000",  # the 20,000-token reply is an echo of a long message
    }, tmp_path_factory.mktemp("page-instance")).start()
    yield server
    server.stop()
    server.assert_clean_log()


class Users:
    """Pages of new browser contexts (each a new user) on an app; their uncaught JavaScript
    errors are collected, and ``close`` fails the test if there were any."""

    def __init__(self, browser):
        self.browser, self.contexts, self.errors = browser, [], []

    def open(self, server, path: str = "/", **options):
        """A page of a new context on ``server`` (``base_url`` in ``options`` overrides it)."""
        options.setdefault("viewport", SIZES["desktop"])
        options.setdefault("locale", "en-US")
        options.setdefault("base_url", server.url)
        context = self.browser.new_context(**options)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.goto(path)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        assert not self.errors, f"JavaScript errors on the page: {self.errors}"


@pytest.fixture
def open_page(browser, page_server):
    """open_page(path="/", **context_options) -> a ready page of a new context (a new user).

    Every page opened is checked at the end for uncaught JavaScript errors.
    """
    users = Users(browser)

    def open_(path: str = "/", **options):
        page = users.open(page_server, path, **options)
        wait_until_ready(page)
        return page

    yield open_
    users.close()


def wait_until(page, predicate: str, arg=None, timeout_ms: float = 15_000):
    """Wait until the JavaScript function `predicate(arg)` returns something truthy.

    The page's Content-Security-Policy forbids eval, which page.wait_for_function uses to
    compile its predicate; page.evaluate is not subject to it, so the polling runs inside one
    evaluate call, checking every 20 ms.
    """
    return page.evaluate(f"""async (arg) => {{
        const predicate = {predicate};
        const deadline = performance.now() + {timeout_ms};
        for (;;) {{
            const value = await predicate(arg);
            if (value) return value;
            if (performance.now() > deadline)
                throw new Error({json.dumps("timed out: " + predicate)});
            await new Promise((resolve) => setTimeout(resolve, 20));
        }}
    }}""", arg)


def wait_until_ready(page) -> None:
    """The model list has arrived, and with it the markdown libraries."""
    page.locator("#model option").first.wait_for(state="attached")


def send_message(page, text: str, model: str | None = None, wait: bool = True,
                 paste: bool = False) -> None:
    """Put `text` in the composer and press Enter; by default wait until the reply ends.

    paste=True sets it in one go, as a paste does (fill() types long texts slowly)."""
    from playwright.sync_api import expect
    if model:
        page.select_option("#model", model)
    if paste:
        page.evaluate("""text => {
            const input = document.getElementById('input');
            input.value = text;
            input.dispatchEvent(new InputEvent('input', { inputType: 'insertFromPaste' }));
        }""", text)
    else:
        page.fill("#input", text)
    page.press("#input", "Enter")
    if wait:
        expect(page.locator("#send")).to_be_visible(timeout=20_000)
        expect(page.locator("article.message.assistant").last).to_have_attribute(
            "aria-busy", "false")


def last_reply(page):
    return page.locator("article.message.assistant").last


def expect_being_written(page) -> None:
    """The last reply shown as one being written, as a reply sent from this page is: busy,
    streaming, Stop offered, "Writing…", and no note (cut off, stopped, refused)."""
    from playwright.sync_api import expect

    reply = last_reply(page)
    expect(reply).to_have_attribute("aria-busy", "true")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#status")).to_have_text("Writing…")
    expect(reply.locator(".note")).to_have_count(0)


def conversation_json(page) -> dict:
    """The open conversation as the server has it (through the page's own session)."""
    conversation_id = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    assert conversation_id, "no conversation is open"
    return page.request.get(f"/api/conversations/{conversation_id}").json()
