"""Servers to load: the reference servers, an already running one, and the common interface.

A :class:`Target` starts its server (or not, for ``--url``), hands out one websocket URL per
client (``room_urls``), tells the monitor which pid to watch, and stops what it started. Our own
server lives in :mod:`loadtest.target_ours`.

Reference servers name a document after the URL path: ``ws://127.0.0.1:PORT/<room>``.
"""

from __future__ import annotations

import sys
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from loadtest.model import Protocol
from loadtest.process import ManagedProcess, base_env, free_port, port_accepting

ROOT = Path(__file__).resolve().parents[1]
INTEROP_DIR = ROOT / "tests" / "interop"
REFERENCE_SERVER_JS = INTEROP_DIR / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
LOOPBACK = "127.0.0.1"

TARGET_NAMES = ("ours", "y-websocket", "pycrdt-websocket")


class Target(ABC):
    """A server under load."""

    name: str
    supports_json = False

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The server's process id, when known (for CPU/RSS sampling)."""

    @property
    def pids(self) -> list[int]:
        """Every server process to sample (several when the server scales out)."""
        pid = self.pid
        return [pid] if pid else []

    @abstractmethod
    async def start(self) -> None:
        """Start the server (and wait until it accepts connections)."""

    @abstractmethod
    async def room_urls(
        self, rooms: int, clients_per_room: int, protocol: Protocol
    ) -> list[list[str]]:
        """``urls[room][slot]``: where each client of each room connects."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop what :meth:`start` started (idempotent)."""


class _PathRoomTarget(Target):
    """A y-websocket-compatible server where the room is the URL path."""

    def __init__(self) -> None:
        self._prefix = f"lt-{uuid.uuid4().hex[:8]}"

    @property
    @abstractmethod
    def base_url(self) -> str:
        """``ws://host:port`` (optionally with a path prefix)."""

    async def room_urls(
        self, rooms: int, clients_per_room: int, protocol: Protocol
    ) -> list[list[str]]:
        """The same URL for every client of a room."""
        if protocol != "yjs":
            raise ValueError(f"{self.name} speaks only the y-websocket protocol (--protocol yjs)")
        base = self.base_url.rstrip("/")
        return [[f"{base}/{self._prefix}-room{r}"] * clients_per_room for r in range(rooms)]


class _SpawnedTarget(_PathRoomTarget):
    """A reference server the tool starts on a free loopback port."""

    def __init__(self, *, pin_core: int | None, log_dir: Path) -> None:
        super().__init__()
        self.port = free_port(LOOPBACK)
        self.pin_core = pin_core
        self.log_dir = log_dir
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self._process and self._process.running else None

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that starts the server."""

    async def start(self) -> None:
        """Start the server and wait until its port accepts connections."""
        env = base_env()
        env.update(HOST=LOOPBACK, PORT=str(self.port))
        env.pop("YPERSISTENCE", None)  # in-memory documents, like the other servers' defaults
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess(
            self.name,
            self.command(),
            env=env,
            cwd=ROOT,
            pin_core=self.pin_core,
            log_path=self.log_dir / f"{self.name}-{self.port}.log",
        )
        await self._process.start(lambda: port_accepting(LOOPBACK, self.port))

    async def stop(self) -> None:
        """Stop the server."""
        if self._process is not None:
            await self._process.stop()
            self._process = None


class YWebsocketTarget(_SpawnedTarget):
    """The reference y-websocket server (``@y/websocket-server``, Node.js)."""

    name = "y-websocket"

    def command(self) -> list[str]:
        """``node .../@y/websocket-server/src/server.js`` (reads HOST and PORT)."""
        if not REFERENCE_SERVER_JS.is_file():
            raise RuntimeError(
                f"{REFERENCE_SERVER_JS} is missing: run `cd tests/interop && npm ci` first"
            )
        return ["node", str(REFERENCE_SERVER_JS)]


class PycrdtWebsocketTarget(_SpawnedTarget):
    """pycrdt-websocket's ASGI server on uvicorn (:mod:`loadtest.pycrdt_server`)."""

    name = "pycrdt-websocket"

    def command(self) -> list[str]:
        """``python -m loadtest.pycrdt_server --host 127.0.0.1 --port PORT``."""
        return [
            sys.executable,
            "-m",
            "loadtest.pycrdt_server",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]


class ExternalTarget(_PathRoomTarget):
    """An already running y-websocket-compatible server (``--url``); loopback only."""

    name = "external"

    def __init__(self, url: str, pid: int | None = None) -> None:
        """Check the URL is a loopback websocket URL."""
        super().__init__()
        parts = urlsplit(url)
        if parts.scheme not in {"ws", "wss"}:
            raise ValueError(f"--url must be ws:// or wss://, not {url!r}")
        host = parts.hostname or ""
        if not (host == "localhost" or host.startswith("127.") or host == "::1"):
            raise ValueError(f"--url must point at this machine (loopback), not {host!r}")
        self._url = url
        self._pid = pid

    @property
    def base_url(self) -> str:
        """The URL given."""
        return self._url

    @property
    def pid(self) -> int | None:
        """The pid given with ``--server-pid``, if any."""
        return self._pid

    async def start(self) -> None:
        """Nothing to start; the server must already accept connections."""
        parts = urlsplit(self._url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        if not await port_accepting(parts.hostname or LOOPBACK, port):
            raise RuntimeError(f"nothing accepts connections at {self._url}")

    async def stop(self) -> None:
        """Nothing to stop: we did not start it."""
