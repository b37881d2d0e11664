"""Templates, the marketplace and tenant administration through a real server process."""

from __future__ import annotations

import httpx
import pytest

from storage.engine import create_engine, create_session_factory
from storage.repositories.seed import seed
from tests.e2e.conftest import E2E_OPERATOR_KEY
from tests.support.accounts import Account
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPERATOR = {"Authorization": f"Bearer {E2E_OPERATOR_KEY}"}


async def _seed(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            await seed(db)
    finally:
        await engine.dispose()


async def test_a_template_becomes_a_prompt_shared_and_forked_by_another_tenant(
    server: ServerProcess, team: list[Account], outsider: Account
) -> None:
    await _seed(server.database_url)
    alice = team[0]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        templates = await http.get("/api/templates?q=code%20reviewer", headers=alice.headers)
        template = templates.json()["items"][0]
        used = await http.post(
            f"/api/templates/{template['id']}/use",
            headers=alice.headers,
            json={"variables": {"language": "Go"}},
        )
        assert used.status_code == 201, used.text
        prompt_id = used.json()["id"]
        listing = await http.post(
            "/api/marketplace",
            headers=alice.headers,
            json={
                "prompt_id": prompt_id,
                "version": 1,
                "title": "Go reviewer",
                "description": "Reviews Go",
                "category": "coding",
                "tags": ["go"],
            },
        )
        assert listing.status_code == 201
        approved = await http.post(
            f"/api/admin/marketplace/{listing.json()['id']}/approve", headers=OPERATOR
        )
        assert approved.status_code == 200
        forked = await http.post(
            f"/api/marketplace/{listing.json()['id']}/fork", headers=outsider.headers
        )
        assert forked.status_code == 201
        version = await http.get(
            f"/api/prompts/{forked.json()['id']}/versions/1", headers=outsider.headers
        )
        assert "--- system ---" in version.json()["content"]
        assert (
            await http.get(f"/api/prompts/{prompt_id}", headers=outsider.headers)
        ).status_code == 404


async def test_an_operator_makes_a_tenant_whose_admin_makes_a_user_who_signs_in(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        tenant = await http.post("/api/admin/tenants", headers=OPERATOR, json={"name": "E2E Co"})
        assert tenant.status_code == 201
        admin = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        user = await http.post(
            "/api/tenant/users", headers=admin, json={"email": "e2e-co@x.test", "name": "Eve"}
        )
        assert user.status_code == 201
        token = await http.post(
            f"/api/tenant/users/{user.json()['id']}/tokens", headers=admin, json={"ttl_hours": 1}
        )
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token.json()['token']}"})
        assert me.status_code == 200 and me.json()["name"] == "Eve"
