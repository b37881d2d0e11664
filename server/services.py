"""The long-lived resources of one server process, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from server.settings import Settings
from storage.repositories.admission import AdmissionReader

if TYPE_CHECKING:
    from server.hub.broker import Broker
    from server.hub.registry import Hub


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
    # A Redis client when REDIS_URL is set (readiness checks it).
    redis: Redis | None = None
    extras: dict[str, object] = field(default_factory=dict)


def services_of(conn: HTTPConnection) -> Services:
    """The process's :class:`Services`, stored on the app in the lifespan."""
    services: Services = conn.app.state.services
    return services
