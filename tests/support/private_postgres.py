"""A throw-away PostgreSQL cluster on a free port, for tests that stop and restart the database.

The machine's shared cluster is never touched: ``initdb`` writes a new cluster into a private
temporary directory and ``pg_ctl`` starts and stops it. PostgreSQL refuses to run as root, so
when the tests run as root the cluster runs as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from storage.backup import BackupError, find_pg_tool
from tests.support.server_process import free_port

#: Upper bound (seconds) on one initdb, start or stop.
WAIT = 60


def private_postgres_unavailable() -> str | None:
    """Why a private cluster cannot be made here (None when it can)."""
    try:
        for tool in ("initdb", "pg_ctl"):
            find_pg_tool(tool)
    except BackupError as exc:
        return str(exc)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres system user to run the cluster as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


class PrivatePostgres:
    """One private cluster: :meth:`start`, :meth:`stop` (fast shutdown) and :meth:`remove`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ps-private-pg-"))
        self.port = free_port()
        self.data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(
            find_pg_tool("initdb"),
            *("-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"),
        )

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("start", "-o", options, "-l", str(self.directory / "postgres.log"))

    def stop(self) -> None:
        """Stop the cluster (fast: open connections are terminated) and wait until it is down."""
        self._pg_ctl("stop", "-m", "fast")

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its directory."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        self._run(find_pg_tool("pg_ctl"), "-D", str(self.data), "-w", "-t", str(WAIT), *args)

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *argv],
            check=True,
            timeout=WAIT + 10,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
