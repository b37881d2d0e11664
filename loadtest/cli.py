"""Command line: ``python -m loadtest [run] ...``, ``python -m loadtest --smoke``, ``... bench``.

``run`` (the default command) prints one JSON summary on stdout and writes it, with a PNG
chart, to ``--out`` (default ``loadtest/results/``); progress goes to stderr. ``bench`` prints
a comparison table and writes the bench JSON and chart. Exit codes: 0 done, 1 a smoke run lost
deliveries (or delivered nothing), 2 bad arguments or a run that could not be carried out,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from loadtest import scenarios
from loadtest.bench import DEFAULT_SCENARIOS, DEFAULT_TARGETS, bench
from loadtest.runner import RunConfig
from loadtest.suite import run_named, smoke
from loadtest.system import pin_loadgen
from loadtest.target_ours import DEFAULT_REDIS_URL
from loadtest.targets import TARGET_NAMES
from loadtest.yjs_client import OBSERVERS

logger = logging.getLogger("loadtest")

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _add_common(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load (override the scenario's preset)")
    load.add_argument("--rooms", type=int, help="rooms (sessions)")
    load.add_argument("--clients-per-room", type=int, help="clients in every room")
    load.add_argument("--edit-rate", type=float, help="edits per second per client")
    load.add_argument("--duration", type=float, help="seconds of editing / idling")
    load.add_argument("--join-window", type=float, help="spread the joins over S seconds")
    load.add_argument("--connect-concurrency", type=int, help="connection attempts in flight")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--pin-core",
        type=int,
        help="pin the server to this core (taskset), the generator to the others",
    )
    run.add_argument("--procs", type=int, default=1, help="spread the clients over N processes")
    run.add_argument(
        "--database-url",
        help="our server's database (default: a fresh SQLite file; with --nodes > 1 a fresh "
        "PostgreSQL database, dropped at the end)",
    )
    run.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="our server: N serve processes sharing PostgreSQL + Redis; client k of a room "
        "connects to node k %% N",
    )
    run.add_argument(
        "--redis-url",
        help=f"with --nodes > 1 (default {DEFAULT_REDIS_URL})",
    )
    run.add_argument("--connect-timeout", type=float, default=20.0)
    run.add_argument(
        "--drain",
        type=float,
        default=10.0,
        dest="drain_timeout",
        help="max seconds to wait for deliveries in flight after the edit phase",
    )
    run.add_argument("--seed", type=int, default=1)
    run.add_argument(
        "--yjs-observer",
        choices=OBSERVERS,
        default="update",
        help="how Yjs clients spot arrived edits: scan each integrated update (cheap) or the "
        "Text delta (as an editor would; costs O(document) per update in the generator)",
    )
    run.add_argument(
        "--profile",
        type=float,
        default=0.0,
        dest="profile_seconds",
        help="py-spy record the server for S seconds of the edit phase",
    )
    run.add_argument(
        "--profile-format",
        choices=("flamegraph", "raw", "speedscope"),
        default="flamegraph",
        help="py-spy output: an SVG flame graph, collapsed stacks (raw, for scripts) or speedscope",
    )
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    run.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``run`` and ``bench`` sub-commands)."""
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one scenario against one server (default command)")
    run.add_argument("--scenario", default="many-rooms", choices=scenarios.ALL_NAMES)
    run.add_argument("--target", default="ours", choices=TARGET_NAMES)
    run.add_argument(
        "--url",
        help="an already running y-websocket-compatible server on "
        "loopback (ws://127.0.0.1:PORT[/prefix]); rooms are paths under it",
    )
    run.add_argument("--server-pid", type=int, help="with --url: the pid to sample")
    run.add_argument("--protocol", choices=("yjs", "json"))
    run.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds against our server, both protocols; exit 1 on loss",
    )
    _add_common(run)
    b = commands.add_parser("bench", help="ours vs the reference servers, same load, same core")
    b.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from: {', '.join(scenarios.SCENARIOS)}",
    )
    b.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated, from: {', '.join(TARGET_NAMES)}",
    )
    b.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every (scenario, target) this many times, round-robin, and report the run "
        "with the median p99 (on a noisy machine, 3)",
    )
    _add_common(b)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse, making ``run`` the default command."""
    if not argv or argv[0] not in {"run", "bench", "-h", "--help"}:
        argv = ["run", *argv]
    return build_parser().parse_args(argv)


def _config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        target=getattr(args, "target", "ours"),
        url=getattr(args, "url", None),
        server_pid=getattr(args, "server_pid", None),
        database_url=args.database_url,
        pin_core=args.pin_core,
        procs=args.procs,
        connect_timeout=args.connect_timeout,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
        profile_seconds=args.profile_seconds,
        profile_format=args.profile_format,
        yjs_observer=args.yjs_observer,
        nodes=args.nodes,
        redis_url=args.redis_url,
        out_dir=args.out,
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rooms": args.rooms,
        "clients_per_room": args.clients_per_room,
        "edit_rate": args.edit_rate,
        "duration": args.duration,
        "join_window": args.join_window,
        "connect_concurrency": args.connect_concurrency,
        "protocol": getattr(args, "protocol", None),
    }


async def _main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    config = _config(args)
    cores = pin_loadgen(config.pin_core)
    if cores is not None:
        logger.info("server on core %d, generator on cores %s", config.pin_core, cores)
    overrides = _overrides(args)
    if args.command == "bench":
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        for name in names:
            scenarios.get(name)
        overrides.pop("protocol")
        if not 1 <= args.rounds <= 9:
            raise SystemExit("--rounds must be between 1 and 9")
        summary = await bench(names, targets, config, overrides, rounds=args.rounds)
        print(summary["table_text"])
        for failure in summary["failures"]:
            print(f"FAILED: {failure}")
        print(f"\nbench JSON: {summary['files']['summary']}\nchart: {summary['files']['chart']}")
        return 0
    if args.smoke:
        overrides.pop("protocol")
        result, ok = await smoke(config, overrides)
        print(json.dumps(result, indent=2, default=str))
        return 0 if ok else 1
    scenario = scenarios.get(args.scenario).with_overrides(**overrides)
    summary = await run_named(scenario, config)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "bench":
        unknown = set(args.targets.split(",")) - set(TARGET_NAMES)
        if unknown:
            print(f"unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("stopped", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        logger.error("%s", exc, exc_info=args.verbose)
        return 2
