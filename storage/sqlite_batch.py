"""Group commits into a SQLite file in one worker-thread call each.

Through SQLAlchemy and aiosqlite, one group commit of the history writer crossed to the
database thread and back about eight times (checkout, each statement, its rows, commit, the
pool's reset) and spent ~2 ms of CPU; it ran some fifty times a second under load and was the
largest cost of an edit. :class:`SqliteBatchInserter` writes a whole batch — the
``edit_history`` rows (multi-row ``INSERT … RETURNING id``) and the ``document_updates`` rows —
in one transaction, in one call on its own :class:`~storage.sqlite_thread.SqliteThread`.
A compaction (:meth:`SqliteBatchInserter.compact`) is one call on the same connection too: it
holds the write lock only while it folds, never across event-loop turns, and commits queued
behind it run right after it in the same thread.

Values are encoded by SQLAlchemy's own type processors for SQLite, so rows read back through the
models exactly as if SQLAlchemy had written them. Other writers (the application's engine) use
the same file; ``BEGIN IMMEDIATE`` and the busy timeout order the writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table

from storage.history_sql import HISTORY_COLUMNS, FoldFn
from storage.models import CollaborationSession, DocumentUpdate, EditHistory
from storage.sqlite_thread import SqliteThread, bind_processors, encode_row

__all__ = ["SqliteBatchInserter"]

_UPDATE_COLUMNS = ("session_id", "data", "created_at")
# Rows per INSERT statement: well under SQLite's limit of 32,766 bound parameters.
_ROWS_PER_STATEMENT = 500
_ROW_PLACEHOLDERS = "(" + ",".join("?" * len(HISTORY_COLUMNS)) + ")"


class SqliteBatchInserter:
    """Writes history batches to one SQLite file; use as ``async with``."""

    def __init__(self, path: str, *, busy_timeout_ms: int) -> None:
        self._thread = SqliteThread(path, name="history-sqlite", busy_timeout_ms=busy_timeout_ms)
        self._history_processors = bind_processors(
            cast(Table, EditHistory.__table__), HISTORY_COLUMNS
        )
        self._update_processors = bind_processors(
            cast(Table, DocumentUpdate.__table__), _UPDATE_COLUMNS
        )
        (self._encode_time,) = bind_processors(
            cast(Table, CollaborationSession.__table__), ("updated_at",)
        )

    async def __aenter__(self) -> SqliteBatchInserter:
        await self._thread.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._thread.__aexit__(*exc_info)

    async def insert(
        self,
        history: Sequence[Sequence[Any]],
        updates: Sequence[Sequence[Any]],
        touches: Sequence[tuple[str, datetime]] = (),
    ) -> list[int]:
        """Insert both kinds of rows in one transaction; the history ids in row order.

        ``history`` rows give :data:`~storage.history_sql.HISTORY_COLUMNS`; ``updates`` rows
        give ``(session_id, data, created_at)``; ``touches`` set ``updated_at`` of sessions.
        Raises ``sqlite3.Error`` (nothing written).
        """
        return await self._thread.call(self._insert, history, updates, touches)

    async def compact(self, session_id: str, fold: FoldFn, now: datetime) -> tuple[int, int]:
        """Fold the document's logged updates into its snapshot, in one transaction.

        Returns (rows folded, bytes of the snapshot now stored). Raises ``sqlite3.Error``
        (nothing changed).
        """
        return await self._thread.call(self._compact, session_id, fold, now)

    # -- in the worker thread --------------------------------------------------------------

    def _insert(
        self,
        conn: sqlite3.Connection,
        history: Sequence[Sequence[Any]],
        updates: Sequence[Sequence[Any]],
        touches: Sequence[tuple[str, datetime]],
    ) -> list[int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int] = []
            for start in range(0, len(history), _ROWS_PER_STATEMENT):
                chunk = history[start : start + _ROWS_PER_STATEMENT]
                placeholders = ",".join([_ROW_PLACEHOLDERS] * len(chunk))
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
            if touches:
                conn.executemany(
                    "UPDATE collaboration_sessions SET updated_at = ? WHERE id = ?",
                    [(self._time(at), session_id) for session_id, at in touches],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # One writer at a time and rowids that only grow: sorted ids are in row order.
        return sorted(ids)

    def _compact(
        self, conn: sqlite3.Connection, session_id: str, fold: FoldFn, now: datetime
    ) -> tuple[int, int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute(
                "SELECT crdt_state FROM collaboration_sessions WHERE id = ?", (session_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT id, data FROM document_updates WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
            if found is None or not rows:
                conn.execute("ROLLBACK")
                return 0, (len(found[0] or b"") if found is not None else 0)
            state, content = fold(found[0], [data for _, data in rows])
            conn.execute(
                "UPDATE collaboration_sessions SET crdt_state = ?, content = ?, updated_at = ? "
                "WHERE id = ?",
                (state, content, self._time(now), session_id),
            )
            # The write lock was held since the read: exactly the rows read are deleted.
            conn.execute(
                "DELETE FROM document_updates WHERE session_id = ? AND id <= ?",
                (session_id, rows[-1][0]),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return len(rows), len(state)

    def _time(self, value: datetime) -> Any:
        return value if self._encode_time is None else self._encode_time(value)
