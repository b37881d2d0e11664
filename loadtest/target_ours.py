"""Our server as a load target: started by the tool, with its tenant, users and sessions.

``python -m server.cli serve`` on a free loopback port, on a fresh SQLite file in a temporary
directory (the server migrates it itself) or on ``--database-url`` (migrated with ``db upgrade``
first). Set-up, done for each run:

* one tenant and ``clients_per_room`` users with login tokens, written through the storage
  repositories (as ``tests/support/accounts.py`` does);
* one collaboration session per room, created over REST (``POST /api/sessions``) by user 0;
* every other user made an EDITOR member of every session (directly in the database), so that
  every client may edit and admission does not write a membership row on join.

Client ``slot`` of a room connects as user ``slot``:
``ws://127.0.0.1:PORT/ws/{share_token}?token=...&protocol=yjs|json``.

Scale-out (``nodes > 1``): N ``serve`` processes on one PostgreSQL database (``--database-url``,
or a fresh ``loadtest_<uuid8>`` database created on :data:`PG_ADMIN_URL` and dropped in
:meth:`OursTarget.stop`), migrated once, each with ``REDIS_URL`` and
``PROMPT_STUDIO_NODE_ID=node-<i>`` on its own free port (all pinned to the same core). Client
``slot`` of a room connects to node ``slot % N``, so every room has clients on every node and
deliveries between them go through Redis. ``postgres=True`` gives a single node a fresh
PostgreSQL database too (the fair baseline for a comparison with several nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx

from loadtest.model import Protocol
from loadtest.process import ManagedProcess, base_env, free_port
from loadtest.targets import LOOPBACK, ROOT, Target

_SETUP_TIMEOUT = 120.0
PG_ADMIN_URL = os.environ.get(
    "LOADTEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""Where fresh databases are created and dropped (asyncpg DSN, loopback)."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_TOKEN_TTL_HOURS = 6.0


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so none repeats)."""
    if count == 1:
        return [free_port(LOOPBACK)]
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class OursTarget(Target):
    """The Prompt Studio server."""

    name = "ours"
    supports_json = True

    def __init__(
        self,
        *,
        database_url: str | None = None,
        pin_core: int | None = None,
        log_dir: Path,
        log_level: str = "WARNING",
        nodes: int = 1,
        redis_url: str | None = None,
        postgres: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """Describe the server (``nodes`` processes); :meth:`start` launches it."""
        if nodes < 1:
            raise ValueError(f"--nodes must be at least 1, not {nodes}")
        self.nodes = nodes
        self.redis_url = redis_url or (DEFAULT_REDIS_URL if nodes > 1 else None)
        self._fresh_postgres = database_url is None and (postgres or nodes > 1)
        if nodes > 1 and database_url is not None and database_url.startswith("sqlite"):
            raise ValueError("--nodes > 1 needs a shared PostgreSQL database, not SQLite")
        self.ports = _free_ports(nodes)
        self.port = self.ports[0]
        self.pin_core = pin_core
        self.log_dir = log_dir
        self.log_level = log_level
        self._tmp: Path | None = None
        self._given_url = database_url
        self.database_url = database_url or ""
        self._created_db: str | None = None
        self._processes: list[ManagedProcess] = []
        self._tokens: list[tuple[str, str]] = []  # (user_id, token) per slot
        self._extra_env = dict(env or {})

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The (first) server's pid while it runs."""
        pids = self.pids
        return pids[0] if pids else None

    @property
    def pids(self) -> list[int]:
        """Every running node's pid."""
        return [p.pid for p in self._processes if p.running]

    async def start(self) -> None:
        """Start the node(s) on the database and wait until each answers ``/healthz``."""
        if self._fresh_postgres:
            await self._create_database()
        elif self._given_url is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="loadtest-db-"))
            self.database_url = f"sqlite+aiosqlite:///{self._tmp / 'loadtest.db'}"
        env = base_env()
        env.update(DATABASE_URL=self.database_url, HOST=LOOPBACK, LOG_LEVEL=self.log_level)
        env.update(self._extra_env)
        env.pop("REDIS_URL", None)
        env.pop("PROMPT_STUDIO_NODE_ID", None)
        if not self.database_url.startswith("sqlite"):
            await asyncio.to_thread(self._migrate, env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index, port in enumerate(self.ports):
            node_env = dict(env, PORT=str(port))
            if self.nodes > 1:
                assert self.redis_url is not None
                node_env.update(REDIS_URL=self.redis_url, PROMPT_STUDIO_NODE_ID=f"node-{index}")
            self._processes.append(
                ManagedProcess(
                    "ours" if self.nodes == 1 else f"ours-node-{index}",
                    [sys.executable, "-m", "server.cli", "serve"],
                    env=node_env,
                    cwd=ROOT,
                    pin_core=self.pin_core,
                    log_path=self.log_dir / f"ours-{port}.log",
                )
            )
        async with httpx.AsyncClient(trust_env=False) as http:

            def healthy(port: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    try:
                        response = await http.get(f"http://{LOOPBACK}:{port}/healthz", timeout=1.0)
                    except httpx.TransportError:
                        return False
                    return response.status_code == 200

                return check

            await asyncio.gather(
                *(
                    process.start(healthy(port))
                    for process, port in zip(self._processes, self.ports, strict=True)
                )
            )

    async def _create_database(self) -> None:
        import asyncpg

        name = f"loadtest_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created_db = name
        admin = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
        self.database_url = f"postgresql+asyncpg://{admin}/{name}"

    async def _drop_database(self) -> None:
        import asyncpg

        name, self._created_db = self._created_db, None
        if name is None:
            return
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    @staticmethod
    def _migrate(env: dict[str, str]) -> None:
        subprocess.run(
            [sys.executable, "-m", "server.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=_SETUP_TIMEOUT,
            capture_output=True,
        )

    async def room_urls(
        self, rooms: int, clients_per_room: int, protocol: Protocol
    ) -> list[list[str]]:
        """Create the accounts and sessions; one URL per client."""
        async with asyncio.timeout(_SETUP_TIMEOUT):
            await self._ensure_users(max(1, clients_per_room))
            owner_token = self._tokens[0][1]
            sessions = await self._create_sessions(rooms, owner_token)
            await self._add_editors([sid for sid, _share in sessions], clients_per_room)
        urls: list[list[str]] = []
        for _session_id, share in sessions:
            urls.append(
                [
                    f"ws://{LOOPBACK}:{self.ports[slot % self.nodes]}/ws/{share}"
                    f"?token={self._tokens[slot][1]}&protocol={protocol}"
                    for slot in range(clients_per_room)
                ]
            )
        return urls

    async def _ensure_users(self, count: int) -> None:
        if len(self._tokens) >= count:
            return
        from server.security import hash_secret, new_api_key, new_login_token
        from storage.base import utcnow
        from storage.engine import create_engine, create_session_factory
        from storage.repositories.tenancy import create_login_session, create_tenant, create_user

        engine = create_engine(self.database_url)
        try:
            async with create_session_factory(engine)() as db, db.begin():
                tenant = await create_tenant(
                    db,
                    name=f"loadtest-{uuid.uuid4().hex[:6]}",
                    api_key_hash=hash_secret(new_api_key()),
                )
                tag = uuid.uuid4().hex[:8]
                for slot in range(len(self._tokens), count):
                    user = await create_user(
                        db,
                        tenant_id=tenant.id,
                        email=f"lt{slot}-{tag}@loadtest.invalid",
                        name=f"Load {slot}",
                    )
                    token = new_login_token()
                    await create_login_session(
                        db,
                        token_hash=hash_secret(token),
                        user=user,
                        expires_at=utcnow() + timedelta(hours=_TOKEN_TTL_HOURS),
                    )
                    self._tokens.append((user.id, token))
        finally:
            await engine.dispose()

    async def _create_sessions(self, rooms: int, owner_token: str) -> list[tuple[str, str]]:
        headers = {"Authorization": f"Bearer {owner_token}"}
        sessions: list[tuple[str, str]] = []
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False) as http:
            for index in range(rooms):
                response = await http.post(
                    "/api/sessions", json={"name": f"loadtest room {index}"}, headers=headers
                )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"POST /api/sessions: {response.status_code} {response.text[:200]}"
                    )
                body = response.json()
                sessions.append((body["id"], body["share_token"]))
        return sessions

    async def _add_editors(self, session_ids: list[str], clients_per_room: int) -> None:
        from storage.engine import create_engine, create_session_factory
        from storage.models import SessionMember

        engine = create_engine(self.database_url)
        try:
            async with create_session_factory(engine)() as db, db.begin():
                db.add_all(
                    SessionMember(session_id=session_id, user_id=user_id, role="EDITOR")
                    for session_id in session_ids
                    for user_id, _token in self._tokens[1:clients_per_room]
                )
        finally:
            await engine.dispose()

    async def stop(self) -> None:
        """Stop the node(s) and remove the temporary database (SQLite file or PostgreSQL)."""
        try:
            processes, self._processes = self._processes, []
            await asyncio.gather(*(process.stop() for process in processes))
        finally:
            await self._drop_database()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
