"""Group commits into a SQLite file in one worker-thread call each.

Through SQLAlchemy and aiosqlite, one group commit of the history writer crossed to the
database thread and back about eight times (checkout, each statement, its rows, commit, the
pool's reset) and spent ~2 ms of CPU; it ran some fifty times a second under load and was the
largest cost of an edit. :class:`SqliteBatchInserter` writes a whole batch — the
``edit_history`` rows (multi-row ``INSERT … RETURNING id``) and the ``document_updates`` rows —
in one transaction, in one call on its own :class:`~storage.sqlite_thread.SqliteThread`.

Values are encoded by SQLAlchemy's own type processors for SQLite, so rows read back through the
models exactly as if SQLAlchemy had written them. Other writers (the application's engine) use
the same file; ``BEGIN IMMEDIATE`` and the busy timeout order the writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table

from storage.models import DocumentUpdate, EditHistory
from storage.sqlite_thread import SqliteThread, bind_processors, encode_row

__all__ = ["HISTORY_COLUMNS", "SqliteBatchInserter"]

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


class SqliteBatchInserter:
    """Writes history batches to one SQLite file; use as ``async with``."""

    def __init__(self, path: str) -> None:
        self._thread = SqliteThread(path, name="history-sqlite")
        self._history_processors = bind_processors(
            cast(Table, EditHistory.__table__), HISTORY_COLUMNS
        )
        self._update_processors = bind_processors(
            cast(Table, DocumentUpdate.__table__), _UPDATE_COLUMNS
        )

    async def __aenter__(self) -> SqliteBatchInserter:
        await self._thread.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._thread.__aexit__(*exc_info)

    async def insert(
        self, history: Sequence[Sequence[Any]], updates: Sequence[Sequence[Any]]
    ) -> list[int]:
        """Insert both kinds of rows in one transaction; the history ids in row order.

        ``history`` rows give :data:`HISTORY_COLUMNS`; ``updates`` rows give
        ``(session_id, data, created_at)``. Raises ``sqlite3.Error`` (nothing written).
        """
        return await self._thread.call(self._insert, history, updates)

    # -- in the worker thread --------------------------------------------------------------

    def _insert(
        self,
        conn: sqlite3.Connection,
        history: Sequence[Sequence[Any]],
        updates: Sequence[Sequence[Any]],
    ) -> list[int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int] = []
            for start in range(0, len(history), _ROWS_PER_STATEMENT):
                chunk = history[start : start + _ROWS_PER_STATEMENT]
                placeholders = ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
                cursor = conn.execute(
                    f"INSERT INTO edit_history ({','.join(HISTORY_COLUMNS)}) "
                    f"VALUES {placeholders} RETURNING id",
                    [v for row in chunk for v in encode_row(row, self._history_processors)],
                )
                ids.extend(row_id for (row_id,) in cursor.fetchall())
            if updates:
                conn.executemany(
                    "INSERT INTO document_updates (session_id, data, created_at) VALUES (?,?,?)",
                    [encode_row(row, self._update_processors) for row in updates],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # One writer at a time and rowids that only grow: sorted ids are in row order.
        return sorted(ids)
