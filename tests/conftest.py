"""Fixtures shared by every test: databases on both dialects, Redis, and CI enforcement.

``database_url`` is parametrized over SQLite and PostgreSQL; each yields an *empty* database
(no tables) that belongs to this test alone. ``migrated_database_url`` is the same after
``alembic upgrade head``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import (
    IN_CI,
    REDIS_TEST_URL,
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    redis_available,
    require_service,
)

_counter = itertools.count()

SERVICE_MARKERS = ("postgres", "redis", "node", "browser")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each dialect, private to one test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    require_service("PostgreSQL", postgres_available())
    url = create_postgres_database(f"t{next(_counter)}")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database private to one test (no SQLite variant)."""
    require_service("PostgreSQL", postgres_available())
    url = create_postgres_database(f"p{next(_counter)}")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """:func:`database_url` migrated to head."""
    from migrations.runner import upgrade

    upgrade(database_url, "head")
    return database_url


@pytest.fixture
def redis_url() -> str:
    """The URL of the real Redis server used for tests."""
    require_service("Redis", redis_available())
    return REDIS_TEST_URL


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a skipped PostgreSQL, Redis or Node.js test fails the run."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [
        report
        for report in reporter.stats.get("skipped", [])
        if any(marker in report.keywords for marker in SERVICE_MARKERS)
    ]
    if skipped:
        reporter.write_line(
            f"CI=true: {len(skipped)} PostgreSQL/Redis/Node.js/browser test(s) were skipped; "
            "failing the run",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
