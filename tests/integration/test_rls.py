"""PostgreSQL row-level security (``PROMPT_STUDIO_POSTGRES_RLS=on``) with a non-owner role.

The app runs in-process connected as a role that owns no table, so the ``tenant_isolation``
policies of 0016 bind every statement: a request sees its tenant's rows only even through a
query that forgets its tenant filter, a transaction with no tenant set sees no rows, and the
server's own work (accounts, the hub, background jobs) goes through the bypass scope.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, select, text

from migrations.runner import upgrade
from server.settings import Settings, SettingsError
from storage.models import Prompt, PromptVersion
from storage.repositories.seed import seed
from storage.rls import scope_to_tenant, unscoped
from tests.support.inprocess import StudioApi, running_api
from tests.support.services import (
    POSTGRES_ADMIN_URL,
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)

pytestmark = pytest.mark.postgres

# Tables deliberately without policies: identity (read before a tenant is known), shared
# reference data, and Alembic's own.
UNPROTECTED = {"tenants", "users", "session", "techniques", "alembic_version"}


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def rls_database() -> AsyncIterator[tuple[str, str]]:
    """(owner URL, app-role URL) of a fresh migrated database and a role owning nothing."""
    require_service("PostgreSQL", postgres_available())
    owner_url = await asyncio.to_thread(create_postgres_database, f"rls{uuid.uuid4().hex[:6]}")
    role = f"ps_app_{uuid.uuid4().hex[:10]}"
    try:
        await asyncio.to_thread(upgrade, owner_url, "head")
        await _admin(
            owner_url,
            f'CREATE ROLE "{role}" LOGIN',
            f'GRANT USAGE ON SCHEMA public TO "{role}"',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
            f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
        )
        server, database = owner_url.rsplit("/", 1)
        host = server.split("@", 1)[1]
        yield owner_url, f"postgresql+asyncpg://{role}@{host}/{database}"
    finally:
        await asyncio.to_thread(drop_postgres_database, owner_url)
        await _admin(POSTGRES_ADMIN_URL, f'DROP ROLE IF EXISTS "{role}"')


async def test_every_tenant_owned_table_has_row_level_security(
    rls_database: tuple[str, str],
) -> None:
    owner_url, _ = rls_database
    conn = await asyncpg.connect(_dsn(owner_url))
    try:
        rows = await conn.fetch(
            "SELECT relname, relrowsecurity FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
    finally:
        await conn.close()
    unprotected = {r["relname"] for r in rows if not r["relrowsecurity"]}
    assert unprotected == UNPROTECTED, "a new table needs a tenant_isolation policy (0016)"


async def _prompt(api: StudioApi, account: object, name: str) -> str:
    response = await api.call(
        "POST", "/api/prompts", account, json={"name": name, "version": {"content": name}}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_requests_see_only_their_tenant_even_without_a_filter(
    rls_database: tuple[str, str],
) -> None:
    _, app_url = rls_database
    async with running_api(app_url, postgres_rls=True) as api:
        ana = await api.account("Ana")
        ben = await api.account("Ben")  # another tenant
        ana_prompt = await _prompt(api, ana, "ana's")
        await _prompt(api, ben, "ben's")
        assert (await api.call("GET", f"/api/prompts/{ana_prompt}", ben)).status_code == 404
        listed = await api.call("GET", "/api/prompts", ben)
        assert [p["name"] for p in listed.json()["items"]] == ["ben's"]

        # A query that forgets its tenant filter still sees one tenant's rows only.
        async with api.services.sessions() as db:
            await scope_to_tenant(db, ben.tenant_id)
            names = set(await db.scalars(select(Prompt.name)))
            versions = await db.scalar(select(func.count()).select_from(PromptVersion))
            setting = await db.scalar(text("SELECT current_setting('app.tenant_id', true)"))
        assert names == {"ben's"} and versions == 1 and setting == ben.tenant_id
        # No tenant set (and no bypass): no rows at all.
        async with api.services.sessions() as raw:
            db = unscoped(raw)
            assert await db.scalar(select(func.count()).select_from(Prompt)) == 0
            assert await db.scalar(select(func.count()).select_from(PromptVersion)) == 0
        # The server's own sessions (bypass) see every tenant's rows.
        async with api.services.sessions() as db:
            assert await db.scalar(select(func.count()).select_from(Prompt)) == 2


async def test_a_tenant_cannot_write_into_another_tenants_rows(
    rls_database: tuple[str, str],
) -> None:
    _, app_url = rls_database
    async with running_api(app_url, postgres_rls=True) as api:
        ana = await api.account("Ana")
        ben = await api.account("Ben")
        ana_prompt = await _prompt(api, ana, "ana's")
        async with api.services.sessions() as db:
            await scope_to_tenant(db, ben.tenant_id)
            changed = await db.execute(text("UPDATE prompts SET name = 'stolen'"))
            assert changed.rowcount == 0  # type: ignore[attr-defined]
            with pytest.raises(Exception, match="row-level security"):
                await db.execute(
                    text(
                        "INSERT INTO prompts (id, name, tenant_id, created_at, updated_at) "
                        "VALUES ('x', 'planted', :t, now(), now())"
                    ),
                    {"t": ana.tenant_id},
                )
        detail = await api.call("GET", f"/api/prompts/{ana_prompt}", ana)
        assert detail.json()["name"] == "ana's"


async def test_the_studio_works_under_row_level_security(rls_database: tuple[str, str]) -> None:
    _, app_url = rls_database
    async with running_api(app_url, postgres_rls=True) as api:
        async with api.services.sessions() as db, db.begin():
            await seed(db)
        author = await api.account("Author")
        reader = await api.account("Reader")
        # Global templates are visible to every tenant and usable.
        templates = await api.call("GET", "/api/templates?limit=1", reader)
        assert templates.json()["total"] == 20
        used = await api.call(
            "POST", f"/api/templates/{templates.json()['items'][0]['id']}/use", reader
        )
        assert used.status_code == 201
        # Sessions, members and history.
        created = await api.call("POST", "/api/sessions", author, json={"name": "s"})
        assert created.status_code == 201
        members = await api.call("GET", f"/api/sessions/{created.json()['id']}/members", author)
        assert [m["role"] for m in members.json()["items"]] == ["OWNER"]
        # The marketplace: another tenant reads an approved listing and forks it.
        prompt_id = await _prompt(api, author, "shared")
        listing = await api.call(
            "POST",
            "/api/marketplace",
            author,
            json={
                "prompt_id": prompt_id,
                "version": 1,
                "title": "Shared",
                "description": "d",
                "category": "c",
            },
        )
        assert listing.status_code == 201
        listing_id = listing.json()["id"]
        assert (await api.call("GET", f"/api/marketplace/{listing_id}", reader)).status_code == 404
        approved = await api.call(
            "POST", f"/api/admin/marketplace/{listing_id}/approve", headers=api.operator_headers
        )
        assert approved.status_code == 200
        fork = await api.call("POST", f"/api/marketplace/{listing_id}/fork", reader)
        assert fork.status_code == 201, fork.text
        seen = await api.call("GET", f"/api/marketplace/{listing_id}", reader)
        assert seen.json()["fork_count"] == 1
        # Tenant administration with an API key.
        key = await api.tenant()
        added = await api.call(
            "POST",
            "/api/tenant/users",
            headers=key.headers,
            json={"email": f"{uuid.uuid4().hex[:8]}@rls.test", "name": "New"},
        )
        assert added.status_code == 201


def test_row_level_security_needs_postgresql() -> None:
    with pytest.raises(SettingsError, match="PostgreSQL"):
        Settings.from_env({"PROMPT_STUDIO_POSTGRES_RLS": "on"})
    assert Settings.from_env(
        {"PROMPT_STUDIO_POSTGRES_RLS": "on", "DATABASE_URL": "postgresql+asyncpg://u@h/d"}
    ).postgres_rls
