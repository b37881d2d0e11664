"""End-to-end fixtures: a real ``prompt-studio serve`` process per module and dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from migrations.runner import upgrade
from tests.support.accounts import Account, create_accounts
from tests.support.server_process import ServerProcess, running_server
from tests.support.services import (
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)

#: The operator key of the e2e servers (operator endpoints are off without one).
E2E_OPERATOR_KEY = "e2e-operator-key-0123456789abcdef"

E2E_ENV = {
    "PROMPT_STUDIO_OPERATOR_KEY": E2E_OPERATOR_KEY,
    "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": "0.5",
    "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS": "0.2",
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database for one module's server, on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('e2e') / 'server.db'}"
        upgrade(url, "head")
        yield url
        return
    require_service("PostgreSQL", postgres_available())
    module = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:20]
    url = create_postgres_database(f"e2e_{module}")
    try:
        upgrade(url, "head")
        yield url
    finally:
        drop_postgres_database(url)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(
    server_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A running server for the module (restart-safe: tests may stop and start it)."""
    async with running_server(
        server_database_url, Path(tmp_path_factory.mktemp("logs")), E2E_ENV
    ) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session")
async def team(server: ServerProcess) -> list[Account]:
    """Three users of one fresh tenant: alice, bob, carol."""
    return await create_accounts(server.database_url, ["Alice", "Bob", "Carol"])


@pytest_asyncio.fixture(loop_scope="session")
async def outsider(server: ServerProcess) -> Account:
    """A user of another tenant."""
    (account,) = await create_accounts(server.database_url, ["Mallory"])
    return account


@pytest_asyncio.fixture(loop_scope="session")
async def own_server(server_database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server this test alone uses and may kill or restart (on the module's database)."""
    async with running_server(server_database_url, tmp_path, E2E_ENV) as proc:
        yield proc
