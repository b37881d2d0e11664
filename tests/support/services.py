"""Finding the real PostgreSQL and Redis servers and making fresh, private databases on them.

Locally a missing service makes its tests skip with a reason; with ``CI=true`` it is an error,
so a CI run can never pass with the PostgreSQL or Redis suites silently skipped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# The maintenance database used to create and drop one fresh database per test run.
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

RUN_ID = uuid.uuid4().hex[:10]


def _port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    host = parts.hostname or "127.0.0.1"
    port = parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, available: bool) -> None:
    """Skip (locally) or fail (in CI) when a real service is not reachable."""
    if available:
        return
    message = f"{name} is not reachable on this machine"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; start it to run these tests")


def postgres_available() -> bool:
    """Whether the PostgreSQL server used for tests accepts TCP connections."""
    return _port_open(POSTGRES_ADMIN_URL, 5432)


def redis_available() -> bool:
    """Whether the Redis server used for tests accepts TCP connections."""
    return _port_open(REDIS_TEST_URL, 6379)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_postgres_database(label: str) -> str:
    """Create an empty database private to this test run and return its SQLAlchemy URL."""
    name = f"ps_test_{RUN_ID}_{label}".lower()
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database` (connections are terminated)."""
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
