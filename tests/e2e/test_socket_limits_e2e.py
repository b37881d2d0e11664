"""Connection limits, failed-login refusal and login expiry against a real server process.

The server allows 3 connections per session and 2 per user; a login that expires in ~3 s
closes its socket (4401) at expiry, long before the next purge (an hour away).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.conftest import E2E_ENV
from tests.e2e.test_transport import _masked_frame, _read_frames_until_close
from tests.support.accounts import create_accounts
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMIT_ENV = {
    **E2E_ENV,
    "PROMPT_STUDIO_MAX_CONNECTIONS_PER_SESSION": "3",
    "PROMPT_STUDIO_MAX_CONNECTIONS_PER_USER": "2",
    "PROMPT_STUDIO_AUTH_FAILURES_PER_ADDRESS": "3",
    "PROMPT_STUDIO_LOGIN_PURGE_INTERVAL_SECONDS": "3600",
    "PROMPT_STUDIO_PREAUTH_MAX_FRAMES": "3",
    "PROMPT_STUDIO_PREAUTH_MAX_BYTES": "4096",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(
    server_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    async with running_server(
        server_database_url, Path(tmp_path_factory.mktemp("logs")), LIMIT_ENV
    ) as proc:
        yield proc


async def refused(server: ServerProcess, share_token: str, token: str) -> tuple[int | None, str]:
    client = JsonClient(server.ws_base, share_token, token)
    await client.connect(wait_welcome=False)
    code, reason = await client.wait_closed()
    await client.close()
    return code, reason or ""


async def test_joins_past_the_per_user_and_per_session_limits_are_closed_4429(
    server: ServerProcess,
) -> None:
    ana, ben, cid = await create_accounts(server.database_url, ["Ana", "Ben", "Cid"])
    session = await create_session(server, ana, "limits")
    share = str(session["share_token"])
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(JsonClient(server.ws_base, share, ana.token))
        await stack.enter_async_context(JsonClient(server.ws_base, share, ana.token))
        code, reason = await refused(server, share, ana.token)  # Ana's third
        assert code == 4429 and "2 open connections" in reason
        await stack.enter_async_context(JsonClient(server.ws_base, share, ben.token))
        code, reason = await refused(server, share, cid.token)  # the session's fourth
        assert code == 4429 and "3 connections" in reason
        # Those admitted are unaffected; a connection that leaves frees its place.
        await first.send({"type": "ping"})
        await first.wait_for(lambda m: m.get("type") == "pong")
        await first.close()
        async with JsonClient(server.ws_base, share, cid.token) as cid_client:
            assert cid_client.welcome is not None


async def test_a_login_that_expires_closes_its_socket_when_it_expires(
    server: ServerProcess,
) -> None:
    (owner,) = await create_accounts(server.database_url, ["Owner"])
    (brief,) = await create_accounts(
        server.database_url, ["Brief"], tenant_id=owner.tenant_id, ttl_hours=3.0 / 3600
    )
    session = await create_session(server, owner, "expiry")
    share = str(session["share_token"])
    async with (
        JsonClient(server.ws_base, share, owner.token) as lasting,
        JsonClient(server.ws_base, share, brief.token) as expiring,
    ):
        opened = time.monotonic()
        code, reason = await expiring.wait_closed(timeout=15.0)
        assert code == 4401 and reason == "the login session expired"
        assert time.monotonic() - opened < 10.0  # at expiry, not at a purge an hour away
        await lasting.send({"type": "ping"})
        await lasting.wait_for(lambda m: m.get("type") == "pong")


def _open_and_send(port: int, path: str, frames: list[bytes]) -> int | None:
    """Open a websocket and send ``frames`` in one write as soon as the upgrade is answered,
    while the server is still admitting the socket (uvicorn drops bytes sent along with the
    upgrade request itself); the close code the server answers with (None: no close)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sock:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        sock.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(1)
            assert chunk, "the server closed during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
        sock.sendall(b"".join(frames))
        return _read_frames_until_close(sock, 3.0)


async def test_a_socket_sending_too_much_before_admission_is_closed_1008(
    server: ServerProcess,
) -> None:
    (ana,) = await create_accounts(server.database_url, ["Ana"])
    session = await create_session(server, ana, "preauth")
    path = f"/ws/{session['share_token']}?token={ana.token}&protocol=json"
    ping = _masked_frame(0x1, json.dumps({"type": "ping"}).encode())
    within = await asyncio.to_thread(_open_and_send, server.port, path, [ping] * 3)
    assert within is None  # admitted, served, never closed (the read timed out)
    assert await asyncio.to_thread(_open_and_send, server.port, path, [ping] * 4) == 1008
    big = _masked_frame(0x1, json.dumps({"type": "ping", "pad": "x" * 3000}).encode())
    assert await asyncio.to_thread(_open_and_send, server.port, path, [big] * 2) == 1008


async def test_failed_logins_from_an_address_are_refused_4429_at_the_limit(
    server: ServerProcess,
) -> None:
    # The module's last test, and its only failed logins: 127.0.0.1 stays refused after it.
    (ana,) = await create_accounts(server.database_url, ["Ana"])
    session = await create_session(server, ana, "logins")
    share = str(session["share_token"])
    for attempt in range(3):  # within the limit: the plain 4401
        code, _ = await refused(server, share, f"wrong-token-{attempt}")
        assert code == 4401
    code, reason = await refused(server, share, "wrong-token-3")
    assert code == 4429 and "failed logins" in reason
    # A valid token from the same address does not launder the failures either.
    code, _ = await refused(server, share, ana.token)
    assert code == 4429
