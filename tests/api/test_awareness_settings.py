"""The awareness limits configured for the server reach every room it loads."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from tests.support.inprocess import StudioApi


async def test_configured_awareness_limits_reach_rooms(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    async with make_api(awareness_states_per_room=7, awareness_state_bytes=300) as api:
        owner = await api.account()
        session = await api.call("POST", "/api/sessions", owner, json={"name": "s"})
        room = await api.services.hub.acquire(session.json()["id"])
        try:
            assert room.awareness.limits.states_per_room == 7
            assert room.awareness.limits.state_bytes == 300
        finally:
            api.services.hub.release(room)
