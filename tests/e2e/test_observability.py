"""``/metrics`` and JSON logs of a real server process after real websocket traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from crdt.codec import AwarenessEntry, encode_awareness, encode_awareness_message
from tests.e2e.conftest import E2E_ENV
from tests.support.accounts import create_accounts
from tests.support.api import create_session, grant
from tests.support.json_client import JsonClient
from tests.support.server_process import running_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

# A y-websocket sync step 1 with an empty state vector: "send me everything".
SYNC_STEP1_EMPTY = b"\x00\x00\x01\x00"


async def _scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def test_metrics_and_json_logs_follow_real_websocket_traffic(
    server_database_url: str, tmp_path: Path
) -> None:
    env = {
        **E2E_ENV,
        "PROMPT_STUDIO_LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        # Bob's second awareness id is refused: a warning logged while handling his frame.
        "PROMPT_STUDIO_AWARENESS_IDS_PER_CONNECTION": "1",
    }
    async with running_server(server_database_url, tmp_path, env) as server:
        alice, bob = await create_accounts(server.database_url, ["Alice", "Bob"])
        session = await create_session(server, alice, "Hello")
        await grant(server, alice, session["id"], bob)
        before = await _scrape(server.base_url)
        share = session["share_token"]
        yjs_url = f"{server.ws_base}/ws/{share}?protocol=yjs&token={bob.token}"
        async with (
            JsonClient(server.ws_base, share, alice.token) as a,
            websockets.connect(yjs_url) as yjs,
        ):
            await yjs.send(SYNC_STEP1_EMPTY)
            await a.insert(5, " world")
            await a.insert(0, ">")
            # Well after the join, so the transport hands this frame to the receiver directly.
            states = [AwarenessEntry(11, 1, {"user": "b"}), AwarenessEntry(12, 1, {"user": "c"})]
            await yjs.send(encode_awareness_message(encode_awareness(states)))
            await a.wait_for(lambda m: m.get("type") == "presence" and m.get("client_id") == 11)
            during = await _scrape(server.base_url)
            assert _value(during, "prompt_studio_connections", protocol="json") == 1
            assert _value(during, "prompt_studio_connections", protocol="yjs") == 1
            assert _value(during, "prompt_studio_rooms_loaded") >= 1
        inbound = "prompt_studio_messages_in_total"
        assert (
            _value(during, inbound, protocol="json", type="op")
            - _value(before, inbound, protocol="json", type="op")
            == 2
        )
        assert _value(during, inbound, protocol="yjs", type="sync") >= 1
        outbound = "prompt_studio_messages_out_total"
        assert _value(during, outbound, protocol="json", type="ack") >= 2
        # Bob's Yjs client got both edits (one or two merged frames) and his sync answers.
        assert _value(during, outbound, protocol="yjs", type="sync") >= 3
        assert _value(during, "prompt_studio_history_commits_total") > _value(
            before, "prompt_studio_history_commits_total"
        )
        assert _value(during, "prompt_studio_history_commit_seconds_count") >= 1
        assert _value(during, "prompt_studio_fanout_seconds_count") >= 1
        after: dict[Any, float] = {}

        async def closed() -> bool:
            nonlocal after
            after = await _scrape(server.base_url)
            return not any(
                _value(after, "prompt_studio_connections", protocol=p) for p in ("json", "yjs")
            )

        await eventually(closed, timeout=10.0, interval=0.2)
        sessions_route = _value(
            after,
            "prompt_studio_http_requests_total",
            route="/api/sessions",
            method="POST",
            status="201",
        )
        assert sessions_route >= 1, [k for k in after if "http" in k[0]]
    lines = _log_lines(tmp_path / "server.log")
    assert lines, "the server wrote no JSON log lines"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    opened = [line for line in lines if line["message"].startswith("websocket open")]
    closes = [line for line in lines if line["message"].startswith("websocket closed")]
    assert len(opened) == 2 and len(closes) == 2
    assert {line["connection_id"] for line in opened} == {line["connection_id"] for line in closes}
    assert all("(code 1000)" in line["message"] for line in closes), closes
    # A line logged while handling a frame (on the direct transport) has the connection's id.
    (refused,) = [line for line in lines if "dropping awareness" in line["message"]]
    assert refused["level"] == "WARNING" and refused["connection_id"] in {
        line["connection_id"] for line in opened
    }
    # Neither the share token nor a login token appears in any line.
    text = (tmp_path / "server.log").read_text()
    assert share not in text and alice.token not in text and bob.token not in text
    # uvicorn's own lines are JSON too (the access log of the REST calls above).
    assert any(line["logger"].startswith("uvicorn") for line in lines)
