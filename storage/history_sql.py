"""The history writer's statements through SQLAlchemy (PostgreSQL, and SQLite without a file).

:mod:`storage.sqlite_batch` does the same work for a SQLite file in one worker-thread call each;
both take the same rows and give the same results, so :class:`~storage.history_writer.
HistoryWriter` does not care which one it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import CollaborationSession, DocumentUpdate, EditHistory
from storage.repositories.collaboration import save_document

__all__ = ["HISTORY_COLUMNS", "compact_document", "write_batch"]

HISTORY_COLUMNS = (
    "session_id",
    "user_id",
    "operation",
    "content_before",
    "content_after",
    "node_id",
    "client_op_id",
    "client_op_digest",
    "created_at",
)
"""The ``edit_history`` columns a batch row gives values for, in this order."""

# Folds updates into a stored state: (state or None, updates) -> (new state, its text).
FoldFn = Callable[[bytes | None, Sequence[bytes]], tuple[bytes, str]]


async def write_batch(
    sessions: async_sessionmaker[AsyncSession],
    rows: Sequence[Sequence[Any]],
    updates: Sequence[tuple[str, bytes, datetime]],
    touches: Sequence[tuple[str, datetime]],
) -> list[int]:
    """One transaction: ``edit_history`` rows (:data:`HISTORY_COLUMNS`), ``document_updates``
    rows ``(session_id, data, created_at)`` and ``updated_at`` of the sessions in ``touches``;
    returns the history ids in row order."""
    async with sessions() as db, db.begin():
        # Multi-row INSERTs (no ORM unit of work: this is the hot path).
        ids: list[int] = []
        if rows:
            ids = await _insert_history_rows(
                db, [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in rows]
            )
        if updates:
            await db.execute(
                insert(cast(Table, DocumentUpdate.__table__)),
                [
                    {"session_id": session_id, "data": data, "created_at": created_at}
                    for session_id, data, created_at in updates
                ],
            )
        if touches:
            table = cast(Table, CollaborationSession.__table__)
            await db.execute(
                update(table)
                .where(table.c.id == bindparam("touched_id"))
                .values(updated_at=bindparam("touched_at")),
                [{"touched_id": sid, "touched_at": at} for sid, at in touches],
            )
    return ids


async def compact_document(
    sessions: async_sessionmaker[AsyncSession], session_id: str, fold: FoldFn
) -> tuple[int, int]:
    """Fold the document's logged updates into ``crdt_state``/``content``.

    Returns (rows folded, bytes of the snapshot now stored). The stored state is locked (``FOR
    UPDATE`` on PostgreSQL) and only the rows read are deleted, so nodes compacting the same
    document concurrently never lose an update. The fold itself runs in a worker thread, so
    the event loop keeps serving between pycrdt's calls.
    """
    async with sessions() as db, db.begin():
        stored = await db.scalar(
            select(CollaborationSession.crdt_state)
            .where(CollaborationSession.id == session_id)
            .with_for_update()
        )
        rows = (
            await db.execute(
                select(DocumentUpdate.id, DocumentUpdate.data)
                .where(DocumentUpdate.session_id == session_id)
                .order_by(DocumentUpdate.id)
            )
        ).all()
        if not rows:
            return 0, len(stored or b"")
        state, content = await asyncio.to_thread(fold, stored, [data for _, data in rows])
        await save_document(db, session_id, crdt_state=state, content=content)
        await db.execute(
            delete(DocumentUpdate).where(DocumentUpdate.id.in_([row_id for row_id, _ in rows]))
        )
    return len(rows), len(state)


async def _insert_history_rows(db: AsyncSession, params: list[dict[str, Any]]) -> list[int]:
    """Insert edit_history rows in one round trip; their ids in the order of ``params``.

    On PostgreSQL, SQLAlchemy's "insertmanyvalues" returns the ids in parameter order. On SQLite
    asking for that order makes it insert row by row (~6x the CPU per row), so the ids are
    returned in any order and sorted instead: SQLite has a single writer and gives each new row
    the largest rowid so far plus one, so ids grow in the order the rows were inserted.
    """
    table = cast(Table, EditHistory.__table__)
    if db.get_bind().dialect.name == "sqlite":
        result = await db.execute(insert(table).returning(table.c.id), params)
        return sorted(result.scalars())
    result = await db.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), params
    )
    return list(result.scalars())
