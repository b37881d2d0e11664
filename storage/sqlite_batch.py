"""Group commits into a SQLite file in one worker-thread call each.

Through SQLAlchemy and aiosqlite, one group commit of the history writer crossed to the
database thread and back about eight times (checkout, each statement, its rows, commit, the
pool's reset) and spent ~2 ms of CPU; it ran some fifty times a second under load and was the
largest cost of an edit. :class:`SqliteBatchInserter` keeps its own ``sqlite3`` connection in a
dedicated thread and writes a whole batch — the ``edit_history`` rows (multi-row ``INSERT …
RETURNING id``) and the ``document_updates`` rows — in one transaction, in one call.

Values are encoded by SQLAlchemy's own type processors for SQLite, so rows read back through the
models exactly as if SQLAlchemy had written them. Other writers (the application's engine) use
the same file; ``BEGIN IMMEDIATE`` and the busy timeout order the writers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from storage.engine import DEFAULT_SQLITE_BUSY_TIMEOUT_MS, is_sqlite_memory
from storage.models import DocumentUpdate, EditHistory

__all__ = ["HISTORY_COLUMNS", "SqliteBatchInserter", "sqlite_file_of"]

HISTORY_COLUMNS = (
    "session_id",
    "user_id",
    "operation",
    "content_before",
    "content_after",
    "node_id",
    "created_at",
)
"""The ``edit_history`` columns a batch row gives values for, in this order."""

_UPDATE_COLUMNS = ("session_id", "data", "created_at")
# Rows per INSERT statement: well under SQLite's limit of 32,766 bound parameters.
_ROWS_PER_STATEMENT = 500


def sqlite_file_of(url: str) -> str | None:
    """The file a ``sqlite+aiosqlite`` URL names, or None (not SQLite, in memory, or options
    this module does not reproduce)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or is_sqlite_memory(parsed) or parsed.query:
        return None
    return parsed.database


def _processors(table: Table, columns: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    dialect = sqlite.dialect()
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


class SqliteBatchInserter:
    """Writes history batches to one SQLite file; use as ``async with``."""

    def __init__(self, path: str, *, busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        history = cast(Table, EditHistory.__table__)
        self._history_processors = _processors(history, HISTORY_COLUMNS)
        self._update_processors = _processors(
            cast(Table, DocumentUpdate.__table__), _UPDATE_COLUMNS
        )

    async def __aenter__(self) -> SqliteBatchInserter:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-sqlite")
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def insert(
        self, history: Sequence[Sequence[Any]], updates: Sequence[Sequence[Any]]
    ) -> list[int]:
        """Insert both kinds of rows in one transaction; the history ids in row order.

        ``history`` rows give :data:`HISTORY_COLUMNS`; ``updates`` rows give
        ``(session_id, data, created_at)``. Raises ``sqlite3.Error`` (nothing written).
        """
        ids: list[int] = await self._run(self._insert, history, updates)
        return ids

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("the SQLite batch inserter is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- in the worker thread --------------------------------------------------------------

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _insert(
        self, history: Sequence[Sequence[Any]], updates: Sequence[Sequence[Any]]
    ) -> list[int]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int] = []
            for start in range(0, len(history), _ROWS_PER_STATEMENT):
                chunk = history[start : start + _ROWS_PER_STATEMENT]
                placeholders = ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
                cursor = conn.execute(
                    f"INSERT INTO edit_history ({','.join(HISTORY_COLUMNS)}) "
                    f"VALUES {placeholders} RETURNING id",
                    [v for row in chunk for v in _encode(row, self._history_processors)],
                )
                ids.extend(row_id for (row_id,) in cursor.fetchall())
            if updates:
                conn.executemany(
                    "INSERT INTO document_updates (session_id, data, created_at) VALUES (?,?,?)",
                    [_encode(row, self._update_processors) for row in updates],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # One writer at a time and rowids that only grow: sorted ids are in row order.
        return sorted(ids)


def _encode(row: Sequence[Any], processors: Sequence[Callable[[Any], Any] | None]) -> list[Any]:
    return [
        value if process is None or value is None else process(value)
        for value, process in zip(row, processors, strict=True)
    ]
