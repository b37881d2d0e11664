"""The route class every REST router uses: JSON bodies parsed defensively, once.

FastAPI parses a JSON body with ``json.loads`` and turns anything unexpected into a generic 400;
a 10,000-deep body would raise ``RecursionError`` and NaN or a lone surrogate would pass through
to the database. :class:`StudioRequest` parses bodies itself and answers each case with a clear
error in the house shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

#: Largest JSON body accepted by any endpoint.
MAX_JSON_BODY_BYTES = 2 * 1024 * 1024
#: Deepest nesting of arrays/objects accepted in a body.
MAX_JSON_DEPTH = 64


class BodyError(HTTPException):
    """A body that cannot be accepted as JSON (400, or 413 when too large)."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(status_code=status_code, detail=message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects deeper than ``limit`` (iterative, no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_body(body: bytes) -> Any:
    """Decode a request body as strict JSON, or raise :class:`BodyError` saying why."""
    if len(body) > MAX_JSON_BODY_BYTES:
        raise BodyError(f"request body exceeds {MAX_JSON_BODY_BYTES} bytes", status_code=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BodyError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise BodyError(f"malformed JSON: {exc}") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise BodyError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


class StudioRequest(Request):
    """A request whose ``json()`` is :func:`parse_json_body`."""

    async def json(self) -> Any:
        """The body as JSON, parsed once."""
        if not hasattr(self, "_json"):
            declared = self.headers.get("content-length")
            if (
                declared is not None
                and declared.isdecimal()
                and int(declared) > MAX_JSON_BODY_BYTES
            ):
                raise BodyError(
                    f"request body exceeds {MAX_JSON_BODY_BYTES} bytes", status_code=413
                )
            self._json = parse_json_body(await self.body())
        return self._json


class StudioRoute(APIRoute):
    """An :class:`APIRoute` that hands its endpoint a :class:`StudioRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler so that body parsing goes through :class:`StudioRequest`."""
        handler = super().get_route_handler()

        async def studio_handler(request: Request) -> Response:
            return await handler(StudioRequest(request.scope, request.receive))

        return studio_handler
