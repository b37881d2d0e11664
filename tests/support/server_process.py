"""Running the real server as a child process (``prompt-studio serve``) for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``prompt-studio serve`` process; ``start``/``stop``/``kill`` may be repeated."""

    def __init__(
        self,
        database_url: str,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: object | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id of the running server."""
        assert self._proc is not None
        return self._proc.pid

    async def start(self, *, timeout: float = 30.0) -> None:
        """Start the server and wait until ``/healthz`` answers."""
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": os.environ.get("TEST_SERVER_LOG_LEVEL", "WARNING"),
            **self.extra_env,
        }
        if "REDIS_URL" not in self.extra_env:
            env.pop("REDIS_URL", None)
        stdout = open(self.log_path, "ab") if self.log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115, ASYNC230
        self._log_file = stdout if self.log_path else None
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            cwd=str(ROOT),
            env=env,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT if self.log_path else asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(
                        f"server exited with {self._proc.returncode} during start-up"
                        + (f"; see {self.log_path}" if self.log_path else "")
                    )
                try:
                    response = await client.get(f"{self.base_url}/healthz", timeout=1.0)
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    await self.kill()
                    raise TimeoutError(f"server did not start within {timeout}s")
                await asyncio.sleep(0.05)

    async def stop(self, *, timeout: float = 20.0) -> int | None:
        """Graceful shutdown (SIGTERM), SIGKILL if it takes longer than ``timeout``."""
        return await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> int | None:
        """SIGKILL: the process dies at once, nothing is flushed."""
        return await self._end(signal.SIGKILL, 10.0)

    async def _end(self, sig: signal.Signals, timeout: float) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        return proc.returncode

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def running_server(
    database_url: str, log_dir: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """A started server on ``database_url``, logging to ``log_dir/server.log``; stopped after."""
    proc = ServerProcess(database_url, env=env, log_path=log_dir / "server.log")
    await proc.start()
    try:
        yield proc
    finally:
        await proc.stop()
