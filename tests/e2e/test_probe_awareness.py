"""Issue 9 probes against a real server: an awareness flood from a VIEWER's Yjs socket, and
deeply nested JSON on a JSON socket. Neither may stall the event loop, drop a bystander or leave
a traceback in the log."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from crdt.codec import (
    AwarenessEntry,
    AwarenessMessage,
    decode_awareness,
    decode_message,
    encode_awareness,
    encode_awareness_message,
    encode_query_awareness,
    encode_sync_step1,
    write_var_uint,
)
from tests.support.accounts import Account
from tests.support.api import create_session
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The flood: ~1 MB frames of 130,000 distinct ids, each `varuint(id) 01 02 "{}"`.
FLOOD_ENTRIES = 130_000
FLOOD_FRAMES = 4  # distinct frames, sent round-robin
MAX_FLOOD_SENDS = 24
# The flood lasts until /healthz has answered this often meanwhile (or MAX_FLOOD_SENDS).
HEALTHZ_SAMPLES = 5
MAX_FRAME_BYTES = 1024 * 1024
# /healthz must keep answering while the flood is handled: typically within a few ms, and never
# stuck behind a frame (the unbounded handler took 1.5 s per frame, so every request waited
# seconds). The slowest request may also have waited for a busy test machine's scheduler.
HEALTHZ_TYPICAL_SECONDS = 0.05
HEALTHZ_WORST_SECONDS = 1.0
ALICE_ID, BOB_ID = 4242, 9001


def flood_frame(first_id: int, *, also: list[AwarenessEntry]) -> bytes:
    """One awareness message: ``also`` first, then FLOOD_ENTRIES fresh ids with state ``{}``."""
    fresh = b"".join(write_var_uint(first_id + i) + b"\x01\x02{}" for i in range(FLOOD_ENTRIES))
    head = encode_awareness(also)  # varuint count, then its entries
    count = len(also) + FLOOD_ENTRIES
    payload = write_var_uint(count) + head[len(write_var_uint(len(also))) :] + fresh
    return encode_awareness_message(payload)


async def raw_yjs(server: ServerProcess, session: dict[str, Any], account: Account) -> Any:
    ws = await connect(
        f"{server.ws_base}/ws/{session['share_token']}?token={account.token}", max_size=None
    )
    await ws.send(encode_sync_step1(b"\x00"))
    return ws


async def announce(ws: ClientConnection, client_id: int, clock: int, state: Any) -> None:
    await ws.send(
        encode_awareness_message(encode_awareness([AwarenessEntry(client_id, clock, state)]))
    )


async def queried_awareness(ws: ClientConnection) -> dict[int, AwarenessEntry]:
    """Ask the server for every awareness state and return its answer."""
    await ws.send(encode_query_awareness())
    async with asyncio.timeout(10):
        while True:
            raw = await ws.recv()
            assert isinstance(raw, bytes)
            message = decode_message(raw)
            if isinstance(message, AwarenessMessage):
                states = {e.client_id: e for e in decode_awareness(message.payload)}
                if BOB_ID in states:  # the answer: Bob's own states are never sent to him else
                    return states


async def time_healthz(server: ServerProcess, stop: asyncio.Event, latencies: list[float]) -> None:
    """Record latencies of back-to-back ``/healthz`` requests until ``stop`` is set."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        while not stop.is_set():
            started = time.perf_counter()
            response = await http.get("/healthz", timeout=30)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200


def presence_updates(client: JsonClient) -> list[dict[str, Any]]:
    return [m for m in client.messages if m.get("type") == "presence" and "state" in m]


async def test_a_viewers_awareness_flood_neither_stalls_the_server_nor_drops_anyone(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, carol = team
    session = await create_session(server, alice, "calm")
    async with JsonClient(server.ws_base, session["share_token"], carol.token) as observer:
        owner = await raw_yjs(server, session, alice)
        viewer = await raw_yjs(server, session, bob)  # joined by link: a VIEWER
        try:
            await announce(owner, ALICE_ID, 1, {"user": "alice"})
            await announce(viewer, BOB_ID, 1, {"user": "bob"})
            await observer.wait_for(lambda m: m.get("client_id") == BOB_ID)
            before = len(presence_updates(observer))

            # Alice's entry rides along: removing it, then overwriting it, must both fail.
            frames = [
                flood_frame(
                    10_000 + k * FLOOD_ENTRIES,
                    also=[AwarenessEntry(ALICE_ID, 99, None), AwarenessEntry(ALICE_ID, 100, {})],
                )
                for k in range(FLOOD_FRAMES)
            ]
            assert all(len(f) < MAX_FRAME_BYTES for f in frames)
            stop = asyncio.Event()
            latencies: list[float] = []
            poller = asyncio.create_task(time_healthz(server, stop, latencies))
            try:
                for sent in range(MAX_FLOOD_SENDS):
                    await viewer.send(frames[sent % FLOOD_FRAMES])
                    if sent >= FLOOD_FRAMES and len(latencies) >= HEALTHZ_SAMPLES:
                        break
                # Frames of one socket are handled in order: once this arrives, all were.
                await announce(viewer, BOB_ID, 2, {"user": "bob", "done": True})
                await observer.wait_for(
                    lambda m: (
                        m.get("client_id") == BOB_ID and (m.get("state") or {}).get("done") is True
                    ),
                    timeout=60,
                )
            finally:
                stop.set()
                await poller
            assert latencies, "the flood ended before /healthz answered once"
            assert statistics.median(latencies) < HEALTHZ_TYPICAL_SECONDS, sorted(latencies)
            assert max(latencies) < HEALTHZ_WORST_SECONDS, sorted(latencies)

            assert not observer.closed.is_set(), (observer.close_code, observer.close_reason)
            # Only Bob's own "done" state reached the observer: none of the flood.
            assert len(presence_updates(observer)) - before == 1
            states = await queried_awareness(viewer)
            assert states[ALICE_ID].state == {"user": "alice"}
            assert states[BOB_ID].state == {"user": "bob", "done": True}
            assert set(states) == {ALICE_ID, BOB_ID}
        finally:
            await viewer.close()
            await owner.close()
        await observer.send({"type": "ping"})
        await observer.wait_for(lambda m: m.get("type") == "pong")


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"type":"presence","cursor":' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"type":"op","rev":0,"op":' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}",
    ],
    ids=["array", "in-presence", "in-op"],
)
async def test_deeply_nested_json_gets_an_error_frame_and_the_socket_stays_open(
    server: ServerProcess, team: list[Account], frame: str
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "flat")
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as viewer:
        await viewer.send(frame)
        error = await viewer.wait_for(lambda m: m.get("type") == "error")
        assert error["code"] == "malformed_json"
        await viewer.send({"type": "ping", "id": 7})
        await viewer.wait_for(lambda m: m.get("type") == "pong" and m.get("id") == 7)
        assert not viewer.closed.is_set()
    assert server.log_path is not None
    log = server.log_path.read_text(errors="replace")
    assert "RecursionError" not in log and "Traceback" not in log
