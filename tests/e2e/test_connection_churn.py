"""1,000 collaboration websockets opened and dropped abruptly against a real server: nothing
is left behind — counted by the server (``GET /api/admin/debug/counts``), not guessed — and
resident memory is back within 10% of the baseline. ``python -m loadtest.churn`` runs the same
churn with 10,000 (see the README's figures)."""

from __future__ import annotations

import pytest

from loadtest.churn import churn, idle_target, read_counts, settled_counts
from tests.e2e.conftest import E2E_OPERATOR_KEY
from tests.support.accounts import Account
from tests.support.api import create_session, grant
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONNECTIONS = 1_000
WARMUP = 200
RSS_TOLERANCE = 0.10
# Unload grace (0.5 s in E2E_ENV) plus the last history commit, with room for a loaded machine.
SETTLE_SECONDS = 30.0


async def test_dropped_connections_leave_nothing_behind(
    server: ServerProcess, team: list[Account]
) -> None:
    session = await create_session(server, team[0], "churn")
    for member in team[1:]:
        await grant(server, team[0], session["id"], member)
    urls = [
        f"{server.ws_base}/ws/{session['share_token']}?token={member.token}&protocol=json"
        for member in team
    ]
    warm = await churn(urls, WARMUP, concurrency=25)
    assert set(warm) == {"early", "op", "welcome"}, warm
    empty = await read_counts(server.base_url, E2E_OPERATOR_KEY)
    # The baseline: the warmed-up server with the room unloaded again.
    baseline, left = await settled_counts(
        server.base_url,
        E2E_OPERATOR_KEY,
        idle_target(empty),
        rss_tolerance=1e9,
        timeout=SETTLE_SECONDS,
    )
    assert not left, left

    outcomes = await churn(urls, CONNECTIONS, concurrency=50)
    assert outcomes == {"early": 100, "op": 100, "welcome": 800}, outcomes

    after, left = await settled_counts(
        server.base_url,
        E2E_OPERATOR_KEY,
        baseline,
        rss_tolerance=RSS_TOLERANCE,
        timeout=SETTLE_SECONDS,
    )
    assert left == [], (left, baseline, after)
    assert after["connections"] == after["open_sockets"] == after["rooms"] == 0
