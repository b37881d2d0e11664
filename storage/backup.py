"""Backing up and restoring the database: ``prompt-studio db backup`` / ``db restore``.

* SQLite: the sqlite3 online backup API, in one step. The step reads one consistent snapshot
  under a read lock, which in WAL mode never blocks the server's writer, so a backup is safe
  while the server runs and edits. A restore copies the backup into the target the same way.
* PostgreSQL: ``pg_dump -Fc`` and ``pg_restore --single-transaction`` (a failed restore leaves
  the target as it was). The tools are looked up on ``PATH``, then in the newest
  ``/usr/lib/postgresql/*/bin``; the connection goes through ``PG*`` environment variables so
  no password appears on a command line.

A backup is written to a temporary file next to ``PATH`` and renamed into place only when it
is complete. A restore refuses a non-empty target (any table at all) unless ``force``.
Progress goes to the ``progress`` callback (the CLI prints it on stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url

from storage.engine import is_sqlite_memory

#: Where Debian/Ubuntu install the PostgreSQL client tools, one directory per major version.
PG_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that could not be done (the tool failed, the database is down)."""


class BackupRefused(BackupError):
    """Bad input: the target is not empty, the file is missing or is not a backup."""


@dataclass(frozen=True)
class BackupResult:
    """What a backup or restore did."""

    dialect: str
    path: str
    bytes: int
    revision: str | None


def _no_progress(_message: str) -> None:
    return None


# ------------------------------------------------------------------------------------------------
# Entry points


def backup(
    database_url: str, path: Path, *, force: bool = False, progress: Progress = _no_progress
) -> BackupResult:
    """Back up ``database_url`` into ``path`` (an existing file only if ``force``)."""
    if path.exists() and not force:
        raise BackupRefused(f"{path} already exists (use --force to overwrite it)")
    if path.is_dir():
        raise BackupRefused(f"{path} is a directory")
    if not path.parent.is_dir():
        raise BackupRefused(f"directory {path.parent} does not exist")
    url = make_url(database_url)
    with _temporary_next_to(path) as partial:
        if url.get_backend_name() == "sqlite":
            revision = _sqlite_backup(_sqlite_path(url), partial, progress)
        else:
            revision = _pg_backup(url, partial, progress)
        os.replace(partial, path)
    return BackupResult(url.get_backend_name(), str(path), path.stat().st_size, revision)


def restore(
    database_url: str, path: Path, *, force: bool = False, progress: Progress = _no_progress
) -> BackupResult:
    """Restore the backup at ``path`` into ``database_url``: empty, or any database if ``force``."""
    if not path.is_file():
        raise BackupRefused(f"no backup file at {path}")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        revision = _sqlite_restore(path, _sqlite_path(url), force, progress)
    else:
        revision = _pg_restore(url, path, force, progress)
    return BackupResult(url.get_backend_name(), str(path), path.stat().st_size, revision)


@contextlib.contextmanager
def _temporary_next_to(path: Path) -> Iterator[Path]:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# SQLite


def _sqlite_path(url: URL) -> Path:
    if is_sqlite_memory(url) or not url.database:
        raise BackupRefused("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return [str(row[0]) for row in rows]


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, progress: Progress) -> None:
    def report(_status: int, remaining: int, total: int) -> None:
        progress(f"copied {total - remaining} of {total} pages")

    # pages=-1: one step, one consistent snapshot. Copying in smaller steps would restart
    # from scratch whenever the server commits in between, which a busy server does forever.
    source.backup(target, pages=-1, progress=report)


def _sqlite_backup(source_path: Path, partial: Path, progress: Progress) -> str | None:
    if not source_path.is_file():
        raise BackupRefused(f"no SQLite database at {source_path}")
    progress(f"backing up SQLite database {source_path}")
    try:
        # mode=ro: the backup must never create or change the database it reads.
        with (
            contextlib.closing(
                sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
            ) as source,
            contextlib.closing(sqlite3.connect(partial)) as target,
        ):
            revision = _sqlite_revision(source)
            _copy(source, target, progress)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    return revision


def _sqlite_restore(
    backup_path: Path, target_path: Path, force: bool, progress: Progress
) -> str | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)) as source:
            check = source.execute("PRAGMA quick_check").fetchone()
            revision = _sqlite_revision(source)
            if check is None or check[0] != "ok" or revision is None:
                raise BackupRefused(f"{backup_path} is not a Prompt Studio SQLite backup")
            if not target_path.parent.is_dir():
                raise BackupRefused(f"directory {target_path.parent} does not exist")
            with contextlib.closing(sqlite3.connect(target_path, timeout=30)) as target:
                tables = _sqlite_tables(target)
                if tables and not force:
                    raise BackupRefused(
                        f"the target database {target_path} is not empty ({len(tables)} "
                        "tables): restore into a fresh database, or use --force to replace it"
                    )
                progress(f"restoring {backup_path} into SQLite database {target_path}")
                _copy(source, target, progress)
                target.execute("PRAGMA journal_mode=WAL")  # what the server's engine uses
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(f"{backup_path} is not a SQLite backup: {exc}") from exc
    return revision


# ------------------------------------------------------------------------------------------------
# PostgreSQL


def _version_key(directory: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin", directory)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def find_pg_tool(name: str, *, search_glob: str | None = None) -> str:
    """The path of ``pg_dump``/``pg_restore``: on ``PATH``, else the newest packaged version."""
    search_glob = search_glob or PG_BIN_GLOB
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob(search_glob), key=_version_key, reverse=True):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise BackupError(
        f"{name} not found on PATH or in {search_glob}: install the PostgreSQL client tools "
        "(e.g. apt-get install postgresql-client) of the server's major version or newer"
    )


def pg_environment(url: URL) -> dict[str, str]:
    """The ``PG*`` variables that point libpq tools at ``url`` (password kept off argv)."""
    env = dict(os.environ)
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        env.pop(key, None)
    values = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
    }
    env.update({key: value for key, value in values.items() if value})
    return env


def _run_tool(argv: list[str], env: dict[str, str], progress: Progress) -> None:
    progress("running " + " ".join(argv))
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"cannot run {argv[0]}: {exc}") from exc
    for line in done.stderr.splitlines():
        progress(line)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise BackupError(f"{Path(argv[0]).name} failed: {last[0]}")


async def _pg_query(url: URL, sql: str) -> list[tuple[object, ...]]:
    import asyncpg

    password = url.password if isinstance(url.password, str) else None
    try:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=password,
            database=url.database,
            timeout=10,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


def _pg_backup(url: URL, partial: Path, progress: Progress) -> str | None:
    rows = asyncio.run(_pg_query(url, "SELECT version_num FROM alembic_version"))
    progress(f"backing up PostgreSQL database {url.database!r} on {url.host}:{url.port or 5432}")
    argv = [find_pg_tool("pg_dump"), "--format=custom", f"--file={partial}", "--no-password"]
    _run_tool(argv, pg_environment(url), progress)
    return str(rows[0][0]) if rows else None


def _pg_restore(url: URL, path: Path, force: bool, progress: Progress) -> str | None:
    pg_restore = find_pg_tool("pg_restore")
    env = pg_environment(url)
    listing = subprocess.run(
        [pg_restore, "--list", str(path)], env=env, capture_output=True, text=True, check=False
    )
    if listing.returncode != 0 or "alembic_version" not in listing.stdout:
        raise BackupRefused(f"{path} is not a Prompt Studio PostgreSQL backup (pg_dump -Fc)")
    tables = asyncio.run(
        _pg_query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    if tables and not force:
        raise BackupRefused(
            f"the target database {url.database!r} is not empty ({len(tables)} tables): "
            "restore into a fresh database, or use --force to replace it"
        )
    progress(f"restoring {path} into PostgreSQL database {url.database!r}")
    argv = [pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-password"]
    if force:
        argv += ["--clean", "--if-exists"]
    argv += [f"--dbname={url.database}", str(path)]
    _run_tool(argv, env, progress)
    rows = asyncio.run(_pg_query(url, "SELECT version_num FROM alembic_version"))
    return str(rows[0][0]) if rows else None
