"""``prompt-studio db backup`` / ``db restore``: refusals, exit codes and bad input, both dialects.

The happy path against a running, edited server is in ``tests/e2e/test_backup.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrations import runner
from storage import backup
from tests.support.server_process import ROOT
from tests.support.services import (
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)

CLI_TIMEOUT = 60.0


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``prompt-studio ARGS`` against ``database_url`` (bounded in time)."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=str(ROOT),
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A migrated source database and an empty target database, on each dialect."""
    if request.param == "sqlite":
        source = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
        runner.upgrade(source, "head")
        yield source, f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
        return
    require_service("PostgreSQL", postgres_available())
    source = create_postgres_database("bk_source")
    target = create_postgres_database("bk_target")
    try:
        runner.upgrade(source, "head")
        yield source, target
    finally:
        drop_postgres_database(source)
        drop_postgres_database(target)


def test_restore_refuses_a_non_empty_target_unless_forced(
    database_pair: tuple[str, str], tmp_path: Path
) -> None:
    source, target = database_pair
    dump = tmp_path / "backup.bin"
    assert cli(source, "db", "backup", str(dump)).returncode == 0
    runner.upgrade(target, "head")  # migrated but holding no rows: still not a fresh database
    refused = cli(target, "db", "restore", str(dump))
    assert refused.returncode == 2, refused
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = cli(target, "db", "restore", str(dump), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert runner.current(target) == runner.head()


def test_backup_refuses_to_overwrite_a_file_unless_forced(
    database_pair: tuple[str, str], tmp_path: Path
) -> None:
    source, _ = database_pair
    dump = tmp_path / "backup.bin"
    dump.write_bytes(b"precious")
    refused = cli(source, "db", "backup", str(dump))
    assert refused.returncode == 2 and "already exists" in refused.stderr, refused
    assert dump.read_bytes() == b"precious"
    assert cli(source, "db", "backup", str(dump), "--force").returncode == 0
    assert dump.read_bytes() != b"precious"
    assert not list(tmp_path.glob(".backup.bin.partial-*"))


@pytest.mark.parametrize(
    "content", [b"", b"not a backup at all", b"SQLite format 3\x00" + b"\xff" * 200, b"PGDMP"]
)
def test_restore_rejects_a_file_that_is_not_a_backup(
    database_pair: tuple[str, str], tmp_path: Path, content: bytes
) -> None:
    _, target = database_pair
    junk = tmp_path / "junk.bin"
    junk.write_bytes(content)
    result = cli(target, "db", "restore", str(junk))
    assert result.returncode == 2, result
    assert "not a" in result.stderr and "Traceback" not in result.stderr
    if target.startswith("sqlite"):
        # Nothing was created in the target's place either.
        assert not Path(target.split("///", 1)[1]).exists() or _sqlite_empty(target)


def _sqlite_empty(url: str) -> bool:
    import sqlite3

    with sqlite3.connect(url.split("///", 1)[1]) as conn:
        return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)


def test_restore_of_a_missing_file_and_a_missing_directory_are_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    missing = cli(url, "db", "restore", str(tmp_path / "nope.bin"), "--json")
    assert missing.returncode == 2 and "no backup file" in missing.stdout, missing
    runner.upgrade(url, "head")
    no_dir = cli(url, "db", "backup", str(tmp_path / "no" / "such" / "dir.bin"))
    assert no_dir.returncode == 2 and "does not exist" in no_dir.stderr, no_dir
    is_dir = cli(url, "db", "backup", str(tmp_path), "--force")
    assert is_dir.returncode == 2 and "is a directory" in is_dir.stderr, is_dir


def test_in_memory_sqlite_is_refused(tmp_path: Path) -> None:
    result = cli("sqlite+aiosqlite:///:memory:", "db", "backup", str(tmp_path / "m.bin"))
    assert result.returncode == 2 and "in-memory" in result.stderr, result


def test_unreachable_postgres_fails_with_exit_code_3(tmp_path: Path) -> None:
    from tests.support.server_process import free_port

    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    result = cli(url, "db", "backup", str(tmp_path / "p.dump"))
    assert result.returncode == 3, result
    assert "cannot connect to PostgreSQL" in result.stderr
    assert not (tmp_path / "p.dump").exists()


def test_find_pg_tool_prefers_path_then_the_newest_packaged_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("9.6", "16", "17"):
        directory = tmp_path / "postgresql" / version / "bin"
        directory.mkdir(parents=True)
        tool = directory / "pg_dump"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (tmp_path / "postgresql" / "17" / "bin" / "pg_dump").chmod(0o644)  # not executable
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    pattern = str(tmp_path / "postgresql" / "*" / "bin")
    assert backup.find_pg_tool("pg_dump", search_glob=pattern) == str(
        tmp_path / "postgresql" / "16" / "bin" / "pg_dump"
    )
    with pytest.raises(backup.BackupError, match="pg_restore not found"):
        backup.find_pg_tool("pg_restore", search_glob=pattern)
    monkeypatch.setenv("PATH", str(tmp_path / "postgresql" / "9.6" / "bin"))
    assert backup.find_pg_tool("pg_dump", search_glob=pattern).endswith("/9.6/bin/pg_dump")


@pytest.mark.postgres
def test_missing_pg_dump_is_a_clear_failure(tmp_path: Path) -> None:
    require_service("PostgreSQL", postgres_available())
    url = create_postgres_database("bk_notool")
    try:
        runner.upgrade(url, "head")
        with pytest.MonkeyPatch.context() as patch:
            # Neither on PATH nor (here) in the packaged directories.
            patch.setenv("PATH", str(tmp_path))
            patch.setattr(backup, "PG_BIN_GLOB", str(tmp_path / "none" / "*"))
            with pytest.raises(backup.BackupError, match="pg_dump not found"):
                backup.backup(url, tmp_path / "p.dump")
    finally:
        drop_postgres_database(url)
    assert not (tmp_path / "p.dump").exists()
