"""Alembic environment: always runs on a connection handed in by ``stratus.db.migrate``."""

from alembic import context

from stratus.db.models import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
