"""The operator's endpoints: tenants created, listed, deactivated and activated."""

from __future__ import annotations

import pytest

from tests.support.inprocess import StudioApi, TenantKey


async def test_operator_creates_lists_and_deactivates_tenants(api: StudioApi) -> None:
    created = await api.call(
        "POST",
        "/api/admin/tenants",
        headers=api.operator_headers,
        json={"name": "Globex", "config": {"maxUsers": 3}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["api_key"].startswith("psk_") and body["config"] == {"maxUsers": 3}
    key = TenantKey(body["id"], body["api_key"])
    assert (await api.call("GET", "/api/tenant", headers=key.headers)).status_code == 200

    listing = await api.call("GET", "/api/admin/tenants?limit=200", headers=api.operator_headers)
    assert listing.status_code == 200
    assert body["id"] in {t["id"] for t in listing.json()["items"]}
    assert all("api_key" not in t for t in listing.json()["items"])

    user = await api.account("Worker", tenant_id=key.tenant_id)
    assert (await api.call("GET", "/api/me", user)).status_code == 200
    off = await api.call(
        "POST", f"/api/admin/tenants/{key.tenant_id}/deactivate", headers=api.operator_headers
    )
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert (await api.call("GET", "/api/me", user)).status_code == 401
    assert (await api.call("GET", "/api/tenant", headers=key.headers)).status_code == 401

    on = await api.call(
        "POST", f"/api/admin/tenants/{key.tenant_id}/activate", headers=api.operator_headers
    )
    assert on.status_code == 200 and on.json()["is_active"] is True
    assert (await api.call("GET", "/api/me", user)).status_code == 200


async def test_operator_errors(api: StudioApi) -> None:
    for path in ("/api/admin/tenants/nope/deactivate", "/api/admin/tenants/nope/activate"):
        assert (await api.call("POST", path, headers=api.operator_headers)).status_code == 404
    bad = await api.call(
        "POST", "/api/admin/tenants", headers=api.operator_headers, json={"name": ""}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "name"
    first = await api.call(
        "POST",
        "/api/admin/tenants",
        headers=api.operator_headers,
        json={"name": "A", "domain": "dup-domain.example"},
    )
    assert first.status_code in (201, 409)
    dup = await api.call(
        "POST",
        "/api/admin/tenants",
        headers=api.operator_headers,
        json={"name": "B", "domain": "dup-domain.example"},
    )
    assert dup.status_code == 409


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-operator-key-0123456789"}])
async def test_operator_endpoints_need_the_key(api: StudioApi, headers: dict[str, str]) -> None:
    response = await api.call("GET", "/api/admin/tenants", headers=headers)
    assert response.status_code == 401


async def test_without_an_operator_key_the_endpoints_do_not_exist(make_api) -> None:  # type: ignore[no-untyped-def]
    async with make_api(operator_key=None) as api:
        response = await api.call("GET", "/api/admin/tenants", headers=api.operator_headers)
        assert response.status_code == 404


async def test_api_keys_and_login_tokens_are_not_operator_keys(api: StudioApi) -> None:
    key = await api.tenant()
    user = await api.account()
    assert (await api.call("GET", "/api/admin/tenants", headers=key.headers)).status_code == 401
    assert (await api.call("GET", "/api/admin/tenants", user)).status_code == 401
