"""One list of reply statuses: the store's enum, the page's mirror and the API docs agree."""
from __future__ import annotations

import re

from streamdesk.store import ReplyStatus
from tests.conftest import ROOT


def test_the_page_mirrors_every_reply_status():
    source = (ROOT / "static" / "status.js").read_text()
    pairs = dict(re.findall(r'(\w+): "(\w+)"', source))
    assert pairs == {status.name: status.value for status in ReplyStatus}


def test_the_api_docs_describe_every_reply_status():
    docs = (ROOT / "docs" / "api.md").read_text()
    table = docs.split("## Reply statuses", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert documented == [status.value for status in ReplyStatus]
