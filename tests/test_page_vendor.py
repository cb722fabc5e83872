"""The page's npm libraries, served from node_modules by streamdesk/views/vendor.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

pytest_plugins = ["tests.browser"]  # page_server

ROOT = Path(__file__).resolve().parent.parent


def version(package: str) -> str:
    return json.loads((ROOT / "node_modules" / package / "package.json").read_text())["version"]


def test_the_page_loads_each_library_from_its_versioned_url(page_server):
    html = requests.get(page_server.url + "/", timeout=10).text
    urls = re.findall(r'"(/vendor/[^"]+)"', html)
    assert f"/vendor/marked/{version('marked')}/lib/marked.esm.js" in urls
    assert f"/vendor/katex/{version('katex')}/dist/katex.min.css" in urls
    assert len(urls) == 5  # marked, DOMPurify, highlight.js, KaTeX's module and its CSS
    for url in urls:
        response = requests.get(page_server.url + url, timeout=10)
        assert response.status_code == 200, url
        # A year, immutable: a new version is a new URL.
        assert "max-age=31536000" in response.headers["Cache-Control"]
        assert "immutable" in response.headers["Cache-Control"]
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert response.headers["Content-Type"].startswith(kind), url  # modules need the right type


def test_katex_fonts_are_served(page_server):
    url = f"/vendor/katex/{version('katex')}/dist/fonts/KaTeX_Main-Regular.woff2"
    response = requests.get(page_server.url + url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "font/woff2"


@pytest.mark.parametrize("path", [
    "marked/{marked}/package.json",  # a real file of the package, not whitelisted
    "marked/{marked}/lib/marked.umd.js",
    "marked/0.0.1/lib/marked.esm.js",  # another version
    "katex/{katex}/dist/fonts/../katex.js",
    "katex/{katex}/dist/fonts/..%2F..%2Fpackage.json",
    "katex/{katex}/dist/fonts/.hidden.woff2",
    "katex/{katex}/dist/fonts/KaTeX_Main-Regular.svg",
    "commander/1.0.0/index.js",  # installed, but not a page library
    "..%2F..%2Fapp.py",
])
def test_nothing_outside_the_whitelist_is_reachable(page_server, path):
    path = path.format(marked=version("marked"), katex=version("katex"))
    # prepare_url would normalise "..": send the path exactly as written.
    session = requests.Session()
    request = requests.Request("GET", f"{page_server.url}/vendor/{path}").prepare()
    request.url = f"{page_server.url}/vendor/{path}"
    assert session.send(request, timeout=10).status_code == 404
