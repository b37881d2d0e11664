"""Bodies of tenant administration (API key), operator (operator key) and logout endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from server.api.types import (
    ApiModel,
    Name,
    Page,
    PatchModel,
    Tag,
    Text,
    Url,
    UtcDatetime,
    reject_null,
)

HexColor = Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]
Email = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=254, strip_whitespace=True, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
Domain = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        strip_whitespace=True,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$",
    ),
    AfterValidator(str.lower),
]


class ThemeConfig(ApiModel):
    """A tenant's branding."""

    primaryColor: HexColor  # the schema doc's JSON keys are camelCase
    logo: Url


class QuotaConfig(ApiModel):
    """A tenant's limits."""

    runsPerDay: int = Field(ge=0, le=1_000_000_000, strict=True)
    cacheSize: int = Field(ge=0, le=1_000_000_000, strict=True)


class LlmConfig(ApiModel):
    """A tenant's own OpenAI-compatible endpoint; ``apiKey`` is stored encrypted, never shown."""

    baseUrl: Url
    apiKey: Annotated[Text, StringConstraints(min_length=1, max_length=1_000)] | None = None
    models: list[Tag] = Field(default_factory=list, max_length=200)


class TenantConfig(ApiModel):
    """``tenants.config`` as the schema doc gives it (plus ``llm``). Every key is optional."""

    maxUsers: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    features: list[Tag] | None = Field(default=None, max_length=100)
    theme: ThemeConfig | None = None
    quotas: QuotaConfig | None = None
    llm: LlmConfig | None = None


class TenantOut(ApiModel):
    """A tenant as its administrators (and the operator) see it."""

    id: str
    name: str
    domain: str | None
    config: dict[str, Any]
    is_active: bool
    user_count: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TenantUpdate(PatchModel):
    """``PATCH /api/tenant``: the config's keys given replace the stored ones (null removes)."""

    name: Name | None = None
    domain: Domain | None = None
    config: TenantConfig | None = None

    _not_null = field_validator("name", mode="before")(reject_null)


class TenantCreate(ApiModel):
    """``POST /api/admin/tenants``."""

    name: Name
    domain: Domain | None = None
    config: TenantConfig | None = None


class TenantCreated(TenantOut):
    """A new tenant with its API key: the only time the key is shown."""

    api_key: str


class TenantList(Page):
    """One page of tenants."""

    items: list[TenantOut]


class ApiKeyOut(ApiModel):
    """A freshly minted API key (the previous one stopped working)."""

    api_key: str


class UserOut(ApiModel):
    """A user of the tenant."""

    id: str
    email: str
    name: str
    color: str | None
    avatar: str | None
    tenant_id: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class UserList(Page):
    """One page of the tenant's users."""

    items: list[UserOut]


class UserCreate(ApiModel):
    """``POST /api/tenant/users``."""

    email: Email
    name: Name
    color: HexColor | None = None
    avatar: Url | None = None


class UserUpdate(PatchModel):
    """``PATCH /api/tenant/users/{id}``."""

    email: Email | None = None
    name: Name | None = None
    color: HexColor | None = None
    avatar: Text | None = Field(default=None, max_length=2_000)

    _not_null = field_validator("email", "name", "color", mode="before")(reject_null)


class TokenRequest(ApiModel):
    """``POST /api/tenant/users/{id}/tokens``."""

    ttl_hours: float = Field(default=24.0, gt=0, le=24 * 366, allow_inf_nan=False)


class TokenOut(ApiModel):
    """A login token for the user: shown once, stored only as a hash."""

    token: str
    expires_at: UtcDatetime


class RevokedOut(ApiModel):
    """How many login sessions a revocation deleted."""

    revoked: int
