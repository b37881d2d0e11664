"""The app in-process: an ``httpx.AsyncClient`` over the ASGI app, with its lifespan running.

Tests of REST endpoints go through this rather than a server process: same app, same database,
no sockets, so the suite stays fast as the API grows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from server.app import create_app
from server.security import hash_secret, new_api_key
from server.services import Services
from server.settings import Settings
from storage.repositories.tenancy import create_tenant
from tests.support.accounts import Account, add_accounts

#: The operator key of in-process apps (long enough for the settings' minimum).
OPERATOR_KEY = "test-operator-key-0123456789abcdef"


@dataclass(frozen=True)
class TenantKey:
    """A tenant and its (raw) API key."""

    tenant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <api key>``."""
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class StudioApi:
    """A running app and a client for it, plus shortcuts to make accounts directly."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    operator_headers: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {OPERATOR_KEY}"}
    )

    @property
    def services(self) -> Services:
        """The app's services (database sessions, hub, broker)."""
        services: Services = self.app.state.services
        return services

    async def tenant(self, name: str | None = None) -> TenantKey:
        """A new tenant with a known API key."""
        api_key = new_api_key()
        async with self.services.sessions() as db, db.begin():
            tenant = await create_tenant(
                db, name=name or f"tenant-{uuid.uuid4().hex[:6]}", api_key_hash=hash_secret(api_key)
            )
        return TenantKey(tenant.id, api_key)

    async def accounts(
        self, *names: str, tenant_id: str | None = None, ttl_hours: float = 2.0
    ) -> list[Account]:
        """One user with a login token per name, all in one tenant (a new one unless given)."""
        if tenant_id is None:
            tenant_id = (await self.tenant()).tenant_id
        async with self.services.sessions() as db, db.begin():
            return await add_accounts(db, tenant_id, names, ttl_hours=ttl_hours)

    async def account(self, name: str = "Ana", *, tenant_id: str | None = None) -> Account:
        """One user with a login token."""
        return (await self.accounts(name, tenant_id=tenant_id))[0]

    async def call(
        self, method: str, path: str, account: Account | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request, as ``account`` when given."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if account is not None:
            headers = {**account.headers, **headers}
        return await self.client.request(method, path, headers=headers, **kwargs)


@asynccontextmanager
async def running_api(database_url: str, **overrides: Any) -> AsyncIterator[StudioApi]:
    """The app on ``database_url`` (already migrated), started, with a client."""
    settings = Settings(database_url=database_url, operator_key=OPERATOR_KEY).with_overrides(
        **overrides
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://studio.test") as client:
            yield StudioApi(app, client, settings)
