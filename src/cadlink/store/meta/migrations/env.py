"""Alembic environment: runs on the connection `cadlink.store.meta.db.migrate` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cadlink.store.meta.models import Base


def run_online(connection: Connection) -> None:
    """Migrates through `connection`; batch mode on SQLite, whose ALTER TABLE is limited."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Prints SQL for the URL set as `sqlalchemy.url` (for operators who review DDL)."""
    url = context.config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    _connection = context.config.attributes.get("connection")
    if _connection is None:
        raise RuntimeError("run migrations through cadlink.store.meta.db.migrate(engine)")
    run_online(_connection)
