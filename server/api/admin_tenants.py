"""The platform operator's tenant endpoints (operator key): create, list, (de)activate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from server.api.deps import OperatorDb, ServicesDep
from server.api.routing import StudioRoute
from server.api.schemas.tenancy import TenantCreate, TenantCreated, TenantList, TenantOut
from server.api.tenant import apply_config, tenant_out
from server.api.types import PageParams, ResourceId, error_responses
from server.errors import Conflict, NotFound
from server.hub.revocation import Revocation
from server.security import hash_secret, new_api_key
from storage.base import utcnow
from storage.models import Tenant
from storage.repositories.tenancy import create_tenant, domain_taken, get_tenant, list_tenants

router = APIRouter(route_class=StudioRoute, tags=["operator"], responses=error_responses(404, 409))


@router.post("/admin/tenants", status_code=201, response_model=TenantCreated, summary="New tenant")
async def create(body: TenantCreate, db: OperatorDb, services: ServicesDep) -> TenantCreated:
    """A new tenant and its API key (shown once, stored as a hash)."""
    if body.domain is not None and await domain_taken(db, body.domain):
        raise Conflict(f"the domain {body.domain!r} belongs to another tenant", field="domain")
    api_key = new_api_key()
    tenant = await create_tenant(
        db, name=body.name, domain=body.domain, api_key_hash=hash_secret(api_key)
    )
    if body.config is not None:
        apply_config(services, tenant, body.config.model_dump(exclude_unset=True))
    out = await tenant_out(db, tenant)
    await db.commit()
    return TenantCreated(**out.model_dump(), api_key=api_key)


@router.get("/admin/tenants", response_model=TenantList, summary="All tenants")
async def list_all(db: OperatorDb, page: Annotated[PageParams, Depends()]) -> TenantList:
    """Every tenant, oldest first, paged."""
    tenants, total = await list_tenants(db, limit=page.limit, offset=page.offset)
    return TenantList(
        items=[await tenant_out(db, t) for t in tenants],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


async def _set_active(db: OperatorDb, tenant_id: str, active: bool) -> Tenant:
    tenant = await get_tenant(db, tenant_id, for_update=True)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    tenant.is_active = active
    tenant.updated_at = utcnow()
    return tenant


@router.post(
    "/admin/tenants/{tenant_id}/deactivate", response_model=TenantOut, summary="Deactivate"
)
async def deactivate(tenant_id: ResourceId, db: OperatorDb, services: ServicesDep) -> TenantOut:
    """Stop the tenant at once: its API key and login tokens are refused, and its open
    websockets close (4401) on every node."""
    tenant = await _set_active(db, tenant_id, False)
    out = await tenant_out(db, tenant)
    await db.commit()
    await services.credentials.revoke(
        Revocation(tenant_ids=frozenset({tenant_id}), reason="the organisation was deactivated")
    )
    return out


@router.post("/admin/tenants/{tenant_id}/activate", response_model=TenantOut, summary="Activate")
async def activate(tenant_id: ResourceId, db: OperatorDb) -> TenantOut:
    """Let a deactivated tenant's keys and tokens work again."""
    tenant = await _set_active(db, tenant_id, True)
    out = await tenant_out(db, tenant)
    await db.commit()
    return out
