"""Alembic environment: runs migrations on the connection Plinth hands in."""

from __future__ import annotations

from alembic import context

from plinth.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - Plinth always passes its connection
    raise RuntimeError("Plinth migrations run through plinth.catalog.db.migrate().")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
