"""The ``prompt-studio`` console entry, run for real (``python -m server.cli``) on both dialects.

Each command is a child process with ``DATABASE_URL`` set and ``LOG_LEVEL`` unset (the default),
exactly as an operator runs it. With ``--json`` a successful command prints exactly one JSON
object on stdout; bad input prints one line and exits with 2, never a traceback. What the
commands store is checked in the database itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.pool import NullPool

from migrations import runner
from storage.base import utcnow
from storage.engine import create_engine
from storage.models import LoginSession, Technique, Template, Tenant
from tests.support.server_process import ROOT, ServerProcess, free_port

EXIT_USAGE = 2
CLI_TIMEOUT = 60.0


@dataclass(frozen=True)
class Result:
    """What one CLI run produced."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The one JSON object a successful ``--json`` command prints (and nothing else)."""
        assert self.returncode == 0, self
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"expected one line of JSON on stdout: {self}"
        value = json.loads(lines[0])
        assert isinstance(value, dict), self
        return value

    def refused(self, *fragments: str) -> str:
        """Assert exit code 2 with one line on stderr (containing ``fragments``); return it."""
        assert self.returncode == EXIT_USAGE, self
        assert self.stdout == "", self
        assert "Traceback" not in self.stderr, self
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr: {self}"
        for fragment in fragments:
            assert fragment in lines[0], self
        return lines[0]


def _env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, **(extra or {})}
    for name in ("LOG_LEVEL", "REDIS_URL", "HOST", "PORT"):
        if name not in (extra or {}):
            env.pop(name, None)
    return env


async def cli(
    database_url: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> Result:
    """Run ``python -m server.cli ARGS`` against ``database_url`` and collect its output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        cwd=str(ROOT),
        env=_env(database_url, env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(args, proc.returncode, stdout.decode(), stderr.decode())


async def fetch(database_url: str, statement: Any) -> list[Any]:
    """Run one SELECT on the database and return its rows."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(statement)).all())
    finally:
        await engine.dispose()


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- migrations -----------------------------------------------------------------------------


async def test_db_upgrade_downgrade_and_current(database_url: str) -> None:
    head = runner.head()

    upgraded = (await cli(database_url, "db", "upgrade", "--json")).json()
    assert upgraded == {"revision": head, "head": head}
    current = (await cli(database_url, "db", "current", "--json")).json()
    assert current == {"revision": head, "head": head, "at_head": True}
    assert runner.current(database_url) == head

    downgraded = (await cli(database_url, "db", "downgrade", "base", "--json")).json()
    assert downgraded["revision"] is None
    current = (await cli(database_url, "db", "current", "--json")).json()
    assert current == {"revision": None, "head": head, "at_head": False}
    assert runner.current(database_url) is None

    # Without --json: "key: value" lines, and upgrading a downgraded database works again.
    again = await cli(database_url, "db", "upgrade")
    assert again.returncode == 0, again
    assert f"revision: {head}" in again.stdout.splitlines()
    assert runner.current(database_url) == head

    unknown = await cli(database_url, "db", "downgrade", "nonsense-rev")
    unknown.refused("nonsense-rev")
    assert runner.current(database_url) == head


# --- tenants, users, login tokens -----------------------------------------------------------


async def test_tenant_user_and_token(migrated_database_url: str) -> None:
    url = migrated_database_url

    created = (await cli(url, "tenant", "create", "Acme", "--domain", "acme.test", "--json")).json()
    api_key = created["api_key"]
    assert created["name"] == "Acme" and created["domain"] == "acme.test"
    assert len(api_key) >= 43  # 256 random bits in URL-safe base64
    (tenant,) = await fetch(url, select(Tenant.__table__).where(Tenant.id == created["id"]))
    assert tenant.api_key == sha256(api_key)
    assert all(api_key not in str(value) for value in tenant), "the raw API key was stored"

    duplicate = await cli(url, "tenant", "create", "Acme again", "--domain", "acme.test")
    duplicate.refused("acme.test")
    tenants = await fetch(url, select(func.count()).select_from(Tenant))
    assert tenants[0][0] == 1

    user = (
        await cli(
            url,
            "user", "create", "--tenant", created["id"], "--email", "ana@acme.test",
            "--name", "Ana", "--color", "#FF0066", "--json",
        )
    ).json()  # fmt: skip
    assert user["email"] == "ana@acme.test" and user["tenant_id"] == created["id"]

    bad_inputs = await asyncio.gather(
        cli(
            url,
            "user",
            "create",
            "--tenant",
            "no-such-tenant",
            "--email",
            "bo@acme.test",
            "--name",
            "Bo",
        ),
        cli(
            url,
            "user",
            "create",
            "--tenant",
            created["id"],
            "--email",
            "ana@acme.test",
            "--name",
            "Ana 2",
        ),
        cli(
            url,
            "user",
            "create",
            "--tenant",
            created["id"],
            "--email",
            "not-an-email",
            "--name",
            "X",
        ),
        cli(url, "token", "--email", "nobody@acme.test"),
        cli(url, "token", "--email", "ana@acme.test", "--ttl-hours", "0"),
    )
    unknown_tenant, duplicate_email, malformed_email, unknown_email, zero_ttl = bad_inputs
    unknown_tenant.refused("no-such-tenant")
    duplicate_email.refused("ana@acme.test")
    malformed_email.refused("not-an-email")
    unknown_email.refused("nobody@acme.test")
    zero_ttl.refused("--ttl-hours")

    before = utcnow()
    minted = (await cli(url, "token", "--email", "ana@acme.test", "--json")).json()
    token = minted["token"]
    assert minted["user_id"] == user["id"]
    expires_at = datetime.fromisoformat(minted["expires_at"].removesuffix("Z"))
    assert before + timedelta(hours=23.9) < expires_at < utcnow() + timedelta(hours=24.1)
    (session,) = await fetch(url, select(LoginSession.__table__))
    assert session.sid == sha256(token)
    assert session.expire > utcnow()
    assert abs(session.expire - expires_at) < timedelta(seconds=1)
    sess = session.sess if isinstance(session.sess, dict) else json.loads(session.sess)
    assert sess["user_id"] == user["id"]
    assert token not in json.dumps(sess)


async def test_errors_with_json_are_one_json_object(migrated_database_url: str) -> None:
    url = migrated_database_url
    unknown, usage = await asyncio.gather(
        cli(url, "token", "--email", "nobody@acme.test", "--json"),
        cli(url, "token", "--ttl-hours", "abc", "--json"),  # argparse: missing --email, bad float
    )
    for result in (unknown, usage):
        assert result.returncode == EXIT_USAGE, result
        assert "Traceback" not in result.stderr, result
        (line,) = result.stdout.splitlines()
        assert set(json.loads(line)) == {"error"}, result
    assert "nobody@acme.test" in json.loads(unknown.stdout)["error"]["message"]


# --- seed data ------------------------------------------------------------------------------


async def test_db_seed_is_idempotent(migrated_database_url: str) -> None:
    url = migrated_database_url
    first = (await cli(url, "db", "seed", "--json")).json()
    assert first["templates_added"] >= 12 and first["techniques_added"] >= 12
    assert first["templates_present"] == 0 and first["techniques_present"] == 0

    templates = await fetch(url, select(Template.name, Template.category))
    techniques = await fetch(url, select(Technique.title))
    assert len(templates) == first["templates_added"]
    assert len({category for _, category in templates}) >= 4
    assert len(techniques) == first["techniques_added"]

    second = (await cli(url, "db", "seed", "--json")).json()
    assert second == {
        "templates_added": 0,
        "templates_present": first["templates_added"],
        "techniques_added": 0,
        "techniques_present": first["techniques_added"],
    }
    assert sorted(await fetch(url, select(Template.name, Template.category))) == sorted(templates)
    assert len(await fetch(url, select(Technique.title))) == len(techniques)


# --- bad configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database_url", "fragment"),
    [
        ("mysql://x", "DATABASE_URL"),
        ("postgresql://x", "postgresql+asyncpg"),
        ("postgres://postgres@127.0.0.1/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://postgres@127.0.0.1:notaport/db", "DATABASE_URL"),
    ],
)
async def test_malformed_database_url_is_one_line(database_url: str, fragment: str) -> None:
    result = await cli(database_url, "db", "current")
    result.refused(fragment)


async def test_unusable_database_is_one_line(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no-such-dir" / "x.db"
    result = await cli(f"sqlite+aiosqlite:///{missing_dir}", "tenant", "create", "Acme")
    result.refused("database")


@pytest.mark.postgres
async def test_missing_postgres_database_is_one_line(postgres_url: str) -> None:
    missing = postgres_url + "_missing"
    result = await cli(missing, "db", "current")
    result.refused("does not exist")


async def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = await cli(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "db", "current", env={"PORT": "x"}
    )
    result.refused("PORT")


# --- serve ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_serve_refuses_a_postgres_database_behind_head(postgres_url: str) -> None:
    # A server that wrongly starts would run until the timeout kills it (and the test fails).
    result = await cli(postgres_url, "serve", env={"PORT": str(free_port())}, timeout=20.0)
    # serve logs at LOG_LEVEL (INFO by default) before it decides, so the error is the last line.
    assert result.returncode == EXIT_USAGE, result
    assert "Traceback" not in result.stderr, result
    last = result.stderr.splitlines()[-1]
    assert last.startswith("prompt-studio: error:") and "prompt-studio db upgrade" in last, result
    assert runner.current(postgres_url) is None  # it neither migrated nor started


async def test_serve_migrates_a_fresh_sqlite_file_by_itself(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    server = ServerProcess(url, log_path=tmp_path / "server.log")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
        assert runner.current(url) == runner.head()
        rows = await fetch(url, text("SELECT version_num FROM alembic_version"))
        assert [row[0] for row in rows] == [runner.head()]
    finally:
        # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
        assert await server.stop() in {0, -signal.SIGTERM}
    assert "Traceback" not in (tmp_path / "server.log").read_text()
