"""Request dependencies: the services, a database session, and the three kinds of caller.

Endpoints declare what they need as annotated parameters (``user: CurrentUser, db: UserDb``), so
an endpoint body is a few lines of intent and the OpenAPI document names the credential each
operation takes:

* ``CurrentUser`` — a login token (``Authorization: Bearer pst_…``, ``?token=`` or the
  ``prompt_studio_token`` cookie);
* ``TenantAdmin`` — a tenant API key (``Authorization: Bearer psk_…``);
* ``Operator`` — the platform operator's key (``PROMPT_STUDIO_OPERATOR_KEY``); while it is unset
  every operator endpoint answers 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import TOKEN_COOKIE, Principal, extract_token, principal_for_token
from server.errors import NotFound, Unauthenticated
from server.security import hash_secret
from server.services import Services
from storage.models import Tenant
from storage.rls import is_tenant_scoped, scope_to_tenant

_login_bearer = HTTPBearer(
    scheme_name="LoginToken",
    description="A login token (`pst_…`); `?token=` and the cookie work too.",
    auto_error=False,
)
_login_cookie = APIKeyCookie(name=TOKEN_COOKIE, scheme_name="LoginCookie", auto_error=False)
_tenant_bearer = HTTPBearer(
    scheme_name="TenantApiKey",
    description="A tenant API key (`psk_…`), for tenant administration.",
    auto_error=False,
)
_operator_bearer = HTTPBearer(
    scheme_name="OperatorKey",
    description="The platform operator's key (`PROMPT_STUDIO_OPERATOR_KEY`).",
    auto_error=False,
)


def get_services(request: Request) -> Services:
    """The process's :class:`Services`, stored on the app in the lifespan."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def _database(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as db:
        yield db


#: A database session for the request (one per request, shared by its dependencies).
Db = Annotated[AsyncSession, Depends(_database)]


async def current_user(
    request: Request,
    db: Db,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_login_bearer)],
    _cookie: Annotated[str | None, Security(_login_cookie)],
) -> Principal:
    """The user behind the request's login token (401 when absent, unknown or expired)."""
    token = extract_token(request)
    if token is None:
        raise Unauthenticated("a login token is required (Authorization: Bearer <token>)")
    principal = await principal_for_token(db, token)
    if principal is None:
        raise Unauthenticated("the login token is unknown or expired")
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


async def user_db(user: CurrentUser, db: Db) -> AsyncSession:
    """The request's database session, for queries scoped to ``user``'s tenant (and, with
    PostgreSQL row-level security on, limited to that tenant's rows by the database too)."""
    if is_tenant_scoped(db):
        await scope_to_tenant(db, user.tenant_id)
    return db


#: The database session of a request made with a login token.
UserDb = Annotated[AsyncSession, Depends(user_db)]


@dataclass(frozen=True, slots=True)
class TenantPrincipal:
    """A caller holding a tenant's API key."""

    tenant_id: str
    tenant_name: str


def _bearer_value(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    value = credentials.credentials.strip()
    return value or None


async def tenant_admin(
    db: Db, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_tenant_bearer)]
) -> TenantPrincipal:
    """The tenant whose API key the request carries (401 otherwise, also when deactivated)."""
    key = _bearer_value(credentials)
    if key is None:
        raise Unauthenticated("a tenant API key is required (Authorization: Bearer <api key>)")
    tenant = await db.scalar(select(Tenant).where(Tenant.api_key == hash_secret(key)))
    if tenant is None or tenant.is_active is False:
        raise Unauthenticated("the API key is unknown, rotated, or its tenant is deactivated")
    return TenantPrincipal(tenant_id=tenant.id, tenant_name=tenant.name)


TenantAdmin = Annotated[TenantPrincipal, Depends(tenant_admin)]


async def admin_db(admin: TenantAdmin, db: Db) -> AsyncSession:
    """The request's database session, for queries scoped to the API key's tenant (limited to
    its rows by the database too when row-level security is on)."""
    if is_tenant_scoped(db):
        await scope_to_tenant(db, admin.tenant_id)
    return db


#: The database session of a request made with a tenant API key.
AdminDb = Annotated[AsyncSession, Depends(admin_db)]


async def operator(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_operator_bearer)],
) -> None:
    """Admit the platform operator; 404 while no operator key is configured."""
    expected = services.settings.operator_key
    if expected is None:
        raise NotFound("not found")
    key = _bearer_value(credentials)
    if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Unauthenticated("the operator key is missing or wrong")


Operator = Annotated[None, Depends(operator)]


async def operator_db(_: Operator, db: Db) -> AsyncSession:
    """The request's database session for the operator (not scoped to a tenant)."""
    return db


OperatorDb = Annotated[AsyncSession, Depends(operator_db)]
