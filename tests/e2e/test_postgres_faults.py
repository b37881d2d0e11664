"""PostgreSQL faults with real processes: a private cluster the test starts and stops.

The machine's shared cluster is never restarted (other tests use it): each test makes its own
with ``initdb`` (:mod:`tests.support.private_postgres`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from migrations.runner import upgrade
from tests.support.accounts import create_accounts
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.private_postgres import PrivatePostgres, private_postgres_unavailable
from tests.support.server_process import ServerProcess
from tests.support.services import require_service
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres]

#: Upper bound (seconds) on a readiness change once PostgreSQL is up or down.
WAIT = 20.0


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private, migrated, running cluster, removed afterwards."""
    reason = private_postgres_unavailable()
    require_service(f"a private PostgreSQL cluster ({reason})", reason is None)
    cluster = PrivatePostgres()
    try:
        cluster.start()
        upgrade(cluster.url(), "head")
        yield cluster
    finally:
        cluster.remove()


async def _readyz(server: ServerProcess) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        return await http.get("/readyz")


async def test_server_started_while_postgres_is_down_serves_once_it_is_up(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Bound: ``/readyz`` answers 200 within ``WAIT`` s of PostgreSQL accepting connections."""
    (alice,) = await create_accounts(private_postgres.url(), ["Alice"])
    private_postgres.stop()
    server = ServerProcess(private_postgres.url(), log_path=tmp_path / "server.log")
    try:
        await server.start()  # waits for /healthz: the process serves without its database
        down = await _readyz(server)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "not_ready"
        assert "database" in down.json()["error"]["message"]

        private_postgres.start()

        async def ready() -> bool:
            return (await _readyz(server)).status_code == 200

        await eventually(ready, timeout=WAIT, interval=0.2)
        session = await create_session(server, alice, "up")
        async with JsonClient(server.ws_base, session["share_token"], alice.token) as client:
            assert client.welcome is not None and client.welcome["content"] == "up"
            assert (await client.insert(2, "!"))["type"] == "ack"
    finally:
        await server.stop()
