"""The widget in a portal page (#17), in Chromium: a company portal on another origin adds one
tag; a launcher appears in the corner and opens a panel that frames the chat (/widget, the page
in its embed mode). The portal here is a small server on another loopback port with two pages,
each with the tag and a link to the other, served under a strict CSP of its own; a third origin,
not in WIDGET_ORIGINS, stands for a portal that may not frame the chat.

The launcher is in a closed shadow root, which Playwright's locators do not enter (nor can the
portal's scripts): the tests reach it as DevTools does, through the DevTools protocol, which
pierces shadow roots, and click it where it is on the screen. The accessibility test alone
forces shadow roots open, so that axe-core can read the launcher.

The reply in flight comes from the stand-in's `unchunked` model: "first ", then silence until
the test releases it, then "then the rest"; so the portal's next page is opened while the reply
is being written, with no race.
"""
from __future__ import annotations

import html
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import SIZES, last_reply, shoot, wait_until, wait_until_ready  # noqa: E402
from tests.conftest import AppServer  # noqa: E402
from tests.standins import LoopbackHTTPServer  # noqa: E402
from tests.test_page_a11y import AXE, axe_violations  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser: shared by all page tests

HOST = "[data-streamdesk-widget]"
CONVERSATION_KEY = "streamdesk.widget.conversation"
GREETING = "Hello! This is the IT helpdesk."
STARTER = "VPN does not connect"
CONFIG = """
[providers.helpdesk]
type = "openai"
base_url = {base_url}
api_key = "sk-widget-test-key-0123456789"
greeting = {greeting}
starters = {starters}

[[providers.helpdesk.models]]
name = "echo"
label = "Helpdesk"

[[providers.helpdesk.models]]
name = "unchunked"
"""

# -- the portal ---------------------------------------------------------------------------------

PORTAL_PAGE = """<!doctype html>
<html lang="en"{html_class}>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ACME intranet: page {name}</title>
<link rel="stylesheet" href="/portal.css">{aggressive}
</head>
<body>
<header><p class="brand">ACME intranet</p></header>
<main>
<h1>Page {name}</h1>
<p id="news">The canteen opens at noon. Printers on floor 3 are back.</p>
<button type="button" id="portal-button">Search the intranet</button>
<p><a href="/{other}.html?{query}">Go to page {other}</a></p>
</main>
{tag}
</body>
</html>
"""
PORTAL_CSS = """
body { margin: 0; font: 16px/1.5 Georgia, serif; color: #1a1a1a; background: #f6f3ee; }
header { background: #7a1f1f; color: #fff; padding: 4px 24px; }
main { max-width: 40em; margin: 2em auto; padding: 0 1em; }
a { color: #0b4f8a; }
html.dark body { background: #121212; color: #eeeeee; }
html.dark a { color: #8ab4f8; }
"""
# Global rules meant to wreck whatever they reach.
AGGRESSIVE_CSS = """
* { font-family: monospace !important; color: red !important;
    box-sizing: content-box !important; }
body * { border: 3px dashed red !important; }
button { display: none; }
div, iframe { display: none !important; }
"""


class Portal(LoopbackHTTPServer):
    """A company portal: /one.html and /two.html, each with the widget's tag and a link to the
    other. The query picks the tag's data- attributes (model, title, lang) and the page:
    dark=1 (<html class="dark">), css=aggressive (AGGRESSIVE_CSS), widget=0 (no tag). Its CSP
    allows scripts and frames from the chat's origin only, as docs/helpdesk.md asks."""

    def __init__(self):
        super().__init__(_PortalHandler)
        self.app_url = ""


class _PortalHandler(BaseHTTPRequestHandler):
    server: Portal

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":
            return self._answer(204, "", "")
        if url.path == "/portal.css":
            return self._answer(200, "text/css", PORTAL_CSS)
        if url.path == "/aggressive.css":
            return self._answer(200, "text/css", AGGRESSIVE_CSS)
        if url.path not in ("/one.html", "/two.html"):
            return self._answer(404, "text/plain", "not here")
        query = dict(parse_qsl(url.query))
        name = url.path[1:-5]
        data = "".join(f' data-{key}="{html.escape(query[key])}"'
                       for key in ("model", "title", "lang") if key in query)
        tag = ("" if query.get("widget") == "0"
               else f'<script src="{self.server.app_url}/widget.js" async{data}></script>')
        page = PORTAL_PAGE.format(
            name=name, other="two" if name == "one" else "one", query=urlencode(query), tag=tag,
            html_class=' class="dark"' if query.get("dark") else "",
            aggressive=('\n<link rel="stylesheet" href="/aggressive.css">'
                        if query.get("css") == "aggressive" else ""))
        return self._answer(200, "text/html; charset=utf-8", page)

    def _answer(self, status: int, kind: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        if kind:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        app = self.server.app_url
        self.send_header("Content-Security-Policy", f"default-src 'self'; script-src 'self' {app}; "
                         f"frame-src {app}; style-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def portals():
    """(the portal of WIDGET_ORIGINS, a stranger's portal that is not in it)"""
    with Portal() as portal, Portal() as stranger:
        yield portal, stranger


@pytest.fixture(scope="module")
def widget_app(upstream, portals, tmp_path_factory):
    """The app with the widget on for the portal: a helpdesk model with a greeting and a starter
    (the stand-in's echo) and its `unchunked` model; the demo model is the default."""
    portal, stranger = portals
    instance = tmp_path_factory.mktemp("widget-instance")
    config = instance / "streamdesk.toml"
    config.write_text(CONFIG.format(base_url=json.dumps(upstream.url),
                                    greeting=json.dumps(GREETING),
                                    starters=json.dumps([STARTER])), encoding="utf-8")
    server = AppServer({"STREAMDESK_CONFIG": str(config), "DEFAULT_MODEL": "demo/offline",
                        "DEMO_DELAY_MS": "1", "HEARTBEAT_SECONDS": "1",
                        "WIDGET_ORIGINS": portal.base_url}, instance).start()
    portal.app_url = stranger.app_url = server.url
    yield server
    server.stop()
    server.assert_clean_log()


# Lets axe-core read the launcher: the loader's code is unchanged, its shadow root open.
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, { ...init, mode: "open" });
};
"""


@pytest.fixture
def open_portal(browser, portals, widget_app):
    """open_portal(path, stranger=False, size="desktop", allow_console=(), open_shadow=False,
    **context_options) -> a portal page in a new context (a new user). No page may end with
    an uncaught error, nor log an error other than those `allow_console` names."""
    contexts, errors = [], []

    def open_(path: str, *, stranger: bool = False, size: str = "desktop",
              allow_console: tuple[str, ...] = (), open_shadow: bool = False, **options):
        options.setdefault("viewport", SIZES[size])
        options.setdefault("locale", "en-US")
        context = browser.new_context(**options)
        contexts.append(context)
        if open_shadow:
            context.add_init_script(OPEN_SHADOW_ROOTS)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and not any(
            allowed in message.text for allowed in allow_console) and errors.append(message.text))
        page.goto(portals[stranger].base_url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"errors on the portal's pages or in the panel: {errors}"


# -- the widget as a reader meets it -----------------------------------------------------------

def resize(page, size: str) -> None:
    """The viewport at ``size``, once the page has rendered at it: a media query's listeners
    (the panel's switch between modal and not) run before the next animation frame's
    callbacks, where a new width alone does not wait for them."""
    page.set_viewport_size(SIZES[size])
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))")


class Widget:
    """The launcher (found through the DevTools protocol) and the panel's frame on `page`."""

    def __init__(self, page):
        self.page = page
        page.wait_for_selector(HOST, state="attached")  # the async loader has run
        self.cdp = page.context.new_cdp_session(page)

    def _launcher_node(self) -> int:
        return self._node("BUTTON", "launcher")["backendNodeId"]

    def _node(self, name: str, class_name: str) -> dict:
        """The shadow root's element <name class="class_name">, as the DevTools protocol has it
        (attributes a dict)."""
        root = self.cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
        nodes = [root]
        while nodes:
            node = nodes.pop()
            names_and_values = node.get("attributes", [])
            attributes = dict(zip(names_and_values[::2], names_and_values[1::2], strict=True))
            if node.get("nodeName") == name and attributes.get("class", "").split()[:1] == [
                    class_name]:
                return {**node, "attributes": attributes}
            nodes += node.get("children", []) + node.get("shadowRoots", [])
        raise AssertionError(f"no {name.lower()}.{class_name} on the page")

    def panel_attributes(self) -> dict:
        """The panel's attributes (role, aria-label, aria-modal...)."""
        return self._node("DIV", "panel")["attributes"]

    def dialog(self) -> dict:
        """The open panel as assistive technology sees it: role, name, modal."""
        (node,) = self.cdp.send("Accessibility.getPartialAXTree", {
            "backendNodeId": self._node("DIV", "panel")["backendNodeId"],
            "fetchRelatives": False})["nodes"]
        properties = {p["name"]: p["value"]["value"] for p in node.get("properties", [])}
        return {"role": node["role"]["value"], "name": node["name"]["value"],
                "modal": properties.get("modal", False)}

    def on_launcher(self, function: str):
        """Call the JavaScript `function` with the launcher as `this`; its value."""
        handle = self.cdp.send("DOM.resolveNode", {"backendNodeId": self._launcher_node()})
        result = self.cdp.send("Runtime.callFunctionOn", {
            "objectId": handle["object"]["objectId"], "functionDeclaration": function,
            "returnByValue": True})
        return result["result"].get("value")

    def launcher(self) -> dict:
        """The launcher as assistive technology sees it: role, name, expanded, focused."""
        (node,) = self.cdp.send("Accessibility.getPartialAXTree", {
            "backendNodeId": self._launcher_node(), "fetchRelatives": False})["nodes"]
        properties = {p["name"]: p["value"]["value"] for p in node.get("properties", [])}
        return {"role": node["role"]["value"], "name": node["name"]["value"],
                "expanded": properties.get("expanded", False),
                "focused": properties.get("focused", False)}

    def launcher_box(self) -> dict | None:
        """Where the launcher is on the screen; None when it is not shown."""
        return self.on_launcher("""function () {
            if (!this.checkVisibility()) return null;
            const { x, y, width, height } = this.getBoundingClientRect();
            return { x, y, width, height };
        }""")

    def launcher_style(self) -> dict:
        return self.on_launcher("""function () {
            const style = getComputedStyle(this);
            return Object.fromEntries(['display', 'position', 'width', 'height', 'color',
                'background-color', 'border-top-style', 'border-radius', 'right', 'bottom',
                'box-sizing'].map((name) => [name, style.getPropertyValue(name)]));
        }""")

    def click_launcher(self) -> None:
        box = self.launcher_box()
        assert box, "the launcher is not shown"
        self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    @property
    def frame(self):
        (frame,) = self.page.main_frame.child_frames
        return frame

    def panel(self, state: str = "visible"):
        """Wait until the panel is `state` (visible or hidden)."""
        self.frame.frame_element().wait_for_element_state(state)

    def chat(self):
        """The chat in the open panel, once it has loaded."""
        self.panel("visible")
        frame = self.frame
        wait_until_ready(frame)
        return frame


def ask(page, chat, text: str) -> None:
    """Type `text` and send it, as a reader does once the panel has put the focus in its
    message box (the panel asks for it when its page has loaded)."""
    expect(chat.locator("#input")).to_be_focused()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def conversation_id(chat) -> str:
    return chat.evaluate(f"localStorage.getItem('{CONVERSATION_KEY}')")


def saved(chat, conversation: str) -> dict:
    """The conversation as the server has it, asked from the panel (its session)."""
    return chat.evaluate("id => fetch(`/api/conversations/${id}`).then((r) => r.json())",
                         conversation)



def portal_axe(page) -> list[str]:
    """axe-core on the portal's page itself (the panel's page is checked in its frame)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate("""async () => {
        const { violations } = await axe.run(document, {
            iframes: false,
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        });
        return violations.map(v => `${v.id}: ${v.help} -- ${v.nodes.slice(0, 3)
            .map(n => n.target.join(' ')).join(' | ')}`);
    }""")


# -- opening, closing, chatting -----------------------------------------------------------------

def test_the_launcher_opens_the_panel_at_the_message_box_and_esc_closes_it(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo&title=IT+help")
    widget = Widget(page)
    assert widget.launcher() == {"role": "button", "name": "Open the chat", "expanded": False,
                                 "focused": False}
    box = widget.launcher_box()  # in the bottom-right corner
    assert box and (box["x"] + box["width"], box["y"] + box["height"]) == (1280 - 20, 800 - 20)
    expect(page.get_by_role("heading", name="Page one")).to_be_visible()

    widget.click_launcher()
    chat = widget.chat()
    assert widget.launcher()["expanded"] is True
    assert widget.launcher()["name"] == "Close the chat"
    message_box = chat.get_by_role("textbox", name="Message")
    expect(message_box).to_be_focused()
    page.keyboard.type("Where is the printer?")  # the keyboard is in the panel
    expect(message_box).to_have_value("Where is the printer?")
    # The compact layout: the portal's title, New chat, Close; nothing else of the full page.
    expect(chat.get_by_role("heading", name="IT help")).to_be_visible()
    expect(chat.get_by_role("button", name="New chat")).to_be_visible()
    expect(chat.get_by_role("button", name="Close the chat")).to_be_visible()
    for other in ("#sidebar", "#open-sidebar", "#model", "#open-settings", "#export",
                  "#open-keys", "#title"):
        expect(chat.locator(other)).to_be_hidden()
    expect(chat.locator("#empty .greeting")).to_have_text(GREETING)

    page.keyboard.press("Escape")
    widget.panel("hidden")
    assert widget.launcher() == {"role": "button", "name": "Open the chat", "expanded": False,
                                 "focused": True}
    page.keyboard.press("Enter")  # on the launcher: open again, at the message box
    widget.panel("visible")
    expect(message_box).to_be_focused()
    expect(message_box).to_have_value("Where is the printer?")
    page.keyboard.press("Enter")  # send
    reply = last_reply(chat)
    expect(reply.locator(".body")).to_have_text("Echo: Where is the printer? [1 messages]")
    expect(reply).to_have_attribute("data-status", "complete")

    chat.get_by_role("button", name="Close the chat").click()
    widget.panel("hidden")
    assert widget.launcher()["focused"] is True


def test_greeting_starters_and_feedback_work_in_the_widget(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    expect(chat.locator("#empty .greeting")).to_have_text(GREETING)
    chat.get_by_role("group", name="Suggested questions").get_by_role("button",
                                                                      name=STARTER).click()
    reply = last_reply(chat)
    expect(reply.locator(".body")).to_have_text(f"Echo: {STARTER} [1 messages]")
    expect(chat.locator("#empty")).to_be_hidden()
    good = reply.get_by_role("button", name="Good reply")
    with page.expect_response(lambda r: r.url.endswith("/feedback")
                              and r.request.method == "PUT"):
        good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    conversation = conversation_id(chat)
    assert saved(chat, conversation)["messages"][-1]["feedback"]["rating"] == "up"
    # 👎 opens the comment field: Esc there closes the field, not the panel.
    with page.expect_response(lambda r: r.url.endswith("/feedback")
                              and r.request.method == "PUT"):
        reply.get_by_role("button", name="Bad reply").click()
    comment = chat.get_by_label("What was wrong with this reply? (optional)")
    expect(comment).to_be_focused()
    page.keyboard.press("Escape")
    expect(comment).to_have_count(0)
    assert widget.frame.frame_element().is_visible()
    assert saved(chat, conversation)["messages"][-1]["feedback"]["rating"] == "down"

    chat.get_by_role("button", name="New chat").click()
    expect(chat.locator("#empty .greeting")).to_have_text(GREETING)
    expect(chat.locator("article.message")).to_have_count(0)
    expect(chat.get_by_role("textbox", name="Message")).to_be_focused()
    assert conversation_id(chat) is None  # the next page opens a new chat too


def test_a_model_the_page_does_not_have_falls_back_to_the_default(open_portal):
    page = open_portal("/one.html?model=nobody/nothing")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    expect(chat.locator("#model")).to_have_value("demo/offline")
    ask(page, chat, "Hello")
    expect(last_reply(chat).locator(".body")).to_contain_text("This is the offline demo model.")


def test_a_reply_being_written_goes_on_across_the_portals_pages(open_portal, fresh_upstream,
                                                                 widget_app):
    page = open_portal("/one.html?model=helpdesk/unchunked")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    ask(page, chat, "Tell me in two parts")
    reply = last_reply(chat)
    expect(reply.locator(".body")).to_have_text("first")
    expect(chat.locator("#stop")).to_be_visible()
    conversation = conversation_id(chat)
    assert conversation

    # Esc closes the panel; the reply goes on (it is not stopped, unlike on the full page).
    page.keyboard.press("Escape")
    widget.panel("hidden")
    page.keyboard.press("Enter")
    widget.panel("visible")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(chat.locator("#stop")).to_be_visible()

    # The portal's next page, mid-reply: the panel there opens by itself (without taking the
    # focus from the portal's page), on the same conversation, and follows the reply live.
    page.get_by_role("link", name="Go to page two").click()
    expect(page.get_by_role("heading", name="Page two")).to_be_visible()
    widget = Widget(page)
    chat = widget.chat()
    expect(chat.locator("article.message.user .body")).to_have_text("Tell me in two parts")
    reply = last_reply(chat)
    expect(reply.locator(".body")).to_have_text("first")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(chat.locator("#stop")).to_be_visible()
    assert conversation_id(chat) == conversation
    assert page.evaluate("document.activeElement === document.body")
    assert widget.launcher()["expanded"] is True

    fresh_upstream.release.set()
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply).to_have_attribute("aria-busy", "false")
    expect(reply.locator(".body")).to_have_text("first then the rest")
    expect(chat.locator("#send")).to_be_visible()
    answer = saved(chat, conversation)["messages"][-1]
    assert answer["status"] == "complete"
    assert answer["content"].split() == reply.locator(".body").text_content().split()

    # The same user on the full page (the same browser): the conversation is in its list.
    full = page.context.new_page()
    full.goto(f"{widget_app.url}/")
    wait_until_ready(full)
    listed = full.locator(f"#conversations li[data-id='{conversation}'] .conversation-open")
    expect(listed).to_have_text("Tell me in two parts")
    listed.click()
    expect(last_reply(full).locator(".body")).to_have_text("first then the rest")


# -- the keyboard: modal on a phone, not on a desktop --------------------------------------------

# Where the portal's page has the focus: None when it is in the widget (its host element).
PORTAL_FOCUS = """() => {
    const focused = document.activeElement;
    if (focused === document.querySelector('[data-streamdesk-widget]')) return null;
    if (!focused || focused === document.body) return 'portal: nothing';
    return `portal: ${focused.tagName.toLowerCase()} ${focused.textContent.trim()}`;
}"""
# The panel's focused control, once the focus has reached one (a guard of the focus trap hands
# it on with a message).
PANEL_FOCUS = """() => {
    const focused = document.activeElement;
    if (!document.hasFocus() || !focused || focused === document.body) return null;
    return focused.id || focused.textContent.trim();
}"""
# Every control of the empty panel that Tab stops at, in order (ids, else texts).
PANEL_CONTROLS = ["Skip to the message box", "new-chat", "close-widget", STARTER, "messages",
                  "input", "send"]


def tab_through(page, widget: Widget, key: str, presses: int) -> list[str]:
    """Press `key` (Tab, Shift+Tab) `presses` times; where the focus is after each press: an
    element of the portal's page ("portal: a Go to page two"), the launcher, or the panel's
    control (its id, else its text), or "panel: nothing" when no control there has it."""
    stops = []
    for _ in range(presses):
        page.keyboard.press(key)
        stop = page.evaluate(PORTAL_FOCUS)
        if stop is None:
            on_launcher = widget.on_launcher("function () { return this.matches(':focus'); }")
            try:
                stop = "launcher" if on_launcher else wait_until(widget.frame, PANEL_FOCUS,
                                                                 timeout_ms=2000)
            except PlaywrightError:
                stop = "panel: nothing"
        stops.append(stop)
    return stops


def round_the_panel(after: str, presses: int, backward: bool = False) -> list[str]:
    """The stops of `presses` presses going round PANEL_CONTROLS from `after`."""
    order = PANEL_CONTROLS[::-1] if backward else PANEL_CONTROLS
    start = order.index(after) + 1
    return [order[(start + n) % len(order)] for n in range(presses)]


def test_on_a_phone_the_open_panel_keeps_the_keyboard_in_it(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo&title=IT+help", size="phone")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    expect(chat.get_by_role("textbox", name="Message")).to_be_focused()
    # Tab and Shift+Tab go round the panel's controls (twice here), from the last to the first
    # and back, and never reach the page behind.
    presses = 2 * len(PANEL_CONTROLS)
    forward = tab_through(page, widget, "Tab", presses)
    assert forward == round_the_panel("input", presses), forward
    backward = tab_through(page, widget, "Shift+Tab", presses)
    assert backward == round_the_panel(forward[-1], presses, backward=True), backward
    # A modal dialog for assistive technology: the page behind is not to be read.
    assert widget.dialog() == {"role": "dialog", "name": "IT help", "modal": True}
    # Focus put on the page behind all the same (a script of the portal's, Tab from the
    # browser's toolbar) comes back to the panel's first control.
    page.locator("#portal-button").focus()
    assert page.evaluate(PORTAL_FOCUS) is None
    assert wait_until(widget.frame, PANEL_FOCUS) == PANEL_CONTROLS[0]
    # Modal as long as it fills the screen: not in a window made wider, again once narrow.
    resize(page, "desktop")
    assert widget.dialog()["modal"] is False
    resize(page, "phone")
    assert widget.dialog()["modal"] is True

    # Esc still closes it, focus on the launcher; the page is the reader's again.
    page.keyboard.press("Escape")
    widget.panel("hidden")
    assert widget.launcher()["focused"] is True
    assert "aria-modal" not in widget.panel_attributes()
    assert tab_through(page, widget, "Tab", 2)[-1] == "portal: button Search the intranet"

    # Reopened by the portal's next page, the panel covers it: it takes the focus (the frame,
    # not the message box: no keyboard pops up), and keeps it.
    widget.click_launcher()
    widget.chat()
    page.goto(page.url.replace("/one.html", "/two.html"))
    widget = Widget(page)
    chat = widget.chat()
    wait_until(page, f"() => ({PORTAL_FOCUS})() === null")
    expect(chat.get_by_role("textbox", name="Message")).not_to_be_focused()
    stops = tab_through(page, widget, "Shift+Tab", len(PANEL_CONTROLS) + 1)
    assert stops == round_the_panel("Skip to the message box", len(PANEL_CONTROLS) + 1,
                                    backward=True), stops


def test_on_a_desktop_the_open_panel_lets_the_keyboard_reach_the_page(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    expect(chat.get_by_role("textbox", name="Message")).to_be_focused()
    stops = tab_through(page, widget, "Tab", 5)
    assert stops[:2] == ["send", "launcher"], stops  # the panel does not hold the focus
    assert "portal: a Go to page two" in stops, stops
    assert widget.dialog() == {"role": "dialog", "name": "Chat", "modal": False}
    assert widget.frame.frame_element().is_visible()  # the panel stays open beside the page


# -- who may frame it, and what crosses ---------------------------------------------------------

def test_a_portal_not_in_widget_origins_shows_nothing_of_the_chat(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo", stranger=True,
                       allow_console=("frame-ancestors",))
    widget = Widget(page)  # the loader is a public file: its launcher appears
    with page.expect_console_message(lambda message: "frame-ancestors" in message.text):
        widget.click_launcher()
    frame = widget.frame
    # The browser refused to show it: an error page in its place, never the chat.
    frame.wait_for_url("chrome-error://chromewebdata/")
    assert frame.locator("#input").count() == 0


def test_a_panel_told_another_host_posts_nothing_to_its_parent(open_portal, portals,
                                                               widget_app):
    """/widget framed with a `host` that is not in WIDGET_ORIGINS: no Close button, and nothing
    posted, not even "ready" (compared with a frame told the right host)."""
    page = open_portal("/one.html?widget=0")
    page.evaluate("""([app, hosts]) => {
        window.received = [];
        const frames = hosts.map((host) => {
            const frame = document.createElement('iframe');
            frame.title = host;
            frame.src = `${app}/widget?${new URLSearchParams({ host })}`;
            document.body.append(frame);
            return frame;
        });
        addEventListener('message', (event) => window.received.push(
            [frames.findIndex((f) => f.contentWindow === event.source), event.data]));
    }""", [widget_app.url, [portals[0].base_url, "http://elsewhere.example"]])
    trusted, foreign = (page.locator(f"iframe[title='{host}']").element_handle().content_frame()
                        for host in (portals[0].base_url, "http://elsewhere.example"))
    wait_until(page, "() => received.some(([from, data]) => from === 0"
                     " && data?.streamdesk?.type === 'ready')")
    wait_until_ready(foreign)
    expect(foreign.get_by_role("button", name="Close the chat")).to_be_hidden()
    expect(trusted.get_by_role("button", name="Close the chat")).to_be_visible()
    # Its start has finished (its last request answered), so "ready" would have been posted.
    wait_until(foreign, "() => performance.getEntriesByType('resource').some("
                        "(e) => e.name.endsWith('/api/conversations') && e.responseEnd > 0)")
    foreign.locator("#input").press("Escape")
    foreign.evaluate("parent.postMessage('marker', '*')")  # after anything it posted before
    wait_until(page, "() => received.some(([from, data]) => from === 1 && data === 'marker')")
    assert [data for where, data in page.evaluate("received") if where == 1] == ["marker"]
    trusted.locator("#input").press("Escape")
    wait_until(page, "() => received.some(([from, data]) => from === 0"
                     " && data?.streamdesk?.type === 'close')")


def test_the_portals_css_does_not_reach_the_widget(open_portal):
    plain = open_portal("/one.html?model=helpdesk/echo")
    expected = Widget(plain).launcher_style()
    page = open_portal("/one.html?model=helpdesk/echo&css=aggressive")
    # The portal's rules do apply to the portal's own page...
    expect(page.locator("#portal-button")).to_be_hidden()
    assert page.locator("#news").evaluate("e => getComputedStyle(e).fontFamily") == "monospace"
    # ...and not to the launcher, nor to the chat in the panel.
    widget = Widget(page)
    assert widget.launcher_style() == expected
    assert expected["background-color"] == "rgb(29, 78, 216)"
    assert expected["display"] == "grid" and expected["width"] == "56px"
    widget.click_launcher()
    chat = widget.chat()
    panel = widget.frame.frame_element().bounding_box()
    assert panel and panel["width"] == 400
    body = chat.evaluate("() => { const s = getComputedStyle(document.body);"
                         " return [s.fontFamily, s.color]; }")
    assert body[0].startswith("system-ui") and body[1] != "rgb(255, 0, 0)"
    ask(page, chat, "Still readable?")
    expect(last_reply(chat).locator(".body")).to_have_text("Echo: Still readable? [1 messages]")
    expect(chat.get_by_role("button", name="Send", exact=True)).to_be_visible()
    shoot(page, "widget-desktop-aggressive-portal.png")


PORTAL_STYLES = """() => Object.fromEntries(['html', 'body', 'header', 'h1', '#news',
    '#portal-button', 'a'].map((selector) => {
        const style = getComputedStyle(document.querySelector(selector));
        return [selector, Object.fromEntries([...style].map((name) =>
            [name, style.getPropertyValue(name)]))];
    }))"""


def test_the_widgets_css_does_not_reach_the_portal(open_portal, widget_app):
    page = open_portal("/one.html?widget=0")
    before = page.evaluate(PORTAL_STYLES)
    sheets = "[document.styleSheets.length, document.adoptedStyleSheets.length]"
    sheets_before = page.evaluate(sheets)
    # The one tag, added now (as a tag manager would): everything it adds, it adds in its box.
    page.evaluate("""src => {
        const tag = document.createElement('script');
        tag.src = src;
        tag.async = true;
        tag.dataset.model = 'helpdesk/echo';
        document.body.append(tag);
    }""", f"{widget_app.url}/widget.js")
    widget = Widget(page)
    widget.click_launcher()
    widget.chat()
    assert page.evaluate(sheets) == sheets_before
    after = page.evaluate(PORTAL_STYLES)
    changed = {selector: {name: (value, after[selector][name])
                          for name, value in style.items() if after[selector][name] != value}
               for selector, style in before.items()}
    assert not any(changed.values()), changed


# -- theme, language, accessibility, screenshots ------------------------------------------------

def test_a_dark_portal_gets_a_dark_panel_that_follows_it(open_portal):
    page = open_portal("/one.html?model=helpdesk/echo&dark=1")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    expect(chat.locator("html")).to_have_attribute("data-theme", "dark")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert chat.evaluate(background) == "rgb(21, 23, 27)"
    ask(page, chat, "Dark enough?")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    shoot(page, "widget-desktop-dark.png")
    # The portal switches to light: so does the panel (for this page only).
    page.evaluate("document.documentElement.classList.remove('dark')")
    expect(chat.locator("html")).to_have_attribute("data-theme", "light")
    assert chat.evaluate(background) == "rgb(255, 255, 255)"
    assert chat.evaluate("localStorage.getItem('streamdesk.theme')") is None


def test_a_chinese_portal_gets_the_panel_in_chinese(open_portal, widget_app):
    page = open_portal("/one.html?" + urlencode({"model": "helpdesk/echo", "lang": "zh",
                                                "title": "IT 服务台"}))
    widget = Widget(page)
    assert widget.launcher()["name"] == "打开对话"
    widget.click_launcher()
    chat = widget.chat()
    assert widget.launcher()["name"] == "关闭对话"
    expect(chat.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(chat.get_by_role("heading", name="IT 服务台")).to_be_visible()
    expect(chat.get_by_role("button", name="新对话")).to_be_visible()
    expect(chat.get_by_role("button", name="关闭对话")).to_be_visible()
    message_box = chat.get_by_role("textbox", name="消息")
    expect(message_box).to_have_attribute("placeholder",
                                          "给模型发消息。Enter 发送，Shift+Enter 换行。")
    expect(message_box).to_be_focused()
    ask(page, chat, "打印机卡纸了怎么办？")
    reply = last_reply(chat)
    expect(reply.locator(".body")).to_have_text("Echo: 打印机卡纸了怎么办？ [1 messages]")
    expect(reply.get_by_role("button", name="好回复")).to_be_visible()
    shoot(page, "widget-desktop-zh.png")
    # The full page's own language is not the widget's business: it stays the reader's.
    full = page.context.new_page()
    full.goto(f"{widget_app.url}/")
    wait_until_ready(full)
    expect(full.locator("html")).to_have_attribute("lang", "en")
    expect(full.locator("#new-chat")).to_have_text("New chat")


@pytest.mark.parametrize(("scheme", "size"), [("light", "desktop"), ("dark", "desktop"),
                                              ("light", "phone")])  # phone: the modal panel
def test_axe_finds_no_violations_in_the_panel_or_on_the_portal(open_portal, scheme, size):
    page = open_portal("/one.html?model=helpdesk/echo&title=IT+help", color_scheme=scheme,
                       size=size, open_shadow=True)
    widget = Widget(page)
    assert portal_axe(page) == []  # the launcher included: its shadow root is open here
    widget.click_launcher()
    chat = widget.chat()
    assert axe_violations(chat) == []  # the empty chat: greeting and starter
    ask(page, chat, "Is this accessible?")
    expect(last_reply(chat)).to_have_attribute("aria-busy", "false")
    assert axe_violations(chat) == []
    assert portal_axe(page) == []  # with the panel open


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_screenshots_of_the_open_widget(open_portal, size):
    page = open_portal("/one.html?model=helpdesk/echo&title=IT+help", size=size,
                       reduced_motion="reduce")
    widget = Widget(page)
    widget.click_launcher()
    chat = widget.chat()
    ask(page, chat, "How do I connect to the VPN from home?")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    panel = widget.frame.frame_element().bounding_box()
    close = chat.get_by_role("button", name="Close the chat")
    if size == "phone":  # the panel fills the screen; its own Close is the way out
        assert panel == {"x": 0, "y": 0, "width": 390, "height": 844}
        assert widget.launcher_box() is None
    else:
        assert panel and panel["x"] + panel["width"] == 1280 - 20
        assert widget.launcher_box()
    expect(close).to_be_visible()
    width = chat.evaluate("document.scrollingElement.scrollWidth")
    assert width <= panel["width"]
    shoot(page, f"widget-{size}.png")
    close.click()
    widget.panel("hidden")
    assert widget.launcher_box()
    assert widget.launcher()["focused"] is True
