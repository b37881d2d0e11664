"""Tenant administration with the API key: the tenant, users, tokens, the key itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.inprocess import StudioApi, TenantKey


async def _admin(api: StudioApi, method: str, path: str, key: TenantKey, **kw: Any) -> Any:
    headers = kw.pop("headers", key.headers)
    return await api.call(method, path, headers=headers, **kw)


async def test_the_tenant_reads_and_changes_itself(api: StudioApi) -> None:
    key = await api.tenant("Acme")
    got = await _admin(api, "GET", "/api/tenant", key)
    assert got.status_code == 200
    assert got.json()["id"] == key.tenant_id and got.json()["name"] == "Acme"
    assert got.json()["user_count"] == 0 and got.json()["is_active"] is True

    domain = f"acme-{key.tenant_id[:8]}.example"
    changed = await _admin(
        api,
        "PATCH",
        "/api/tenant",
        key,
        json={
            "name": "Acme Inc",
            "domain": domain.upper(),
            "config": {
                "maxUsers": 5,
                "features": ["runs"],
                "theme": {"primaryColor": "#112233", "logo": "https://x.example/l.png"},
                "quotas": {"runsPerDay": 100, "cacheSize": 50},
            },
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Acme Inc" and body["domain"] == domain
    assert body["config"]["maxUsers"] == 5 and body["config"]["quotas"]["runsPerDay"] == 100

    # Keys given replace stored ones, null removes one, the rest stay.
    again = await _admin(
        api, "PATCH", "/api/tenant", key, json={"config": {"maxUsers": None, "features": []}}
    )
    assert again.status_code == 200
    assert "maxUsers" not in again.json()["config"]
    assert again.json()["config"]["features"] == []
    assert again.json()["config"]["theme"]["primaryColor"] == "#112233"

    other = await api.tenant()
    taken = await _admin(api, "PATCH", "/api/tenant", other, json={"domain": domain})
    assert taken.status_code == 409 and taken.json()["error"]["field"] == "domain"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"domain": "not a domain"}, "domain"),
        ({"config": {"maxUsers": 0}}, "config.maxUsers"),
        ({"config": {"maxUsers": "5"}}, "config.maxUsers"),
        ({"config": {"maxUsers": 1.5}}, "config.maxUsers"),
        ({"config": {"theme": {"primaryColor": "red", "logo": "x"}}}, "config.theme.primaryColor"),
        ({"config": {"theme": {"primaryColor": "#112233"}}}, "config.theme.logo"),
        ({"config": {"quotas": {"runsPerDay": -1, "cacheSize": 1}}}, "config.quotas.runsPerDay"),
        ({"config": {"features": ["x" * 65]}}, "config.features.0"),
        ({"config": {"unknown": 1}}, "config.unknown"),
        ({"config": {"llm": {"baseUrl": "ftp://x"}}}, "config.llm.baseUrl"),
        (
            {"config": {"llm": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "k"}}},
            "config.llm.apiKey",
        ),
        ({"colour": 1}, "colour"),
    ],
)
async def test_bad_tenant_changes_name_the_field(
    api: StudioApi, body: dict[str, Any], field: str | None
) -> None:
    key = await api.tenant()
    response = await _admin(api, "PATCH", "/api/tenant", key, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"].get("field") == field


async def test_users_are_added_listed_changed_and_limited(api: StudioApi) -> None:
    key = await api.tenant()
    await _admin(api, "PATCH", "/api/tenant", key, json={"config": {"maxUsers": 2}})
    email = f"ana-{key.tenant_id[:8]}@acme.test"
    ana = await _admin(api, "POST", "/api/tenant/users", key, json={"email": email, "name": "Ana"})
    assert ana.status_code == 201, ana.text
    assert ana.json()["tenant_id"] == key.tenant_id and ana.json()["color"] == "#3B82F6"
    duplicate = await _admin(
        api, "POST", "/api/tenant/users", key, json={"email": email, "name": "Ana 2"}
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "email"
    ben = await _admin(
        api,
        "POST",
        "/api/tenant/users",
        key,
        json={"email": f"b-{email}", "name": "Ben", "color": "#00FF00"},
    )
    assert ben.status_code == 201
    full = await _admin(
        api, "POST", "/api/tenant/users", key, json={"email": f"c-{email}", "name": "Cy"}
    )
    assert full.status_code == 409 and "maxUsers" in full.json()["error"]["message"]

    listing = await _admin(api, "GET", "/api/tenant/users?limit=1", key)
    assert listing.status_code == 200
    assert listing.json()["total"] == 2 and [u["name"] for u in listing.json()["items"]] == ["Ana"]
    page2 = await _admin(api, "GET", "/api/tenant/users?limit=1&offset=1", key)
    assert [u["name"] for u in page2.json()["items"]] == ["Ben"]

    renamed = await _admin(
        api, "PATCH", f"/api/tenant/users/{ana.json()['id']}", key, json={"name": "Ana B"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ana B"
    clash = await _admin(
        api, "PATCH", f"/api/tenant/users/{ana.json()['id']}", key, json={"email": f"b-{email}"}
    )
    assert clash.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "email"),
        ({"email": "no-at-sign", "name": "x"}, "email"),
        ({"email": "a@b.c", "name": ""}, "name"),
        ({"email": "a@b.c", "name": "x", "color": "blue"}, "color"),
        ({"email": "a@b.c", "name": "\ud800"}, "name"),
        ({"email": "a@b.c", "name": "x", "role": "admin"}, "role"),
    ],
)
async def test_bad_users_name_the_field(api: StudioApi, body: dict[str, Any], field: str) -> None:
    key = await api.tenant()
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    response = await _admin(
        api,
        "POST",
        "/api/tenant/users",
        key,
        content=json.dumps(body),
        headers={**key.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


async def test_tokens_are_minted_and_revoked(api: StudioApi) -> None:
    key = await api.tenant()
    user = await _admin(
        api,
        "POST",
        "/api/tenant/users",
        key,
        json={"email": f"t-{key.tenant_id}@x.test", "name": "T"},
    )
    user_id = user.json()["id"]
    minted = await _admin(
        api, "POST", f"/api/tenant/users/{user_id}/tokens", key, json={"ttl_hours": 2}
    )
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    default = await _admin(api, "POST", f"/api/tenant/users/{user_id}/tokens", key)
    assert default.status_code == 201

    me = await api.call("GET", "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["id"] == user_id

    for bad in ({"ttl_hours": 0}, {"ttl_hours": 10**6}, {"ttl_hours": "2"}, {"ttl": 1}):
        refused = await _admin(api, "POST", f"/api/tenant/users/{user_id}/tokens", key, json=bad)
        assert refused.status_code == 422, bad

    revoked = await _admin(api, "DELETE", f"/api/tenant/users/{user_id}/tokens", key)
    assert revoked.status_code == 200 and revoked.json() == {"revoked": 2}
    me = await api.call("GET", "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_removing_a_user_keeps_their_work_and_frees_the_email(api: StudioApi) -> None:
    key = await api.tenant()
    owner = await api.account("Owner", tenant_id=key.tenant_id)
    session = await api.call("POST", "/api/sessions", owner, json={"name": "Doc"})
    assert session.status_code == 201
    removed = await _admin(api, "DELETE", f"/api/tenant/users/{owner.user_id}", key)
    assert removed.status_code == 204
    assert (await api.call("GET", "/api/me", owner)).status_code == 401
    listing = await _admin(api, "GET", "/api/tenant/users", key)
    assert listing.json()["total"] == 0
    again = await _admin(
        api, "POST", "/api/tenant/users", key, json={"email": owner.email, "name": "Again"}
    )
    assert again.status_code == 201
    gone = await _admin(api, "DELETE", f"/api/tenant/users/{owner.user_id}", key)
    assert gone.status_code == 404


async def test_rotating_the_api_key_stops_the_old_one(api: StudioApi) -> None:
    key = await api.tenant()
    rotated = await _admin(api, "POST", "/api/tenant/api-key", key)
    assert rotated.status_code == 200
    new = TenantKey(key.tenant_id, rotated.json()["api_key"])
    assert (await _admin(api, "GET", "/api/tenant", key)).status_code == 401
    assert (await _admin(api, "GET", "/api/tenant", new)).status_code == 200


async def test_other_tenants_users_are_unknown(api: StudioApi) -> None:
    mine, theirs = await api.tenant(), await api.tenant()
    stranger = await api.account("Stranger", tenant_id=theirs.tenant_id)
    for method, path in (
        ("PATCH", f"/api/tenant/users/{stranger.user_id}"),
        ("DELETE", f"/api/tenant/users/{stranger.user_id}"),
        ("POST", f"/api/tenant/users/{stranger.user_id}/tokens"),
        ("DELETE", f"/api/tenant/users/{stranger.user_id}/tokens"),
    ):
        kwargs = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await _admin(api, method, path, mine, **kwargs)
        assert response.status_code == 404, (method, path)
    assert (await api.call("GET", "/api/me", stranger)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer psk_not-a-real-key"},
        {"Authorization": "Basic abc"},
    ],
)
async def test_tenant_endpoints_need_a_valid_api_key(
    api: StudioApi, headers: dict[str, str]
) -> None:
    response = await api.call("GET", "/api/tenant", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_a_login_token_is_not_an_api_key(api: StudioApi) -> None:
    user = await api.account()
    assert (await api.call("GET", "/api/tenant", user)).status_code == 401
