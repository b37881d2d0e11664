"""Ended credentials close live websockets at once, on every node (real processes, Redis).

Logout, revoking a user's tokens, and deactivating a tenant each happen through one node's REST
API while the affected clients are connected to another node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.e2e.test_cluster import (  # the cluster fixtures, shared with the cluster tests
    Cluster,
    cluster_database,
    json_client,
    private_redis,
    start_cluster,
)
from tests.support.json_client import JsonClient
from tests.support.private_redis import PrivateRedis

__all__ = ["cluster_database", "private_redis"]

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.postgres,
    pytest.mark.redis,
]

OPERATOR_KEY = "e2e-operator-key-0123456789abcdef"


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(
    cluster_database: str, private_redis: PrivateRedis, tmp_path: Path
) -> AsyncIterator[Cluster]:
    env = {"PROMPT_STUDIO_OPERATOR_KEY": OPERATOR_KEY}
    async with AsyncExitStack() as stack:
        yield await start_cluster(
            stack, cluster_database, private_redis, tmp_path, 2, {0: env, 1: env}
        )


async def test_logout_and_tenant_deactivation_close_sockets_on_the_other_node(
    cluster: Cluster,
) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("live")
    async with (
        json_client(b_node, session, ana) as ana_b,
        json_client(b_node, session, ben) as ben_b,
        httpx.AsyncClient(base_url=a_node.base_url) as http,
    ):
        await ana_b.insert(0, "hello ")
        out = await http.delete("/api/auth/token", headers=ana.headers)
        assert out.status_code == 204
        code, reason = await ana_b.wait_closed()
        assert code == 4401 and reason == "logged out"
        # Ben, with his own token, is untouched until his tenant is deactivated.
        await ben_b.insert(0, "still here ")
        off = await http.post(
            f"/api/admin/tenants/{ben.tenant_id}/deactivate",
            headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        )
        assert off.status_code == 200
        assert (await ben_b.wait_closed())[0] == 4401
        refused = await http.get("/api/me", headers=ben.headers)
        assert refused.status_code == 401


async def test_revoking_a_users_tokens_closes_their_sockets_everywhere(cluster: Cluster) -> None:
    a_node, b_node = cluster.nodes
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with httpx.AsyncClient(base_url=a_node.base_url) as http:
        tenant = await http.post("/api/admin/tenants", headers=operator, json={"name": "Rev"})
        assert tenant.status_code == 201
        admin = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        user = await http.post(
            "/api/tenant/users", headers=admin, json={"email": "rev@x.test", "name": "Rev"}
        )
        token = (
            await http.post(f"/api/tenant/users/{user.json()['id']}/tokens", headers=admin)
        ).json()["token"]
        created = await http.post(
            "/api/sessions", headers={"Authorization": f"Bearer {token}"}, json={"name": "s"}
        )
        assert created.status_code == 201
        session = created.json()
        async with (
            JsonClient(a_node.ws_base, session["share_token"], token) as on_a,
            JsonClient(b_node.ws_base, session["share_token"], token) as on_b,
        ):
            revoked = await http.delete(
                f"/api/tenant/users/{user.json()['id']}/tokens", headers=admin
            )
            assert revoked.status_code == 200 and revoked.json()["revoked"] == 1
            assert (await on_a.wait_closed())[0] == 4401
            assert (await on_b.wait_closed())[0] == 4401
