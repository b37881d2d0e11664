"""Choosing who plays the agents of a job: the offline engine, or a model from the registry.

A job's ``model_config`` names the model; ``offline`` is the rule engine, anything else is
resolved by the provider registry (the tenant's own endpoint when it has one, else the server's)
and held open for the job's stages. A model nobody serves fails the job at its first stage.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.compose.models import TechniqueRow
from server.compose.pipeline import (
    OFFLINE_MODEL,
    Agents,
    ComposeStageError,
    LlmAgents,
    OfflineAgents,
)
from server.llm.base import ProviderError, UnknownModel
from server.llm.endpoints import Endpoint, tenant_endpoint
from server.llm.registry import ProviderRegistry
from server.llm.secrets import SecretBox, SecretsError
from storage.models import Tenant


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the agents of one job depend on."""

    model_config: dict[str, Any]
    techniques: Sequence[TechniqueRow]
    tenant_id: str | None
    stage: str


def offline_only(spec: JobSpec) -> contextlib.AbstractAsyncContextManager[Agents]:
    """An agents factory that knows only the offline engine (no LLM configured at all)."""

    @contextlib.asynccontextmanager
    async def agents() -> AsyncIterator[Agents]:
        model = spec.model_config.get("model")
        if model != OFFLINE_MODEL:
            raise ComposeStageError(spec.stage, f"model {model!r} is not available")
        yield OfflineAgents(spec.techniques)

    return agents()


class RegistryAgents:
    """The agents factory of a server: offline, or a provider from the registry."""

    def __init__(
        self,
        registry: ProviderRegistry,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        retries: int,
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self._box = box
        self._retries = retries

    async def _tenant_endpoint(self, spec: JobSpec) -> Endpoint | None:
        if spec.tenant_id is None:
            return None
        async with self._sessions() as db:
            config = await db.scalar(select(Tenant.config).where(Tenant.id == spec.tenant_id))
        try:
            return tenant_endpoint(config, self._box)
        except SecretsError as exc:
            raise ComposeStageError(spec.stage, str(exc)) from exc

    @contextlib.asynccontextmanager
    async def __call__(self, spec: JobSpec) -> AsyncIterator[Agents]:
        """The agents for ``spec``, their provider open for the ``async with`` block."""
        config = spec.model_config
        model = str(config.get("model", ""))
        if model == OFFLINE_MODEL:
            yield OfflineAgents(spec.techniques)
            return
        endpoint = await self._tenant_endpoint(spec)
        async with contextlib.AsyncExitStack() as stack:
            try:
                provider = await stack.enter_async_context(
                    self._registry.provider_for(model, endpoint)
                )
            except ProviderError as exc:
                raise ComposeStageError(spec.stage, f"{exc.code}: {exc.message}") from exc
            max_tokens = config.get("maxTokens")
            yield LlmAgents(
                provider=provider,
                model=model,
                temperature=float(config.get("temperature", 0.7)),
                max_tokens=int(max_tokens) if max_tokens is not None else None,
                techniques=spec.techniques,
                retries=self._retries,
            )


async def model_problem(
    registry: ProviderRegistry, box: SecretBox, tenant_config: dict[str, Any] | None, model: str
) -> str | None:
    """Why ``model`` cannot play the agents for this tenant, or None when it can.

    Checked when a job is submitted, so an unknown model is refused at once instead of failing
    the job later. An endpoint that cannot be reached right now is not a reason: the job may
    still run (and fails with the provider's error if it cannot).
    """
    if model == OFFLINE_MODEL:
        return None
    try:
        endpoint = tenant_endpoint(tenant_config, box)
    except SecretsError as exc:
        return str(exc)
    try:
        async with registry.provider_for(model, endpoint):
            return None
    except UnknownModel as exc:
        return exc.message
    except ProviderError:
        return None
