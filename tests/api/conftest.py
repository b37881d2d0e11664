"""Fixtures for REST tests in-process: one migrated database and app per dialect.

``api`` is shared by every test of a run on its dialect (migrating per test would dominate the
suite's time); tests stay independent by making their own tenants, which see nothing of each
other's data — the property the API promises anyway. Tests that need other settings use
``make_api``, which builds an app on a database of their own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from migrations.runner import upgrade
from tests.support.inprocess import StudioApi, running_api
from tests.support.services import (
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)

_counter = itertools.count()


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StudioApi]:
    """The app in-process on a migrated database of each dialect, shared by the run."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
        upgrade(url, "head")
        async with running_api(url) as studio:
            yield studio
        return
    require_service("PostgreSQL", postgres_available())
    # The helpers run their own event loop: keep them off this one.
    url = await asyncio.to_thread(create_postgres_database, f"api{next(_counter)}")
    try:
        upgrade(url, "head")
        async with running_api(url) as studio:
            yield studio
    finally:
        await asyncio.to_thread(drop_postgres_database, url)


@pytest.fixture
def make_api(
    migrated_database_url: str, tmp_path: Path
) -> Callable[..., AbstractAsyncContextManager[StudioApi]]:
    """``async with make_api(**settings) as api:`` an app of its own on a fresh database."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[StudioApi]:
        return running_api(migrated_database_url, **overrides)

    return make
