"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.http import services_of

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Every dependency answers: the database (and Redis when configured); else 503, named."""
    services = services_of(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}: {exc}"
    if services.redis is not None:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}: {exc}"
    failing = [name for name, status in checks.items() if status != "ok"]
    if failing:
        return JSONResponse(
            {
                "status": "unavailable",
                "checks": checks,
                "error": {
                    "code": "not_ready",
                    "message": f"not ready: {', '.join(failing)} unavailable",
                },
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "checks": checks})
