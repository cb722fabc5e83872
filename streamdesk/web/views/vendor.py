"""The chat page's front-end libraries, served from ``node_modules`` (see ``package.json``).

They come from the npm registry through the lockfile (``npm ci``) and are never copied into
the repository, and there is no bundler: the browser loads these files as they are published.

Only the files listed in ``PACKAGES`` can be reached -- never an arbitrary path under
``node_modules``. The installed version is part of every URL, so a file can be cached for a
year: upgrading a package changes its URLs, and a URL naming another version answers 404.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory, url_for

from ..policies import no_identity

bp = Blueprint("vendor", __name__, url_prefix="/vendor")

ONE_YEAR = 365 * 24 * 3600
# Module scripts are refused unless served as JavaScript; Python's mimetypes may not know .mjs.
MIMETYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
             ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf"}
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


@dataclass(frozen=True)
class Package:
    directory: str  # under node_modules
    files: tuple[str, ...]  # exact paths inside the package
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folder -> suffixes


PACKAGES = {
    "marked": Package("marked", ("lib/marked.esm.js",)),
    "dompurify": Package("dompurify", ("dist/purify.es.mjs",)),
    # highlight.js publishes its browser ES module build (common languages) in this package.
    "highlight": Package("@highlightjs/cdn-assets", ("es/highlight.min.js",)),
    # KaTeX's stylesheet loads its fonts relative to itself, from dist/fonts/.
    "katex": Package("katex", ("dist/katex.mjs", "dist/katex.min.css"),
                     {"dist/fonts": (".woff2", ".woff", ".ttf")}),
}


def _node_modules() -> Path:
    return Path(current_app.root_path) / "node_modules"


@cache
def _installed_version(package_json: Path) -> str | None:
    try:
        return json.loads(package_json.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def installed_version(name: str) -> str:
    """The installed version of a package; "missing" when ``npm ci`` has not run."""
    package_json = _node_modules() / PACKAGES[name].directory / "package.json"
    return _installed_version(package_json) or "missing"


def _allowed(package: Package, path: str) -> bool:
    if path in package.files:
        return True
    folder, _, name = path.rpartition("/")
    suffixes = package.folders.get(folder)
    return suffixes is not None and bool(_FILE_NAME.match(name)) and name.endswith(suffixes)


@bp.get("/<name>/<version>/<path:path>")
@no_identity
def vendor_file(name: str, version: str, path: str):
    package = PACKAGES.get(name)
    if package is None or not _allowed(package, path) or version != installed_version(name):
        abort(404)
    folder, _, file_name = path.rpartition("/")
    response = send_from_directory(_node_modules() / package.directory / folder, file_name,
                                   max_age=ONE_YEAR,
                                   mimetype=MIMETYPES.get(Path(file_name).suffix))
    response.cache_control.immutable = True
    return response


def vendor_url(name: str, path: str) -> str:
    """URL of one whitelisted file, for templates: ``vendor_url("katex", "dist/katex.min.css")``."""
    return url_for("vendor.vendor_file", name=name, version=installed_version(name), path=path)


@bp.app_context_processor
def _template_helpers() -> dict:
    return {"vendor_url": vendor_url}
