"""The page at desktop (1280 px) and phone (390 px) widths, light and dark. Screenshots go to
test-artifacts/ for a person to look at; the layout checks run every time."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import SIZES, last_reply, send_message, shoot  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

SAMPLE = r"""Here is the **plan** for the printer on floor 3:

1. Check the queue with `lpstat -o`.
2. Restart the spooler:

```bash
sudo systemctl restart cups   # needs admin rights
lpstat -p
```

| step | owner | time |
|------|-------|------|
| queue | helpdesk | 5 min |
| spooler | IT ops | 2 min |

The queue drains at rate $r = \frac{n}{t}$, so $$t = \frac{n}{r}.$$
"""


def fill_conversation(page) -> None:
    send_message(page, "打印机坏了，怎么办？ My printer is stuck.", model="openai/reasoning")
    send_message(page, SAMPLE, model="openai/echo")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_layout_at_desktop_and_phone_widths(open_page, size, scheme):
    # Reduced motion: no drawer animation half-way through a screenshot.
    page = open_page(viewport=SIZES[size], color_scheme=scheme, reduced_motion="reduce")
    shoot(page, f"page-{size}-{scheme}-empty.png")
    fill_conversation(page)
    expect(last_reply(page).locator(".katex-display")).to_have_count(1)
    shoot(page, f"page-{size}-{scheme}-chat.png")
    # Nothing wider than the screen; the composer and the model picker are on it.
    width = SIZES[size]["width"]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    for selector in ("#input", "#send", "#model", "#open-settings"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, selector
    # Wide things scroll inside their own box (code, tables, formulas), not the page.
    for block in last_reply(page).locator("pre, table").all():
        assert block.evaluate("e => e.getBoundingClientRect().right") <= width
    if size == "phone":
        page.get_by_role("button", name="Show conversations").click()
        expect(page.locator("#sidebar")).to_be_visible()
        shoot(page, f"page-{size}-{scheme}-drawer.png")
        page.keyboard.press("Escape")
    page.click("#open-settings")
    shoot(page, f"page-{size}-{scheme}-settings.png")
