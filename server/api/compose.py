"""Agent compose over REST: queue a job, read and list jobs, follow one live, cancel, save.

The job itself runs in the background on whichever node claims it (:mod:`server.compose.runner`);
these endpoints only read and write its row, and wake the local runner.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from starlette.responses import JSONResponse, StreamingResponse

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import domain_errors, limits_of
from server.api.routing import StudioRoute
from server.api.schemas.compose import (
    ComposeAccepted,
    ComposeCreate,
    ComposeInputOut,
    ComposeList,
    ComposeOut,
    ComposeOutputs,
    ComposeSave,
    ComposeSaved,
)
from server.api.types import IntId, PageParams, error_responses
from server.auth import Principal
from server.compose import service
from server.compose.agents import model_problem
from server.compose.events import ComposeEvent
from server.errors import ApiError, Conflict, NotFound, ValidationFailed
from storage.base import utcnow
from storage.models import AgentComposeRun
from storage.repositories.compose import Scope
from storage.repositories.runs import tenant_config

router = APIRouter(
    route_class=StudioRoute, tags=["compose"], responses=error_responses(403, 404, 409, 429)
)


class QuotaExceeded(ApiError):
    """429: the tenant may not start another compose job now (with ``Retry-After`` if known)."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_response(self) -> JSONResponse:
        """The shared error shape, plus ``Retry-After`` when the quota resets at a known time."""
        response = super().to_response()
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


_ERRORS: dict[type[service.ComposeError], type[ApiError]] = {
    service.ComposeNotFound: NotFound,
    service.ComposeConflict: Conflict,
    service.ComposeInvalid: ValidationFailed,
}


@contextmanager
def compose_errors() -> Iterator[None]:
    """Turn the compose domain's refusals into the API's errors (one place for the mapping)."""
    try:
        yield
    except service.ComposeQuotaExceeded as exc:
        raise QuotaExceeded(exc.message, retry_after=exc.retry_after) from exc
    except service.ComposeError as exc:
        api_error = next(
            (api for kind, api in _ERRORS.items() if isinstance(exc, kind)), ValidationFailed
        )
        raise api_error(exc.message, field=exc.field) from exc


def _scope(user: Principal) -> Scope:
    return Scope(tenant_id=user.tenant_id, user_id=user.user_id)


def compose_out(run: AgentComposeRun) -> ComposeOut:
    """A job row as the API shows it."""
    staged = run.stage_outputs or {}
    result = run.result
    outputs = ComposeOutputs(
        agent1=result.agent1_json if result is not None else staged.get("agent1"),
        agent2=result.agent2_json if result is not None else staged.get("agent2"),
        agent3=result.agent3_json if result is not None else None,
    )
    return ComposeOut.model_validate(
        {
            "id": run.id,
            "status": run.status,
            "stage": run.stage,
            "progress": run.progress,
            "cancelled": run.cancel_requested_at is not None and run.status == "failed",
            "cancel_requested": run.cancel_requested_at is not None,
            "error": run.error,
            "input": ComposeInputOut(
                raw=run.input_raw,
                goal=run.input_goal,
                constraints=run.input_constraints,
                output_format=run.input_output_format,
            ),
            "model_config": run.model_config,
            "session_id": run.session_id,
            "attempts": run.attempts,
            "outputs": outputs,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "finished_at": run.finished_at,
        }
    )


@router.post(
    "/compose", status_code=202, response_model=ComposeAccepted, summary="Queue a compose job"
)
async def create(
    body: ComposeCreate, user: CurrentUser, db: UserDb, services: ServicesDep
) -> ComposeAccepted:
    """Turn a rough idea into a structured prompt in the background (converter, critic, judge)."""
    limit = services.settings.compose_max_input_chars
    for field in ("raw", "goal", "constraints", "output_format"):
        value = getattr(body, field)
        if value is not None and len(value) > limit:
            raise ValidationFailed(f"{field} may hold at most {limit} characters", field=field)
    model = body.llm_config.model
    config = await tenant_config(db, user.tenant_id)
    problem = await model_problem(services.llm, services.secrets, config, model)
    if problem is not None:
        raise ValidationFailed(problem, field="model_config.model", code="unknown_model")
    submission = service.Submission(
        raw=body.raw,
        goal=body.goal,
        constraints=body.constraints,
        output_format=body.output_format,
        model_config=body.llm_config.model_dump(by_alias=True, exclude_none=True),
        session_id=body.session_id,
    )
    with compose_errors():
        run = await service.submit(
            db,
            _scope(user),
            submission,
            max_active=services.settings.compose_max_active_per_tenant,
        )
    await db.commit()
    if services.compose is not None:
        services.compose.wake()
    return ComposeAccepted(id=run.id, status="pending")


@router.get("/compose", response_model=ComposeList, summary="The tenant's compose jobs")
async def list_jobs(
    user: CurrentUser,
    db: UserDb,
    page: Annotated[PageParams, Depends()],
    status: Annotated[
        Literal["pending", "running", "completed", "failed"] | None, Query(description="filter")
    ] = None,
) -> ComposeList:
    """The tenant's compose jobs, newest first, paged."""
    runs, total = await service.list_jobs(
        db, _scope(user), status=status, limit=page.limit, offset=page.offset
    )
    return ComposeList(
        items=[compose_out(r) for r in runs], total=total, limit=page.limit, offset=page.offset
    )


@router.get("/compose/{run_id}", response_model=ComposeOut, summary="One compose job")
async def get_job(run_id: IntId, user: CurrentUser, db: UserDb) -> ComposeOut:
    """A job: status, stage, progress, each agent's output so far, the error."""
    with compose_errors():
        return compose_out(await service.get(db, _scope(user), run_id))


def _sse(event: ComposeEvent, number: int) -> bytes:
    name = "progress"
    if event.status == "completed":
        name = "result"
    elif event.status == "failed":
        name = "error"
    data = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {number}\nevent: {name}\ndata: {data}\n\n".encode()


@router.get(
    "/compose/{run_id}/events",
    response_class=StreamingResponse,
    response_model=None,
    status_code=200,
    summary="Follow a compose job (server-sent events)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    run_id: IntId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> StreamingResponse:
    """``progress`` events (the current state first, then each stage change), then one
    ``result`` or ``error`` event, after which the stream ends."""
    scope = _scope(user)
    with compose_errors():
        await service.get(db, scope, run_id)
    await db.close()  # the stream opens its own sessions; hold no connection while it runs
    settings = services.settings
    feed = services.compose.feed if services.compose is not None else None

    async def stream() -> AsyncIterator[bytes]:
        number = 0
        async for event in service.watch(
            services.sessions,
            feed,
            scope,
            run_id,
            poll_seconds=settings.compose_events_poll_seconds,
            max_seconds=settings.compose_events_max_seconds,
            heartbeat_seconds=settings.compose_events_heartbeat_seconds,
        ):
            if event is None:
                yield b": keepalive\n\n"
                continue
            number += 1
            yield _sse(event, number)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/compose/{run_id}/cancel", status_code=200, response_model=ComposeOut, summary="Cancel a job"
)
async def cancel(run_id: IntId, user: CurrentUser, db: UserDb, services: ServicesDep) -> ComposeOut:
    """Stop a job: a pending one fails at once, a running one within a lease renewal (at once
    when this node runs it). A finished job is 409."""
    with compose_errors():
        run = await service.cancel(db, _scope(user), run_id, utcnow())
    if services.compose is not None:
        services.compose.cancel_local(run_id)
    return compose_out(run)


@router.post(
    "/compose/{run_id}/save",
    status_code=201,
    response_model=ComposeSaved,
    summary="Save the result as a prompt version",
)
async def save(
    run_id: IntId, body: ComposeSave, user: CurrentUser, db: UserDb, services: ServicesDep
) -> ComposeSaved:
    """The judge's prompt as a new version of ``prompt_id``, or version 1 of a new prompt
    ``name``; its decision notes become the version's message."""
    with compose_errors(), domain_errors():
        saved = await service.save(
            db,
            _scope(user),
            run_id,
            prompt_id=body.prompt_id,
            name=body.name,
            limits=limits_of(services.settings),
        )
    await db.commit()
    return ComposeSaved(
        prompt_id=saved.prompt_id, version=saved.version, created_prompt=saved.created_prompt
    )
