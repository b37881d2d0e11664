"""Creating tenants, users and login tokens directly in a test database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.security import hash_secret, new_api_key, new_login_token
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.repositories.tenancy import create_login_session, create_tenant, create_user


@dataclass(frozen=True)
class Account:
    """A user with a valid login token."""

    tenant_id: str
    user_id: str
    email: str
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer`` headers for this account."""
        return {"Authorization": f"Bearer {self.token}"}


async def add_accounts(
    db: AsyncSession, tenant_id: str, names: Sequence[str], *, ttl_hours: float = 2.0
) -> list[Account]:
    """One user with a fresh login token per name, in ``tenant_id``, inside ``db``'s transaction."""
    accounts = []
    for name in names:
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.test"
        user = await create_user(db, tenant_id=tenant_id, email=email, name=name)
        token = new_login_token()
        await create_login_session(
            db,
            token_hash=hash_secret(token),
            user=user,
            expires_at=utcnow() + timedelta(hours=ttl_hours),
        )
        accounts.append(Account(tenant_id, user.id, email, name, token))
    return accounts


async def create_accounts(
    database_url: str, names: list[str], *, tenant_id: str | None = None, ttl_hours: float = 2.0
) -> list[Account]:
    """One user (with a token) per name, all in one tenant (a new one unless given)."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            if tenant_id is None:
                tenant = await create_tenant(
                    db,
                    name=f"tenant-{uuid.uuid4().hex[:6]}",
                    api_key_hash=hash_secret(new_api_key()),
                )
                tenant_id = tenant.id
            return await add_accounts(db, tenant_id, names, ttl_hours=ttl_hours)
    finally:
        await engine.dispose()
