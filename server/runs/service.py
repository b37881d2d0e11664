"""Running a prompt: resolve, render, quota, cache, call, record.

Each run touches the database in short transactions of its own, never across the model call:
:meth:`RunService.prepare` resolves and renders the input, checks the quota and inserts the run
as ``running`` (so concurrent requests count it); the call happens outside any transaction; the
outcome is written by :func:`server.runs.recording.finish_run`. A provider failure is recorded
on the run (``failed``) before it is raised as :class:`ProviderFailed`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.cache import CacheLookup, CacheScope, RefreshRequest, SemanticCacheService
from server.cache import sections_hash as keyed_hash
from server.llm.base import Completion, CompletionRequest, ProviderError, UnknownModel
from server.llm.endpoints import Endpoint, tenant_endpoint
from server.llm.registry import ProviderRegistry
from server.llm.secrets import SecretBox, SecretsError
from server.prompts.context import Actor
from server.prompts.errors import MissingVariables
from server.prompts.render import RenderedPrompt, render, to_messages, values_for
from server.runs.errors import InvalidRunInput, MissingRunVariables, ProviderKeyUnavailable
from server.runs.inputs import LiveDocuments, ResolvedInput, RunSource, resolve_input
from server.runs.leases import RunLeases
from server.runs.quota import check_quota
from server.runs.recording import Outcome, finish_run
from storage.base import utcnow
from storage.models import Run
from storage.repositories import runs as repo

logger = logging.getLogger(__name__)

CacheMode = Literal["use", "bypass", "refresh"]
CACHE_PROVIDER = "semantic-cache"


class ProviderFailed(Exception):
    """A run whose provider call failed; the failure is recorded on ``run``."""

    def __init__(self, error: ProviderError, run: Run) -> None:
        super().__init__(error.message)
        self.error = error
        self.run = run


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Which model, and how."""

    model: str
    temperature: float = 0.7
    max_tokens: int | None = None
    cache: CacheMode = "use"


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run as the API asks for it."""

    source: RunSource
    settings: RunSettings
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Bounds from the settings."""

    max_text_chars: int = 500_000
    compare_max_targets: int = 8
    stream_queue_size: int = 256


@dataclass(slots=True)
class Prepared:
    """A run inserted as ``running``, with everything the call needs."""

    run: Run
    tenant_id: str
    request: CompletionRequest
    endpoint: Endpoint | None
    mode: CacheMode
    scope: CacheScope | None
    user_text: str
    rendered_sections: dict[str, str]
    source_hash: str | None


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.monotonic()``)."""
    return round((time.monotonic() - started) * 1000)


class RunService:
    """Runs prompts for callers; one per process (it holds no per-request state)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        secrets: SecretBox,
        live: LiveDocuments,
        cache: SemanticCacheService | None = None,
        limits: RunLimits | None = None,
        leases: RunLeases | None = None,
    ) -> None:
        self.sessions = sessions
        self.leases = leases
        self.registry = registry
        self.secrets = secrets
        self.live = live
        self.cache = cache
        self.limits = limits or RunLimits()

    # -- preparing ---------------------------------------------------------------------------

    async def prepare(self, actor: Actor, requests: Sequence[RunRequest]) -> list[Prepared]:
        """Resolve and render every request, then insert their runs under one quota check."""
        async with self.sessions() as db:
            config = await repo.tenant_config(db, actor.tenant_id)
            endpoint = self.endpoint_of(config)
            staged = []
            for request in requests:
                resolved = await resolve_input(
                    db,
                    tenant_id=actor.tenant_id,
                    user_id=actor.user_id,
                    source=request.source,
                    live=self.live,
                )
                staged.append((request, resolved, self._render(resolved, request.variables)))
            await db.rollback()
        for model in dict.fromkeys(request.settings.model for request in requests):
            try:
                await self.registry.ensure_served(model, endpoint)
            except UnknownModel as error:
                raise InvalidRunInput(error.message, field="model") from error
        async with self.sessions() as db:
            await check_quota(db, actor.tenant_id, now=utcnow(), wanted=len(requests))
            prepared = [
                await self._insert(db, actor, endpoint, request, resolved, rendered)
                for request, resolved, rendered in staged
            ]
            await db.commit()
        return prepared

    def endpoint_of(self, config: Mapping[str, object]) -> Endpoint | None:
        """The tenant's own endpoint from its config (None: the server's)."""
        try:
            return tenant_endpoint(config, self.secrets)
        except SecretsError as error:
            raise ProviderKeyUnavailable(str(error)) from error

    def _render(self, resolved: ResolvedInput, variables: Mapping[str, str]) -> RenderedPrompt:
        if resolved.content.size() > self.limits.max_text_chars:
            raise InvalidRunInput(
                f"a prompt holds at most {self.limits.max_text_chars} characters of text",
                field="content",
            )
        try:
            rendered = render(resolved.content, variables)
        except MissingVariables as error:
            raise MissingRunVariables(error.names) from error
        if not rendered.messages:
            raise InvalidRunInput("the prompt renders to nothing to send", field="content")
        return rendered

    async def _insert(
        self,
        db: AsyncSession,
        actor: Actor,
        endpoint: Endpoint | None,
        request: RunRequest,
        resolved: ResolvedInput,
        rendered: RenderedPrompt,
    ) -> Prepared:
        settings = request.settings
        sections = _run_sections(rendered)
        declared = {v.name: v.id for v in resolved.content.variables}
        values = values_for(resolved.content, request.variables)
        run = Run(
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            prompt_version_id=resolved.prompt_version_id,
            session_id=resolved.session_id,
            state_vector=resolved.state_vector,
            sections=_template_sections(resolved),
            variables=[
                {"id": declared.get(name, ""), "name": name, "value": value}
                for name, value in sorted(values.items())
            ],
            model=settings.model,
            temperature=round(settings.temperature * 100),
            max_tokens=settings.max_tokens,
            output="",
            status="running",
            node_id=None if self.leases is None else self.leases.node_id,
            lease_expires_at=None if self.leases is None else self.leases.lease_until(),
        )
        await repo.insert_run(db, run)
        scope = None
        if self.cache is not None and settings.cache != "bypass":
            scope = CacheScope(
                actor.tenant_id,
                settings.model,
                settings.temperature,
                settings.max_tokens,
                keyed_hash(sections),
            )
        return Prepared(
            run=run,
            tenant_id=actor.tenant_id,
            request=CompletionRequest(
                model=settings.model,
                messages=rendered.messages,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
            ),
            endpoint=endpoint,
            mode=settings.cache,
            scope=scope,
            user_text=sections["user"],
            rendered_sections=sections,
            source_hash=(
                None if resolved.version_sections is None else keyed_hash(resolved.version_sections)
            ),
        )

    # -- running -----------------------------------------------------------------------------

    async def execute(self, prepared: Prepared) -> Run:
        """Answer a prepared run (cache, else the model) and record it."""
        started = time.monotonic()
        found = await self.lookup(prepared)
        if found is not None and found.hit and found.entry is not None:
            return await self.record(prepared, hit_outcome(found, elapsed_ms(started)))
        similarity = None if found is None else found.similarity
        try:
            async with (
                self.keeping(prepared),
                self.registry.provider_for(prepared.request.model, prepared.endpoint) as provider,
            ):
                completion = await provider.complete(prepared.request)
        except ProviderError as error:
            run = await self.record(
                prepared,
                Outcome(
                    status="failed",
                    output="",
                    latency_ms=elapsed_ms(started),
                    error=f"{error.code}: {error.message}",
                    cache_similarity=similarity,
                ),
            )
            raise ProviderFailed(error, run) from error
        outcome = Outcome(
            status="completed",
            output=completion.text,
            latency_ms=elapsed_ms(started),
            usage=completion.usage,
            provider=completion.provider,
            finish_reason=completion.finish_reason,
            cache_similarity=similarity,
        )
        return await self.record(prepared, outcome)

    def keeping(
        self, prepared: Prepared, partial: Callable[[], str] | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Keep the run's lease (and its ``partial`` output) current while the model answers."""
        if self.leases is None:
            return contextlib.nullcontext()
        return self.leases.keeping(prepared.run.id, partial)

    async def lookup(self, prepared: Prepared) -> CacheLookup | None:
        """The cache's answer for a run that uses it (None: not consulted)."""
        if self.cache is None or prepared.scope is None or prepared.mode != "use":
            return None
        try:
            async with self.sessions() as db:
                found = await self.cache.lookup(db, prepared.scope, prepared.user_text)
                await db.commit()
        except SQLAlchemyError:
            logger.warning("semantic cache lookup failed; run %s calls the model", exc_info=True)
            return None
        return found

    async def record(self, prepared: Prepared, outcome: Outcome) -> Run:
        """Write the outcome (and, for a fresh completed answer, the cache entry)."""
        async with self.sessions() as db:
            run = await finish_run(db, prepared.run.id, prepared.tenant_id, outcome)
            await db.commit()
        if outcome.status == "completed" and not outcome.cache_hit:
            await self._store(prepared, outcome)
        return run

    async def _store(self, prepared: Prepared, outcome: Outcome) -> None:
        if self.cache is None or prepared.scope is None or outcome.usage is None:
            return
        try:
            async with self.sessions() as db:
                await self.cache.store(
                    db,
                    prepared.scope,
                    prepared.user_text,
                    outcome.output,
                    outcome.usage,
                    sections=prepared.rendered_sections,
                    source_hash=prepared.source_hash,
                    user_id=prepared.run.user_id,
                )
                await db.commit()
        except SQLAlchemyError:
            logger.warning("semantic cache store failed for run %s", prepared.run.id, exc_info=True)

    # -- for the cache -----------------------------------------------------------------------

    async def refresh(self, request: RefreshRequest) -> Completion:
        """Run a cached request again (the cache's refresh rules call this)."""
        async with self.sessions() as db:
            endpoint = self.endpoint_of(await repo.tenant_config(db, request.tenant_id))
        messages = to_messages(None, {**request.sections, "user": request.user_text})
        async with self.registry.provider_for(request.model, endpoint) as provider:
            return await provider.complete(
                CompletionRequest(
                    model=request.model,
                    messages=messages,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                )
            )


def hit_outcome(found: CacheLookup, latency_ms: int) -> Outcome:
    """The outcome of a run answered from the cache."""
    assert found.entry is not None
    return Outcome(
        status="completed",
        output=found.entry.response,
        latency_ms=latency_ms,
        usage=found.entry.usage,
        provider=CACHE_PROVIDER,
        finish_reason="stop",
        cache_hit=True,
        cache_entry_id=found.entry.id,
        cache_similarity=found.similarity,
    )


def _run_sections(rendered: RenderedPrompt) -> dict[str, str]:
    """The rendered prompt as the four sections (plain content is the user section)."""
    if rendered.sections:
        given = rendered.sections
        return {name: given.get(name, "") for name in ("system", "developer", "user", "context")}
    return {"system": "", "developer": "", "user": rendered.content or "", "context": ""}


def _template_sections(resolved: ResolvedInput) -> dict[str, str]:
    """``runs.sections``: the unrendered sections that ran (content as the user section)."""
    content = resolved.content
    if content.sections:
        names = ("system", "developer", "user", "context")
        return {name: content.sections.get(name, "") for name in names}
    return {"system": "", "developer": "", "user": content.content or "", "context": ""}
