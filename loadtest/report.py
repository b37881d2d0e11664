"""Writing results: the JSON summary, a PNG chart per run, a text table.

Charts use matplotlib's Agg backend (no display needed). A run chart has three panels over
time: latency percentiles of the deliveries that arrived in each second, throughput (edits sent
and deliveries per second), and the server's CPU and RSS (with the generator's CPU, to show
whether the generator itself was the bottleneck). Several runs (e.g. JSON vs Yjs) share one
chart, one colour per run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_STYLES = {"p50_ms": ":", "p95_ms": "--", "p99_ms": "-"}


def stamp() -> str:
    """A file-name-safe timestamp."""
    return time.strftime("%Y%m%d-%H%M%S")


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (creating the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def run_label(run: dict[str, Any]) -> str:
    """``target/protocol`` (``target×N/protocol`` for N nodes) for legends and tables."""
    nodes = run.get("config", {}).get("nodes", 1)
    target = f"{run['target']}x{nodes}" if nodes > 1 else run["target"]
    return f"{target}/{run['protocol']}"


def chart_runs(runs: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Latency percentiles, throughput and server resources over time, for one or more runs."""
    fig, (lat, thr, res) = plt.subplots(3, 1, figsize=(11, 10), sharex=False)
    cpu_axis = res
    rss_axis = res.twinx()
    for index, run in enumerate(runs):
        color = _COLORS[index % len(_COLORS)]
        label = run_label(run)
        rows = run.get("timeline", [])
        seconds = [row["t"] for row in rows]
        for key, style in _STYLES.items():
            points = [(row["t"], row[key]) for row in rows if row[key] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                lat.plot(xs, ys, style, color=color, label=f"{label} {key[:3]}")
        thr.plot(
            seconds,
            [row["delivered"] for row in rows],
            "-",
            color=color,
            label=f"{label} delivered/s",
        )
        thr.plot(
            seconds,
            [row["sent"] for row in rows],
            "--",
            color=color,
            alpha=0.6,
            label=f"{label} edits sent/s",
        )
        samples = run.get("samples", [])
        times = [s["t"] for s in samples]
        cpu_axis.plot(
            times,
            [s["server_cpu"] for s in samples],
            "-",
            color=color,
            label=f"{label} server CPU %",
        )
        cpu_axis.plot(
            times,
            [s["loadgen_cpu"] for s in samples],
            ":",
            color=color,
            label=f"{label} generator CPU %",
        )
        rss_axis.plot(
            times,
            [s["server_rss_mb"] for s in samples],
            "-.",
            color=color,
            alpha=0.7,
            label=f"{label} server RSS MiB",
        )
    lat.set_title(f"{title}: delivery latency per second (send → arrival at each receiver)")
    lat.set_ylabel("ms")
    if any(run.get("timeline") for run in runs):
        lat.set_yscale("log")
    lat.set_xlabel("seconds since the edit phase began")
    thr.set_title("throughput per second")
    thr.set_ylabel("count / s")
    thr.set_xlabel("seconds since the edit phase began")
    res.set_title("server and load generator (sampled every 0.5 s)")
    res.set_xlabel("seconds since the run began")
    cpu_axis.set_ylabel("CPU % (100 = one core)")
    rss_axis.set_ylabel("server RSS MiB")
    for axis in (lat, thr):
        if axis.has_data():
            axis.legend(fontsize=7, ncol=3, loc="upper right")
        axis.grid(alpha=0.3)
    handles, labels = cpu_axis.get_legend_handles_labels()
    more_handles, more_labels = rss_axis.get_legend_handles_labels()
    if handles or more_handles:
        cpu_axis.legend(
            handles + more_handles, labels + more_labels, fontsize=7, ncol=3, loc="upper left"
        )
    cpu_axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one run, flat."""
    deliveries = run["deliveries"]
    return {
        "scenario": run["scenario"],
        "target": run["target"],
        "protocol": run["protocol"],
        "nodes": run.get("config", {}).get("nodes", 1),
        "clients_ready": f"{run['connections']['ready']}/{run['connections']['planned']}",
        "p50_ms": run["latency_ms"]["p50"],
        "p95_ms": run["latency_ms"]["p95"],
        "p99_ms": run["latency_ms"]["p99"],
        "max_ms": run["latency_ms"]["max"],
        "delivered": f"{deliveries['delivered']}/{deliveries['expected']}",
        "delivered_per_s": deliveries["per_s"],
        "lost": deliveries["lost"],
        "errors": run["errors"]["total"],
        "connect_p99_ms": run["connections"]["ready_ms"]["p99"],
        "server_cpu_mean": run["server"]["cpu_percent_mean"],
        "server_rss_max_mb": run["server"]["rss_mb_max"],
        "server_rss_growth_mb": run["server"].get("rss_mb_growth"),
        "loadgen_cpu_mean": run["loadgen"]["cpu_percent_mean"],
    }


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table (Markdown pipe syntax) of flat rows."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(col)) for col in cols] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(cols)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def chart_bench(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars per scenario: p50, p99, deliveries/s, server CPU, server RSS per target."""
    scenarios = list(dict.fromkeys(row["scenario"] for row in rows))
    labels = list(dict.fromkeys(f"{row['target']}/{row['protocol']}" for row in rows))
    metrics = [
        ("p50_ms", "p50 latency (ms)"),
        ("p99_ms", "p99 latency (ms)"),
        ("delivered_per_s", "deliveries / s"),
        ("server_cpu_mean", "server CPU % (mean)"),
        ("server_rss_max_mb", "server RSS max (MiB)"),
        ("loadgen_cpu_mean", "generator CPU % (mean)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    width = 0.8 / max(1, len(labels))
    for axis, (key, title) in zip(axes.flat, metrics, strict=True):
        for index, label in enumerate(labels):
            values = []
            for scenario in scenarios:
                match = [
                    r
                    for r in rows
                    if r["scenario"] == scenario and f"{r['target']}/{r['protocol']}" == label
                ]
                value = match[0].get(key) if match else None
                values.append(float(value) if isinstance(value, int | float) else 0.0)
            positions = [i + index * width for i in range(len(scenarios))]
            axis.bar(positions, values, width, label=label, color=_COLORS[index % len(_COLORS)])
        axis.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(scenarios))])
        axis.set_xticklabels(scenarios)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Prompt Studio vs reference y-websocket servers (same core, same load)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
