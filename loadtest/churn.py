"""Connection churn: open many collaboration websockets, drop each abruptly, count what is left.

``python -m loadtest.churn --count 10000`` starts our server (fresh SQLite, operator key set),
makes one session, and then, ``--concurrency`` at a time, opens ``--count`` JSON connections and
drops every one without a close handshake (TCP abort): most right after their ``welcome``, one
in ten right after sending an op (its ack still waiting for the history commit), one in ten
before the handshake reply has even been read. The server's counts
(``GET /api/admin/debug/counts``) are read before (after a warm-up round) and after, once the
server has settled: it prints one JSON report and exits 1 if anything leaked — a connection,
socket, room, queue, task or file descriptor more than at the start, or resident memory more
than ``--rss-tolerance`` above the baseline.

``tests/e2e/test_connection_churn.py`` runs the same churn (1,000 connections) in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadtest.target_ours import OursTarget

#: Counts that must be back to (at most) their baseline once the server has settled.
SETTLED_AT_MOST_BASELINE = ("asyncio_tasks", "open_fds")
#: Counts that must be back to exactly their baseline.
SETTLED_EQUAL_BASELINE = (
    "open_sockets",
    "rooms",
    "room_links",
    "rooms_loading",
    "rooms_unloading",
    "unload_timers",
    "connections",
    "queued_messages",
    "sending_connections",
    "awareness_states",
    "op_ids",
    "history_pending_edits",
    "history_pending_bytes",
)

_OPERATOR_KEY = "loadtest-churn-operator-key-0123456789"


def idle_target(counts: dict[str, int | None]) -> dict[str, int | None]:
    """What a node without clients settles to: ``counts`` with every per-client count at 0.

    Read right after a warm-up, the counts may still hold its last edits' commits or the
    room's unload timer; a baseline must wait for those rather than adopt them.
    """
    return {**counts, **dict.fromkeys(SETTLED_EQUAL_BASELINE, 0)}


def _masked_text_frame(payload: bytes) -> bytes:
    """One client-to-server text frame (masked, as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame: (opcode, payload); servers do not mask."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def churn_once(url: str, mode: str, timeout: float) -> str:
    """Open one connection to ``url`` (``ws://``), behave as ``mode`` says, then abort it.

    Modes: ``welcome`` (wait for the welcome), ``op`` (welcome, then send an op), ``early``
    (send the upgrade request, abort before reading the reply). Returns the outcome.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode("ascii")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            await writer.drain()
            if mode == "early":
                return "early"
            status = await reader.readuntil(b"\r\n\r\n")
            if not status.startswith(b"HTTP/1.1 101"):
                return "refused"
            opcode, payload = await _read_frame(reader)
            if opcode != 1 or json.loads(payload).get("type") != "welcome":
                return "no_welcome"
            if mode == "op":
                op = {
                    "type": "op",
                    "id": "churn",
                    "op_id": base64.b32encode(os.urandom(10)).decode("ascii"),
                    "rev": json.loads(payload)["rev"],
                    "op": {"type": "insert", "position": 0, "content": "."},
                }
                writer.write(_masked_text_frame(json.dumps(op).encode("utf-8")))
                await writer.drain()
                return "op"
            return "welcome"
        finally:
            writer.transport.abort()


def mode_of(index: int) -> str:
    """Which behaviour connection ``index`` has (one in ten ``op``, one in ten ``early``)."""
    return {0: "early", 1: "op"}.get(index % 10, "welcome")


async def churn(
    urls: Sequence[str], count: int, *, concurrency: int, timeout: float = 20.0
) -> Counter[str]:
    """Open and drop ``count`` connections, ``concurrency`` at a time, round-robin over
    ``urls``; the outcomes counted (``error:<kind>`` for connections that failed)."""
    outcomes: Counter[str] = Counter()
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:
            try:
                outcomes[await churn_once(urls[index % len(urls)], mode_of(index), timeout)] += 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                outcomes[f"error:{type(exc).__name__}"] += 1

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return outcomes


async def read_counts(base_url: str, operator_key: str) -> dict[str, int | None]:
    """The server's ``GET /api/admin/debug/counts``."""
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=10) as http:
        response = await http.get(
            "/api/admin/debug/counts", headers={"Authorization": f"Bearer {operator_key}"}
        )
        response.raise_for_status()
        counts: dict[str, int | None] = response.json()
        return counts


def leaks(
    baseline: dict[str, int | None], now: dict[str, int | None], rss_tolerance: float
) -> list[str]:
    """What ``now`` holds beyond ``baseline`` (empty: nothing leaked)."""
    found = [
        f"{name}: {now[name]} > {baseline[name]}"
        for name in SETTLED_AT_MOST_BASELINE
        if (now[name] or 0) > (baseline[name] or 0)
    ]
    found += [
        f"{name}: {now[name]} != {baseline[name]}"
        for name in SETTLED_EQUAL_BASELINE
        if now[name] != baseline[name]
    ]
    rss, base_rss = now.get("rss_bytes"), baseline.get("rss_bytes")
    if rss is not None and base_rss is not None and rss > base_rss * (1 + rss_tolerance):
        found.append(f"rss_bytes: {rss} > {base_rss} + {rss_tolerance:.0%}")
    return found


async def settled_counts(
    base_url: str,
    operator_key: str,
    baseline: dict[str, int | None],
    *,
    rss_tolerance: float,
    timeout: float,
) -> tuple[dict[str, int | None], list[str]]:
    """Poll the counts until nothing is left beyond ``baseline`` or ``timeout`` passes;
    returns the last counts and what they still hold beyond it."""
    deadline = time.monotonic() + timeout
    while True:
        now = await read_counts(base_url, operator_key)
        left = leaks(baseline, now, rss_tolerance)
        if not left or time.monotonic() >= deadline:
            return now, left
        await asyncio.sleep(0.25)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, warm up, churn, settle; the report."""
    log_dir = Path(tempfile.mkdtemp(prefix="loadtest-churn-"))
    target = OursTarget(
        log_dir=log_dir,
        env={
            "PROMPT_STUDIO_OPERATOR_KEY": _OPERATOR_KEY,
            "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": str(args.unload_grace),
        },
    )
    await target.start()
    try:
        (urls,) = await target.room_urls(1, args.users, "json")
        base = target.base_url
        warm = await churn(urls, args.warmup, concurrency=args.concurrency)
        empty = await read_counts(base, _OPERATOR_KEY)
        baseline, _ = await settled_counts(
            base,
            _OPERATOR_KEY,
            idle_target(empty),
            rss_tolerance=1e9,
            timeout=args.settle_timeout,
        )
        started = time.monotonic()
        outcomes = await churn(urls, args.count, concurrency=args.concurrency)
        elapsed = time.monotonic() - started
        peak = await read_counts(base, _OPERATOR_KEY)
        after, left = await settled_counts(
            base,
            _OPERATOR_KEY,
            baseline,
            rss_tolerance=args.rss_tolerance,
            timeout=args.settle_timeout,
        )
    finally:
        await target.stop()
    return {
        "count": args.count,
        "concurrency": args.concurrency,
        "warmup_outcomes": dict(warm),
        "outcomes": dict(outcomes),
        "seconds": round(elapsed, 2),
        "connections_per_second": round(args.count / elapsed, 1) if elapsed else None,
        "baseline": baseline,
        "right_after": peak,
        "settled": after,
        "rss_ratio": _ratio(after.get("rss_bytes"), baseline.get("rss_bytes")),
        "leaks": left,
    }


def _ratio(value: int | None, base: int | None) -> float | None:
    return round(value / base, 4) if value is not None and base else None


def main(argv: list[str] | None = None) -> int:
    """``python -m loadtest.churn``: exit 0 when nothing leaked, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.churn", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="connections to churn")
    parser.add_argument("--warmup", type=int, default=500, help="connections before baseline")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--users", type=int, default=10, help="users the connections log in as")
    parser.add_argument("--unload-grace", type=float, default=0.5)
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--settle-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 1_000_000 or not 1 <= args.concurrency <= 1000:
        parser.error("--count must be 1..1,000,000 and --concurrency 1..1000")
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    return 1 if report["leaks"] else 0


if __name__ == "__main__":
    sys.exit(main())
