"""Alembic's entry point. StreamDesk always runs it through ``streamdesk.store.schema``, which
passes an open connection (inside the schema lock) in ``config.attributes``."""
from __future__ import annotations

from alembic import context

from streamdesk.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
