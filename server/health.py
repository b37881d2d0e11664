"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.services import services_of

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
    degraded: list[str] = []
    if services.redis is not None:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await services.redis.ping()
            checks["redis"] = "ok" if services.broker.healthy else "degraded: reconnecting"
        except Exception as exc:
            checks["redis"] = f"degraded: {type(exc).__name__}: {exc}"
        if checks["redis"] != "ok":
            # Without Redis this node still serves its own clients (no cross-node fan-out), so
            # it stays in rotation: taking every node out would turn degraded into down.
            degraded.append("redis")
    failing = [name for name, status in checks.items() if status != "ok" and name not in degraded]
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
    if degraded:
        return JSONResponse(
            {
                "status": "degraded",
                "checks": checks,
                "degraded": degraded,
                "message": "serving local clients only: cross-node fan-out is down",
            }
        )
    return JSONResponse({"status": "ok", "checks": checks})
