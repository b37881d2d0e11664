"""Holding the lock the history writer's commits need, as a long competing transaction would."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator

import asyncpg


@contextlib.asynccontextmanager
async def write_lock(database_url: str) -> AsyncIterator[None]:
    """Hold the write lock the history writer needs (SQLite: the database's; PostgreSQL:
    ``edit_history``'s), as a long competing transaction would, until the block ends."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE edit_history IN EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()
