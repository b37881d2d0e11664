"""Tenant administration with the tenant's API key: the tenant, its users and their tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.deps import AdminDb, ServicesDep, TenantAdmin
from server.api.routing import StudioRoute
from server.api.schemas.tenancy import (
    ApiKeyOut,
    RevokedOut,
    TenantOut,
    TenantUpdate,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from server.api.types import PageParams, ResourceId, error_responses
from server.errors import Conflict, NotFound, ValidationFailed
from server.hub.revocation import Revocation
from server.llm.endpoints import EndpointConfigError
from server.llm.secrets import SecretBox, SecretKeyMissing
from server.security import hash_secret, new_api_key, new_login_token
from server.services import Services
from server.tenant_config import max_users, merged_config, visible_config
from storage.base import utcnow
from storage.models import Tenant, User
from storage.repositories.tenancy import (
    count_tenant_users,
    create_login_session,
    create_user,
    delete_user_login_sessions,
    detach_user,
    domain_taken,
    email_taken,
    get_tenant,
    get_tenant_user,
    list_tenant_users,
)

router = APIRouter(
    route_class=StudioRoute, tags=["tenant administration"], responses=error_responses(404, 409)
)


async def tenant_out(db: AsyncSession, tenant: Tenant) -> TenantOut:
    """A tenant as the API shows it (the provider key never included)."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        domain=tenant.domain,
        config=visible_config(tenant.config),
        is_active=tenant.is_active is not False,
        user_count=await count_tenant_users(db, tenant.id),
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
    )


def apply_config(services: Services, tenant: Tenant, update: dict[str, Any]) -> None:
    """Merge a validated config update into the tenant (422 when it cannot be stored)."""
    box = SecretBox.from_setting(services.settings.secret_key)
    try:
        tenant.config = merged_config(tenant.config, update, box)
    except EndpointConfigError as exc:
        raise ValidationFailed(str(exc), field=f"config.{exc.field}") from None
    except SecretKeyMissing as exc:
        raise ValidationFailed(str(exc), field="config.llm.apiKey") from None


async def _tenant(db: AsyncSession, admin: TenantAdmin) -> Tenant:
    tenant = await get_tenant(db, admin.tenant_id, for_update=True)
    if tenant is None:  # deleted between authentication and now
        raise NotFound("no such tenant")
    return tenant


async def _user(db: AsyncSession, admin: TenantAdmin, user_id: str) -> User:
    user = await get_tenant_user(db, admin.tenant_id, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    return user


@router.get("/tenant", response_model=TenantOut, summary="The tenant")
async def read_tenant(admin: TenantAdmin, db: AdminDb) -> TenantOut:
    """The tenant of the API key, with its config (provider key redacted)."""
    return await tenant_out(db, await _tenant(db, admin))


@router.patch("/tenant", response_model=TenantOut, summary="Change the tenant")
async def update_tenant(
    body: TenantUpdate, admin: TenantAdmin, db: AdminDb, services: ServicesDep
) -> TenantOut:
    """Rename, set the domain, or change config keys (a key set to null is removed)."""
    tenant = await _tenant(db, admin)
    if body.name is not None:
        tenant.name = body.name
    if "domain" in body.model_fields_set:
        if body.domain is not None and await domain_taken(db, body.domain, except_tenant=tenant.id):
            raise Conflict(f"the domain {body.domain!r} belongs to another tenant", field="domain")
        tenant.domain = body.domain
    if body.config is not None:
        apply_config(services, tenant, body.config.model_dump(exclude_unset=True))
    tenant.updated_at = utcnow()
    out = await tenant_out(db, tenant)
    await db.commit()
    return out


@router.post("/tenant/api-key", response_model=ApiKeyOut, summary="Rotate the API key")
async def rotate_api_key(admin: TenantAdmin, db: AdminDb) -> ApiKeyOut:
    """A new API key, shown once; the old one stops working at once."""
    tenant = await _tenant(db, admin)
    api_key = new_api_key()
    tenant.api_key = hash_secret(api_key)
    tenant.updated_at = utcnow()
    await db.commit()
    return ApiKeyOut(api_key=api_key)


@router.get("/tenant/users", response_model=UserList, summary="Users")
async def list_users(
    admin: TenantAdmin, db: AdminDb, page: Annotated[PageParams, Depends()]
) -> UserList:
    """The tenant's users by name, paged."""
    users, total = await list_tenant_users(
        db, admin.tenant_id, limit=page.limit, offset=page.offset
    )
    return UserList(
        items=[UserOut.model_validate(u) for u in users],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("/tenant/users", status_code=201, response_model=UserOut, summary="Add a user")
async def add_user(body: UserCreate, admin: TenantAdmin, db: AdminDb) -> UserOut:
    """A new user of the tenant; 409 when the email is taken or ``maxUsers`` is reached."""
    tenant = await _tenant(db, admin)  # row-locked: concurrent adds cannot pass the limit
    limit = max_users(tenant.config)
    if limit is not None and await count_tenant_users(db, tenant.id) >= limit:
        raise Conflict(f"the tenant has reached its limit of {limit} users (config.maxUsers)")
    if await email_taken(db, body.email):
        raise Conflict(f"a user with email {body.email!r} already exists", field="email")
    user = await create_user(
        db,
        tenant_id=tenant.id,
        email=body.email,
        name=body.name,
        color=body.color,
        avatar=body.avatar,
    )
    out = UserOut.model_validate(user)
    await db.commit()
    return out


@router.patch("/tenant/users/{user_id}", response_model=UserOut, summary="Change a user")
async def update_user(
    user_id: ResourceId, body: UserUpdate, admin: TenantAdmin, db: AdminDb
) -> UserOut:
    """Change a user's email, name, colour or avatar."""
    user = await _user(db, admin, user_id)
    if body.email is not None and body.email != user.email:
        if await email_taken(db, body.email, except_user=user.id):
            raise Conflict(f"a user with email {body.email!r} already exists", field="email")
        user.email = body.email
    if body.name is not None:
        user.name = body.name
    if body.color is not None:
        user.color = body.color
    if "avatar" in body.model_fields_set:
        user.avatar = body.avatar
    user.updated_at = utcnow()
    out = UserOut.model_validate(user)
    await db.commit()
    return out


@router.delete("/tenant/users/{user_id}", status_code=204, summary="Remove a user")
async def remove_user(
    user_id: ResourceId, admin: TenantAdmin, db: AdminDb, services: ServicesDep
) -> Response:
    """Remove a user: tokens revoked, connections closed (4401), memberships ended.

    What they wrote stays, attributed to "Former member"; their email can be used again.
    """
    user = await _user(db, admin, user_id)
    await detach_user(db, user)
    await db.commit()
    await services.credentials.revoke(
        Revocation(user_ids=frozenset({user_id}), reason="the user was removed")
    )
    return Response(status_code=204)


@router.post(
    "/tenant/users/{user_id}/tokens",
    status_code=201,
    response_model=TokenOut,
    summary="Mint a login token",
)
async def mint_token(
    user_id: ResourceId, admin: TenantAdmin, db: AdminDb, body: TokenRequest | None = None
) -> TokenOut:
    """A login token for the user (shown once; stored as a hash), valid ``ttl_hours``."""
    user = await _user(db, admin, user_id)
    ttl = (body or TokenRequest()).ttl_hours
    token = new_login_token()
    expires_at = utcnow() + timedelta(hours=ttl)
    await create_login_session(db, token_hash=hash_secret(token), user=user, expires_at=expires_at)
    await db.commit()
    return TokenOut(token=token, expires_at=expires_at)


@router.delete(
    "/tenant/users/{user_id}/tokens", response_model=RevokedOut, summary="Revoke all tokens"
)
async def revoke_tokens(
    user_id: ResourceId, admin: TenantAdmin, db: AdminDb, services: ServicesDep
) -> RevokedOut:
    """Delete every login session of the user; their open websockets close (4401)."""
    user = await _user(db, admin, user_id)
    revoked = await delete_user_login_sessions(db, user.id)
    await db.commit()
    await services.credentials.revoke(
        Revocation(
            token_hashes=frozenset(revoked),
            user_ids=frozenset({user_id}),
            reason="the user's login tokens were revoked",
        )
    )
    return RevokedOut(revoked=len(revoked))
