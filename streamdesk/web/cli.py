"""``flask --app app db upgrade``: the schema migrations by hand (they also run at start-up)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from ..store.schema import current_revision, head_revision
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


def init_app(app: Flask) -> None:
    app.cli.add_command(db)
