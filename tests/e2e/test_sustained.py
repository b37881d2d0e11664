"""The history writer under load, against a real server: a bounded backlog that pushes back,
``updated_at`` that moves while a session is edited, and a short sustained run that must neither
fall behind without bound nor meet a locked database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect

from crdt.codec import (
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from storage.engine import create_engine, create_session_factory
from storage.models import EditHistory
from tests.support.accounts import Account, create_accounts
from tests.support.api import call, create_session, grant, has_content
from tests.support.json_client import JsonClient
from tests.support.locks import write_lock
from tests.support.server_process import ServerProcess, running_server
from tests.support.waiting import eventually
from tests.support.yjs_client import YjsNodeClient, node_unavailable_reason

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASE_ENV = {
    "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": "0.5",
    "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS": "0.2",
}


async def history_rows(database_url: str, session_ids: list[str]) -> int:
    """How many edit_history rows these sessions have (what is durable)."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db:
            count = await db.scalar(
                select(func.count(EditHistory.id)).where(EditHistory.session_id.in_(session_ids))
            )
    finally:
        await engine.dispose()
    return int(count or 0)


def _server_log(log_dir: Path) -> str:
    return (log_dir / "server.log").read_text(errors="replace")


# -- updated_at (issue 9, item 7) --------------------------------------------------------------


async def test_updated_at_moves_while_a_session_is_edited(
    server_database_url: str, tmp_path: Path
) -> None:
    env = {**BASE_ENV, "PROMPT_STUDIO_SESSION_TOUCH_SECONDS": "0.2"}
    async with running_server(server_database_url, tmp_path, env) as server:
        (alice,) = await create_accounts(server.database_url, ["Alice"])
        edited = await create_session(server, alice, "old", name="edited")
        newer = await create_session(server, alice, "new", name="newer")

        async def listing() -> list[dict[str, Any]]:
            response = await call(server, alice, "GET", "/api/sessions")
            assert response.status_code == 200, response.text
            return list(response.json()["items"])

        assert [s["id"] for s in await listing()][:2] == [newer["id"], edited["id"]]
        # The client stays connected throughout: nothing is unloaded, so only the edits
        # themselves can move updated_at.
        async with JsonClient(server.ws_base, edited["share_token"], alice.token) as client:
            for n in range(3):
                assert (await client.insert(0, str(n)))["type"] == "ack"

            async def edited_first() -> bool:
                return bool(next(s["id"] for s in await listing()) == edited["id"])

            await eventually(edited_first, timeout=10)
            first = _parse_time((await listing())[0]["updated_at"])
            assert first > _parse_time(newer["updated_at"])
            # Debounced, but kept current: a later edit moves it again.
            await asyncio.sleep(0.3)  # past the 0.2 s debounce, so the next edit touches
            assert (await client.insert(0, "!"))["type"] == "ack"

            async def moved_again() -> bool:
                return _parse_time((await listing())[0]["updated_at"]) > first

            await eventually(moved_again, timeout=10)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- push-back when the writer cannot keep up (issue 9, item 10) --------------------------------


async def test_a_full_backlog_refuses_edits_and_stores_every_one_it_relayed(
    server_database_url: str, tmp_path: Path
) -> None:
    reason = node_unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = {
        **BASE_ENV,
        "PROMPT_STUDIO_HISTORY_MAX_PENDING_EDITS": "5",
        # The writer waits for the lock this test holds instead of failing a commit.
        "PROMPT_STUDIO_SQLITE_BUSY_TIMEOUT_MS": "60000",
    }
    async with running_server(server_database_url, tmp_path, env) as server:
        alice, bob = await create_accounts(server.database_url, ["Alice", "Bob"])
        session = await create_session(server, alice, "")
        await grant(server, alice, session["id"], bob)
        watcher = JsonClient(server.ws_base, session["share_token"], alice.token)
        await watcher.connect()
        editor = YjsNodeClient(
            f"{server.ws_base}/ws",
            session["share_token"],
            params={"token": bob.token},
            max_backoff_ms=200,
        )
        try:
            await editor.start()
            await editor.wait_synced()
            typed = ""
            async with write_lock(server.database_url):
                # Nothing can be committed now: the first five edits fill the backlog...
                for n in range(12):
                    await editor.insert(len(typed), f"<{n}>")
                    typed += f"<{n}>"
                # ...and the next one is refused before it is applied: the Yjs client is told
                # to come back later, and a JSON client's op gets an error instead of an ack.
                await editor.wait_closed_code(1013, timeout=10)
                refused = await watcher.op({"type": "insert", "position": 0, "content": "json"})
                assert refused["type"] == "error" and refused["code"] == "overloaded", refused
                # Exactly what was admitted was applied and relayed; nothing after it.
                await watcher.wait_text("<0><1><2><3><4>")
                assert "json" not in watcher.text
            # Once commits go through, the client's reconnection resends the rest: every edit
            # it made is stored, the ones relayed early included.
            await eventually(lambda: has_content(server, alice, session["id"], typed), timeout=20)
            assert (await watcher.insert(0, "json"))["type"] == "ack"
        finally:
            await editor.close()
            await watcher.close()
        assert await history_rows(server.database_url, [session["id"]]) > 0
        log = _server_log(tmp_path)
        assert "edit history backlog full" in log
        assert "database is locked" not in log


# -- a short sustained run (issue 15) ----------------------------------------------------------


class YjsEditor:
    """A minimal y-websocket editor over a raw websocket: syncs, then appends markers."""

    def __init__(self, url: str, client_id: int) -> None:
        self.url = url
        self.doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc(client_id=client_id)
        self.text = pycrdt.Text()
        self.doc["content"] = self.text
        self.synced = asyncio.Event()
        self.sent = 0
        self.closed_with: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open the socket and wait for the initial sync."""
        self._ws = await connect(self.url, max_size=None)
        self._reader = asyncio.create_task(self._read(self._ws))
        await self._ws.send(encode_sync_step1(self.doc.get_state()))
        await asyncio.wait_for(self.synced.wait(), 10)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                if not isinstance(frame, bytes) or frame[:1] != b"\x00":
                    continue  # awareness and the like
                message = decode_message(frame)
                if isinstance(message, SyncStep1):
                    await ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    self.doc.apply_update(message.update)
                    if isinstance(message, SyncStep2):
                        self.synced.set()
        self.closed_with = ws.close_code

    async def edit(self, marker: str) -> None:
        """Insert ``marker`` at a position of the text and send the update."""
        assert self._ws is not None
        before = self.doc.get_state()
        self.text.insert(len(self.text) // 2, marker)
        await self._ws.send(encode_sync_update(self.doc.get_update(before)))
        self.sent += 1

    async def close(self) -> None:
        """Close the socket and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader


ROOMS, CLIENTS, RATE, SECONDS = 3, 4, 20.0, 4.0


async def _editors(
    server: ServerProcess, accounts: list[Account]
) -> tuple[list[str], list[YjsEditor]]:
    owner = accounts[0]
    session_ids, editors = [], []
    ids = itertools.count(1)
    for room in range(ROOMS):
        session = await create_session(server, owner, "", name=f"room {room}")
        session_ids.append(session["id"])
        for account in accounts[1:]:
            await grant(server, owner, session["id"], account)
        for account in accounts:
            url = f"{server.ws_base}/ws/{session['share_token']}?token={account.token}&protocol=yjs"
            editors.append(YjsEditor(url, next(ids)))
    await asyncio.gather(*(e.connect() for e in editors))
    return session_ids, editors


async def test_sustained_editing_keeps_the_backlog_bounded_and_never_meets_a_locked_database(
    server_database_url: str, tmp_path: Path
) -> None:
    env = {
        **BASE_ENV,
        # Bounded well above what this load needs in flight at once: reaching it means the
        # writer fell behind.
        "PROMPT_STUDIO_HISTORY_MAX_PENDING_EDITS": "2000",
    }
    async with running_server(server_database_url, tmp_path, env) as server:
        accounts = await create_accounts(server.database_url, [f"U{i}" for i in range(CLIENTS)])
        session_ids, editors = await _editors(server, accounts)
        samples: list[int] = []
        stop = asyncio.Event()

        async def sample_backlog() -> None:
            while not stop.is_set():
                sent = sum(e.sent for e in editors)
                samples.append(sent - await history_rows(server.database_url, session_ids))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)

        async def type_into(editor: YjsEditor, index: int) -> None:
            start = time.monotonic()
            for n in range(int(RATE * SECONDS)):
                await asyncio.sleep(max(0.0, start + n / RATE - time.monotonic()))
                await editor.edit(f"[{index}.{n}]")

        sampler = asyncio.create_task(sample_backlog())
        try:
            await asyncio.gather(*(type_into(e, i) for i, e in enumerate(editors)))
            total = sum(e.sent for e in editors)

            async def all_stored() -> bool:
                return await history_rows(server.database_url, session_ids) >= total

            await eventually(all_stored, timeout=20, interval=0.1)
        finally:
            stop.set()
            await sampler
            await asyncio.gather(*(e.close() for e in editors))
        assert total == ROOMS * CLIENTS * RATE * SECONDS
        assert all(e.closed_with in (None, 1000) for e in editors), [e.closed_with for e in editors]
        # At 240 edits/s the writer commits every ~20 ms: a few hundred edits in flight at most.
        assert max(samples) < 600, samples
    log = _server_log(tmp_path)
    assert "database is locked" not in log
    assert "commit failed" not in log
    assert "backlog full" not in log
