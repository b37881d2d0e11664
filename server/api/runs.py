"""Runs over REST: run (JSON or server-sent events), compare, ratings, statistics, models.

``POST /api/runs`` answers the recorded run, or — with ``stream: true`` or
``Accept: text/event-stream`` — the events ``delta`` ``{text}``, ``usage`` ``{prompt,
completion, total}``, then ``done`` ``{run_id, run}`` or ``error`` ``{code, message, run_id,
status}``. Everything that can be refused (bad input, unknown ids, the model, the quota) is
refused before a stream starts, with a plain HTTP error. Compare streams tag every event with
``target`` (the index of the target in the request).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.routing import StudioRoute
from server.api.run_errors import provider_api_error, run_errors
from server.api.schemas.runs import (
    CompareCreate,
    CompareItem,
    CompareResult,
    ErrorOut,
    ModelList,
    ModelOut,
    ModelStatsList,
    ModelStatsOut,
    RatingCreate,
    RatingOut,
    RunCreate,
    RunInput,
    RunList,
    RunOut,
    VersionMetricsOut,
    error_responses,
)
from server.api.types import IntId, PageParams, ResourceId
from server.auth import Principal
from server.errors import ValidationFailed
from server.llm.registry import ModelInfo
from server.prompts.context import Actor
from server.runs import queries
from server.runs.compare import CompareTarget, run_all, target_requests
from server.runs.inputs import RunSource
from server.runs.service import ProviderFailed, RunRequest, RunSettings
from server.runs.setup import run_service
from server.runs.streaming import Delta, Done, RunEvent, Usage, merge_streams, stream_run
from storage.repositories import runs as runs_repo
from storage.repositories.runs import RunFilter

router = APIRouter(route_class=StudioRoute, tags=["runs"])

_STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "with stream: server-sent events", "content": {"text/event-stream": {}}},
    **error_responses(400, 401, 403, 404, 413, 422, 429, 502, 503, 504),
}


def _actor(user: Principal) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.user_id)


def _source(body: RunInput) -> RunSource:
    sections = None
    if body.sections is not None:
        sections = {k: v for k, v in body.sections.model_dump().items() if v is not None}
    return RunSource(
        prompt_version_id=body.prompt_version_id,
        prompt_id=body.prompt_id,
        label=body.label,
        session_id=body.session_id,
        content=body.content,
        sections=sections,
    )


def _wants_stream(request: Request, stream: bool) -> bool:
    return stream or "text/event-stream" in request.headers.get("accept", "")


def _sse(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def event_frame(event: RunEvent, target: int | None = None) -> bytes:
    """One run event as a server-sent event (tagged with ``target`` in a comparison)."""
    tag: dict[str, Any] = {} if target is None else {"target": target}
    if isinstance(event, Delta):
        return _sse("delta", {**tag, "text": event.text})
    if isinstance(event, Usage):
        usage = event.usage
        counts = {"prompt": usage.prompt, "completion": usage.completion, "total": usage.total}
        return _sse("usage", {**tag, **counts})
    if isinstance(event, Done):
        run = RunOut.of(event.run).model_dump(mode="json")
        return _sse("done", {**tag, "run_id": event.run.id, "run": run})
    error = provider_api_error(event.error, run_id=event.run.id).payload()
    return _sse("error", {**tag, **error, "status": event.run.status})


@router.post(
    "/runs",
    status_code=201,
    response_model=RunOut,
    summary="Run a prompt (JSON, or server-sent events)",
    responses=_SSE_RESPONSE,
)
async def create_run(
    body: RunCreate, request: Request, user: CurrentUser, db: UserDb, services: ServicesDep
) -> Any:
    """Render the input, ask the semantic cache, call the model and record the run."""
    await db.close()  # the service opens short sessions of its own; hold none during the call
    service = run_service(services)
    run_request = RunRequest(
        source=_source(body),
        settings=RunSettings(
            model=body.model,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            cache=body.cache,
        ),
        variables=body.variables,
    )
    with run_errors():
        (prepared,) = await service.prepare(_actor(user), [run_request])
    if _wants_stream(request, body.stream):

        async def frames() -> AsyncIterator[bytes]:
            async for event in stream_run(service, prepared):
                yield event_frame(event)

        return StreamingResponse(frames(), media_type="text/event-stream", headers=_STREAM_HEADERS)
    try:
        run = await service.execute(prepared)
    except ProviderFailed as failed:
        raise provider_api_error(failed.error, run_id=failed.run.id) from failed
    return RunOut.of(run)


@router.post(
    "/runs/compare",
    status_code=200,
    response_model=CompareResult,
    summary="Run one input against several targets concurrently",
    responses=_SSE_RESPONSE,
)
async def compare_runs(
    body: CompareCreate, request: Request, user: CurrentUser, db: UserDb, services: ServicesDep
) -> Any:
    """Every target is a recorded run; results come side by side (or as tagged events)."""
    await db.close()
    service = run_service(services)
    if len(body.targets) > service.limits.compare_max_targets:
        raise ValidationFailed(
            f"at most {service.limits.compare_max_targets} targets", field="targets"
        )
    base = RunRequest(
        source=_source(body),
        settings=RunSettings(
            model=body.targets[0].model,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            cache=body.cache,
        ),
        variables=body.variables,
    )
    targets = [
        CompareTarget(t.model, t.temperature, t.max_tokens, t.prompt_version_id)
        for t in body.targets
    ]
    with run_errors():
        prepared = await service.prepare(_actor(user), target_requests(base, targets))
    if _wants_stream(request, body.stream):
        streams = [stream_run(service, item) for item in prepared]

        async def frames() -> AsyncIterator[bytes]:
            merged = merge_streams(streams, queue_size=service.limits.stream_queue_size)
            async for target, event in merged:
                yield event_frame(event, target)

        return StreamingResponse(frames(), media_type="text/event-stream", headers=_STREAM_HEADERS)
    items = []
    for index, result in enumerate(await run_all(service, prepared)):
        if isinstance(result, ProviderFailed):
            error = provider_api_error(result.error, run_id=result.run.id)
            out = ErrorOut(code=error.code, message=error.message, field=error.field)
            items.append(CompareItem(target=index, run=RunOut.of(result.run), error=out))
        else:
            items.append(CompareItem(target=index, run=RunOut.of(result)))
    return CompareResult(items=items)


@router.get(
    "/runs",
    status_code=200,
    response_model=RunList,
    summary="List runs",
    responses=error_responses(401, 422),
)
async def list_runs(
    user: CurrentUser,
    db: UserDb,
    page: Annotated[PageParams, Depends()],
    prompt_version_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    min_rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> RunList:
    """The tenant's runs, newest first; ``min_rating`` compares the mean of a run's ratings."""
    filters = RunFilter(prompt_version_id, model, min_rating, tag, session_id)
    runs, total = await queries.list_runs(
        db, _actor(user), filters, limit=page.limit, offset=page.offset
    )
    return RunList(
        items=[RunOut.of(run) for run in runs], total=total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/runs/{run_id}",
    status_code=200,
    response_model=RunOut,
    summary="A run",
    responses=error_responses(401, 404, 422),
)
async def get_run(run_id: IntId, user: CurrentUser, db: UserDb) -> RunOut:
    """A run with its ratings."""
    with run_errors():
        return RunOut.of(await queries.get_run(db, _actor(user), run_id))


@router.post(
    "/runs/{run_id}/ratings",
    status_code=201,
    response_model=RatingOut,
    summary="Rate a run",
    responses=error_responses(400, 401, 404, 413, 422),
)
async def rate_run(run_id: IntId, body: RatingCreate, user: CurrentUser, db: UserDb) -> RatingOut:
    """A 1-5 rating with notes and tags; the run's version metrics follow."""
    with run_errors():
        row = await queries.rate_run(
            db, _actor(user), run_id, rating=body.rating, notes=body.notes, tags=body.tags
        )
    await db.commit()
    return RatingOut.of(row)


@router.get(
    "/stats/models",
    status_code=200,
    response_model=ModelStatsList,
    summary="Per-model statistics of the tenant's runs",
    responses=error_responses(401, 422),
)
async def model_stats(
    user: CurrentUser, db: UserDb, days: Annotated[int, Query(ge=1, le=3650)] = 30
) -> ModelStatsList:
    """Runs, mean latency, tokens, success rate, cache hits and mean rating per model."""
    rows = await queries.model_stats(db, _actor(user), days=days)
    return ModelStatsList(
        days=days, items=[ModelStatsOut.model_validate(row, from_attributes=True) for row in rows]
    )


@router.get(
    "/prompts/{prompt_id}/versions/{number}/metrics",
    status_code=200,
    response_model=VersionMetricsOut,
    summary="A version's performance metrics",
    responses=error_responses(401, 404, 422),
)
async def version_metrics(
    prompt_id: ResourceId, number: IntId, user: CurrentUser, db: UserDb
) -> VersionMetricsOut:
    """``avgLatency``, ``avgTokens``, ``successRate``, ``runCount``, ``avgRating``…"""
    with run_errors():
        version, metrics = await queries.version_metrics(db, _actor(user), prompt_id, number)
    return VersionMetricsOut(
        prompt_id=prompt_id,
        version=version.version,
        version_id=version.id,
        performance_metrics=metrics,
    )


@router.get(
    "/models",
    status_code=200,
    response_model=ModelList,
    summary="Models you can run",
    responses=error_responses(401, 502, 503, 504),
)
async def list_models(user: CurrentUser, db: UserDb, services: ServicesDep) -> ModelList:
    """``offline``, then the tenant's own endpoint's models or the server's."""
    config = await runs_repo.tenant_config(db, user.tenant_id)
    await db.close()
    service = run_service(services)
    with run_errors():
        endpoint = service.endpoint_of(config)
        found: list[ModelInfo] = await services.llm.models(endpoint)
    return ModelList(
        items=[ModelOut(name=m.name, provider=m.provider, source=m.source) for m in found]
    )
