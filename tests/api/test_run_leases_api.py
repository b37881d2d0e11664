"""A run keeps its lease while the model answers, in-process against the fake OpenAI server:
the row names this node, its lease moves forward during a slow answer, and a finished run is
never swept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import pytest
from sqlalchemy import select

from storage.models import Run
from tests.support.accounts import Account
from tests.support.fake_openai import FakeOpenAI
from tests.support.inprocess import StudioApi
from tests.support.waiting import eventually

MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def _running(api: StudioApi, who: Account) -> Run | None:
    async with api.services.sessions() as db:
        return await db.scalar(
            select(Run).where(Run.tenant_id == who.tenant_id).order_by(Run.id.desc()).limit(1)
        )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_slow_answer_keeps_renewing_its_lease(
    make_api: MakeApi, fake: FakeOpenAI, stream: bool
) -> None:
    settings = {
        "llm_base_url": fake.base_url,
        "llm_max_retries": 0,
        "llm_timeout_seconds": 20.0,
        "run_lease_seconds": 1.0,
        "run_sweep_seconds": 0.1,
    }
    async with make_api(**settings) as api:
        ana = await api.account()
        assert api.services.run_leases is not None
        node = api.services.run_leases.node_id
        fake.fail_next("slow_first_token", delay=2.5)
        body = {"model": "fake-small", "content": "tell me about tides", "stream": stream}
        call = asyncio.create_task(api.call("POST", "/api/runs", ana, json=body))
        seen: list[datetime] = []

        async def renewed() -> bool:
            run = await _running(api, ana)
            if run is None or run.status != "running" or run.lease_expires_at is None:
                return False
            assert run.node_id == node
            if run.lease_expires_at not in seen:
                seen.append(run.lease_expires_at)
            return len(seen) >= 3  # inserted with one lease, renewed at least twice

        # The slow answer outlasts the lease: only renewals keep the sweep away from it.
        await eventually(renewed, timeout=15, interval=0.05)
        response = await call
        assert response.status_code in (200, 201), response.text
        finished = await _running(api, ana)
        assert finished is not None and finished.status == "completed"
        assert finished.output == "Fake answer to: tell me about tides"
        assert await api.services.run_leases.sweep() == []
