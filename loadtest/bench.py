"""``python -m loadtest bench``: our server against the reference servers, in one go.

For each scenario, runs our server (Yjs, then JSON), the reference y-websocket server (Node.js)
and pycrdt-websocket, one after the other, each started fresh and pinned to the same core
(``--pin-core``, the generator on the others). Prints a table of the headline numbers with the
ratios ours/reference (y-websocket) for p99 latency and delivered rate, and writes the bench
JSON and a comparison chart.

With ``--rounds N`` the whole plan runs N times, round-robin (so a slow spell of the machine hits
every target alike), and each row is the run with the median p99 of its N runs; the p99 of
every round is listed beside it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from loadtest import report, scenarios
from loadtest.model import Protocol
from loadtest.runner import RunConfig, run_scenario
from loadtest.suite import ratio

logger = logging.getLogger(__name__)

DEFAULT_SCENARIOS = ("many-rooms", "hot-room")
DEFAULT_TARGETS = ("ours", "y-websocket", "pycrdt-websocket")
REFERENCE = "y-websocket"

COLUMNS = (
    "scenario",
    "target",
    "protocol",
    "clients_ready",
    "p50_ms",
    "p99_ms",
    "delivered",
    "delivered_per_s",
    "errors",
    "server_cpu_mean",
    "server_rss_max_mb",
    "server_rss_growth_mb",
    "loadgen_cpu_mean",
    "p99_vs_ref",
    "rate_vs_ref",
)


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The table row of the run with the median p99 (the upper median for an even count)."""
    ordered = sorted(runs, key=lambda run: float(run["latency_ms"]["p99"]))
    row = report.run_row(ordered[len(ordered) // 2])
    row["p99_rounds_ms"] = " / ".join(f"{run['latency_ms']['p99']:.1f}" for run in runs)
    return row


def _plan(names: list[str], targets: list[str]) -> list[tuple[str, str, Protocol]]:
    plan: list[tuple[str, str, Protocol]] = []
    for name in names:
        for target in targets:
            plan.append((name, target, "yjs"))
            if target == "ours":
                plan.append((name, target, "json"))
    return plan


async def bench(
    names: list[str],
    targets: list[str],
    config: RunConfig,
    overrides: dict[str, Any],
    *,
    rounds: int = 1,
) -> dict[str, Any]:
    """Run every (scenario, target, protocol) ``rounds`` times; returns the bench summary (files
    written)."""
    runs: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    failures: list[dict[str, str]] = []
    for round_no in range(1, rounds + 1):
        for name, target, protocol in _plan(names, targets):
            scenario = scenarios.get(name).with_overrides(**overrides)
            scenario = replace(scenario, protocol=protocol)
            logger.info(
                "bench: %s on %s (%s), round %d/%d", name, target, protocol, round_no, rounds
            )
            try:
                run = await run_scenario(scenario, replace(config, target=target, url=None))
            except Exception as exc:  # one broken target must not hide the others' numbers
                logger.exception("bench: %s on %s (%s) failed", name, target, protocol)
                failures.append(
                    {"scenario": name, "target": target, "protocol": protocol, "error": repr(exc)}
                )
                continue
            runs.append(run)
            by_key.setdefault((name, target, protocol), []).append(run)
    rows = [_median_row(key_runs) for key_runs in by_key.values()]
    for row in rows:
        reference = next(
            (
                r
                for r in rows
                if r["scenario"] == row["scenario"]
                and r["target"] == REFERENCE
                and r["protocol"] == "yjs"
            ),
            None,
        )
        row["p99_vs_ref"] = ratio(row["p99_ms"], reference["p99_ms"]) if reference else None
        row["rate_vs_ref"] = (
            ratio(row["delivered_per_s"], reference["delivered_per_s"]) if reference else None
        )
    columns = COLUMNS if rounds == 1 else (*COLUMNS[:6], "p99_rounds_ms", *COLUMNS[6:])
    stem = f"bench-{report.stamp()}"
    json_path = config.out_dir / f"{stem}.json"
    png_path = config.out_dir / f"{stem}.png"
    report.chart_bench(rows, png_path)
    summary = {
        "bench": True,
        "scenarios": names,
        "targets": targets,
        "pin_core": config.pin_core,
        "reference": REFERENCE,
        "table": rows,
        "rounds": rounds,
        "table_text": report.table(rows, columns),
        "failures": failures,
        "runs": runs,
        "files": {"summary": str(json_path), "chart": str(png_path)},
    }
    report.write_json(json_path, summary)
    return summary
