"""One run: start the target, set up rooms, drive the workers through the phases, summarise.

The target is always stopped at the end — after an error, a timeout or Ctrl-C too (the
``finally`` below; ``asyncio.run`` turns Ctrl-C into a cancellation of the main task). Every
phase has a deadline, so a run ends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest import stats
from loadtest.model import ClientSpec, Protocol, WorkerPlan, WorkerResult
from loadtest.monitor import Monitor, Sample
from loadtest.pool import WorkerHandle, make_handles
from loadtest.scenarios import Scenario
from loadtest.system import raise_fd_limit
from loadtest.target_ours import OursTarget
from loadtest.targets import ExternalTarget, PycrdtWebsocketTarget, Target, YWebsocketTarget

logger = logging.getLogger(__name__)

_START_DELAY = 0.5  # between "all connected" and the first edit, so every worker starts on time
_IDLE_SETTLE = 2.0  # idle: let the server settle before measuring RSS after the connections


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs besides the scenario."""

    target: str = "ours"
    url: str | None = None
    server_pid: int | None = None
    database_url: str | None = None
    pin_core: int | None = None
    procs: int = 1
    connect_timeout: float = 20.0
    drain_timeout: float = 10.0
    seed: int = 1
    profile_seconds: float = 0.0
    profile_format: str = "flamegraph"
    yjs_observer: str = "update"
    nodes: int = 1
    """Our server: how many ``serve`` processes (> 1: shared PostgreSQL + Redis)."""
    redis_url: str | None = None
    postgres: bool = False
    """Our server: a fresh PostgreSQL database even for one node (instead of SQLite)."""
    out_dir: Path = field(default_factory=lambda: Path("loadtest/results"))


def make_target(config: RunConfig) -> Target:
    """The target named in the configuration."""
    logs = config.out_dir / "logs"
    if config.url:
        return ExternalTarget(config.url, config.server_pid)
    if config.target == "ours":
        return OursTarget(
            database_url=config.database_url,
            pin_core=config.pin_core,
            log_dir=logs,
            nodes=config.nodes,
            redis_url=config.redis_url,
            postgres=config.postgres,
        )
    if config.target == "y-websocket":
        return YWebsocketTarget(pin_core=config.pin_core, log_dir=logs)
    if config.target == "pycrdt-websocket":
        return PycrdtWebsocketTarget(pin_core=config.pin_core, log_dir=logs)
    raise ValueError(f"unknown target {config.target!r}")


def plan_workers(
    scenario: Scenario, urls: list[list[str]], protocol: Protocol, config: RunConfig
) -> tuple[list[WorkerPlan], dict[int, int]]:
    """Split the clients round-robin over ``config.procs`` plans; also map client → room."""
    specs = [
        ClientSpec(
            client_id=room * scenario.clients_per_room + slot, room=room, url=url, protocol=protocol
        )
        for room, room_urls in enumerate(urls)
        for slot, url in enumerate(room_urls)
    ]
    procs = max(1, min(config.procs, len(specs) or 1))
    plans = [
        WorkerPlan(
            clients=tuple(specs[index::procs]),
            edit_rate=scenario.edit_rate,
            duration=scenario.duration,
            connect_concurrency=max(1, scenario.connect_concurrency // procs),
            join_window=scenario.join_window,
            connect_timeout=config.connect_timeout,
            drain_timeout=config.drain_timeout,
            seed=config.seed * 1000 + index,
            yjs_observer=config.yjs_observer,
        )
        for index in range(procs)
    ]
    return plans, {spec.client_id: spec.room for spec in specs}


async def run_scenario(scenario: Scenario, config: RunConfig) -> dict[str, Any]:
    """Run one scenario against one target; returns the summary (without files)."""
    protocol = scenario.protocol
    target = make_target(config)
    if protocol == "json" and not target.supports_json:
        raise ValueError(f"the JSON protocol needs our server, not {target.name}")
    fd_limit = raise_fd_limit(-(-scenario.clients // max(1, config.procs)))
    monitor: Monitor | None = None
    handles: list[WorkerHandle] = []
    profile: asyncio.Task[Path | None] | None = None
    extra: dict[str, Any] = {}
    idle_raw: dict[str, Any] | None = None
    try:
        await target.start()
        urls = await target.room_urls(scenario.rooms, scenario.clients_per_room, protocol)
        plans, room_of = plan_workers(scenario, urls, protocol, config)
        handles = make_handles(plans, in_process=config.procs <= 1)
        await asyncio.gather(*(h.start() for h in handles))
        monitor = Monitor(target.pids)
        monitor.start()
        monitor.watch_loadgen(sorted({os.getpid(), *(h.pid for h in handles)}))
        monitor.mark("start")
        before = monitor.sample_now()
        connect_at = monitor.mark("connect") + 0.1
        await asyncio.gather(*(h.connect(connect_at) for h in handles))
        monitor.mark("connected")
        if scenario.kind == "idle":
            idle_raw = await _idle_memory(monitor, before)
        start_at = time.monotonic() + _START_DELAY
        logger.info(
            "connected in %.1f s; edit phase starts in %.1f s and lasts %.0f s",
            monitor.marks["connected"] - monitor.marks["connect"],
            _START_DELAY,
            scenario.duration,
        )
        if config.profile_seconds > 0 and target.pid:
            profile = asyncio.create_task(
                _profile(
                    target.pid,
                    start_at,
                    config.profile_seconds,
                    config.out_dir,
                    scenario,
                    config.profile_format,
                )
            )
        monitor.marks["edit_start"] = start_at
        sent_parts = await asyncio.gather(*(h.run(start_at) for h in handles))
        monitor.mark("edit_end")
        logger.info("edit phase over; draining (at most %.0f s)", config.drain_timeout)
        sent: dict[int, int] = {}
        for counts in sent_parts:
            sent.update(counts)
        room_totals: dict[int, int] = {}
        for client, count in sent.items():
            room_totals[room_of[client]] = room_totals.get(room_of[client], 0) + count
        parts = await asyncio.gather(*(h.drain(room_totals, sent) for h in handles))
        monitor.mark("drained")
        await monitor.stop()
        if profile is not None:
            extra["profile"] = str(await profile or "") or None
    finally:
        for handle in handles:
            with contextlib.suppress(Exception):
                await handle.stop()
        if monitor is not None:
            await monitor.stop()
        if profile is not None and not profile.done():
            profile.cancel()
        await target.stop()
    result = WorkerResult()
    for part in parts:
        result.merge(part)
    summary = stats.summarize(result, room_of, monitor.samples, monitor.marks, scenario.duration)
    if idle_raw is not None:
        extra["idle"] = idle_report(idle_raw, len(result.ready))
    return {
        "scenario": scenario.name,
        "target": target.name,
        "protocol": protocol,
        "config": {
            **{k: v for k, v in asdict(scenario).items() if k != "description"},
            "clients": scenario.clients,
            "procs": len(handles),
            "pin_core": config.pin_core,
            "yjs_observer": config.yjs_observer,
            "nodes": getattr(target, "nodes", 1),
            "database": _db_kind(target),
            "drain_timeout": config.drain_timeout,
            "fd_limit": fd_limit.as_dict(),
        },
        **summary,
        **extra,
    }


def _db_kind(target: Target) -> str | None:
    url = getattr(target, "database_url", None)
    return url.split(":", 1)[0].split("+", 1)[0] if url else None


async def _idle_memory(monitor: Monitor, before: Sample) -> dict[str, Any]:
    """Server and generator RSS before the connections and after they settled (bytes)."""
    await asyncio.sleep(_IDLE_SETTLE)
    after = monitor.sample_now()
    return {
        "settle_s": _IDLE_SETTLE,
        "server_rss_before": before.server_rss,
        "server_rss_after": after.server_rss,
        "loadgen_rss_before": before.loadgen_rss,
        "loadgen_rss_after": after.loadgen_rss,
    }


def idle_report(raw: dict[str, Any], connections: int) -> dict[str, Any]:
    """RSS per connection = (RSS after - RSS before) / connections, for server and generator."""
    out: dict[str, Any] = {"connections": connections, "settle_s": raw["settle_s"]}
    for who in ("server", "loadgen"):
        before, after = raw[f"{who}_rss_before"], raw[f"{who}_rss_after"]
        if before is None or after is None:
            continue
        out[f"{who}_rss_mb_before"] = round(before / stats.MB, 1)
        out[f"{who}_rss_mb_after"] = round(after / stats.MB, 1)
        out[f"{who}_kib_per_connection"] = (
            round((after - before) / 1024 / connections, 2) if connections else None
        )
    return out


_PROFILE_SUFFIX = {"flamegraph": "svg", "raw": "folded", "speedscope": "speedscope.json"}


async def _profile(
    pid: int,
    start_at: float,
    seconds: float,
    out_dir: Path,
    scenario: Scenario,
    profile_format: str = "flamegraph",
) -> Path | None:
    """``py-spy record`` the server for ``seconds`` from the start of the edit phase."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        logger.warning("--profile: py-spy is not installed (pip install py-spy)")
        return None
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    path = (
        out_dir / f"profile-{scenario.name}-{scenario.protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
        f".{_PROFILE_SUFFIX[profile_format]}"
    )
    proc = await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--format",
        profile_format,
        "-o",
        str(path),
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    if proc.returncode != 0:
        logger.warning("py-spy failed: %s", err.decode(errors="replace")[-500:])
        return None
    return path
