"""Who is calling: resolving a login token (header, query string or cookie) to a user and tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from server.errors import Unauthenticated
from server.security import hash_secret
from storage.repositories.tenancy import TokenOwner, resolve_login_session

TOKEN_COOKIE = "prompt_studio_token"
TOKEN_QUERY_PARAM = "token"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, with the tenant every query must be scoped to."""

    user_id: str
    tenant_id: str
    email: str
    name: str
    color: str
    # SHA-256 of the login token this principal presented (websockets keep it, so that a
    # logout or a revocation can close exactly the connections opened with that token).
    login_hash: str | None = None
    # When that login session expires (naive UTC); a websocket closes then (4401).
    expires_at: datetime | None = None


def extract_token(conn: HTTPConnection) -> str | None:
    """The login token a request or websocket carries, if any.

    Order: ``Authorization: Bearer``, then ``?token=`` (what y-websocket's ``params`` sends), then
    the browser cookie.
    """
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = conn.query_params.get(TOKEN_QUERY_PARAM)
    if query:
        return query
    cookie = conn.cookies.get(TOKEN_COOKIE)
    return cookie or None


async def principal_for_token(db: AsyncSession, token: str) -> Principal | None:
    """Resolve a raw login token to its principal.

    None when the token is unknown or expired, or its user has no tenant or a deactivated one.
    """
    token_hash = hash_secret(token)
    return principal_of(await resolve_login_session(db, token_hash), token_hash)


def principal_of(owner: TokenOwner | None, login_hash: str | None = None) -> Principal | None:
    """The principal of a login token's owner (None if there is none, or no active tenant)."""
    if owner is None or owner.tenant_id is None or not owner.tenant_active:
        return None
    return Principal(
        user_id=owner.user_id,
        tenant_id=owner.tenant_id,
        email=owner.email,
        name=owner.name,
        color=owner.color or "#3B82F6",
        login_hash=login_hash,
        expires_at=owner.expires_at,
    )


async def authenticate(
    conn: HTTPConnection, sessions: async_sessionmaker[AsyncSession]
) -> Principal:
    """The principal behind a request, or :class:`Unauthenticated` (HTTP 401 / close 4401)."""
    token = extract_token(conn)
    if token is None:
        raise Unauthenticated("a login token is required (Authorization: Bearer <token>)")
    async with sessions() as db:
        principal = await principal_for_token(db, token)
    if principal is None:
        raise Unauthenticated("the login token is unknown or expired")
    return principal
