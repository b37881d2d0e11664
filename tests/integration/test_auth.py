"""Login tokens against a real migrated database (SQLite and PostgreSQL): who is calling.

A token resolves to its user and tenant only while its ``session`` row is unexpired; the token is
looked up by its SHA-256 hash. Requests carry it as ``Authorization: Bearer``, ``?token=`` or the
``prompt_studio_token`` cookie, in that order of precedence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from server.auth import (
    TOKEN_COOKIE,
    Principal,
    authenticate,
    extract_token,
    principal_for_token,
)
from server.errors import Unauthenticated
from server.security import hash_secret, new_login_token
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.models import LoginSession, Tenant, User
from storage.repositories.tenancy import (
    create_login_session,
    get_user,
    purge_expired_login_sessions,
)
from tests.support.accounts import Account, create_accounts


@pytest.fixture
async def sessions(migrated_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a migrated database of each dialect."""
    engine = create_engine(migrated_database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _mint(
    sessions: async_sessionmaker[AsyncSession], user_id: str, *, expires_in: timedelta
) -> str:
    """A new login token for ``user_id`` whose session expires ``expires_in`` from now."""
    token = new_login_token()
    async with sessions() as db, db.begin():
        user = await get_user(db, user_id)
        assert user is not None
        await create_login_session(
            db, token_hash=hash_secret(token), user=user, expires_at=utcnow() + expires_in
        )
    return token


async def _resolve(sessions: async_sessionmaker[AsyncSession], token: str) -> Principal | None:
    async with sessions() as db:
        return await principal_for_token(db, token)


def _request(
    *, headers: dict[str, str] | None = None, query: str = "", cookies: dict[str, str] | None = None
) -> Request:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookies:
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        raw_headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/me",
        "raw_path": b"/api/me",
        "root_path": "",
        "scheme": "http",
        "query_string": query.encode(),
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    return Request(scope)


# --- resolving a token ----------------------------------------------------------------------


async def test_a_valid_token_resolves_to_its_user_and_tenant(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ana, ben = await create_accounts(migrated_database_url, ["Ana", "Ben"])
    principal = await _resolve(sessions, ana.token)
    assert principal is not None and principal.expires_at is not None
    # The login session's expiry (accounts are made with a 2 h login; a websocket closes then).
    assert abs(principal.expires_at - (utcnow() + timedelta(hours=2))) < timedelta(minutes=5)
    assert principal == Principal(
        user_id=ana.user_id,
        tenant_id=ana.tenant_id,
        email=ana.email,
        name="Ana",
        color="#3B82F6",
        login_hash=hash_secret(ana.token),
        expires_at=principal.expires_at,
    )
    other = await _resolve(sessions, ben.token)
    assert other is not None and other.user_id == ben.user_id


async def test_the_token_is_stored_only_as_its_hash(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (ana,) = await create_accounts(migrated_database_url, ["Ana"])
    async with sessions() as db:
        sids = set(await db.scalars(select(LoginSession.sid)))
    assert sids == {hash_secret(ana.token)}
    # Presenting the hash instead of the token must not work.
    assert await _resolve(sessions, hash_secret(ana.token)) is None


async def test_an_expired_session_resolves_to_nobody(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (ana,) = await create_accounts(migrated_database_url, ["Ana"])
    expired = await _mint(sessions, ana.user_id, expires_in=-timedelta(minutes=1))
    assert await _resolve(sessions, expired) is None
    still_valid = await _mint(sessions, ana.user_id, expires_in=timedelta(minutes=1))
    resolved = await _resolve(sessions, still_valid)
    assert resolved is not None and resolved.user_id == ana.user_id


@pytest.mark.parametrize("token", ["", "pst_unknown", "x" * 500, "Bearer pst_unknown"])
async def test_an_unknown_token_resolves_to_nobody(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession], token: str
) -> None:
    await create_accounts(migrated_database_url, ["Ana"])
    assert await _resolve(sessions, token) is None


async def test_a_user_without_a_tenant_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        loner = User(email="loner@example.test", name="Loner", tenant_id=None)
        db.add(loner)
        await db.flush()
        loner_id = loner.id
    token = await _mint(sessions, loner_id, expires_in=timedelta(hours=1))
    assert await _resolve(sessions, token) is None


async def test_a_user_of_a_deactivated_tenant_is_refused(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (ana,) = await create_accounts(migrated_database_url, ["Ana"])
    assert await _resolve(sessions, ana.token) is not None
    async with sessions() as db, db.begin():
        tenant = await db.get(Tenant, ana.tenant_id)
        assert tenant is not None
        tenant.is_active = False
    assert await _resolve(sessions, ana.token) is None


async def test_authenticate_raises_unauthenticated_unless_the_token_is_valid(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (ana,) = await create_accounts(migrated_database_url, ["Ana"])
    principal = await authenticate(_request(headers=ana.headers), sessions)
    assert principal.user_id == ana.user_id and principal.tenant_id == ana.tenant_id
    with pytest.raises(Unauthenticated, match="required"):
        await authenticate(_request(), sessions)
    with pytest.raises(Unauthenticated, match="unknown or expired"):
        await authenticate(_request(query="token=pst_nobody"), sessions)
    expired = await _mint(sessions, ana.user_id, expires_in=-timedelta(seconds=1))
    with pytest.raises(Unauthenticated, match="unknown or expired"):
        await authenticate(_request(cookies={TOKEN_COOKIE: expired}), sessions)


# --- purging expired sessions ---------------------------------------------------------------


async def test_purge_removes_only_expired_sessions(
    migrated_database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    accounts: list[Account] = await create_accounts(migrated_database_url, ["Ana", "Ben"])
    expired = [
        await _mint(sessions, accounts[0].user_id, expires_in=-timedelta(minutes=5)),
        await _mint(sessions, accounts[1].user_id, expires_in=-timedelta(days=3)),
    ]
    fresh = await _mint(sessions, accounts[1].user_id, expires_in=timedelta(minutes=5))
    async with sessions() as db, db.begin():
        assert sorted(await purge_expired_login_sessions(db)) == sorted(
            hash_secret(token) for token in expired
        )
    async with sessions() as db:
        remaining = set(await db.scalars(select(LoginSession.sid)))
    assert remaining == {hash_secret(a.token) for a in accounts} | {hash_secret(fresh)}
    assert not remaining & {hash_secret(token) for token in expired}
    for account in accounts:
        assert await _resolve(sessions, account.token) is not None
    async with sessions() as db, db.begin():
        assert await purge_expired_login_sessions(db) == []
        assert await db.scalar(select(func.count()).select_from(LoginSession)) == 3


# --- where the token comes from -------------------------------------------------------------


def test_extract_token_takes_the_bearer_header_first() -> None:
    request = _request(
        headers={"Authorization": "Bearer header-token"},
        query="token=query-token",
        cookies={TOKEN_COOKIE: "cookie-token"},
    )
    assert extract_token(request) == "header-token"


def test_extract_token_falls_back_to_the_query_then_the_cookie() -> None:
    both = _request(query="token=query-token", cookies={TOKEN_COOKIE: "cookie-token"})
    assert extract_token(both) == "query-token"
    cookie_only = _request(cookies={TOKEN_COOKIE: "cookie-token"})
    assert extract_token(cookie_only) == "cookie-token"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "bearer lower-case-scheme"}, "lower-case-scheme"),
        ({"Authorization": "Bearer   padded  "}, "padded"),
        # Not a bearer token, or an empty one: the next source decides.
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "query-token"),
        ({"Authorization": "Bearer "}, "query-token"),
        ({"Authorization": "Bearer"}, "query-token"),
    ],
)
def test_extract_token_reads_only_bearer_credentials(
    headers: dict[str, str], expected: str
) -> None:
    assert extract_token(_request(headers=headers, query="token=query-token")) == expected


def test_extract_token_without_credentials_is_none() -> None:
    assert extract_token(_request()) is None
    assert extract_token(_request(query="token=")) is None
    assert extract_token(_request(cookies={"other_cookie": "x"})) is None
    assert extract_token(_request(query="other=1", cookies={TOKEN_COOKIE: ""})) is None
