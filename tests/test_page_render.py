"""Model text on the page: markdown, code, tables and LaTeX, always through the sanitizer, and
rendering that keeps up with a 20,000-token reply."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.browser")
from tests.browser import last_reply, send_message, wait_until_ready  # noqa: E402

pytest_plugins = ["tests.browser"]  # browser, open_page, page_server: shared by all page tests

ECHO = "openai/echo"  # the stand-in answers "Echo: <the message>" in 5-character deltas

MARKDOWN = r"""Intro with **bold** and a [link](https://example.com/docs).

```python
def double(x):
    return x * 2
```

| name | value |
|------|-------|
| alpha | 1 |

Inline $a^2+b^2$ and \(c_1\) and display:

$$\int_0^1 x\,dx$$

\[ E = mc^2 \]

Money stays text: $5 and $10.
"""

HOSTILE = """<img src=x onerror="window.pwned='img'">
<script>window.pwned='script'</script>

<iframe src="javascript:window.pwned='iframe'"></iframe>

[click me](javascript:window.pwned='link') and [data](data:text/html,<script>alert(1)</script>)

An inline <a href="javascript:window.pwned='a'">anchor</a> and \
<svg onload="window.pwned='svg'"></svg>

<form action="/chat"><button>go</button></form><style>body{display:none}</style>

<object data="x"></object><embed src="x"><details open ontoggle="window.pwned='details'">x</details>

![tracker](https://example.invalid/pixel.png?secret=1)

$\\href{javascript:window.pwned='katex'}{x}$ and a <br> kept.
"""

DANGEROUS = ("script, iframe, object, embed, form, style, img, svg[onload], input, "
             "button:not([data-action]), link, meta")


def test_markdown_code_tables_and_all_four_latex_delimiters_render(open_page):
    page = open_page()
    send_message(page, MARKDOWN, model=ECHO)
    body = last_reply(page).locator(".body")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("pre code.language-python .hljs-keyword").first).to_have_text("def")
    expect(body.locator(".codeblock-header")).to_contain_text("python")
    expect(body.locator("table th").first).to_have_text("name")
    expect(body.locator("table td").first).to_have_text("alpha")
    # $…$ and \(…\) inline, $$…$$ and \[…\] displayed; the dollars of money are left alone.
    expect(body.locator(".katex")).to_have_count(4)
    expect(body.locator(".katex-display")).to_have_count(2)
    expect(body).to_contain_text("Money stays text: $5 and $10.")
    link = body.locator("a", has_text="link")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")


def test_hostile_markdown_never_executes(open_page):
    page = open_page()
    send_message(page, HOSTILE, model=ECHO)
    body = last_reply(page).locator(".body")
    expect(body).to_contain_text("and a")
    assert body.locator(DANGEROUS).count() == 0
    assert page.evaluate("window.pwned") is None
    # Raw HTML is shown as text; the image became a link that loads nothing by itself.
    expect(body).to_contain_text('<img src=x onerror="window.pwned=\'img\'">')
    expect(body.locator("a.image-link")).to_have_text("tracker")
    expect(body.locator("br")).to_have_count(1)
    # No event handler attribute anywhere, and only http(s)/mailto links, opening safely.
    assert page.evaluate("""() => [...document.querySelectorAll('#messages *')]
        .flatMap(e => [...e.attributes]).filter(a => a.name.startsWith('on')).length""") == 0
    hrefs = body.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith(("https:", "http:", "mailto:")) for h in hrefs), hrefs
    for link in body.locator("a[href]").all():
        expect(link).to_have_attribute("rel", "noopener noreferrer")
    # The unsafe links keep their text but lost their target.
    expect(body.locator("a:not([href])", has_text="click me")).to_have_count(1)


def test_the_sanitizer_itself_drops_every_dangerous_construct(open_page):
    """DOMPurify's configuration, probed with raw HTML that never went through markdown."""
    page = open_page()
    result = page.evaluate("""async () => {
        const { sanitizeHtml } = await import('/static/render.js');
        const holder = document.createElement('div');
        holder.append(sanitizeHtml(`
            <script>window.pwned=1</script><iframe src="https://example.com"></iframe>
            <object data="x"></object><embed src="x"><form><input></form><style>*{}</style>
            <img src=x onerror="window.pwned=2"><p onclick="window.pwned=3">p</p>
            <a id="js" href="javascript:window.pwned=4">js</a>\
<a id="data" href="data:text/html,x">d</a>
            <a id="ok" href="https://example.com" target="_self">ok</a>
            <svg><a id="svg" xlink:href="javascript:alert(1)">s</a></svg>`));
        return {
            tags: [...holder.querySelectorAll('*')].map(e => e.localName),
            handlers: [...holder.querySelectorAll('*')].flatMap(e => [...e.attributes])
                .filter(a => a.name.startsWith('on')).length,
            js: holder.querySelector('#js')?.getAttribute('href') ?? null,
            data: holder.querySelector('#data')?.getAttribute('href') ?? null,
            svg: holder.querySelector('#svg')?.getAttribute('xlink:href') ?? null,
            ok: [holder.querySelector('#ok').target, holder.querySelector('#ok').rel],
        };
    }""")
    for tag in ("script", "iframe", "object", "embed", "form", "input", "style", "img"):
        assert tag not in result["tags"], result
    assert result["handlers"] == 0
    assert result["js"] is None and result["data"] is None and result["svg"] is None
    assert result["ok"] == ["_blank", "noopener noreferrer"]
    assert page.evaluate("window.pwned") is None


def test_code_copy_button_copies_the_code(open_page):
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    send_message(page, "Code:\n\n```js\nconst answer = 42;\n```\n", model=ECHO)
    last_reply(page).locator("[data-action=copy-code]").click()
    expect(last_reply(page).locator("[data-action=copy-code]")).to_have_class("copy-code copied")
    assert page.evaluate("navigator.clipboard.readText()") == "const answer = 42;"


# Plain-HTTP intranet: no navigator.clipboard outside a secure context. Record what the
# fallback hands to execCommand("copy").
NO_CLIPBOARD = """
Object.defineProperty(Navigator.prototype, 'clipboard', {
  get: () => undefined, configurable: true });
window.copied = [];
const execCommand = Document.prototype.execCommand;
Document.prototype.execCommand = function (command, ...rest) {
  if (command === 'copy') window.copied.push(document.activeElement.value);
  return execCommand.call(this, command, ...rest);
};
"""


def test_copy_works_without_the_clipboard_api_as_on_plain_http(open_page, browser, page_server):
    page = open_page()
    page.context.add_init_script(NO_CLIPBOARD)
    page.reload()
    wait_until_ready(page)
    assert page.evaluate("navigator.clipboard") is None
    send_message(page, "Code:\n\n```sh\necho copied\n```\n\nafter", model=ECHO)
    last_reply(page).locator("[data-action=copy-code]").click()
    expect(last_reply(page).locator("[data-action=copy-code]")).to_have_class("copy-code copied")
    last_reply(page).locator("[data-action=copy]").click()
    expect(page.locator("#status")).to_have_text("Copied to the clipboard.")
    copied = page.evaluate("window.copied")
    assert copied[0] == "echo copied"
    assert copied[1].startswith("Echo: Code:\n\n```sh\necho copied\n```\n\nafter")  # raw markdown


def stream_watch_script() -> str:
    """Observe renders: per reply element, which animation frame each DOM change fell in."""
    return """() => {
        window.watch = {
            renders: [], earlierChanged: 0, longTasks: [], firstBlock: null, started: null };
        const [earlier] = document.querySelectorAll('article.message.assistant');
        if (earlier) new MutationObserver(() => { window.watch.earlierChanged++; })
            .observe(earlier,
                     { subtree: true, childList: true, characterData: true, attributes: true });
        new MutationObserver((records) => {
            for (const record of records) for (const node of record.addedNodes) {
                if (node.matches?.('article.message.assistant')) {
                    const body = node.querySelector('.body');
                    new MutationObserver(() => {
                        // Only renders while streaming: the final one runs when the stream ends.
                        if (node.getAttribute('aria-busy') !== 'true') return;
                        window.watch.renders.push(document.timeline.currentTime);
                        window.watch.started ??= performance.now();
                        window.watch.firstBlock ??= body.querySelector('.md-block:not(.md-tail)');
                    }).observe(body, { childList: true, subtree: true });
                }
            }
        }).observe(document.getElementById('messages'), { childList: true });
        new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) {
                window.watch.longTasks.push(
                    [Math.round(entry.startTime), Math.round(entry.duration)]);
            }
        }).observe({ type: 'longtask' });
    }"""


def long_markdown(target_chars: int) -> str:
    """Varied model-like markdown: headings, paragraphs, lists, code, tables and math."""
    sections, n = [], 0
    while sum(map(len, sections)) < target_chars:
        n += 1
        sections.append(
            f"## Part {n}\n\n"
            f"This paragraph explains step {n} of the procedure in some detail, with **bold**, "
            f"`inline code` and a formula $x_{n} = x_{{{n - 1}}} + \\frac{{1}}{{{n}}}$ "
            "to typeset. "
            "It keeps going for a while so that the text wraps over a few lines "
            "on a wide screen.\n\n"
            f"- first point of part {n}\n- second point, with *emphasis*\n- third point\n\n"
            f"```python\ndef step_{n}(value):\n    # part {n}\n"
            f"    return [v * {n} for v in value]\n```\n\n"
            f"| key | value |\n|-----|-------|\n| part | {n} |\n| square | {n * n} |\n\n"
            f"$$\\sum_{{k=1}}^{{{n}}} k = \\frac{{{n}({n}+1)}}{{2}}$$\n\n")
    return "".join(sections)


def test_streaming_renders_only_the_growing_message_at_most_once_per_frame(open_page):
    page = open_page()
    send_message(page, "A first exchange, finished before the next one streams.")
    page.evaluate(stream_watch_script())
    text = long_markdown(12_000)
    send_message(page, text, model=ECHO, paste=True)
    watch = page.evaluate("window.watch")
    deltas = len(text) // 5
    assert watch["earlierChanged"] == 0, "a finished message was re-rendered"
    assert 0 < len(watch["renders"]) < deltas / 4, (len(watch["renders"]), deltas)
    assert len(set(watch["renders"])) == len(watch["renders"]), "two renders in one frame"
    # Finished blocks are rendered once and kept: the first one is still the same element.
    assert page.evaluate("window.watch.firstBlock && window.watch.firstBlock.isConnected")
    expect(last_reply(page).locator(".katex-display")).to_have_count(text.count("$$") // 2)


def test_a_20000_token_reply_streams_without_freezing_the_page(open_page):
    page = open_page()
    page.evaluate(stream_watch_script())
    text = long_markdown(80_000)  # about 20,000 tokens at 4 characters a token
    send_message(page, text, model=ECHO, wait=False, paste=True)
    expect(last_reply(page)).to_have_attribute("aria-busy", "false", timeout=60_000)
    reply = last_reply(page)
    expect(reply.locator("h2", has_text=re.compile(r"^Part 2$"))).to_have_count(1)
    assert reply.locator(".body").text_content().rstrip().endswith("[1 messages]")
    watch = page.evaluate("window.watch")
    # From the first render on (sending an 80,000-character message is not the reply's cost).
    during = [duration for start, duration in watch["longTasks"] if start >= watch["started"]]
    print("renders:", len(watch["renders"]), "long tasks while streaming (ms):", during)
    # It was shown as it arrived, in many frames, not in one render at the end.
    assert len(watch["renders"]) > 20
    # The target is no task over 50 ms (the benchmark measures it on a quiet machine); on a
    # shared 2-core test machine, a task over 250 ms would mean the page froze.
    assert not [d for d in during if d > 250], during
