"""The async engine and session factory for the two supported databases.

* ``sqlite+aiosqlite:///path.db`` (the embedded default) — every connection gets
  ``PRAGMA foreign_keys=ON`` (the schema's cascades depend on it), a busy timeout, and
  ``journal_mode=WAL`` for file databases (readers never block the writer).
* ``postgresql+asyncpg://…`` — production; connections are pre-pinged.

Nothing connects until the engine is first used; dispose the engine when done.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

#: How long (milliseconds) a SQLite connection waits for a competing writer's lock.
DEFAULT_SQLITE_BUSY_TIMEOUT_MS: Final = 5000

SUPPORTED_URLS: Final = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    if parsed.drivername not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
        supported = ", ".join(f"{prefix}…" for prefix in SUPPORTED_URLS)
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
            f"use one of {supported}"
        )
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (no file, so no WAL)."""
    database = url.database or ""
    return (
        database in {"", ":memory:"}
        or database.startswith("file::memory:")
        or ("mode=memory" in database)
    )


def _sqlite_pragmas(busy_timeout_ms: int, wal: bool) -> list[str]:
    pragmas = ["PRAGMA foreign_keys=ON", f"PRAGMA busy_timeout={int(busy_timeout_ms)}"]
    if wal:
        pragmas.append("PRAGMA journal_mode=WAL")
    return pragmas


def create_engine(
    url: str, *, busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS, **kw: Any
) -> AsyncEngine:
    """Create an :class:`AsyncEngine` for a ``sqlite+aiosqlite`` or ``postgresql+asyncpg`` URL.

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`.
    ``busy_timeout_ms`` applies to SQLite only. Raises :class:`ValueError` for any other URL.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "postgresql":
        kw.setdefault("pool_pre_ping", True)
        return _create_async_engine(parsed, **kw)

    engine = _create_async_engine(parsed, **kw)
    pragmas = _sqlite_pragmas(busy_timeout_ms, wal=not is_sqlite_memory(parsed))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory bound to ``engine``; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_autocommit_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``'s pool in which every statement commits on its own.

    For independent, idempotent writes (presence marks) done a few statements at a time: on
    SQLite a transaction holds the database's only write lock from its first write to its
    commit, and through aiosqlite every statement in between waits for an event-loop turn, so a
    busy loop made one presence flush (an UPDATE per session) hold it for seconds while the
    history writer waited. Statement by statement, the lock is held only while one executes.
    (On PostgreSQL a transaction locks only the rows it writes; use the ordinary factory there.)
    """
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
