"""Comparing: one input run against several targets (models, settings, versions) at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from server.runs.inputs import RunSource
from server.runs.service import Prepared, ProviderFailed, RunRequest, RunService, RunSettings
from storage.models import Run


@dataclass(frozen=True, slots=True)
class CompareTarget:
    """One column of a comparison; unset fields fall back on the request's."""

    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    prompt_version_id: str | None = None


def target_requests(base: RunRequest, targets: Sequence[CompareTarget]) -> list[RunRequest]:
    """The run request of each target."""
    requests = []
    for target in targets:
        settings = RunSettings(
            model=target.model,
            temperature=(
                base.settings.temperature if target.temperature is None else target.temperature
            ),
            max_tokens=base.settings.max_tokens if target.max_tokens is None else target.max_tokens,
            cache=base.settings.cache,
        )
        source = (
            base.source
            if target.prompt_version_id is None
            else RunSource(prompt_version_id=target.prompt_version_id)
        )
        requests.append(replace(base, source=source, settings=settings))
    return requests


async def run_all(service: RunService, prepared: Sequence[Prepared]) -> list[Run | ProviderFailed]:
    """Execute every prepared run concurrently; a target's provider failure is its result."""

    async def one(item: Prepared) -> Run | ProviderFailed:
        try:
            return await service.execute(item)
        except ProviderFailed as failed:
            return failed

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(item)) for item in prepared]
    return [task.result() for task in tasks]
