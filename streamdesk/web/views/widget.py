"""The embeddable widget: ``/widget.js``, the one tag a portal page adds, and ``/widget``, the
chat panel that script frames (docs/helpdesk.md).

Who may call: ``/widget.js`` is a file (no identity); ``/widget`` is the chat page itself in a
compact form, as public as ``/`` (the same identity rules apply to everything it calls). Only
the portals of WIDGET_ORIGINS may frame the panel (``security.py``); registered only when
WIDGET_ORIGINS is set.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template, send_file

from ..policies import no_identity, public
from ..services import services

bp = Blueprint("widget", __name__)

LOADER = Path(__file__).resolve().parents[3] / "static" / "widget.js"
LOADER_MAX_AGE = 300  # portals pick up a new version within minutes


@bp.get("/widget.js")
@no_identity
def loader():
    return send_file(LOADER, mimetype="text/javascript", max_age=LOADER_MAX_AGE)


@bp.get("/widget")
@public
def panel():
    return render_template("index.html", embed=True,
                           widget_origins=list(services().settings.widget_origins))
