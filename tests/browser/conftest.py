"""Browser fixtures: Debian's Chromium driven by Playwright, and one real server for them all.

The browser is the system's ``chromium`` (``executable_path``), never one Playwright downloads.
Every test module here is marked ``browser``: skipped locally without Chromium, required in CI
(see ``tests/conftest.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect

from migrations.runner import upgrade
from tests.browser.pages import COLORS, Profiles, set_colors
from tests.support.accounts import Account, create_accounts
from tests.support.fake_openai import FakeOpenAI
from tests.support.server_process import ServerProcess, running_server
from tests.support.services import require_service

BROWSER_ENV = {
    "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": "0.5",
    "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS": "0.2",
}


# Two cores shared by a whole test run: give every expectation the same generous deadline.
expect.set_options(timeout=15_000)


def chromium_path() -> str | None:
    """The Debian ``chromium`` binary, if installed."""
    return shutil.which("chromium")


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for every browser test."""
    executable = chromium_path()
    require_service("Debian's chromium (apt-get install chromium)", executable is not None)
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; a small
        # /dev/shm (containers) would crash renderers, so shared memory goes to /tmp.
        instance = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture(scope="package")
def browser_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for the browser tests' server."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('browser') / 'server.db'}"
    upgrade(url, "head")
    return url


@pytest.fixture(scope="package")
def fake_llm() -> Iterator[FakeOpenAI]:
    """The fake OpenAI-compatible endpoint on loopback that the run panel's runs go to."""
    with FakeOpenAI(models=("fake-small", "fake-large")) as fake:
        yield fake


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def server(
    browser_database_url: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI
) -> AsyncIterator[ServerProcess]:
    """A running server shared by the browser tests, its models served by :func:`fake_llm`."""
    env = {
        **BROWSER_ENV,
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_MODELS": "fake-small,fake-large",
        "PROMPT_STUDIO_LLM_MAX_RETRIES": "0",
    }
    async with running_server(
        browser_database_url, Path(tmp_path_factory.mktemp("logs")), env
    ) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session")
async def team(server: ServerProcess) -> list[Account]:
    """Three users of one fresh tenant, Alice, Bob and Carol, each with a colour of their own."""
    accounts = await create_accounts(server.database_url, ["Alice", "Bob", "Carol"])
    colors = dict(zip((a.user_id for a in accounts), COLORS, strict=True))
    await set_colors(server.database_url, colors)
    return accounts


@pytest_asyncio.fixture(loop_scope="session")
async def profiles(browser: Browser) -> AsyncIterator[Profiles]:
    """Signed-in browser profiles for one test, closed when it ends (passed or failed)."""
    opened = Profiles(browser)
    try:
        yield opened
    finally:
        await opened.close()
