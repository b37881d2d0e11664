"""Tenants, users and login sessions (rows of the ``session`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import utcnow
from storage.models import LoginSession, SessionMember, Tenant, User


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
    # When the login session expires (naive UTC): open websockets close then (4401).
    expires_at: datetime | None = None


#: How many leading columns of a :func:`token_owner_select` row describe the owner.
OWNER_COLUMNS = 7


def token_owner_select(
    token_hash: str | BindParameter[str], now: datetime | BindParameter[datetime]
) -> Select[*tuple[Any, ...]]:
    """The statement reading a login token's owner: its first columns are those of
    :func:`token_owner_of` (callers may add columns and joins)."""
    user_id = LoginSession.sess["user_id"].as_string()
    return (
        select(
            User.id,
            User.tenant_id,
            User.email,
            User.name,
            User.color,
            Tenant.is_active,
            LoginSession.expire,
        )
        .select_from(LoginSession)
        .join(User, User.id == user_id)
        .outerjoin(Tenant, Tenant.id == User.tenant_id)
        .where(LoginSession.sid == token_hash, LoginSession.expire > now)
    )


def token_owner_of(row: Sequence[Any]) -> TokenOwner:
    """The owner from the first columns of a :func:`token_owner_select` row."""
    uid, tenant_id, email, name, color, tenant_active, expire = row[:OWNER_COLUMNS]
    # A tenant's is_active is nullable (NULL counts as active); sqlite3 hands booleans as 0/1
    # and timestamps as text.
    if isinstance(expire, str):
        expire = datetime.fromisoformat(expire)
    return TokenOwner(
        uid, tenant_id, email, name, color, tenant_active is None or bool(tenant_active), expire
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


async def get_tenant(
    db: AsyncSession, tenant_id: str, *, for_update: bool = False
) -> Tenant | None:
    """The tenant with this id (row-locked on PostgreSQL when ``for_update``), or None."""
    statement = select(Tenant).where(Tenant.id == tenant_id)
    if for_update:
        statement = statement.with_for_update()
    return await db.scalar(statement)


async def list_tenants(db: AsyncSession, *, limit: int, offset: int) -> tuple[list[Tenant], int]:
    """All tenants, oldest first, paged; with the total count."""
    total = int(await db.scalar(select(func.count()).select_from(Tenant)) or 0)
    rows = await db.scalars(
        select(Tenant).order_by(Tenant.created_at, Tenant.id).limit(limit).offset(offset)
    )
    return list(rows.all()), total


async def domain_taken(db: AsyncSession, domain: str, *, except_tenant: str | None = None) -> bool:
    """Whether another tenant already uses ``domain``."""
    statement = select(Tenant.id).where(Tenant.domain == domain)
    if except_tenant is not None:
        statement = statement.where(Tenant.id != except_tenant)
    return await db.scalar(statement) is not None


async def count_tenant_users(db: AsyncSession, tenant_id: str) -> int:
    """How many users belong to the tenant."""
    statement = select(func.count()).select_from(User).where(User.tenant_id == tenant_id)
    return int(await db.scalar(statement) or 0)


async def list_tenant_users(
    db: AsyncSession, tenant_id: str, *, limit: int, offset: int
) -> tuple[list[User], int]:
    """The tenant's users by name, paged; with the total count."""
    total = await count_tenant_users(db, tenant_id)
    rows = await db.scalars(
        select(User)
        .where(User.tenant_id == tenant_id)
        .order_by(User.name, User.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), total


async def get_tenant_user(db: AsyncSession, tenant_id: str, user_id: str) -> User | None:
    """The tenant's user with this id; another tenant's user is None, like an unknown id."""
    return await db.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))


async def email_taken(db: AsyncSession, email: str, *, except_user: str | None = None) -> bool:
    """Whether another user already has ``email`` (emails are unique server-wide)."""
    statement = select(User.id).where(User.email == email)
    if except_user is not None:
        statement = statement.where(User.id != except_user)
    return await db.scalar(statement) is not None


async def detach_user(db: AsyncSession, user: User) -> None:
    """Remove a user from their tenant for good, keeping what they wrote attributable.

    Edit history, sessions and prompts reference users with NOT NULL foreign keys, so the row
    stays: its personal data is erased, its email freed, its memberships and login sessions
    deleted, and it leaves the tenant (a user without a tenant can never sign in).
    """
    await delete_user_login_sessions(db, user.id)
    await db.execute(delete(SessionMember).where(SessionMember.user_id == user.id))
    user.email = f"removed-{user.id}@removed.invalid"
    user.name = "Former member"
    user.avatar = None
    user.tenant_id = None
    user.updated_at = utcnow()
    await db.flush()
