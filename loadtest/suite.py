"""Named runs with their files: single scenarios, ``json-vs-yjs``, ``nodes-vs-one``, and the CI
smoke run."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest import report, scenarios
from loadtest.runner import RunConfig, run_scenario
from loadtest.scenarios import Scenario

logger = logging.getLogger(__name__)

# The headline numbers compared between protocols or servers.
RATIO_KEYS = {
    "p50_ms": ("latency_ms", "p50"),
    "p99_ms": ("latency_ms", "p99"),
    "delivered_per_s": ("deliveries", "per_s"),
    "delivered_fraction": ("deliveries", "delivered_fraction"),
    "server_cpu_mean": ("server", "cpu_percent_mean"),
    "server_rss_max_mb": ("server", "rss_mb_max"),
}


def ratio(numerator: Any, denominator: Any) -> float | None:
    """``numerator / denominator`` rounded, or None when either is missing or zero."""
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    if denominator == 0:
        return None
    return round(numerator / denominator, 3)


def ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """Headline numbers of run ``a`` divided by those of run ``b``."""
    return {
        name: ratio(a[section][key], b[section][key]) for name, (section, key) in RATIO_KEYS.items()
    }


def _files(out_dir: Path, stem: str) -> tuple[Path, Path]:
    return out_dir / f"{stem}.json", out_dir / f"{stem}.png"


async def run_named(scenario: Scenario, config: RunConfig) -> dict[str, Any]:
    """Run a scenario (both protocols for ``json-vs-yjs``, one node then N for
    ``nodes-vs-one``); write its JSON and PNG."""
    stem = f"{scenario.name}-{config.target if not config.url else 'external'}-{report.stamp()}"
    json_path, png_path = _files(config.out_dir, stem)
    summary: dict[str, Any]
    if scenario.name == "nodes-vs-one":
        summary = await _nodes_vs_one(scenario, config)
        report.chart_runs(
            summary["runs"],
            png_path,
            f"{scenario.name} ({scenario.rooms}x"
            f"{scenario.clients_per_room} @ {scenario.edit_rate}/s, {scenario.protocol})",
        )
    elif scenario.name in scenarios.COMPOUND:
        runs = []
        for protocol in ("yjs", "json"):
            runs.append(await run_scenario(replace(scenario, protocol=protocol), config))
        summary = {
            "scenario": scenario.name,
            "runs": runs,
            "ratio_json_over_yjs": ratios(runs[1], runs[0]),
            "table": [report.run_row(run) for run in runs],
        }
        report.chart_runs(
            runs,
            png_path,
            f"{scenario.name} ({scenario.rooms}x"
            f"{scenario.clients_per_room} @ {scenario.edit_rate}/s)",
        )
    else:
        summary = await run_scenario(scenario, config)
        report.chart_runs([summary], png_path, f"{scenario.name} on {summary['target']}")
    summary["files"] = {"summary": str(json_path), "chart": str(png_path)}
    report.write_json(json_path, summary)
    runs_done = summary.get("runs", [summary])
    logger.info("\n%s", report.table([report.run_row(run) for run in runs_done]))
    return summary


async def _nodes_vs_one(scenario: Scenario, config: RunConfig) -> dict[str, Any]:
    """Our server with one node, then ``max(2, --nodes)`` nodes + Redis; same PostgreSQL setup."""
    if config.url or config.target != "ours":
        raise ValueError("nodes-vs-one runs our own server (no --url, --target ours)")
    nodes = max(2, config.nodes)
    runs = [
        await run_scenario(scenario, replace(config, nodes=count, postgres=True))
        for count in (1, nodes)
    ]
    return {
        "scenario": scenario.name,
        "runs": runs,
        f"ratio_{nodes}_nodes_over_1": ratios(runs[1], runs[0]),
        "table": [report.run_row(run) for run in runs],
    }


def smoke_problems(run: dict[str, Any]) -> list[str]:
    """Why a smoke run failed (empty: it passed)."""
    deliveries = run["deliveries"]
    label = report.run_label(run)
    problems = []
    if deliveries["delivered"] <= 0:
        problems.append(f"{label}: nothing was delivered")
    if deliveries["lost"] != 0 or deliveries["delivered"] != deliveries["expected"]:
        problems.append(
            f"{label}: {deliveries['lost']} of {deliveries['expected']} deliveries lost"
        )
    return problems


async def smoke(config: RunConfig, overrides: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The CI run: a few seconds against our server, Yjs then JSON; ok if nothing was lost."""
    base = scenarios.get("smoke").with_overrides(**overrides)
    smoke_config = replace(
        config, target="ours", url=None, drain_timeout=min(config.drain_timeout, 10.0)
    )
    runs = [
        await run_scenario(replace(base, protocol=protocol), smoke_config)
        for protocol in ("yjs", "json")
    ]
    problems = [problem for run in runs for problem in smoke_problems(run)]
    json_path, png_path = _files(config.out_dir, f"smoke-{report.stamp()}")
    report.chart_runs(runs, png_path, "smoke")
    summary: dict[str, Any] = {
        "scenario": "smoke",
        "ok": not problems,
        "problems": problems,
        "runs": runs,
        "table": [report.run_row(run) for run in runs],
        "files": {"summary": str(json_path), "chart": str(png_path)},
    }
    report.write_json(json_path, summary)
    logger.info("\n%s", report.table(summary["table"]))
    return summary, not problems
