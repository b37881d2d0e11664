"""Drive real Yjs clients (Node.js, y-websocket's ``WebsocketProvider``) from asyncio tests.

:class:`YjsNodeClient` spawns ``node tests/interop/yclient.mjs`` and speaks its newline-delimited
JSON protocol (see ``tests/interop/README.md``): commands are answered by id, unsolicited events
(``status``, ``synced``, ``text``, ``awareness``, ``connection-close``, ...) land in a bounded
queue read by :meth:`YjsNodeClient.wait_event`. :class:`ReferenceServer` runs the reference
y-websocket server (``@y/websocket-server``) on a free local port.

Every wait is bounded; leaving either context manager always reaps the child process (close
command, then terminate, then kill) and drains its pipes, so no process or transport leaks.

Run ``python -m tests.support.yjs_client`` to install the npm packages (``npm ci``) if missing.
"""

# The waits take a ``timeout`` argument on purpose: it is handed to the Node process, which answers
# with what it saw instead (e.g. the text it has), a better diagnosis than a bare cancellation.

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
CLIENT_SCRIPT = INTEROP_DIR / "yclient.mjs"
NODE_MODULES = INTEROP_DIR / "node_modules"
REFERENCE_SERVER_PACKAGE = NODE_MODULES / "@y" / "websocket-server"
_REQUIRED_PACKAGES = ("yjs", "y-websocket", "ws", "@y/websocket-server")

DEFAULT_TIMEOUT = 10.0
STARTUP_TIMEOUT = 20.0
# Extra time the driver waits for a reply beyond the timeout it handed to the Node process.
_REPLY_GRACE = 5.0
_EXIT_TIMEOUT = 5.0
_EVENT_QUEUE_SIZE = 10_000
_STDOUT_LINE_LIMIT = 64 * 1024 * 1024
_STDERR_TAIL_LINES = 200

Event = dict[str, Any]
_MISSING: Any = object()


class YjsClientError(RuntimeError):
    """The Node client refused a command (bad arguments, a wait that timed out in Node, ...)."""


class YjsClientExited(ConnectionError):
    """The Node client process is gone; carries the tail of its stderr for diagnosis."""


@dataclass(frozen=True)
class CloseEvent:
    """One closed websocket connection as the provider saw it.

    ``local`` is true (and ``code`` None) when the client closed it itself (``disconnect``).
    """

    code: int | None
    reason: str | None
    local: bool


# ------------------------------------------------------------------------------------------------
# Availability


def node_binary() -> str | None:
    """The ``node`` executable on PATH, if any."""
    return shutil.which("node")


def node_unavailable_reason() -> str | None:
    """Why the Node.js interop tests cannot run here, or None if they can."""
    if node_binary() is None:
        return "no `node` on PATH (install Node.js 20+)"
    missing = [name for name in _REQUIRED_PACKAGES if not _package_installed(name)]
    if missing:
        return (
            f"npm packages {', '.join(missing)} missing from {NODE_MODULES} "
            "(install them: python -m tests.support.yjs_client)"
        )
    return None


def node_available() -> bool:
    """Whether Node.js and the npm packages in ``tests/interop/node_modules`` are present."""
    return node_unavailable_reason() is None


def _package_installed(name: str) -> bool:
    return (NODE_MODULES / name / "package.json").is_file()


def ensure_node_modules(timeout: float = 600.0) -> None:
    """Install the pinned npm packages (``npm ci``) into ``tests/interop`` unless present.

    Raises ``RuntimeError`` if npm is missing or the install fails.
    """
    if all(_package_installed(name) for name in _REQUIRED_PACKAGES):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH; install Node.js 20+ to run the interop tests")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=INTEROP_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"npm ci in {INTEROP_DIR} failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# Child process plumbing shared by the client and the reference server


async def _drain_lines(
    stream: asyncio.StreamReader | None, tail: deque[str], on_line: Callable[[str], None] | None
) -> None:
    """Read ``stream`` to EOF, keeping the last lines in ``tail`` (and handing them on)."""
    if stream is None:
        return
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        tail.append(line)
        if on_line is not None:
            on_line(line)


async def _reap(
    proc: asyncio.subprocess.Process,
    readers: list[asyncio.Task[None]],
    *,
    timeout: float = _EXIT_TIMEOUT,
) -> None:
    """Wait for ``proc`` to exit (terminate, then kill, if it takes too long) and drain its pipes.

    After this the process is reaped and its transport closed by asyncio itself (all pipes hit
    EOF), so nothing is left for the garbage collector to warn about.
    """
    try:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled while waiting: never leave the child behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()
        # The pipes close when the process (and anything that inherited them) is gone.
        if readers:
            _done, pending = await asyncio.wait(readers, timeout=timeout)
            for task in pending:
                task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ------------------------------------------------------------------------------------------------
# The client


class YjsNodeClient:
    """One real Yjs document connected with y-websocket's ``WebsocketProvider``, in Node.js.

    ``url`` is the provider's ``serverUrl`` (e.g. ``ws://127.0.0.1:8000/ws``), ``room`` its room
    name (our share token), ``params`` its query parameters (e.g. ``{"token": ...}``). By default
    the client connects at once and reconnects like a browser would; ``reconnect=False`` treats
    every server close as final, ``connect=False`` starts disconnected (call :meth:`connect`).

    Usage::

        async with YjsNodeClient(url, share_token, params={"token": token}) as client:
            await client.wait_synced()
            await client.insert(0, "hello 👋")
            await other.wait_text("hello 👋")
    """

    def __init__(
        self,
        url: str,
        room: str,
        *,
        params: Mapping[str, str] | None = None,
        text_events: bool = True,
        awareness_events: bool = True,
        reconnect: bool = True,
        connect: bool = True,
        max_backoff_ms: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "yclient",
    ) -> None:
        self.url = url
        self.room = room
        self.params = dict(params or {})
        self.timeout = timeout
        self.name = name
        # --option=value: a share token may start with "-" (token_urlsafe does that).
        self._argv = [str(CLIENT_SCRIPT), f"--url={url}", f"--room={room}"]
        self._argv += [f"--param={key}={value}" for key, value in self.params.items()]
        if not text_events:
            self._argv.append("--no-text-events")
        if not awareness_events:
            self._argv.append("--no-awareness-events")
        if not reconnect:
            self._argv.append("--no-reconnect")
        if not connect:
            self._argv.append("--no-connect")
        if max_backoff_ms is not None:
            self._argv.append(f"--max-backoff-ms={max_backoff_ms}")

        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Event]] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue(maxsize=_EVENT_QUEUE_SIZE)
        self._changed = asyncio.Condition()
        self._ready: asyncio.Future[Event] | None = None
        self._closes: list[CloseEvent] = []
        self._close_cursor = 0
        self._exited = False
        self._closed = False
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.dropped_events = 0
        self.client_id: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Spawn the Node process and wait (bounded) until it reports ``ready``."""
        if self._proc is not None:
            raise RuntimeError("this client was already started")
        node = node_binary()
        if node is None:
            raise RuntimeError("node is not on PATH")
        self._ready = asyncio.get_running_loop().create_future()
        self._proc = await asyncio.create_subprocess_exec(
            node,
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_STDOUT_LINE_LIMIT,
        )
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(
                _drain_lines(self._proc.stderr, self.stderr_tail, None),
                name=f"{self.name}-stderr",
            ),
        ]
        try:
            ready = await asyncio.wait_for(self._ready, timeout)
        except TimeoutError:
            await self.kill()
            raise TimeoutError(
                f"{self.name} did not start within {timeout} s{self._diag()}"
            ) from None
        except YjsClientExited:
            # It is exiting by itself: reap it without signals (signalling a child that asyncio
            # has not reaped yet races its child watcher), and drain stderr for the message.
            self._closed = True
            await _reap(self._proc, self._readers)
            raise YjsClientExited(f"{self.name} exited before it was ready{self._diag()}") from None
        except BaseException:
            await self.kill()
            raise
        self.client_id = int(ready["client_id"])

    async def close(self) -> None:
        """Destroy the provider (its awareness state is announced as removed) and reap the
        process. Idempotent; falls back to terminate/kill if the process does not cooperate."""
        if self._closed or self._proc is None:
            self._closed = True
            return
        self._closed = True
        proc = self._proc
        if proc.returncode is None and not self._exited:
            with contextlib.suppress(YjsClientError, ConnectionError, TimeoutError):
                await self._request({"cmd": "close"}, _EXIT_TIMEOUT)
        await _reap(proc, self._readers)
        self._fail_pending()

    async def kill(self) -> None:
        """End the process abruptly (SIGKILL): the server sees the connection drop unannounced."""
        self._closed = True
        if self._proc is None:
            return
        if self._proc.returncode is None and not self._exited:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await _reap(self._proc, self._readers)
        self._fail_pending()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    # -- commands --------------------------------------------------------------------------------

    async def request(self, cmd: str, timeout: float | None = None, **fields: Any) -> Event:
        """Send one command and return its reply (raises :class:`YjsClientError` on an error)."""
        return await self._request({"cmd": cmd, **fields}, timeout)

    async def insert(self, index: int, text: str) -> int:
        """Insert ``text`` at UTF-16 ``index``; returns the new length in UTF-16 code units."""
        return int((await self.request("insert", index=index, text=text))["length"])

    async def delete(self, index: int, length: int) -> int:
        """Delete ``length`` UTF-16 code units at ``index``; returns the new length."""
        return int((await self.request("delete", index=index, length=length))["length"])

    async def text(self) -> str:
        return str((await self.request("text"))["text"])

    async def wait_text(self, equals: str, timeout: float | None = None) -> str:
        """Wait until the document's text equals ``equals`` (error if it does not in time)."""
        return str((await self._wait("wait_text", timeout, equals=equals))["text"])

    async def set_awareness(self, state: Mapping[str, Any] | None) -> None:
        """Set the local awareness state (``None`` removes it)."""
        await self.request("set_awareness", state=None if state is None else dict(state))

    async def awareness(self) -> dict[int, Any]:
        """Every awareness state this client knows (its own included), keyed by client id."""
        return _states(await self.request("awareness"))

    async def wait_awareness(
        self,
        count: int | None = None,
        *,
        client_id: int | None = None,
        state: Any = _MISSING,
        timeout: float | None = None,
    ) -> dict[int, Any]:
        """Wait until exactly ``count`` states are known and/or ``client_id``'s state equals
        ``state`` (``state=None``: that client has no state); returns all known states."""
        fields: dict[str, Any] = {}
        if count is not None:
            fields["count"] = count
        if client_id is not None:
            if state is _MISSING:
                raise TypeError("client_id needs state (a mapping, or None for absent)")
            fields["client_id"] = client_id
            fields["state"] = state
        if not fields:
            raise TypeError("give count and/or client_id + state")
        return _states(await self._wait("wait_awareness", timeout, **fields))

    async def state(self) -> bytes:
        """``Y.encodeStateAsUpdate(doc)``: the whole document as a Yjs update."""
        return base64.b64decode((await self.request("state"))["update_b64"])

    async def status(self) -> Event:
        """The provider's connection flags (connected, connecting, synced, should_connect, url)."""
        return await self.request("status")

    async def disconnect(self) -> None:
        """``provider.disconnect()``: close the socket and stop reconnecting."""
        await self.request("disconnect")

    async def connect(self) -> None:
        """``provider.connect()``: (re)connect; follow with :meth:`wait_synced`."""
        await self.request("connect")

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the provider is connected and has completed the initial sync."""
        await self._wait("wait_synced", timeout)

    # -- events ----------------------------------------------------------------------------------

    async def wait_event(
        self, predicate: Callable[[Event], bool], timeout: float | None = None
    ) -> Event:
        """Consume queued events until one satisfies ``predicate``; events before it are dropped.

        Raises ``TimeoutError`` after ``timeout`` and :class:`YjsClientExited` once the process
        has gone without a matching event.
        """
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while True:
                    event = await self._events.get()
                    if predicate(event):
                        return event
                    if event.get("event") == "exit":
                        raise YjsClientExited(f"{self.name} exited{self._diag()}")
        except TimeoutError:
            raise TimeoutError(f"{self.name}: no matching event within {limit} s") from None

    async def wait_closed_code(
        self, code: int | None = None, timeout: float | None = None
    ) -> CloseEvent:
        """Wait for a connection closed by the server (with ``code``, if given).

        Closes are recorded from the start, so one that already happened is found too; each call
        returns a later close than the previous call did. Local closes are skipped.
        """
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit), self._changed:
                while True:
                    for index in range(self._close_cursor, len(self._closes)):
                        close = self._closes[index]
                        if not close.local and (code is None or close.code == code):
                            self._close_cursor = index + 1
                            return close
                    if self._exited:
                        raise YjsClientExited(f"{self.name} exited{self._diag()}")
                    await self._changed.wait()
        except TimeoutError:
            seen = [c.code for c in self._closes]
            raise TimeoutError(
                f"{self.name}: no close with code {code} within {limit} s (closes seen: {seen})"
            ) from None

    @property
    def closes(self) -> list[CloseEvent]:
        """Every connection close seen so far, oldest first."""
        return list(self._closes)

    # -- internals -------------------------------------------------------------------------------

    async def _wait(self, cmd: str, timeout: float | None, **fields: Any) -> Event:
        limit = self.timeout if timeout is None else timeout
        fields["timeout_ms"] = max(0, round(limit * 1000))
        return await self._request({"cmd": cmd, **fields}, limit + _REPLY_GRACE)

    async def _request(self, command: Event, timeout: float | None) -> Event:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError(f"{self.name} is not started")
        if self._exited or proc.stdin.is_closing():
            raise YjsClientExited(f"{self.name} is not running{self._diag()}")
        limit = self.timeout if timeout is None else timeout
        request_id = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            # ASCII-only JSON: lone surrogates (half an emoji) travel as \uXXXX escapes, as in JS.
            line = json.dumps({**command, "id": request_id}) + "\n"
            try:
                proc.stdin.write(line.encode("utf-8"))
                await proc.stdin.drain()
            except ConnectionError as exc:
                raise YjsClientExited(f"{self.name} is not running{self._diag()}") from exc
            try:
                reply = await asyncio.wait_for(future, limit)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.name}: no reply to {command.get('cmd')!r} within {limit} s"
                ) from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise YjsClientError(f"{self.name}: {command.get('cmd')}: {reply['error']}")
        return reply

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                raw = await stdout.readline()
                if not raw:
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    self.stderr_tail.append(f"(stdout, not JSON) {raw!r}")
                    continue
                await self._dispatch(message)
        finally:
            self._exited = True
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(YjsClientExited(f"{self.name} exited before ready"))
                self._ready.exception()  # retrieved: no "never retrieved" warning if unawaited
            self._fail_pending()
            self._push({"event": "exit"})
            async with self._changed:
                self._changed.notify_all()

    async def _dispatch(self, message: Event) -> None:
        request_id = message.get("id")
        if request_id is not None:
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if "event" not in message:  # an error not tied to a command
            message = {"event": "error", **message}
        kind = message["event"]
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message)
        elif kind == "connection-close":
            self._closes.append(
                CloseEvent(message.get("code"), message.get("reason"), bool(message.get("local")))
            )
        self._push(message)
        async with self._changed:
            self._changed.notify_all()

    def _push(self, event: Event) -> None:
        """Queue an event; when the bounded queue is full the oldest event is dropped."""
        while True:
            try:
                self._events.put_nowait(event)
                return
            except asyncio.QueueFull:
                self._events.get_nowait()
                self.dropped_events += 1

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(YjsClientExited(f"{self.name} exited{self._diag()}"))
        self._pending.clear()

    def _diag(self) -> str:
        code = self.returncode
        status = "" if code is None else f" (exit code {code})"
        tail = "\n".join(list(self.stderr_tail)[-20:])
        return f"{status}; stderr:\n{tail}" if tail else status


def _states(reply: Event) -> dict[int, Any]:
    return {int(client_id): state for client_id, state in reply["states"].items()}


# ------------------------------------------------------------------------------------------------
# The reference y-websocket server


def reference_server_command() -> list[str]:
    """``node <@y/websocket-server bin>``; it reads ``HOST`` and ``PORT`` from the environment."""
    node = node_binary()
    if node is None:
        raise RuntimeError("node is not on PATH")
    manifest = json.loads((REFERENCE_SERVER_PACKAGE / "package.json").read_text("utf-8"))
    bin_entry = manifest["bin"]
    script = bin_entry["y-websocket-server"] if isinstance(bin_entry, dict) else bin_entry
    return [node, str(REFERENCE_SERVER_PACKAGE / script)]


class ReferenceServer:
    """The reference y-websocket server (``@y/websocket-server``) on ``127.0.0.1:<free port>``.

    Clients use ``server.url`` (``ws://127.0.0.1:PORT/ws``) as the provider's ``serverUrl``; the
    reference server names a document after the whole request path, so rooms stay separate.
    Persistence is off (``YPERSISTENCE`` unset): documents live in memory only.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.url = f"ws://{host}:{self.port}/ws"
        self.output_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        env = {**os.environ, "HOST": self.host, "PORT": str(self.port)}
        env.pop("YPERSISTENCE", None)
        self._proc = await asyncio.create_subprocess_exec(
            *reference_server_command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        self._readers = [
            asyncio.create_task(_drain_lines(self._proc.stdout, self.output_tail, None))
        ]
        try:
            await self._wait_accepting(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_accepting(self, timeout: float) -> None:
        """Poll the port (bounded) until it accepts a TCP connection."""
        assert self._proc is not None
        delay = 0.01
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._proc.returncode is not None:
                        raise RuntimeError(f"reference server exited: {self._diag()}")
                    try:
                        _reader, writer = await asyncio.open_connection(self.host, self.port)
                    except OSError:
                        await asyncio.sleep(delay)  # poll interval, not a synchronisation
                        delay = min(delay * 2, 0.2)
                        continue
                    writer.close()
                    with contextlib.suppress(ConnectionError):
                        await writer.wait_closed()
                    return
        except TimeoutError:
            raise TimeoutError(
                f"reference server not accepting on {self.host}:{self.port} within {timeout} s: "
                f"{self._diag()}"
            ) from None

    async def stop(self) -> None:
        """Terminate the server (kill after a bounded wait) and reap it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        await _reap(proc, self._readers)

    def _diag(self) -> str:
        return "\n".join(self.output_tail) or "(no output)"


if __name__ == "__main__":
    ensure_node_modules()
    print(f"npm packages present in {NODE_MODULES}")
