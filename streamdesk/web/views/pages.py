"""The chat page."""
from __future__ import annotations

from flask import Blueprint, render_template

from ..policies import public

bp = Blueprint("pages", __name__)


@bp.get("/")
@public
def index():
    return render_template("index.html")

