"""``prompt-studio db backup`` while a real server is being edited, restored into a fresh database.

On each dialect: JSON and Yjs clients edit, a backup runs while a JSON client keeps editing,
the backup is restored into a fresh database and a second server serves it. The restored
session must hold a consistent snapshot (every op acked before the backup started, then a
whole prefix of the ops made during it, none torn), its history, and a CRDT state that a real
Yjs client opens without duplicated text and keeps editing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.conftest import E2E_ENV
from tests.support.accounts import Account, create_accounts
from tests.support.api import create_session, session_content
from tests.support.json_client import JsonClient
from tests.support.server_process import ROOT, ServerProcess
from tests.support.services import (
    create_postgres_database,
    drop_postgres_database,
    require_service,
)
from tests.support.waiting import eventually
from tests.support.yjs_client import YjsNodeClient, node_available, node_unavailable_reason

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.node]

CLI_TIMEOUT = 120.0
#: Ops a JSON client keeps making while the backup runs (bounded; the backup usually wins).
MAX_CONCURRENT_OPS = 400


async def cli(database_url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``prompt-studio ARGS --json``; return (exit code, the JSON object, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        "--json",
        cwd=str(ROOT),
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(CLI_TIMEOUT):
        stdout, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(stdout.decode() or "{}"), stderr.decode()


@pytest.fixture
def fresh_database_url(server_database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the module's dialect (nothing migrated: restore creates it all)."""
    if server_database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"
        return
    url = create_postgres_database("bk_restored")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest_asyncio.fixture(loop_scope="session")
async def restored_server(fresh_database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server (not yet started) on the fresh database; started by the test after restoring."""
    proc = ServerProcess(fresh_database_url, env=E2E_ENV, log_path=tmp_path / "restored.log")
    try:
        yield proc
    finally:
        with contextlib.suppress(Exception):
            await proc.stop()


async def test_backup_of_a_running_edited_server_restores_everything(
    own_server: ServerProcess,
    restored_server: ServerProcess,
    fresh_database_url: str,
    tmp_path: Path,
) -> None:
    """Bound: the backup and the restore each finish within ``CLI_TIMEOUT`` seconds."""
    require_service(f"Node.js interop packages ({node_unavailable_reason()})", node_available())
    alice, bob = await create_accounts(own_server.database_url, ["Alice", "Bob"])
    session = await create_session(own_server, alice, "Base.")
    yjs_url = f"{own_server.ws_base}/ws"
    async with (
        JsonClient(own_server.ws_base, session["share_token"], alice.token) as writer,
        YjsNodeClient(yjs_url, session["share_token"], params={"token": alice.token}) as ydoc,
    ):
        await ydoc.wait_text("Base.")
        await ydoc.insert(0, "[yjs 👋]")
        await writer.wait_text("[yjs 👋]Base.")
        for i in range(10):
            assert (await writer.insert(writer.utf16_length(), f" a{i}"))["type"] == "ack"
        before = writer.text
        await ydoc.wait_text(before)

        during: list[str] = []
        stop = asyncio.Event()

        async def keep_editing() -> None:
            for i in range(MAX_CONCURRENT_OPS):
                if stop.is_set():
                    return
                piece = f" b{i}"
                assert (await writer.insert(writer.utf16_length(), piece))["type"] == "ack"
                during.append(piece)

        editing = asyncio.create_task(keep_editing())
        backup_path = tmp_path / "prompt-studio.backup"
        try:
            code, summary, stderr = await cli(
                own_server.database_url, "db", "backup", str(backup_path)
            )
        finally:
            stop.set()
            await editing
        assert code == 0, stderr
        assert summary["revision"] == summary["head"]
        assert summary["bytes"] == backup_path.stat().st_size > 0
        assert "prompt-studio:" in stderr  # progress is on stderr, the result on stdout

    code, summary, stderr = await cli(fresh_database_url, "db", "restore", str(backup_path))
    assert code == 0, stderr
    assert "next" not in summary  # the backup is at head: no upgrade needed

    await restored_server.start()
    content = await session_content(restored_server, alice, session["id"])
    assert content.startswith(before), content
    tail = content[len(before) :]
    # A whole prefix of the concurrent ops: the backup is one snapshot, no op is torn.
    pieces = re.findall(r" b\d+", tail)
    assert "".join(pieces) == tail and pieces == during[: len(pieces)], tail
    async with httpx.AsyncClient(base_url=restored_server.base_url, headers=alice.headers) as http:
        history = await http.get(f"/api/sessions/{session['id']}/history", params={"limit": 1})
    assert history.status_code == 200, history.text
    assert history.json()["total"] >= 1 + 10 + len(pieces)

    await check_restored_document_opens(restored_server, session, alice, content)
    # The restored database has the other account too (the whole database was restored).
    await bob_can_still_log_in(restored_server, bob)


async def check_restored_document_opens(
    server: ServerProcess, session: dict[str, Any], alice: Account, content: str
) -> None:
    """A real Yjs client loads the restored CRDT state: the same text once, and edits flow."""
    url = f"{server.ws_base}/ws"
    async with (
        YjsNodeClient(url, session["share_token"], params={"token": alice.token}) as ydoc,
        JsonClient(server.ws_base, session["share_token"], alice.token) as json_client,
    ):
        await ydoc.wait_synced()
        assert await ydoc.text() == content
        assert content.count("[yjs 👋]") == 1 and content.count("Base.") == 1
        await ydoc.insert(0, ">")
        await json_client.wait_text(">" + content)
        assert (await json_client.insert(json_client.utf16_length(), "<"))["type"] == "ack"
        await ydoc.wait_text(">" + content + "<")
    await eventually(
        lambda: _content_is(server, alice, session["id"], ">" + content + "<"), timeout=15
    )


async def _content_is(server: ServerProcess, alice: Account, session_id: str, text: str) -> bool:
    return await session_content(server, alice, session_id) == text


async def bob_can_still_log_in(server: ServerProcess, bob: Account) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=bob.headers) as http:
        response = await http.get("/api/sessions")
    assert response.status_code == 200, response.text
