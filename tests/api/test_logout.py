"""``DELETE /api/auth/token``: the token stops working; other tokens of the user do not."""

from __future__ import annotations

from tests.support.inprocess import StudioApi


async def test_logout_ends_only_that_login_session(api: StudioApi) -> None:
    key = await api.tenant()
    ana = await api.account("Ana", tenant_id=key.tenant_id)
    second = await api.call("POST", f"/api/tenant/users/{ana.user_id}/tokens", headers=key.headers)
    other_token = second.json()["token"]

    out = await api.call("DELETE", "/api/auth/token", ana)
    assert out.status_code == 204
    assert (await api.call("GET", "/api/me", ana)).status_code == 401
    assert (await api.call("DELETE", "/api/auth/token", ana)).status_code == 401
    still = await api.call("GET", "/api/me", headers={"Authorization": f"Bearer {other_token}"})
    assert still.status_code == 200


async def test_logout_by_cookie(api: StudioApi) -> None:
    ana = await api.account("Ana")
    out = await api.call(
        "DELETE", "/api/auth/token", headers={"Cookie": f"prompt_studio_token={ana.token}"}
    )
    assert out.status_code == 204
    assert (await api.call("GET", "/api/me", ana)).status_code == 401


async def test_logout_needs_a_token(api: StudioApi) -> None:
    assert (await api.call("DELETE", "/api/auth/token")).status_code == 401
