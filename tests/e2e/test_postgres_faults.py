"""PostgreSQL faults with real processes: a private cluster the test starts and stops.

The machine's shared cluster is never restarted (other tests use it): each test makes its own
with ``initdb`` (:mod:`tests.support.private_postgres`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrations.runner import upgrade
from tests.e2e.conftest import E2E_ENV
from tests.support.accounts import create_accounts
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.private_postgres import PrivatePostgres, private_postgres_unavailable
from tests.support.server_process import ROOT, ServerProcess
from tests.support.services import POSTGRES_ADMIN_URL, postgres_available, require_service
from tests.support.waiting import eventually
from tests.support.yjs_client import YjsNodeClient, node_available, node_unavailable_reason

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres]

#: Upper bound (seconds) on a readiness change once PostgreSQL is up or down.
WAIT = 20.0


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private, migrated, running cluster, removed afterwards."""
    reason = private_postgres_unavailable()
    require_service(f"a private PostgreSQL cluster ({reason})", reason is None)
    cluster = PrivatePostgres()
    try:
        cluster.start()
        upgrade(cluster.url(), "head")
        yield cluster
    finally:
        cluster.remove()


def _answer_to(op_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("id") == op_id and message.get("type") in {"ack", "error"}


async def _readyz(server: ServerProcess) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        return await http.get("/readyz")


async def test_server_started_while_postgres_is_down_serves_once_it_is_up(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Bound: ``/readyz`` answers 200 within ``WAIT`` s of PostgreSQL accepting connections."""
    (alice,) = await create_accounts(private_postgres.url(), ["Alice"])
    private_postgres.stop()
    server = ServerProcess(private_postgres.url(), log_path=tmp_path / "server.log")
    try:
        await server.start()  # waits for /healthz: the process serves without its database
        down = await _readyz(server)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "not_ready"
        assert "database" in down.json()["error"]["message"]

        private_postgres.start()

        async def ready() -> bool:
            return (await _readyz(server)).status_code == 200

        await eventually(ready, timeout=WAIT, interval=0.2)
        session = await create_session(server, alice, "up")
        async with JsonClient(server.ws_base, session["share_token"], alice.token) as client:
            assert client.welcome is not None and client.welcome["content"] == "up"
            assert (await client.insert(2, "!"))["type"] == "ack"
    finally:
        await server.stop()


async def test_postgres_restarted_mid_session_loses_no_acked_edit(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Bounds: edits reach other clients within 10 s during the outage; every op sent during it
    is acked within ``WAIT`` s of PostgreSQL coming back; a join during it is closed with a code.
    """
    require_service(f"Node.js interop packages ({node_unavailable_reason()})", node_available())
    alice, bob = await create_accounts(private_postgres.url(), ["Alice", "Bob"])
    server = ServerProcess(private_postgres.url(), env=E2E_ENV, log_path=tmp_path / "server.log")
    await server.start()
    try:
        session = await create_session(server, alice, "S")
        async with httpx.AsyncClient(base_url=server.base_url, headers=alice.headers) as http:
            grant = await http.put(
                f"/api/sessions/{session['id']}/members/{bob.user_id}", json={"role": "EDITOR"}
            )
        assert grant.status_code == 200, grant.text
        async with (
            JsonClient(server.ws_base, session["share_token"], alice.token) as writer,
            JsonClient(server.ws_base, session["share_token"], bob.token) as reader,
            YjsNodeClient(
                f"{server.ws_base}/ws", session["share_token"], params={"token": bob.token}
            ) as ydoc,
        ):
            assert (await writer.insert(1, " a"))["type"] == "ack"
            await reader.wait_text("S a")
            await ydoc.wait_text("S a")

            private_postgres.stop()
            base = writer.rev
            sent = [
                await writer.op(
                    {"type": "insert", "position": 3 + 2 * i, "content": f" {i}"},
                    rev=base + i,
                    wait_ack=False,
                )
                for i in range(5)
            ]
            expected = "S a" + "".join(f" {i}" for i in range(5))
            await reader.wait_text(expected, timeout=10)
            await ydoc.wait_text(expected, timeout=10)
            # A Yjs edit during the outage reaches the JSON clients too (its rows wait).
            await ydoc.insert(0, "Y")
            expected = "Y" + expected
            await reader.wait_text(expected, timeout=10)

            late = JsonClient(server.ws_base, session["share_token"], bob.token)
            with pytest.raises(ConnectionError):
                await late.connect(timeout=10)
            assert (late.close_code, late.close_reason) == (
                1013,
                "the database is unavailable: try again shortly",
            )

            # Keep it down until the history writer has retried a few times (backing off).
            log = tmp_path / "server.log"

            async def retried() -> bool:
                return log.read_text(errors="replace").count("edit history commit failed") >= 5

            await eventually(retried, timeout=WAIT, interval=0.1)
            private_postgres.start()
            for op in sent:
                reply = await writer.wait_for(_answer_to(str(op["id"])), timeout=WAIT)
                assert reply["type"] == "ack", reply
        async with httpx.AsyncClient(base_url=server.base_url, headers=alice.headers) as http:

            async def stored() -> bool:
                body = (
                    await http.get(f"/api/sessions/{session['id']}/history", params={"limit": 1})
                ).json()
                return bool(body.get("total") == 1 + 5 + 1)

            await eventually(stored, timeout=WAIT)
        async with JsonClient(server.ws_base, session["share_token"], bob.token) as again:
            assert again.welcome is not None and again.welcome["content"] == expected
        # After an unload the document is loaded from storage: the CRDT state was written too.
        async with httpx.AsyncClient(base_url=server.base_url, headers=alice.headers) as http:

            async def unloaded_with_everything() -> bool:
                body = (await http.get(f"/api/sessions/{session['id']}")).json()
                return body["live"] is False and body["content"] == expected

            await eventually(unloaded_with_everything, timeout=WAIT)
    finally:
        await server.stop()


async def test_serve_still_refuses_a_database_that_answers_with_an_error() -> None:
    """Only an unreachable database is waited for: a missing one stops the start (exit 2)."""
    require_service("PostgreSQL", postgres_available())
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/ps_no_such_database_for_serve"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=str(ROOT),
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert "ps_no_such_database_for_serve" in done.stderr and "Traceback" not in done.stderr
