"""Server processes the tool starts itself: pinned, logged, always stopped.

A server runs as ``taskset -c N <command>`` when a core is given (``taskset`` execs the command,
so the pid is the server's own). It gets its own session, so a Ctrl-C in the terminal reaches
only the load tool, which then stops the server in its ``finally``; on Linux the child also asks
the kernel for ``SIGKILL`` should the tool itself die (``PR_SET_PDEATHSIG``), so no server is
ever left behind. Readiness is polled with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STOP_TIMEOUT = 15.0
_POLL_INTERVAL = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pinned(command: Sequence[str], core: int | None) -> list[str]:
    """``command`` prefixed with ``taskset -c core`` when a core is given."""
    if core is None:
        return list(command)
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("--pin-core needs `taskset` (util-linux)")
    return [taskset, "-c", str(core), *command]


class ManagedProcess:
    """One server process: start, wait until ready, stop (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        pin_core: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        """Describe the process; nothing runs until :meth:`start`."""
        self.name = name
        self.command = pinned(command, pin_core)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The running process's id."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the process has been started and not exited."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self, ready: Callable[[], Awaitable[bool]], *, timeout: float = 60.0) -> None:
        """Start the process and poll ``ready`` until it returns True (bounded by ``timeout``)."""
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115, ASYNC230
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=str(self.cwd) if self.cwd else None,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT if log else asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not None:
                log.close()  # the child has its own copy of the descriptor
        logger.info("started %s (pid %d): %s", self.name, self._proc.pid, " ".join(self.command))
        deadline = time.monotonic() + timeout
        while not await ready():
            if self._proc.returncode is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode} during start-up"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if time.monotonic() > deadline:
                await self.stop()
                raise TimeoutError(f"{self.name} was not ready within {timeout:.0f}s")
            await asyncio.sleep(_POLL_INTERVAL)

    async def stop(self) -> int | None:
        """SIGTERM, wait (bounded), then SIGKILL; idempotent. Returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("%s ignored SIGTERM for %.0fs: killing it", self.name, _STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        logger.info("stopped %s (exit code %s)", self.name, proc.returncode)
        return proc.returncode


async def port_accepting(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds right now."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def base_env() -> dict[str, str]:
    """The environment for a child server: ours, minus proxies (all traffic is loopback)."""
    env = dict(os.environ)
    for key in list(env):
        if key.lower() in {"http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy"}:
            env.pop(key)
    return env
