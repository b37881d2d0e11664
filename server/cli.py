"""The ``prompt-studio`` command: serve, database maintenance, tenants, users, login tokens.

Every command takes ``--json`` and then prints exactly one JSON object. Bad input gives a
one-line error and exit code 2, never a traceback; a backup or restore that fails (a missing
``pg_dump``, an unreachable database) exits with 3. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from sqlalchemy.exc import DBAPIError

from server.logs import configure_logging
from server.security import hash_secret, new_api_key, new_login_token
from server.settings import Settings, SettingsError

EXIT_USAGE = 2
#: ``db backup``/``db restore`` could not be done (as opposed to being refused: bad input).
EXIT_FAILED = 3
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
T = TypeVar("T")

logger = logging.getLogger(__name__)


class CliError(Exception):
    """A user-facing error: printed as one line, exit code ``code`` (2: bad input)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line like every other bad input (not argparse's usage block); main() prints it.
        raise CliError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")

    parser = _Parser(prog="prompt-studio", description=__doc__.splitlines()[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", help="listen address (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $PORT or 8000)")

    db = commands.add_parser("db", parents=[common], help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    upgrade = db_commands.add_parser("upgrade", parents=[common], help="migrate to a revision")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", parents=[common], help="migrate down")
    downgrade.add_argument("revision")
    db_commands.add_parser("current", parents=[common], help="show the current revision")
    db_commands.add_parser("seed", parents=[common], help="load bundled templates/techniques")
    backup = db_commands.add_parser("backup", parents=[common], help="back up the database")
    backup.add_argument("path", help="the backup file to write")
    backup.add_argument("--force", action="store_true", help="overwrite an existing file")
    restore = db_commands.add_parser(
        "restore", parents=[common], help="restore a backup into a fresh database"
    )
    restore.add_argument("path", help="a file written by `db backup`")
    restore.add_argument(
        "--force", action="store_true", help="replace the contents of a non-empty database"
    )

    tenant = commands.add_parser("tenant", parents=[common], help="tenants")
    tenant_commands = tenant.add_subparsers(
        dest="tenant_command", required=True, parser_class=_Parser
    )
    tenant_create = tenant_commands.add_parser("create", parents=[common], help="create a tenant")
    tenant_create.add_argument("name")
    tenant_create.add_argument("--domain")

    user = commands.add_parser("user", parents=[common], help="users")
    user_commands = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    user_create = user_commands.add_parser("create", parents=[common], help="create a user")
    user_create.add_argument("--tenant", required=True, help="tenant id")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--name", required=True)
    user_create.add_argument("--color", help="display colour, e.g. #3B82F6")

    token = commands.add_parser("token", parents=[common], help="mint a login token")
    token.add_argument("--email", required=True)
    token.add_argument("--ttl-hours", type=float, default=24.0)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments  # known even when the arguments do not parse
    try:
        args = build_parser().parse_args(arguments)
        settings = Settings.from_env()
        _configure_logging(args.command, settings.log_level, settings.log_format)
        result = _dispatch(args, settings)
    except CliError as exc:
        _fail(as_json, str(exc), exc.code)
    except SettingsError as exc:
        _fail(as_json, str(exc))
    except DBAPIError as exc:
        # A database that does not exist, a file that cannot be opened, a refused login...
        logger.debug("database error", exc_info=exc)
        _fail(as_json, f"database error: {_first_line(exc.orig if exc.orig else exc)}")
    except OSError as exc:
        _fail(as_json, f"cannot reach a required service: {exc}")
    if result is not None:
        _print(as_json, result)


def _configure_logging(command: str, level: str, log_format: str = "text") -> None:
    """Log to stderr at ``LOG_LEVEL``, except that one-shot commands treat INFO as WARNING.

    A one-shot command's output is its result (and a failure is one line), so Alembic's INFO
    chatter about every migration step must not bury it; ``LOG_LEVEL=DEBUG`` still shows it all.
    ``serve`` logs exactly at ``LOG_LEVEL``. Every line is redacted (:mod:`server.logs`).
    """
    if command != "serve" and level == "INFO":
        level = "WARNING"
    configure_logging(level, log_format)


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _fail(as_json: bool, message: str, code: int = EXIT_USAGE) -> NoReturn:
    message = " ".join(message.split())
    if as_json:
        print(json.dumps({"error": {"message": message}}))
    else:
        print(f"prompt-studio: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _print(as_json: bool, result: dict[str, Any]) -> None:
    if as_json:
        print(json.dumps(result, default=str))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


def _dispatch(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | None:
    if args.command == "serve":
        _serve(args, settings)
        return None
    if args.command == "db":
        return _db(args, settings)
    if args.command == "tenant":
        return _run(settings, lambda db: _tenant_create(db, args.name, args.domain))
    if args.command == "user":
        email = _valid_email(args.email)
        return _run(
            settings, lambda db: _user_create(db, args.tenant, email, args.name, args.color)
        )
    if args.command == "token":
        if not 0 < args.ttl_hours <= 24 * 366:
            raise CliError("--ttl-hours must be between 0 and 8784 (one year)")
        return _run(settings, lambda db: _token(db, args.email, args.ttl_hours))
    raise CliError(f"unknown command {args.command!r}")


def _valid_email(email: str) -> str:
    if not EMAIL_PATTERN.match(email):
        raise CliError(f"{email!r} is not an email address")
    return email.strip().lower()


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(db)`` in one committed transaction against a migrated database."""
    from migrations.runner import is_at_head
    from storage.engine import create_engine, create_session_factory

    _require_head(settings, is_at_head)

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_factory(engine)() as db, db.begin():
                return await work(db)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _require_head(settings: Settings, is_at_head: Callable[[str], bool]) -> None:
    if settings.is_sqlite:
        from migrations.runner import upgrade

        with _migration_errors():
            upgrade(settings.database_url, "head")
        return
    with _migration_errors():
        at_head = is_at_head(settings.database_url)
    if not at_head:
        raise CliError(
            "the database schema is not at the latest revision: run `prompt-studio db upgrade`"
        )


async def _tenant_create(db: Any, name: str, domain: str | None) -> dict[str, Any]:
    from storage.repositories.tenancy import DuplicateError, create_tenant

    if not name.strip():
        raise CliError("the tenant name must not be empty")
    api_key = new_api_key()
    try:
        tenant = await create_tenant(
            db, name=name.strip(), domain=domain, api_key_hash=hash_secret(api_key)
        )
    except DuplicateError as exc:
        raise CliError(str(exc)) from None
    return {"id": tenant.id, "name": tenant.name, "domain": tenant.domain, "api_key": api_key}


async def _user_create(
    db: Any, tenant_id: str, email: str, name: str, color: str | None
) -> dict[str, Any]:
    from storage.repositories.tenancy import DuplicateError, UnknownReferenceError, create_user

    if not name.strip():
        raise CliError("the user name must not be empty")
    if color is not None and not re.fullmatch(r"#[0-9A-Fa-f]{6}", color):
        raise CliError(f"--color must look like #3B82F6, got {color!r}")
    try:
        user = await create_user(
            db, tenant_id=tenant_id, email=email, name=name.strip(), color=color
        )
    except (DuplicateError, UnknownReferenceError) as exc:
        raise CliError(str(exc)) from None
    return {"id": user.id, "email": user.email, "name": user.name, "tenant_id": user.tenant_id}


async def _token(db: Any, email: str, ttl_hours: float) -> dict[str, Any]:
    from storage.base import utcnow
    from storage.repositories.tenancy import create_login_session, get_user_by_email

    user = await get_user_by_email(db, email.strip().lower())
    if user is None:
        raise CliError(f"no user with email {email!r}")
    token = new_login_token()
    expires_at = utcnow() + timedelta(hours=ttl_hours)
    await create_login_session(db, token_hash=hash_secret(token), user=user, expires_at=expires_at)
    return {"token": token, "expires_at": expires_at.isoformat() + "Z", "user_id": user.id}


@contextlib.contextmanager
def _migration_errors() -> Iterator[None]:
    """Turn a failed migration (an unknown revision, say) into a one-line :class:`CliError`."""
    from migrations.runner import MigrationError

    try:
        yield
    except MigrationError as exc:
        raise CliError(f"migration failed: {exc}") from None
    except Exception as exc:
        # Alembic's own errors (CommandError, ResolutionError...) are user errors too.
        if type(exc).__module__.startswith("alembic"):
            raise CliError(f"migration failed: {exc}") from None
        raise


def _db(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from migrations import runner

    with _migration_errors():
        if args.db_command == "upgrade":
            runner.upgrade(settings.database_url, args.revision)
            return {"revision": runner.current(settings.database_url), "head": runner.head()}
        if args.db_command == "downgrade":
            runner.downgrade(settings.database_url, args.revision)
            return {"revision": runner.current(settings.database_url), "head": runner.head()}
        if args.db_command == "current":
            current = runner.current(settings.database_url)
            return {"revision": current, "head": runner.head(), "at_head": current == runner.head()}
    if args.db_command == "seed":
        from storage.repositories.seed import seed

        return asdict(_run(settings, seed))
    if args.db_command in {"backup", "restore"}:
        return _backup_or_restore(args, settings)
    raise CliError(f"unknown db command {args.db_command!r}")


def _progress(message: str) -> None:
    print(f"prompt-studio: {message}", file=sys.stderr, flush=True)


def _backup_or_restore(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """``db backup PATH`` / ``db restore PATH``: exit 2 when refused, 3 when it failed."""
    from pathlib import Path

    from migrations.runner import head
    from storage import backup

    work = backup.backup if args.db_command == "backup" else backup.restore
    try:
        result = work(settings.database_url, Path(args.path), force=args.force, progress=_progress)
    except backup.BackupRefused as exc:
        raise CliError(str(exc)) from None
    except backup.BackupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    summary = {**asdict(result), "head": head()}
    if args.db_command == "restore" and result.revision != head():
        summary["next"] = "run `prompt-studio db upgrade` to migrate the restored schema"
    return summary


def _require_head_unless_unreachable(settings: Settings, is_at_head: Callable[[str], bool]) -> None:
    """The schema check of ``serve``, skipped (with a warning) when PostgreSQL is down.

    A server started before its database (a reboot, a cluster restart) must come up, answer
    ``/readyz`` with 503 and serve once the database is back, rather than crash-loop. A schema
    that is reachable and behind still stops the start.
    """
    try:
        _require_head(settings, is_at_head)
    except (OSError, DBAPIError) as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
        reachable_but_failing = (
            isinstance(exc, DBAPIError)
            and not isinstance(cause, OSError | asyncio.TimeoutError)
            and type(cause).__name__ != "CannotConnectNowError"
        )
        if settings.is_sqlite or reachable_but_failing:
            raise
        logger.warning(
            "database unreachable at start-up (%s): serving anyway; /readyz answers 503 "
            "until it is back, and the schema revision was not checked",
            _first_line(cause),
        )


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from migrations.runner import is_at_head
    from server.app import create_app
    from server.http_guard import guarded_h11_protocol
    from server.ws_protocol import direct_websocket_protocol

    if args.host:
        settings = settings.with_overrides(host=args.host)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise CliError("--port must be between 0 and 65535")
        settings = settings.with_overrides(port=args.port)
    _require_head_unless_unreachable(settings, is_at_head)
    if args.json:
        print(
            json.dumps({"status": "starting", "host": settings.host, "port": settings.port}),
            flush=True,
        )
    direct = settings.ws_transport == "direct"
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=guarded_h11_protocol(
            settings.head_timeout_seconds, settings.max_half_open_connections
        ),
        ws=direct_websocket_protocol(
            settings.drop_grace_seconds,
            settings.preauth_max_frames,
            settings.preauth_max_bytes,
        )
        if direct
        else "websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_compression,
        # No handlers of uvicorn's own: its loggers propagate to the redacting root handler.
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
