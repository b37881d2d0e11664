"""Run the Alembic migrations programmatically (no ``alembic.ini`` on disk).

The sync functions (:func:`upgrade`, :func:`downgrade`, :func:`current`, :func:`is_at_head`)
are for the CLI and for synchronous test fixtures: each opens its own engine and disposes of it.
Called from inside a running event loop they do their work on a helper thread. Inside async
code prefer :func:`upgrade_async`, :func:`downgrade_async` and :func:`current_async`, which
use an engine you already have.

Every migration command runs in one transaction. On SQLite that takes two precautions
(:func:`run_in_transaction`): foreign-key enforcement is suspended while tables are rebuilt
by batch operations (otherwise rebuilding a parent table would cascade-delete its children's
rows), and an explicit ``BEGIN`` makes the DDL atomic; ``PRAGMA foreign_key_check`` then
verifies the result before the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

import storage.models  # noqa: F401 - registers every table on Base.metadata
from storage.base import Base, exists_on_dialect
from storage.engine import create_engine

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent

_T = TypeVar("_T")


class MigrationError(RuntimeError):
    """A migration could not be applied, or left the database inconsistent."""


def make_config(url: str | None = None) -> Config:
    """An Alembic :class:`Config` for this package, optionally naming a database URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolation: a literal % (URL-encoded passwords) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _include_object_for(dialect_name: str) -> Callable[..., bool]:
    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        # Dialect-specific indexes (GIN on JSONB) exist only on their dialect.
        return reflected or type_ != "index" or exists_on_dialect(obj, dialect_name)

    return include_object


def _compare_server_default(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's own comparison, except for one false positive.

    On SQLite, Alembic renders the model's empty-string default as ``""`` but reflects the
    database's as ``('')``; the two are the same default. ``None`` defers to Alembic.
    """
    if rendered_metadata_default == "" and (inspected_default or "").strip("()") == "''":
        return False
    return None


def context_options(dialect_name: str) -> dict[str, Any]:
    """Options for ``context.configure`` / ``MigrationContext.configure`` on a dialect.

    ``env.py`` uses these, and so do the tests that compare the migrated database with the
    models, so both see the database the same way.
    """
    return {
        "target_metadata": Base.metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "compare_server_default": _compare_server_default,
        "include_object": _include_object_for(dialect_name),
    }


async def _sqlite_foreign_keys(conn: AsyncConnection, *, enabled: bool) -> None:
    """Switch SQLite FK enforcement (a no-op inside a transaction, so call it outside one)."""
    await conn.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    state = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
    await conn.commit()
    if bool(state) is not enabled:
        if enabled:
            # Never hand a connection without FK enforcement back to the pool.
            await conn.invalidate()
        raise MigrationError(f"could not set PRAGMA foreign_keys={enabled} on SQLite")


async def run_in_transaction(conn: AsyncConnection, fn: Callable[[Connection], None]) -> None:
    """Run ``fn(sync_connection)`` in one transaction on a connection with none open.

    On SQLite, foreign-key enforcement is off while ``fn`` runs and is switched back on
    afterwards, whatever happens; violations found by ``PRAGMA foreign_key_check`` roll the
    transaction back and raise :class:`MigrationError`.
    """
    if conn.in_transaction():
        raise MigrationError("migrations need a connection without an open transaction")
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        await _sqlite_foreign_keys(conn, enabled=False)
        # pysqlite only begins transactions before DML; an explicit BEGIN covers the DDL too.
        await conn.exec_driver_sql("BEGIN")
    else:
        await conn.begin()
    try:
        await conn.run_sync(fn)
        if sqlite:
            violations = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if violations:
                raise MigrationError(f"foreign key violations after migrating: {violations}")
    except BaseException:
        await conn.rollback()
        raise
    else:
        await conn.commit()
    finally:
        if sqlite:
            await _sqlite_foreign_keys(conn, enabled=True)


async def _run_command(engine: AsyncEngine, action: Callable[[Config], None]) -> None:
    def run(sync_conn: Connection) -> None:
        config = make_config()
        config.attributes["connection"] = sync_conn
        action(config)

    async with engine.connect() as conn:
        await run_in_transaction(conn, run)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (inside a running loop)."""
    await _run_command(engine, lambda config: command.upgrade(config, revision))


async def downgrade_async(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` (``"base"``: empty)."""
    await _run_command(engine, lambda config: command.downgrade(config, revision))


def _current_revision(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def current_async(engine: AsyncEngine) -> str | None:
    """The revision the database behind ``engine`` is at; ``None`` if never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if a loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrations") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _with_engine(
    url: str, work: Callable[[AsyncEngine], Coroutine[Any, Any, _T]]
) -> Callable[[], Coroutine[Any, Any, _T]]:
    async def run() -> _T:
        engine = create_engine(url, poolclass=NullPool)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return run


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest)."""
    _run_sync(_with_engine(url, lambda engine: upgrade_async(engine, revision)))


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` removes every table)."""
    _run_sync(_with_engine(url, lambda engine: downgrade_async(engine, revision)))


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` if it was never migrated."""
    return _run_sync(_with_engine(url, current_async))


def head() -> str:
    """The newest revision shipped with this package."""
    revision = ScriptDirectory.from_config(make_config()).get_current_head()
    if revision is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return revision


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(make_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def is_at_head(url: str) -> bool:
    """Whether the database at ``url`` has every migration applied."""
    return current(url) == head()
