"""One ``sqlite3`` connection owned by one worker thread, for calls that must be cheap.

Through SQLAlchemy and aiosqlite a statement crosses to the database thread and back several
times (checkout, execute, fetch, close, the pool's reset), and in a busy server each crossing
waits for the event loop. A :class:`SqliteThread` runs a whole unit of work — a group commit, a
join's admission read — as one function call in its thread: one crossing. Used only for the
hot paths, on file databases; everything else goes through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from storage.engine import DEFAULT_SQLITE_BUSY_TIMEOUT_MS, is_sqlite_memory

__all__ = ["PreparedStatement", "SqliteThread", "bind_processors", "encode_row", "sqlite_file_of"]

_T = TypeVar("_T")

Processor = Callable[[Any], Any] | None


def sqlite_file_of(url: str) -> str | None:
    """The file a ``sqlite+aiosqlite`` URL names, or None (not SQLite, in memory, or options
    this module does not reproduce)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or is_sqlite_memory(parsed) or parsed.query:
        return None
    return parsed.database


def bind_processors(table: Table, columns: Sequence[str]) -> list[Processor]:
    """SQLAlchemy's own SQLite encoders for these columns (None where a value passes as is), so
    values written or compared here match what SQLAlchemy writes and reads."""
    dialect = sqlite.dialect()
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


def encode_row(row: Sequence[Any], processors: Sequence[Processor]) -> list[Any]:
    """``row`` encoded by ``processors`` (see :func:`bind_processors`)."""
    return [
        value if process is None or value is None else process(value)
        for value, process in zip(row, processors, strict=True)
    ]


class PreparedStatement:
    """A SQLAlchemy statement rendered once for ``sqlite3``: its SQL and its encoded parameters.

    Named ``bindparam``s are filled in at :meth:`parameters`; every value is encoded by the
    bind's own SQLAlchemy type, so the statement runs exactly as SQLAlchemy would run it.
    """

    def __init__(self, statement: ClauseElement) -> None:
        dialect = sqlite.dialect()
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self._order = list(compiled.positiontup or ())
        self._defaults = dict(compiled.params)
        self._processors = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._order
        ]

    def parameters(self, **values: Any) -> list[Any]:
        """The positional parameters, the named binds given in ``values``."""
        merged = {**self._defaults, **values}
        return encode_row([merged[name] for name in self._order], self._processors)


class SqliteThread:
    """A connection to one SQLite file in a dedicated thread; use as ``async with``."""

    def __init__(
        self,
        path: str,
        *,
        name: str,
        read_only: bool = False,
        busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        self._path = path
        self._name = name
        self._read_only = read_only
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def __aenter__(self) -> SqliteThread:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        await self._in_thread(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is None:
            return
        try:
            await self._in_thread(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` in the thread (one crossing there and back)."""
        return await self._in_thread(self._with_connection, fn, args)

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise RuntimeError(f"{self._name} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _with_connection(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        assert self._conn is not None
        return fn(self._conn, *args)

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        if self._read_only:
            conn.execute("PRAGMA query_only=ON")
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
