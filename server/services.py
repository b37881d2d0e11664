"""The long-lived resources of one server process, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from server.llm.registry import ProviderRegistry
from server.llm.secrets import SecretBox
from server.settings import Settings
from storage.repositories.admission import AdmissionReader

if TYPE_CHECKING:
    from server.cache.service import SemanticCacheService
    from server.compose.runner import ComposeRunner
    from server.hub.broker import Broker
    from server.hub.limits import SocketGuard
    from server.hub.registry import Hub
    from server.hub.revocation import CredentialWatch
    from server.runs.leases import RunLeases


@dataclass(slots=True)
class Services:
    """What request handlers reach through ``request.app.state.services``."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hub: Hub
    broker: Broker
    # Reads what a websocket join must know (one statement; see storage.repositories.admission).
    admission: AdmissionReader
    # Closes websockets whose login token, user or tenant stopped being valid, on every node.
    credentials: CredentialWatch
    # Which LLM provider serves a model (server.llm.registry), and the box that opens tenants'
    # sealed provider keys (PROMPT_STUDIO_SECRET_KEY).
    llm: ProviderRegistry
    secrets: SecretBox
    # A Redis client when REDIS_URL is set (readiness checks it).
    redis: Redis | None = None
    # Runs agent-compose jobs on this node (server.compose.runner); None in bare test setups.
    compose: ComposeRunner | None = None
    # The semantic cache (server.cache): lookup/store for runs, its indexes and upkeep.
    cache: SemanticCacheService | None = None
    # This node's run leases and the sweep of dead nodes' runs (server.runs.leases).
    run_leases: RunLeases | None = None
    # Cross-connection socket limits (server.hub.limits); built from settings at first use
    # in bare test setups.
    guard: SocketGuard | None = None


def services_of(conn: HTTPConnection) -> Services:
    """The process's :class:`Services`, stored on the app in the lifespan."""
    services: Services = conn.app.state.services
    return services
