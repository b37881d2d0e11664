"""From raw records to the numbers in the summary.

Definitions (also in ``loadtest/README.md``):

* **expected deliveries**: for every edit sent, the number of *other* clients of its room that
  completed the initial sync. A client that drops later still counts: what it misses is lost.
* **delivered**: distinct ``(edit, receiver)`` pairs seen by those receivers before the drain
  period ended; **lost** = expected − delivered. Repeats are counted as ``duplicates``.
* **latency**: receiver's arrival time − author's send time, for every delivery (same clock).
* **timeline**: one-second bins from the start of the edit phase: edits sent, deliveries
  arrived, latency percentiles of the deliveries that arrived in the bin, server CPU and RSS.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from loadtest.model import WorkerResult
from loadtest.monitor import Sample

MB = 1024 * 1024
PERCENTILES = (50, 95, 99)


def percentiles_ms(seconds: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in milliseconds (None when there are no values)."""
    values = np.asarray(seconds, dtype=float) * 1000.0
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "count": 0}
    p50, p95, p99 = np.percentile(values, PERCENTILES)
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(values.max()), 3),
        "mean": round(float(values.mean()), 3),
        "count": int(values.size),
    }


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(sum(items) / len(items), 1) if items else None


def _between(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t <= end]


def deliveries(
    result: WorkerResult, room_of: dict[int, int]
) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Counts, latencies (s) and arrival times of the matched deliveries."""
    ready_by_room: dict[int, set[int]] = {}
    for client in result.ready:
        ready_by_room.setdefault(room_of[client], set()).add(client)
    sent_at = {(client, seq): at for client, seq, at in result.sends}
    expected = sum(len(ready_by_room.get(room_of[c], ())) - 1 for c, _s, _t in result.sends)
    seen: set[tuple[int, int, int]] = set()
    latencies: list[float] = []
    arrived: list[float] = []
    duplicates = unmatched = 0
    for author, seq, receiver, at in result.arrivals:
        start = sent_at.get((author, seq))
        room = ready_by_room.get(room_of.get(author, -1), set())
        if start is None or receiver not in room or receiver == author:
            unmatched += 1
            continue
        key = (author, seq, receiver)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        latencies.append(at - start)
        arrived.append(at)
    counts = {
        "expected": expected,
        "delivered": len(seen),
        "lost": expected - len(seen),
        "duplicates": duplicates,
        "unmatched": unmatched,
    }
    return counts, np.asarray(latencies), np.asarray(arrived)


def timeline(
    result: WorkerResult,
    latencies: np.ndarray,
    arrived: np.ndarray,
    samples: Sequence[Sample],
    end: float,
) -> list[dict[str, Any]]:
    """Per-second bins from the start of the edit phase until ``end``."""
    start = result.edit_started
    bins = max(1, math.ceil(end - start))
    sent = np.zeros(bins, dtype=int)
    for _c, _s, at in result.sends:
        index = int(at - start)
        if 0 <= index < bins:
            sent[index] += 1
    indices = np.floor(arrived - start).astype(int) if arrived.size else np.zeros(0, dtype=int)
    rows: list[dict[str, Any]] = []
    for second in range(bins):
        mask = indices == second
        in_bin = latencies[mask] if latencies.size else latencies
        stats = percentiles_ms(in_bin)
        window = _between(samples, start + second, start + second + 1)
        rows.append(
            {
                "t": second,
                "sent": int(sent[second]),
                "delivered": int(mask.sum()) if latencies.size else 0,
                "p50_ms": stats["p50"],
                "p95_ms": stats["p95"],
                "p99_ms": stats["p99"],
                "server_cpu": _mean(s.server_cpu for s in window if s.server_cpu is not None),
                "server_rss_mb": _mean(
                    s.server_rss / MB for s in window if s.server_rss is not None
                ),
                "loadgen_cpu": _mean(s.loadgen_cpu for s in window),
            }
        )
    return rows


def rss_growth(window: Sequence[Sample]) -> dict[str, float | None]:
    """How the server's RSS grew over the edit phase: in all (MiB), and its rate over the second
    half (MiB per minute) — near zero once the server has reached its working set, positive
    while something grows without bound (a sustained run is 60 s or more for this reason)."""
    rss = [(s.t, s.server_rss / MB) for s in window if s.server_rss is not None]
    if len(rss) < 2:
        return {"rss_mb_growth": None, "rss_mb_per_min_second_half": None}
    middle = rss[0][0] + (rss[-1][0] - rss[0][0]) / 2
    half = [point for point in rss if point[0] >= middle]
    rate = None
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        rate = round((half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) * 60, 1)
    return {"rss_mb_growth": round(rss[-1][1] - rss[0][1], 1), "rss_mb_per_min_second_half": rate}


def resources(samples: Sequence[Sample], start: float, end: float) -> dict[str, Any]:
    """Server and generator CPU (mean/max over the window) and RSS (start/max/end)."""
    window = _between(samples, start, end)
    server_cpu = [s.server_cpu for s in window if s.server_cpu is not None]
    server_rss = [s.server_rss for s in samples if s.server_rss is not None]
    gen_cpu = [s.loadgen_cpu for s in window]
    return {
        "server": {
            "cpu_percent_mean": _mean(server_cpu),
            "cpu_percent_max": round(max(server_cpu), 1) if server_cpu else None,
            "rss_mb_start": round(server_rss[0] / MB, 1) if server_rss else None,
            "rss_mb_max": round(max(server_rss) / MB, 1) if server_rss else None,
            "rss_mb_end": round(server_rss[-1] / MB, 1) if server_rss else None,
            **rss_growth(window),
        },
        "loadgen": {
            "cpu_percent_mean": _mean(gen_cpu),
            "cpu_percent_max": round(max(gen_cpu), 1) if gen_cpu else None,
            "rss_mb_max": round(max(s.loadgen_rss for s in samples) / MB, 1) if samples else None,
        },
    }


def _connect_phase(samples: Sequence[Sample], marks: dict[str, float]) -> dict[str, Any]:
    """Server CPU while the clients were joining (the join-storm's cost)."""
    start, end = marks.get("connect"), marks.get("connected")
    if start is None or end is None:
        return {}
    window = [s.server_cpu for s in _between(samples, start, end + 0.5) if s.server_cpu is not None]
    return {
        "seconds": round(end - start, 3),
        "server_cpu_percent_mean": _mean(window),
        "server_cpu_percent_max": round(max(window), 1) if window else None,
    }


def connections(result: WorkerResult, planned: int) -> dict[str, Any]:
    """Connection counts and handshake / ready-time percentiles."""
    opened = [r.open_s for r in result.connects if r.open_s is not None]
    ready = [r.ready_s for r in result.connects if r.ready_s is not None]
    return {
        "planned": planned,
        "opened": len(opened),
        "ready": len(result.ready),
        "failed": planned - len(result.ready),
        "open_ms": percentiles_ms(opened),
        "ready_ms": percentiles_ms(ready),
    }


def summarize(
    result: WorkerResult,
    room_of: dict[int, int],
    samples: Sequence[Sample],
    marks: dict[str, float],
    duration: float,
) -> dict[str, Any]:
    """Every number of one run (without the configuration, which the runner adds)."""
    counts, latencies, arrived = deliveries(result, room_of)
    edit_end = marks.get("edit_end", result.edit_ended)
    drained = marks.get("drained", edit_end)
    sent = len(result.sends)
    delivered = counts["delivered"]
    summary: dict[str, Any] = {
        "connections": connections(result, len(room_of)),
        "edits": {
            "sent": sent,
            "skipped": result.skipped_edits,
            "sent_per_s": round(sent / duration, 1) if duration else None,
            "missing_acks": result.missing_acks,
        },
        "deliveries": {
            **counts,
            "delivered_fraction": round(delivered / counts["expected"], 6)
            if counts["expected"]
            else None,
            "per_s": round(delivered / duration, 1) if duration else None,
        },
        "latency_ms": percentiles_ms(latencies),
        "ack_ms": percentiles_ms(result.acks),
        "errors": {
            "total": result.errors.total,
            "by_kind": dict(sorted(result.errors.counts.items())),
            "samples": result.errors.samples,
        },
        **resources(samples, result.edit_started, edit_end),
        "connect_phase": _connect_phase(samples, marks),
        "timeline": timeline(result, latencies, arrived, samples, drained)
        if result.edit_started
        else [],
        "samples": [
            {
                "t": round(s.t - marks.get("start", s.t), 2),
                "server_cpu": s.server_cpu,
                "server_rss_mb": round(s.server_rss / MB, 1) if s.server_rss else None,
                "loadgen_cpu": s.loadgen_cpu,
            }
            for s in samples
        ],
        "phases_s": {
            name: round(at - marks.get("start", at), 3) for name, at in sorted(marks.items())
        },
    }
    return summary
