"""Every error a REST request can meet, rendered in the one shape.

``{"error": {"code", "message", "field"}}``: our own :class:`~server.errors.ApiError` classes,
FastAPI's validation errors (``field`` is the dotted location, e.g. ``sections.system``), HTTP
errors (unknown route, wrong method, a body that is not JSON), and anything unexpected (500,
logged with its traceback, never shown to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.errors import ApiError, error_response

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
# Where a validation error's location starts: FastAPI prefixes it with the parameter's source.
_SOURCES = {"body", "query", "path", "header", "cookie"}
# Validation errors of the body as a whole that mean "this is not a JSON object at all".
_NOT_AN_OBJECT = {"missing", "model_attributes_type", "model_type", "dict_type"}


def dotted_field(loc: Sequence[Any]) -> str | None:
    """``("body", "sections", "system")`` → ``"sections.system"``; None for the body itself."""
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or None


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """A 422 naming the first invalid field (400 when the body is missing or not an object)."""
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    loc = tuple(first.get("loc", ()))
    field = dotted_field(loc)
    kind = first.get("type")
    if loc and loc[0] == "body" and field is None and kind in _NOT_AN_OBJECT:
        if kind == "missing":
            return error_response(400, "bad_request", "a JSON object body is required")
        return error_response(
            400,
            "bad_request",
            "the body must be a JSON object sent as Content-Type: application/json",
        )
    message = str(first.get("msg", "invalid value"))
    details = [
        {"field": dotted_field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    return error_response(
        422,
        "validation_error",
        f"{field}: {message}" if field else message,
        field=field,
        errors=details,
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.to_response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
