"""Small helpers for JSON request handling shared by the REST routers."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection, Request

from server.errors import BadRequest, ValidationFailed
from server.services import Services

MAX_JSON_BODY_BYTES = 2 * 1024 * 1024


def services_of(conn: HTTPConnection) -> Services:
    """The process's :class:`Services`, stored on the app in the lifespan."""
    services: Services = conn.app.state.services
    return services


async def read_json_object(request: Request) -> dict[str, Any]:
    """Parse the body as a JSON object, or raise 400 with what is wrong."""
    body = await request.body()
    if len(body) > MAX_JSON_BODY_BYTES:
        raise BadRequest(f"request body exceeds {MAX_JSON_BODY_BYTES} bytes")
    if not body:
        raise BadRequest("a JSON object body is required")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    return data


def optional_str(
    data: dict[str, Any], name: str, *, max_length: int = 10_000, allow_empty: bool = True
) -> str | None:
    """A string field that may be absent or null."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be a string", field=name)
    if len(value) > max_length:
        raise ValidationFailed(f"{name} must be at most {max_length} characters", field=name)
    if not allow_empty and not value.strip():
        raise ValidationFailed(f"{name} must not be empty", field=name)
    return value


def required_str(data: dict[str, Any], name: str, *, max_length: int = 10_000) -> str:
    """A non-empty string field that must be present."""
    if name not in data or data[name] is None:
        raise ValidationFailed(f"{name} is required", field=name)
    value = optional_str(data, name, max_length=max_length, allow_empty=False)
    assert value is not None
    return value


def reject_unknown_fields(data: dict[str, Any], allowed: set[str]) -> None:
    """Refuse fields the endpoint does not know, so typos do not pass silently."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown field {unknown[0]!r}", field=unknown[0])


def page_params(
    request: Request, *, default_limit: int = 50, max_limit: int = 200
) -> tuple[int, int]:
    """``limit`` and ``offset`` from the query string, validated."""

    def parse(name: str, default: int, lo: int, hi: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed(f"{name} must be an integer", field=name) from None
        if not lo <= value <= hi:
            raise ValidationFailed(f"{name} must be between {lo} and {hi}", field=name)
        return value

    return parse("limit", default_limit, 1, max_limit), parse("offset", 0, 0, 10**9)
