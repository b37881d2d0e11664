"""The websocket's Origin check against real server processes, in both transport modes.

The server lists one partner origin (``PROMPT_STUDIO_ALLOWED_ORIGINS``); its own origin and
clients that send no Origin are always admitted, any other page is closed with 4403 before
admission (before the token is even looked at).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from migrations.runner import upgrade
from tests.support.accounts import Account, create_accounts
from tests.support.api import create_session
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARTNER = "https://partner.example"
TRANSPORTS = ["direct", "asgi"]


@pytest.fixture(scope="module")
def server_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite database: the check happens before storage is touched."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('origins') / 'server.db'}"
    upgrade(url, "head")
    return url


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(
    transport: str, server_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    env = {"PROMPT_STUDIO_WS_TRANSPORT": transport, "PROMPT_STUDIO_ALLOWED_ORIGINS": PARTNER}
    async with running_server(
        server_database_url, Path(tmp_path_factory.mktemp("logs")), env
    ) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session")
async def joined(server: ServerProcess) -> tuple[Account, str]:
    (ana,) = await create_accounts(server.database_url, ["Ana"])
    session = await create_session(server, ana, "hello")
    return ana, str(session["share_token"])


async def first_answer(
    server: ServerProcess, share_token: str, token: str, origin: str | None, protocol: str
) -> dict[str, Any]:
    """What the server says first: the welcome / sync step 1, or the close code and reason."""
    url = f"{server.ws_base}/ws/{share_token}?protocol={protocol}&token={token}"
    async with connect(url, origin=Origin(origin) if origin else None, open_timeout=10) as ws:
        try:
            frame = await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return {"closed": closed.rcvd.code, "reason": closed.rcvd.reason}
        if isinstance(frame, bytes):
            return {"binary": frame}
        return dict(json.loads(frame))


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_own_listed_and_absent_origins_are_admitted(
    server: ServerProcess, joined: tuple[Account, str], protocol: str
) -> None:
    ana, share_token = joined
    for origin in (server.base_url, PARTNER, f"{PARTNER}:443", None):
        answer = await first_answer(server, share_token, ana.token, origin, protocol)
        if protocol == "json":
            assert answer.get("type") == "welcome", (origin, answer)
            assert answer["content"] == "hello"
        else:
            assert answer.get("binary", b"")[:2] == b"\x00\x00", (origin, answer)  # sync step 1


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_foreign_pages_are_closed_with_4403_before_admission(
    server: ServerProcess, joined: tuple[Account, str], protocol: str
) -> None:
    ana, share_token = joined
    foreign = [
        "https://evil.example",
        "http://partner.example",  # another scheme is another origin
        f"{PARTNER}:8443",
        "http://localhost:1",
        f"http://127.0.0.1:{server.port + 1}",
        "null",  # a sandboxed frame or a file: page
        "not an origin",
    ]
    for origin in foreign:
        answer = await first_answer(server, share_token, ana.token, origin, protocol)
        assert answer == {"closed": 4403, "reason": "this origin may not open the socket"}, origin
    # Refused before the token is looked at: a foreign page learns nothing about it.
    answer = await first_answer(
        server, share_token, "no-such-token", "https://evil.example", protocol
    )
    assert answer["closed"] == 4403
    answer = await first_answer(server, share_token, "no-such-token", PARTNER, protocol)
    assert answer["closed"] == 4401
