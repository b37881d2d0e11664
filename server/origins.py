"""Which web origins may use the server from a browser: the websocket Origin check and CORS.

``PROMPT_STUDIO_ALLOWED_ORIGINS`` is a comma list of origins (``scheme://host[:port]``), or ``*``.

- Unset: **same origin only.** A websocket may come from a page of this server (its Origin names
  the host the request was sent to) or from a client that sends no Origin at all (scripts,
  servers, y-websocket in Node); REST gets no CORS headers, so browsers keep cross-origin pages
  out. The socket also accepts the login cookie, so without this check any page a signed-in user
  visits could open a socket as them (cross-site websocket hijacking).
- A list: those origins too, for the socket and for CORS on ``/api`` (with credentials).
- ``*``: any origin (for the socket and for CORS, but then without credentials).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}

# What browsers may send cross-origin to /api, and read back.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "Accept")
CORS_EXPOSED_HEADERS = ("Retry-After", "Location")
CORS_MAX_AGE_SECONDS = 600


class OriginError(ValueError):
    """An origin in the setting is not ``scheme://host[:port]``."""


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port.

    Raises :class:`OriginError` for anything else (a path, credentials, another scheme).
    """
    raw = value.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{raw!r} is not an origin: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise OriginError(f"{raw!r} is not an origin: the scheme must be http or https")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise OriginError(f"{raw!r} is not an origin: expected scheme://host[:port]")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise OriginError(f"{raw!r} is not an origin: no path, query or fragment")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return (
        f"{scheme}://{host}"
        if port in {None, _DEFAULT_PORTS[scheme]}
        else f"{scheme}://{host}:{port}"
    )


def parse_allowed_origins(raw: str) -> tuple[str, ...]:
    """The setting's value: ``()`` (same origin only), ``("*",)`` or normalized origins."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if ANY_ORIGIN in items:
        if len(items) > 1:
            raise OriginError("'*' allows every origin: list no others beside it")
        return (ANY_ORIGIN,)
    return tuple(dict.fromkeys(normalize_origin(item) for item in items))


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The allowed origins, ready to check a request against."""

    any_origin: bool
    listed: frozenset[str]

    def allows_socket(self, origin: str | None, host: str | None) -> bool:
        """Whether a websocket whose upgrade request carried these headers may proceed.

        No Origin: a client that is not a browser page (browsers always send one), allowed.
        """
        if origin is None or self.any_origin:
            return True
        try:
            normalized = normalize_origin(origin)
        except OriginError:
            return False  # "null" (sandboxed frames, file:) and anything malformed
        return normalized in self.listed or _same_origin(normalized, host)


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names the host the request was sent to (its ``Host`` header)."""
    if not host:
        return False
    scheme = origin.split("://", 1)[0]
    try:
        return normalize_origin(f"{scheme}://{host.strip()}") == origin
    except OriginError:
        return False


@functools.lru_cache(maxsize=8)
def origin_policy(allowed: tuple[str, ...]) -> OriginPolicy:
    """The policy of a parsed setting (cached: it is consulted on every websocket)."""
    return OriginPolicy(any_origin=ANY_ORIGIN in allowed, listed=frozenset(allowed))


class ApiCors:
    """Starlette's CORS middleware, for ``/api`` only; every other request passes by untouched.

    ``allowed`` is the parsed setting; with ``()`` nothing is added (see the module docstring).
    Credentials are allowed only for listed origins, never with ``*``.
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self._app = app
        self._cors: ASGIApp | None = None
        if allowed:
            any_origin = ANY_ORIGIN in allowed
            self._cors = CORSMiddleware(
                app,
                allow_origins=list(allowed),
                allow_methods=list(CORS_METHODS),
                allow_headers=list(CORS_HEADERS),
                expose_headers=list(CORS_EXPOSED_HEADERS),
                allow_credentials=not any_origin,
                max_age=CORS_MAX_AGE_SECONDS,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route ``/api`` HTTP requests through CORS, everything else straight to the app."""
        if self._cors is not None and scope["type"] == "http" and is_api_path(scope["path"]):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def is_api_path(path: str) -> bool:
    """Whether ``path`` is under ``/api``."""
    return path == "/api" or path.startswith("/api/")
