"""``GET /api/admin/debug/counts``: operator only, and the counts follow what the node holds."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from tests.support.inprocess import StudioApi
from tests.support.transports import recording_json_connection

PATH = "/api/admin/debug/counts"


async def test_counts_need_the_operator_key(api: StudioApi) -> None:
    user = await api.account("Curious")
    assert (await api.call("GET", PATH)).status_code == 401
    assert (await api.call("GET", PATH, user)).status_code == 401
    wrong = {"Authorization": "Bearer not-the-operator-key-0123456789"}
    assert (await api.call("GET", PATH, headers=wrong)).status_code == 401


async def test_without_an_operator_key_the_endpoint_does_not_exist(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    async with make_api(operator_key=None) as api:
        response = await api.call("GET", PATH, headers={"Authorization": "Bearer anything-at-all"})
        assert response.status_code == 404


async def test_counts_follow_rooms_and_connections(api: StudioApi) -> None:
    owner = await api.account("Counter")
    created = await api.call("POST", "/api/sessions", owner, json={"name": "c", "content": "x"})
    assert created.status_code == 201, created.text

    async def counts() -> dict[str, int | None]:
        response = await api.call("GET", PATH, headers=api.operator_headers)
        assert response.status_code == 200, response.text
        body: dict[str, int | None] = response.json()
        return body

    before = await counts()
    hub = api.services.hub
    room = await hub.acquire(created.json()["id"])
    conn = recording_json_connection(owner.user_id)
    room.add(conn)
    try:
        during = await counts()
        assert during["rooms"] == (before["rooms"] or 0) + 1
        assert during["connections"] == (before["connections"] or 0) + 1
        assert during["queued_messages"] == 0 and during["open_sockets"] == 0
        assert isinstance(during["asyncio_tasks"], int) and during["asyncio_tasks"] > 0
        assert isinstance(during["rss_bytes"], int) and during["rss_bytes"] > 1_000_000
        assert isinstance(during["open_fds"], int) and during["open_fds"] > 0
    finally:
        room.remove(conn)
        hub.release(room)
    after = await counts()
    assert after["connections"] == before["connections"]
    assert after["unload_timers"] == (before["unload_timers"] or 0) + 1
