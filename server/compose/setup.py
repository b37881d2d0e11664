"""Building this node's compose runner from the settings (called in the app's lifespan)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.compose.agents import RegistryAgents
from server.compose.events import ComposeObserver
from server.compose.runner import ComposeRunner, RunnerLimits
from server.llm.registry import ProviderRegistry
from server.llm.secrets import SecretBox
from server.settings import Settings


def compose_runner(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    registry: ProviderRegistry,
    *,
    node_id: str,
    observers: Sequence[ComposeObserver] = (),
) -> ComposeRunner:
    """The runner of this node: agents from the provider registry, limits from the settings."""
    agents = RegistryAgents(
        registry,
        sessions,
        SecretBox.from_setting(settings.secret_key),
        retries=settings.compose_validation_retries,
    )
    return ComposeRunner(
        sessions,
        node_id=node_id,
        agents_for=agents,
        limits=RunnerLimits.from_settings(settings),
        observers=observers,
    )
