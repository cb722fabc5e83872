"""The reply of the rendering benchmark: a long markdown document cut into model-sized tokens.

Deterministic (no randomness), so every run renders the same thing. It mixes what models
write: headings, paragraphs with **bold**, *italic*, `code` and links, bullet and numbered
lists (nested), tables, fenced code blocks in several languages, block quotes and a little
TeX. Tokens are cut the way a BPE tokenizer roughly does (a word with its leading space, a
number, one punctuation mark, a run of newlines), about 4 characters each.
"""
from __future__ import annotations

import re

_TOKEN = re.compile(r" ?[A-Za-z]{1,8}| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\n+| +")

_WORDS = ("stream relay chunk browser server latency worker socket queue event reply model "
          "token buffer render page markdown table list code block request response header "
          "session store message upstream gevent greenlet memory percentile budget").split()


def _words(seed: int, count: int) -> str:
    return " ".join(_WORDS[(seed * 7 + i * 13) % len(_WORDS)] for i in range(count))


def _section(n: int) -> str:
    title = _words(n, 3).title()
    parts = [f"## {n + 1}. {title}\n\n"]
    parts.append(f"The **{_words(n + 1, 2)}** path keeps *{_words(n + 2, 3)}* small, "
                 f"so `{_WORDS[n % len(_WORDS)]}_{n}()` runs in O(n) and "
                 f"[the docs](https://example.com/{n}) explain why {_words(n + 3, 9)}. "
                 f"In numbers: {n * 17 % 1000} ms at p50 and {n * 31 % 1000} ms at p99.\n\n")
    kind = n % 5
    if kind == 0:
        parts.append("```python\n"
                     f"def relay_{n}(chunks, queue):\n"
                     f"    \"\"\"Forward {_words(n, 4)}.\"\"\"\n"
                     "    total = 0\n"
                     "    for chunk in chunks:\n"
                     "        if chunk.text:\n"
                     f"            queue.put(chunk.text)  # {_words(n + 5, 3)}\n"
                     "            total += len(chunk.text)\n"
                     f"    return {{'count': total, 'id': {n}}}\n"
                     "```\n\n")
    elif kind == 1:
        parts.append(f"| {' | '.join(w.title() for w in _WORDS[n % 7:n % 7 + 4])} |\n"
                     "|---|---:|:---:|---|\n")
        for row in range(6):
            parts.append(f"| `{_WORDS[(n + row) % len(_WORDS)]}` | {(n + 1) * (row + 3) % 997} | "
                         f"{row * 1.5:.1f} ms | {_words(n + row, 3)} |\n")
        parts.append("\n")
    elif kind == 2:
        for item in range(5):
            parts.append(f"- **{_WORDS[(n + item) % len(_WORDS)]}**: {_words(n + item, 7)}\n")
            if item % 2 == 0:
                parts.append(f"  1. {_words(n + item + 1, 5)}\n"
                             f"  2. `{_words(n, 1)}` then {_words(n + 2, 4)}\n")
        parts.append("\n")
    elif kind == 3:
        parts.append("```javascript\n"
                     f"export async function* read{n}(body) {{\n"
                     "  const reader = body.getReader();\n"
                     "  const decoder = new TextDecoder('utf-8');\n"
                     "  for (;;) {\n"
                     "    const { done, value } = await reader.read();\n"
                     "    if (done) break;\n"
                     f"    yield decoder.decode(value, {{ stream: true }}); // {_words(n, 3)}\n"
                     "  }\n"
                     "}\n"
                     "```\n\n"
                     "```bash\n"
                     "curl -N -H 'Content-Type: application/json' "
                     f"-d '{{\"message\": \"{_words(n, 2)}\"}}' "
                     "http://127.0.0.1:5000/chat\n"
                     "```\n\n")
    else:
        parts.append(f"> {_words(n + 4, 12)}.\n> \n> {_words(n + 6, 8)}.\n\n"
                     f"The cost is $O(n \\log n)$ for {_words(n, 2)}, and\n\n"
                     f"$$\\sum_{{i=1}}^{{{n + 2}}} t_i \\le {n * 3 + 5}\\,\\text{{ms}}$$\n\n")
    parts.append(f"{_words(n + 9, 14).capitalize()}. {_words(n + 11, 10).capitalize()}.\n\n")
    return "".join(parts)


def markdown_tokens(count: int = 20000) -> list[str]:
    """Exactly ``count`` tokens; joined they make whole sections and a closing paragraph."""
    tokens: list[str] = _TOKEN.findall("# A long answer\n\n")
    n = 0
    while True:
        section = _TOKEN.findall(_section(n))
        if len(tokens) + len(section) > count - 50:
            break
        tokens += section
        n += 1
    i = 0
    while len(tokens) < count:
        tokens.append(" " + _WORDS[i % len(_WORDS)] if i else "\n\nIn short")
        i += 1
    tokens[-1] = tokens[-1] + ".\n"
    return tokens


if __name__ == "__main__":
    text = "".join(markdown_tokens())
    print(text)
