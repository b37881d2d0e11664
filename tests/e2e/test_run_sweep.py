"""A run left ``running`` by a server that was SIGKILLed mid-stream ends ``failed``
(``interrupted``) once another server's sweep sees its lease expired, with the partial output
the dead node had stored: real server processes and the fake OpenAI server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.accounts import Account, create_accounts
from tests.support.api import call
from tests.support.fake_openai import FakeOpenAI
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

LEASE_SECONDS = 1.5
SWEEP_SECONDS = 0.2


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _env(fake: FakeOpenAI) -> dict[str, str]:
    return {
        "LLM_BASE_URL": fake.base_url,
        "LLM_MODELS": "fake-small",
        "PROMPT_STUDIO_LLM_MAX_RETRIES": "0",
        "PROMPT_STUDIO_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "PROMPT_STUDIO_RUN_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }


async def _latest_run(server: ServerProcess, who: Account) -> dict[str, Any]:
    listed = await call(server, who, "GET", "/api/runs", params={"limit": 1})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert items, "the run is not recorded"
    run = await call(server, who, "GET", f"/api/runs/{items[0]['id']}")
    assert run.status_code == 200, run.text
    return dict(run.json())


async def test_a_killed_nodes_streaming_run_is_swept_by_the_next(
    server_database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    (ana,) = await create_accounts(server_database_url, ["Ana"])
    # Two words arrive, then the upstream stream holds until its client goes away.
    fake.fail_next("stall", after_chunks=2)
    first = ServerProcess(server_database_url, env=_env(fake), log_path=tmp_path / "first.log")
    await first.start()
    deltas: list[str] = []
    streamed = asyncio.Event()

    async def stream() -> None:
        body = {"model": "fake-small", "content": "tell me about tides", "stream": True}
        async with (
            httpx.AsyncClient(base_url=first.base_url, headers=ana.headers) as http,
            http.stream("POST", "/api/runs", json=body, timeout=60) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    deltas.append(line)
                    if len(deltas) == 2:
                        streamed.set()

    reader = asyncio.create_task(stream())
    try:
        await asyncio.wait_for(streamed.wait(), timeout=30)

        async def partial_stored() -> bool:
            run = await _latest_run(first, ana)
            return run["status"] == "running" and run["output"] == "Fake answer "

        # A renewal (every third of the lease) has stored the partial output.
        await eventually(partial_stored, timeout=30, interval=0.1)
        await first.kill()
        killed_at = time.monotonic()
    finally:
        await first.kill()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    second = ServerProcess(server_database_url, env=_env(fake), log_path=tmp_path / "second.log")
    await second.start()
    ready_at = time.monotonic()
    try:

        async def swept() -> bool:
            return (await _latest_run(second, ana))["status"] != "running"

        await eventually(swept, timeout=60, interval=0.1)
        since_kill, since_ready = time.monotonic() - killed_at, time.monotonic() - ready_at
        run = await _latest_run(second, ana)
        assert run["status"] == "failed" and run["finish_reason"] == "interrupted"
        assert run["error"].startswith("interrupted") and run["output"] == "Fake answer "
        # Within the bound: the lease runs out during the second server's start-up, whose
        # first sweep then fails the run (slack for a loaded machine).
        assert since_ready < LEASE_SECONDS + SWEEP_SECONDS + 5, (since_kill, since_ready)
    finally:
        await second.stop()
