"""Expired login sessions are purged on a schedule, and the purge revokes their tokens."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import func, select

from server.login_purge import LoginPurger
from server.security import hash_secret
from storage.models import LoginSession
from tests.support.inprocess import StudioApi
from tests.support.waiting import eventually


async def test_purge_deletes_only_expired_sessions(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    async with make_api(login_purge_interval_seconds=3600) as api:
        fresh = await api.account("Fresh")
        expired = await api.accounts("Old", "Older", ttl_hours=-1)
        purger = LoginPurger(api.services.sessions, api.services.credentials, interval=3600)
        assert await purger.purge_once() == 2
        async with api.services.sessions() as db:
            left = set(await db.scalars(select(LoginSession.sid)))
        assert left == {hash_secret(fresh.token)}
        assert not left & {hash_secret(a.token) for a in expired}
        assert await purger.purge_once() == 0
        assert (await api.call("GET", "/api/me", fresh)).status_code == 200


async def test_the_app_purges_at_start_and_then_on_its_interval(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    # The first purge runs as the app starts; accounts made afterwards wait for the next one.
    async with make_api(login_purge_interval_seconds=1.0) as api:
        await api.accounts("Stale", ttl_hours=-1)

        async def none_left() -> bool:
            async with api.services.sessions() as db:
                count = await db.scalar(select(func.count()).select_from(LoginSession))
            return count == 0

        await eventually(none_left, timeout=10)
