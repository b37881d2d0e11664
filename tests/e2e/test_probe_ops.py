"""Operations probes against real server processes: no secrets in the log, bounded slow requests.

Each server here runs on its own SQLite database (nothing here depends on the dialect) with the
settings its probe is about; the slow requests are raw TCP sockets, as a slowloris sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from migrations.runner import upgrade
from server.logs import MASK
from server.security import new_api_key, new_share_token
from tests.support.accounts import create_accounts
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEAD_TIMEOUT = 1.5
HALF_OPEN_LIMIT = 8
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # the blank line that ends it never comes
REST_OF_HEAD = b"\r\n"
# uvicorn's keep-alive timeout, left as it is: idle connections between requests close after it.
KEEP_ALIVE_SECONDS = 5.0


async def _server(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[ServerProcess]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'server.db'}"
    await asyncio.to_thread(upgrade, url, "head")
    async with running_server(url, tmp_path, env) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session", params=["INFO", "DEBUG"])
async def logging_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    """A server logging at INFO, then one at DEBUG (both show the access log)."""
    async for proc in _server(tmp_path, {"LOG_LEVEL": str(request.param)}):
        yield proc


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def guarded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A server with a short head timeout (and the default half-open bound)."""
    env = {"PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)}
    async for proc in _server(tmp_path_factory.mktemp("guarded"), env):
        yield proc


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def bounded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A server holding at most HALF_OPEN_LIMIT incomplete heads (and a long head timeout)."""
    env = {
        "PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS": "120",
        "PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS": str(HALF_OPEN_LIMIT),
    }
    async for proc in _server(tmp_path_factory.mktemp("bounded"), env):
        yield proc


def _log_of(server: ServerProcess) -> str:
    assert server.log_path is not None
    return server.log_path.read_text(errors="replace")


async def test_no_credential_reaches_the_log_at_info_or_debug(
    logging_server: ServerProcess,
) -> None:
    """Tokens in URLs (the README's ``?token=`` and y-websocket's ``params``), share tokens in
    ``/ws/<share>`` paths and bearer headers: none is in the server's log, at INFO or DEBUG."""
    server = logging_server
    alice, bob = await create_accounts(server.database_url, ["Alice", "Bob"])
    session = await create_session(server, alice, "Hello")
    share = session["share_token"]
    unknown_share, api_key = new_share_token(), new_api_key()

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        await http.get("/api/sessions", headers={"Authorization": f"Bearer {alice.token}"})
        await http.get(f"/api/sessions?token={bob.token}")
        await http.get(f"/api/sessions?api_key={api_key}")
        await http.get(f"/ws/{share}?token={alice.token}")  # plain HTTP on the websocket path
    async with JsonClient(server.ws_base, share, alice.token) as client:
        ack = await client.insert(0, "json ")
        assert ack["type"] == "ack"
    async with connect(f"{server.ws_base}/ws/{share}?token={bob.token}&protocol=yjs") as yjs:
        await asyncio.wait_for(yjs.recv(), 10)  # the server's sync step 1
    for path in (f"/ws/{unknown_share}?token={alice.token}", f"/ws/{share}?token=pst_forged"):
        with contextlib.suppress(InvalidStatus):  # refused at the handshake or just after it
            async with connect(f"{server.ws_base}{path}&protocol=json") as refused:
                await asyncio.wait_for(refused.wait_closed(), 10)
    await server.stop()  # everything written and flushed

    log = _log_of(server)
    for secret in (alice.token, bob.token, share, unknown_share, api_key, "pst_forged"):
        assert secret not in log
    # The lines are still there, masked: the probe did reach the log.
    assert f'"WebSocket /ws/{share[:4]}{MASK}?token=pst_{MASK}&protocol=yjs"' in log
    assert f'"GET /api/sessions?token=pst_{MASK} HTTP/1.1"' in log
    assert f"/ws/{unknown_share[:4]}{MASK}?token=pst_{MASK}" in log


async def _open(
    server: ServerProcess, data: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes = PARTIAL_HEAD
) -> bytes:
    """Send the rest of a ``GET /healthz`` (keep-alive) after ``head``; its response head."""
    writer.write(head + REST_OF_HEAD)
    await writer.drain()
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in response.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    return response


async def _still_open(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when nothing (no response, no end of stream) arrives within ``seconds``."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def test_a_head_that_never_completes_is_closed_with_408_after_the_timeout(
    guarded: ServerProcess,
) -> None:
    started = time.monotonic()
    reader, writer = await _open(guarded, PARTIAL_HEAD)
    try:
        answer = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + 10)  # until end of stream
        elapsed = time.monotonic() - started
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"connection: close" in answer.lower()
    assert HEAD_TIMEOUT - 0.1 <= elapsed < HEAD_TIMEOUT + 5


async def test_a_connection_that_sends_nothing_is_closed_silently_after_the_timeout(
    guarded: ServerProcess,
) -> None:
    started = time.monotonic()
    reader, writer = await _open(guarded)
    try:
        answer = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + 10)
        elapsed = time.monotonic() - started
    finally:
        writer.close()
    assert answer == b""
    assert HEAD_TIMEOUT - 0.1 <= elapsed < HEAD_TIMEOUT + 5


async def test_a_slow_head_that_completes_in_time_is_served(guarded: ServerProcess) -> None:
    reader, writer = await _open(guarded)
    try:
        for byte in PARTIAL_HEAD[:10]:  # trickled: what counts is the whole head's deadline
            writer.write(bytes((byte,)))
            await writer.drain()
            await asyncio.sleep(HEAD_TIMEOUT / 40)
        head = await _request(reader, writer, PARTIAL_HEAD[10:])
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")


async def test_keep_alive_is_unchanged_and_each_next_head_is_bounded_again(
    guarded: ServerProcess,
) -> None:
    """Idle between requests for longer than the head timeout (but within uvicorn's keep-alive
    timeout): the connection serves the next request. A next head that stalls is cut off."""
    reader, writer = await _open(guarded)
    try:
        assert (await _request(reader, writer)).startswith(b"HTTP/1.1 200")
        # Idle on purpose: the head timer must not run while no request has begun.
        assert await _still_open(reader, HEAD_TIMEOUT + 1.0)
        assert HEAD_TIMEOUT + 1.0 < KEEP_ALIVE_SECONDS
        assert (await _request(reader, writer)).startswith(b"HTTP/1.1 200")
        writer.write(PARTIAL_HEAD)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")


async def test_an_idle_kept_alive_connection_still_closes_after_the_keep_alive_timeout(
    guarded: ServerProcess,
) -> None:
    reader, writer = await _open(guarded)
    try:
        await _request(reader, writer)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), KEEP_ALIVE_SECONDS + 10) == b""
        elapsed = time.monotonic() - started
    finally:
        writer.close()
    assert KEEP_ALIVE_SECONDS - 0.5 <= elapsed < KEEP_ALIVE_SECONDS + 5


async def test_a_websocket_outlives_the_head_timeout(guarded: ServerProcess) -> None:
    (alice,) = await create_accounts(guarded.database_url, ["Alice"])
    session = await create_session(guarded, alice, "Hello")
    async with JsonClient(guarded.ws_base, session["share_token"], alice.token) as client:
        assert client.ws is not None
        # Longer than the head timeout, on purpose: the upgraded connection has no timer.
        await asyncio.sleep(HEAD_TIMEOUT + 1.0)
        await client.send({"type": "ping", "id": 1})
        pong = await client.wait_for(lambda m: m.get("type") == "pong")
        assert pong["id"] == 1


async def test_past_the_half_open_bound_the_oldest_incomplete_head_is_closed(
    bounded: ServerProcess,
) -> None:
    """Exactly HALF_OPEN_LIMIT incomplete heads are held; one more closes the oldest (408),
    the others and a live websocket are untouched, and each still completes its request."""
    (alice,) = await create_accounts(bounded.database_url, ["Alice"])
    session = await create_session(bounded, alice, "Hello")
    async with JsonClient(bounded.ws_base, session["share_token"], alice.token) as live:
        # A completed request on a kept-alive connection is not half-open either.
        kept_reader, kept_writer = await _open(bounded)
        await _request(kept_reader, kept_writer)
        pending = [await _open(bounded, PARTIAL_HEAD) for _ in range(HALF_OPEN_LIMIT)]
        try:
            # At the bound, nothing is closed.
            for reader, _ in pending:
                assert await _still_open(reader, 0.3)
            pending.append(await _open(bounded, PARTIAL_HEAD))
            oldest_reader, rest = pending[0][0], pending[1:]
            answer = await asyncio.wait_for(oldest_reader.read(), 10)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            for reader, writer in rest:
                head = await _request(reader, writer, b"")
                assert head.startswith(b"HTTP/1.1 200"), head
            assert (await _request(kept_reader, kept_writer)).startswith(b"HTTP/1.1 200")
            await live.send({"type": "ping", "id": 7})
            assert (await live.wait_for(lambda m: m.get("type") == "pong"))["id"] == 7
        finally:
            kept_writer.close()
            for _, writer in pending:
                writer.close()
    assert (
        f"closed 1 connection(s) whose request head was incomplete: more than {HALF_OPEN_LIMIT}"
        in _log_of(bounded)
    )


async def test_a_flood_of_incomplete_heads_holds_no_more_than_the_bound(
    bounded: ServerProcess,
) -> None:
    """Many more incomplete heads than the bound, all at once: the server closes all but the
    newest HALF_OPEN_LIMIT promptly (long before the head timeout) and stays responsive."""
    count = HALF_OPEN_LIMIT * 8
    opened = [await _open(bounded, PARTIAL_HEAD) for _ in range(count)]
    try:

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                await asyncio.wait_for(reader.read(), 10)
            except TimeoutError:
                return False
            return True

        results = await asyncio.gather(*(closed(reader) for reader, _ in opened[:-HALF_OPEN_LIMIT]))
        assert all(results)
        for reader, writer in opened[-HALF_OPEN_LIMIT:]:
            head = await _request(reader, writer, b"")
            assert head.startswith(b"HTTP/1.1 200"), head
        async with httpx.AsyncClient(base_url=bounded.base_url) as http:
            assert (await http.get("/healthz", timeout=10)).status_code == 200
    finally:
        for _, writer in opened:
            writer.close()


async def test_the_guarded_servers_logged_no_error(
    guarded: ServerProcess, bounded: ServerProcess
) -> None:
    for server in (guarded, bounded):
        errors = [line for line in _log_of(server).splitlines() if " ERROR " in line]
        assert not errors, errors
