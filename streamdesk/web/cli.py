"""Operators' commands: ``flask --app app db upgrade`` (the schema migrations by hand; they also
run at start-up) and ``flask --app app feedback export`` (the ratings users gave replies)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import Flask
from flask.cli import AppGroup

from ..store.schema import current_revision, head_revision
from .exports import FEEDBACK_FIELDS, feedback_rows, to_csv
from .services import services

db = AppGroup("db", help="The conversation database's schema.")


@db.command("upgrade")
def upgrade() -> None:
    """Apply every migration not yet applied."""
    store = services().store
    store.migrate()
    click.echo(f"schema at revision {current_revision(store.engine)}")


@db.command("current")
def current() -> None:
    """Show the schema's revision and the newest one this version knows."""
    click.echo(f"database: {current_revision(services().store.engine)}; "
               f"newest: {head_revision()}")


feedback = AppGroup("feedback", help="The ratings users gave replies.")


@feedback.command("export")
@click.option("--format", "form", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Only ratings given on or after this day (UTC).")
def export_feedback(form: str, since: datetime | None) -> None:
    """Every rated reply, oldest first, to standard output: time, model, rating, comment, the
    question and the reply, and the user as the same hash the logs use."""
    app = services()
    moment = (since or datetime(1970, 1, 1)).replace(tzinfo=UTC)
    rows = feedback_rows(app.store.feedback_since(moment), app.settings.secret_key)
    if form == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        click.echo(to_csv(rows, FEEDBACK_FIELDS), nl=False)


def init_app(app: Flask) -> None:
    app.cli.add_command(db)
    app.cli.add_command(feedback)
