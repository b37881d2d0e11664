"""A throw-away ``redis-server`` on a free port, for tests that stop, freeze or restart Redis."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

WAIT = 10.0


def redis_server_available() -> bool:
    """Whether a ``redis-server`` binary is on PATH."""
    return shutil.which("redis-server") is not None


class PrivateRedis:
    """A throw-away ``redis-server`` (no persistence) that can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self._process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open but nothing answers (like a half-open connection)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=WAIT)
            self._process = None

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill`)."""
        self.start()
