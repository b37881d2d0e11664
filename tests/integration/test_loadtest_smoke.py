"""The load-test instrument works end to end: ``python -m loadtest --smoke`` against our server.

A real server process, real websocket clients of both protocols (Yjs and JSON ops), a few
seconds of edits. The reference servers are for benchmarks and are not started here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMOKE_TIMEOUT = 120


def test_smoke_run_delivers_every_edit_and_writes_a_chart(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "loadtest", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    summary = json.loads(completed.stdout)

    assert summary["ok"] is True, summary["problems"]
    assert summary["problems"] == []
    assert [run["protocol"] for run in summary["runs"]] == ["yjs", "json"]
    for run in summary["runs"]:
        assert run["target"] == "ours"
        deliveries = run["deliveries"]
        assert deliveries["expected"] > 0
        assert deliveries["delivered"] == deliveries["expected"]
        assert deliveries["lost"] == 0
        assert run["connections"]["ready"] == run["connections"]["planned"] > 0
        for key in ("p50", "p95", "p99", "max"):
            assert isinstance(run["latency_ms"][key], float), (run["protocol"], key)
        assert run["latency_ms"]["p50"] <= run["latency_ms"]["p99"] <= run["latency_ms"]["max"]
        assert run["timeline"], "per-second series missing"
        assert run["server"]["rss_mb_max"] is not None
    # JSON clients wait for each ack (durable commit) before their next op.
    assert summary["runs"][1]["ack_ms"]["count"] > 0

    chart = Path(summary["files"]["chart"])
    assert chart.is_file()
    assert chart.read_bytes()[:8] == PNG_SIGNATURE
    written = json.loads(Path(summary["files"]["summary"]).read_text("utf-8"))
    assert written["ok"] is True
