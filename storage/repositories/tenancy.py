"""Tenants, users and login sessions (rows of the ``session`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import utcnow
from storage.models import LoginSession, Tenant, User


class DuplicateError(ValueError):
    """A unique value (email, domain) is already taken."""


class UnknownReferenceError(LookupError):
    """A referenced row (tenant, user) does not exist."""


async def create_tenant(
    db: AsyncSession, *, name: str, api_key_hash: str, domain: str | None = None
) -> Tenant:
    """Insert a tenant; ``api_key_hash`` is the hash of a key shown to the operator once."""
    if domain is not None:
        taken = await db.scalar(select(Tenant.id).where(Tenant.domain == domain))
        if taken is not None:
            raise DuplicateError(f"a tenant with domain {domain!r} already exists")
    tenant = Tenant(name=name, domain=domain, api_key=api_key_hash)
    db.add(tenant)
    await db.flush()
    return tenant


async def create_user(
    db: AsyncSession,
    *,
    tenant_id: str,
    email: str,
    name: str,
    color: str | None = None,
    avatar: str | None = None,
) -> User:
    """Insert a user of an existing tenant; emails are unique across the server."""
    if await db.get(Tenant, tenant_id) is None:
        raise UnknownReferenceError(f"unknown tenant {tenant_id!r}")
    if await db.scalar(select(User.id).where(User.email == email)) is not None:
        raise DuplicateError(f"a user with email {email!r} already exists")
    user = User(tenant_id=tenant_id, email=email, name=name, avatar=avatar)
    if color is not None:
        user.color = color
    db.add(user)
    await db.flush()
    return user


async def get_user(db: AsyncSession, user_id: str) -> User | None:
    """The user with this id, or None."""
    return await db.get(User, user_id)


async def get_user_by_email(db: AsyncSession, email: str) -> User | None:
    """The user with this email, or None."""
    return await db.scalar(select(User).where(User.email == email))


async def create_login_session(
    db: AsyncSession, *, token_hash: str, user: User, expires_at: datetime
) -> LoginSession:
    """Store a login session keyed by the hash of its token (the token itself is never stored)."""
    row = LoginSession(
        sid=token_hash,
        sess={"user_id": user.id, "tenant_id": user.tenant_id, "created_at": utcnow().isoformat()},
        expire=expires_at,
    )
    db.add(row)
    await db.flush()
    return row


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """The user behind an unexpired login session, and whether their tenant is active."""

    user_id: str
    tenant_id: str | None
    email: str
    name: str
    color: str | None
    tenant_active: bool


def token_owner_select(
    token_hash: str | BindParameter[str], now: datetime | BindParameter[datetime]
) -> Select[*tuple[Any, ...]]:
    """The statement reading a login token's owner: its first columns are those of
    :func:`token_owner_of` (callers may add columns and joins)."""
    user_id = LoginSession.sess["user_id"].as_string()
    return (
        select(User.id, User.tenant_id, User.email, User.name, User.color, Tenant.is_active)
        .select_from(LoginSession)
        .join(User, User.id == user_id)
        .outerjoin(Tenant, Tenant.id == User.tenant_id)
        .where(LoginSession.sid == token_hash, LoginSession.expire > now)
    )


def token_owner_of(row: Sequence[Any]) -> TokenOwner:
    """The owner from the first columns of a :func:`token_owner_select` row."""
    uid, tenant_id, email, name, color, tenant_active = row[:6]
    # A tenant's is_active is nullable (NULL counts as active); sqlite3 hands booleans as 0/1.
    return TokenOwner(
        uid, tenant_id, email, name, color, tenant_active is None or bool(tenant_active)
    )


async def resolve_login_session(
    db: AsyncSession, token_hash: str, *, now: datetime | None = None
) -> TokenOwner | None:
    """The user behind an unexpired login session, or None if unknown, expired or orphaned.

    One statement (login session, user and tenant joined): it runs for every request and every
    websocket join.
    """
    row = (await db.execute(token_owner_select(token_hash, now or utcnow()))).first()
    return None if row is None else token_owner_of(row)


async def purge_expired_login_sessions(
    db: AsyncSession, *, now: datetime | None = None
) -> list[str]:
    """Delete expired login sessions; returns the token hashes (``sid``) that were removed."""
    expired = LoginSession.expire <= (now or utcnow())
    sids = list((await db.scalars(select(LoginSession.sid).where(expired))).all())
    if sids:
        await db.execute(delete(LoginSession).where(LoginSession.sid.in_(sids)))
    return sids


async def delete_login_session(db: AsyncSession, token_hash: str) -> bool:
    """Delete one login session (a logout); False when it did not exist."""
    result = await db.execute(delete(LoginSession).where(LoginSession.sid == token_hash))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_user_login_sessions(db: AsyncSession, user_id: str) -> list[str]:
    """Delete every login session of a user; returns their token hashes."""
    owner = LoginSession.sess["user_id"].as_string() == user_id
    sids = list((await db.scalars(select(LoginSession.sid).where(owner))).all())
    if sids:
        await db.execute(delete(LoginSession).where(LoginSession.sid.in_(sids)))
    return sids
