"""Liveness and readiness of a real server process against real (and failing) dependencies.

``/healthz`` says the process serves requests; ``/readyz`` checks the database (and Redis when
``REDIS_URL`` is set) on every call. Without its database a node is not ready: 503 naming the
database, with the shared error shape (``error.code == "not_ready"``). Without Redis it still
serves its own clients (no cross-node fan-out), so it stays in rotation: 200 ``"degraded"``
naming redis — taking every node out when Redis blips would turn degraded into down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from migrations.runner import upgrade
from tests.support.server_process import ServerProcess, free_port
from tests.support.services import POSTGRES_ADMIN_URL, drop_postgres_database
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT = 20.0  # upper bound on any readiness change; normally it takes one request


def _server(database_url: str, tmp_path: Path, redis_url: str | None = None) -> ServerProcess:
    env = {"REDIS_URL": redis_url} if redis_url is not None else {}
    return ServerProcess(database_url, env=env, log_path=tmp_path / "server.log")


async def _probe(server: ServerProcess, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        return await http.get(path)


async def _wait_for_readiness(
    server: ServerProcess, status: int, state: str | None = None
) -> dict[str, Any]:
    """Poll ``/readyz`` (bounded) until it answers ``status`` (and ``state``); return the body."""
    seen: list[httpx.Response] = []

    async def answered() -> bool:
        seen.append(await _probe(server, "/readyz"))
        last = seen[-1]
        return last.status_code == status and (state is None or last.json()["status"] == state)

    try:
        await eventually(answered, timeout=WAIT, interval=0.1)
    except TimeoutError:
        last = seen[-1] if seen else None
        raise AssertionError(
            f"/readyz never answered {status} {state or ''}; last: "
            + (f"{last.status_code} {last.text}" if last is not None else "nothing")
        ) from None
    body: dict[str, Any] = seen[-1].json()
    return body


def _assert_not_ready(body: dict[str, Any], failing: str, healthy: set[str]) -> None:
    assert body["status"] == "unavailable", body
    assert body["error"]["code"] == "not_ready", body
    assert failing in body["error"]["message"], body
    assert body["checks"][failing].startswith("unavailable"), body
    for name in healthy:
        assert body["checks"][name] == "ok", body
        assert name not in body["error"]["message"], body


@pytest.mark.redis
async def test_ready_when_database_and_redis_answer(
    migrated_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with _server(migrated_database_url, tmp_path, redis_url) as server:
        # The broker subscribes in the background; "ok" once it has.
        body = await _wait_for_readiness(server, 200, "ok")
        assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
        assert (await _probe(server, "/healthz")).json() == {"status": "ok"}


async def test_unreachable_redis_degrades_the_server_but_keeps_it_alive(
    migrated_database_url: str, tmp_path: Path
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with _server(migrated_database_url, tmp_path, closed) as server:
        body = await _wait_for_readiness(server, 200, "degraded")
        assert body["degraded"] == ["redis"], body
        assert body["checks"]["database"] == "ok", body
        assert body["checks"]["redis"].startswith("degraded"), body
        assert "error" not in body, body
        health = await _probe(server, "/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(
        POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_dropped_database_makes_the_server_not_ready(
    postgres_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(upgrade, postgres_url, "head")
    async with _server(postgres_url, tmp_path) as server:
        ready = await _probe(server, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok"}

        # The database disappears from under the running server (its connections are killed).
        await asyncio.to_thread(drop_postgres_database, postgres_url)
        body = await _wait_for_readiness(server, 503)
        _assert_not_ready(body, "database", healthy=set())
        health = await _probe(server, "/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        # Readiness is checked on every call, not cached: it recovers when the database is back.
        name = postgres_url.rsplit("/", 1)[1]
        await _admin(f'CREATE DATABASE "{name}"')
        body = await _wait_for_readiness(server, 200)
        assert body == {"status": "ok", "checks": {"database": "ok"}}
