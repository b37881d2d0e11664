"""Alembic environment: async, PostgreSQL (asyncpg) and SQLite (aiosqlite).

Normally :mod:`migrations.runner` passes an open connection in
``config.attributes["connection"]`` (already inside a transaction it commits itself).
Otherwise the URL comes from the ``sqlalchemy.url`` option, and this script opens its own
engine, or, in offline mode (``--sql``), renders the SQL without connecting.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from migrations.runner import MigrationError, context_options, run_in_transaction
from storage.engine import create_engine

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise MigrationError("no database: pass a connection or set sqlalchemy.url")
    return url


def run_migrations_offline() -> None:
    """Emit the migration SQL for the configured URL without connecting."""
    url = _url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on an open (sync-facade) connection."""
    context.configure(connection=connection, **context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open an engine for the configured URL and migrate through it."""
    engine = create_engine(_url(), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await run_in_transaction(conn, do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Migrate the passed-in connection, or one of our own."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
