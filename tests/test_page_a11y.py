"""Accessible: labelled controls, visible focus, a politely announced reply, and a chat that
works from the keyboard alone. axe-core (an npm dev dependency) checks WCAG 2.1 A and AA."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, send_message  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
RICH = r"""Rich reply:

```python
print("hello")
```

| a | b |
|---|---|
| 1 | 2 |

Math $x^2$ and a [link](https://example.com).
"""


def axe_violations(page) -> list[str]:
    # Evaluated through the debugging protocol, which the page's CSP does not govern.
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const { violations } = await axe.run(document, {
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        });
        return violations.map(v => `${v.id}: ${v.help} -- ${v.nodes.slice(0, 3)
            .map(n => n.target.join(' ')).join(' | ')}`);
    }""")
    return result


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_wcag_violations(open_page, scheme):
    page = open_page(color_scheme=scheme)
    assert axe_violations(page) == []
    send_message(page, RICH, model="openai/echo")
    send_message(page, "Fail please", model="openai/midstream-error")
    send_message(page, "Think", model="openai/reasoning")
    last_reply(page).locator("details.reasoning summary").click()
    page.locator(".conversation-open").first.hover()
    assert axe_violations(page) == []
    page.click("#open-settings")
    assert axe_violations(page) == []
    page.keyboard.press("Escape")
    page.locator("#export summary").click()
    assert axe_violations(page) == []


def test_axe_finds_no_violations_on_a_phone_with_the_drawer_open(open_page):
    page = open_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    send_message(page, "Hello from a phone")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Show conversations").click()
    expect(page.locator("#sidebar")).to_be_visible()
    assert axe_violations(page) == []


def test_every_control_has_a_name(open_page):
    page = open_page()
    send_message(page, RICH, model="openai/echo")
    unnamed = page.evaluate("""() => [...document.querySelectorAll(
            'button, input, select, textarea, summary, a[href], [tabindex]')]
        .filter(e => e.checkVisibility())
        .filter(e => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()
                       || e.getAttribute('aria-labelledby')))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unnamed == []


def test_the_reply_being_written_is_announced_politely(open_page):
    page = open_page()
    log = page.locator("#messages")
    expect(log).to_have_attribute("role", "log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.locator("#status")).to_have_attribute("role", "status")
    send_message(page, "Count", model="openai/slow", wait=False)
    # Busy while it grows, so screen readers read it once, when it is done.
    expect(last_reply(page)).to_have_attribute("aria-busy", "true")
    expect(page.locator("#status")).to_have_text("Writing…")
    expect(last_reply(page).locator(".body")).to_contain_text("2 ")
    page.click("#stop")
    expect(last_reply(page)).to_have_attribute("aria-busy", "false")
    expect(last_reply(page).locator(".note")).to_have_text("Stopped.")


def focused(page) -> dict:
    return page.evaluate("""() => {
        const e = document.activeElement, style = getComputedStyle(e);
        return { id: e.id, action: e.dataset.action || '', cls: e.className?.baseVal ?? e.className,
                 text: (e.getAttribute('aria-label') || e.textContent).trim().slice(0, 40),
                 outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 };
    }""")


def tab_to(page, matches, limit: int = 40, key: str = "Tab") -> dict:
    for _ in range(limit):
        page.keyboard.press(key)
        element = focused(page)
        if matches(element):
            return element
    raise AssertionError(f"{key} never reached the element")


def test_focus_is_always_visible(open_page):
    page = open_page()
    send_message(page, RICH, model="openai/echo")
    page.reload()  # the conversation stays open (its id is in the address); focus starts at the top
    expect(last_reply(page).locator(".codeblock")).to_have_count(1)
    seen = []
    for _ in range(30):
        page.keyboard.press("Tab")
        element = focused(page)
        if element["id"] == "" and element["text"].startswith("Skip to the message box\n"):
            continue  # past the last control, focus left the page for the browser's own UI
        seen.append(element)
        assert element["outline"], f"no visible focus on {element}"
    reached = {e["id"] or e["action"] or e["text"] for e in seen}
    for name in ("new-chat", "search", "language", "theme", "model", "open-settings",
                 "copy-code", "copy", "regenerate", "edit", "input", "send"):
        assert name in reached, (name, reached)


def test_the_whole_chat_works_from_the_keyboard(open_page):
    page = open_page()
    # The skip link leads to the message box.
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Skip to the message box"
    page.keyboard.press("Enter")
    expect(page.locator("#input")).to_be_focused()
    page.keyboard.type("Typed only")
    page.keyboard.press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#input")).to_be_focused()

    # Regenerate the reply.
    first_id = last_reply(page).get_attribute("data-id")
    tab_to(page, lambda e: e["action"] == "regenerate", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(last_reply(page)).not_to_have_attribute("data-id", first_id)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    # Edit and resend the question.
    tab_to(page, lambda e: e["action"] == "edit", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".edit-form textarea")).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Edited by keyboard")
    page.keyboard.press("Enter")
    expect(page.locator("article.message.user .body")).to_have_text("Edited by keyboard")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    # Settings: open, change, save with Enter.
    tab_to(page, lambda e: e["id"] == "open-settings", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#setting-system")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#setting-temperature")).to_be_focused()
    page.keyboard.type("0.3")
    page.keyboard.press("Enter")
    expect(page.locator("#settings-dialog")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Settings saved.")

    # Rename, then delete the conversation with the confirmation answered from the keyboard.
    tab_to(page, lambda e: e["text"].startswith("Rename"), key="Shift+Tab")
    page.keyboard.press("Enter")
    page.keyboard.type("Keyboard chat")
    page.keyboard.press("Enter")
    expect(page.locator(".conversation-open")).to_have_text("Keyboard chat")
    tab_to(page, lambda e: e["text"].startswith("Delete"))
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.keyboard.press("Tab")  # from Cancel to Delete
    page.keyboard.press("Enter")
    expect(page.locator("#conversations li")).to_have_count(0)
    expect(page.locator("#new-chat")).to_be_focused()
