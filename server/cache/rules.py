"""Invalidation: rules (tag / pattern / time / count; delete or refresh), purges, retirement.

Applied on demand (REST) and on a schedule. On PostgreSQL the scheduled pass runs on one node at
a time: it holds a transaction-level advisory lock, and a node that cannot take it skips the
pass. (SQLite is one node's file: the pass just runs.)

A scheduled ``refresh`` rule on ``tag`` or ``pattern`` refreshes matching entries when they
expire, instead of letting the purge drop them (refreshing them on every pass would re-run the
same prompts forever); on demand it refreshes every match at once. ``time`` and ``count`` rules
refresh what they match: the refreshed entry starts over (created now, hit count 0), so it
matches again only after the same time or the same number of hits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.cache.changes import CommittedChanges
from server.cache.config import CachePolicy, InvalidationRule, RuleAction
from server.cache.index import ScopeId, vector_of
from server.cache.scope import CacheScope, keyed_sections, sections_hash
from server.cache.sync import Added
from server.llm.base import Completion, ProviderError
from storage.models.cache import SemanticCache
from storage.repositories import cache as repo

logger = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock that keeps the scheduled pass on one node at a time.
MAINTENANCE_LOCK_KEY = 0x5EC_CAC4E


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    """What a refresh must run again: the cached request, in its scope."""

    tenant_id: str
    model: str
    temperature: float
    max_tokens: int | None
    sections: dict[str, str]
    user_text: str


@dataclass(frozen=True, slots=True)
class Replacement:
    """The keyed sections that replace retired ones, when they can be sent as they are."""

    sections: dict[str, str]
    #: :func:`~server.cache.scope.sections_hash` of the new version's sections.
    source_hash: str


#: Provided by the run service: runs a request again and returns the new answer.
Refresher = Callable[[RefreshRequest], Awaitable[Completion]]


@dataclass(frozen=True, slots=True)
class InvalidationOutcome:
    """How many entries an invalidation deleted and refreshed."""

    deleted: int = 0
    refreshed: int = 0

    def __add__(self, other: InvalidationOutcome) -> InvalidationOutcome:
        return InvalidationOutcome(self.deleted + other.deleted, self.refreshed + other.refreshed)


def epoch_seconds(moment: datetime) -> float:
    """Seconds since the epoch of a naive UTC datetime."""
    return (moment - datetime(1970, 1, 1)).total_seconds()


def rule_condition(
    tenant_id: str, rule: InvalidationRule, now: datetime, *, scheduled: bool
) -> ColumnElement[bool]:
    """The entries a rule matches (a scheduled tag/pattern refresh: only the expired ones)."""
    if rule.type == "tag":
        condition = repo.tag_condition(tenant_id, str(rule.value))
    elif rule.type == "pattern":
        condition = repo.pattern_condition(tenant_id, str(rule.value))
    elif rule.type == "time":
        condition = repo.older_than_condition(tenant_id, now - timedelta(seconds=int(rule.value)))
    else:
        condition = repo.hit_count_condition(tenant_id, int(rule.value))
    if scheduled and rule.action == "refresh" and rule.type in ("tag", "pattern"):
        condition = and_(condition, SemanticCache.expires_at <= now)
    return condition


class Invalidator:
    """Deletes and refreshes entries, keeping the indexes in step through ``changes``."""

    def __init__(self, changes: CommittedChanges, *, refresh_batch: int) -> None:
        self._changes = changes
        self._refresh_batch = refresh_batch
        self.refresher: Refresher | None = None

    async def apply(
        self,
        db: AsyncSession,
        tenant_id: str,
        policy: CachePolicy,
        condition: ColumnElement[bool],
        action: RuleAction,
        now: datetime,
    ) -> InvalidationOutcome:
        """Delete or refresh the entries matching ``condition``.

        Without a refresher (no run service), ``refresh`` deletes: a stale answer is not kept.
        A refresh that fails keeps the entry as it was, for the next pass.
        """
        if action == "delete" or self.refresher is None:
            removed = await repo.delete_where(db, condition)
            self._changes.removed(db, removed)
            return InvalidationOutcome(deleted=len(removed))
        refreshed = 0
        for entry in await repo.entries_where(db, condition, self._refresh_batch):
            if await self._refresh(db, entry, policy, now):
                refreshed += 1
        return InvalidationOutcome(refreshed=refreshed)

    async def apply_rules(
        self,
        db: AsyncSession,
        tenant_id: str,
        policy: CachePolicy,
        now: datetime,
        *,
        scheduled: bool,
    ) -> InvalidationOutcome:
        """Apply each of the tenant's rules in order."""
        outcome = InvalidationOutcome()
        for rule in policy.rules:
            condition = rule_condition(tenant_id, rule, now, scheduled=scheduled)
            outcome += await self.apply(db, tenant_id, policy, condition, rule.action, now)
        return outcome

    async def purge(self, db: AsyncSession, now: datetime, tenant_id: str | None) -> int:
        """Delete expired entries (of one tenant, or of all); returns how many."""
        removed = await repo.purge_expired(db, now, tenant_id)
        self._changes.removed(db, removed)
        return len(removed)

    async def retire(
        self,
        db: AsyncSession,
        tenant_id: str,
        old_hash: str,
        policy: CachePolicy,
        now: datetime,
        replacement: Replacement | None,
    ) -> InvalidationOutcome:
        """Retire the tenant's entries keyed on sections that hash to ``old_hash``.

        The tenant's rules decide between delete and refresh: an entry that one of its
        ``refresh`` rules matches is run again with the ``replacement`` sections and moves to
        their scope (up to ``refresh_batch`` of them); every other one is deleted. Without a
        replacement (the new sections hold placeholders, so only a run can render them), a
        refresher, or when the re-run fails, the entry is deleted: its answer is stale.
        """
        condition = repo.sections_condition(tenant_id, old_hash)
        refreshed = 0
        refresh_rules = [rule for rule in policy.rules if rule.action == "refresh"]
        if replacement is not None and self.refresher is not None and refresh_rules:
            matched = or_(
                *(rule_condition(tenant_id, rule, now, scheduled=False) for rule in refresh_rules)
            )
            for entry in await repo.entries_where(
                db, and_(condition, matched), self._refresh_batch
            ):
                if await self._refresh(db, entry, policy, now, replacement):
                    refreshed += 1
        removed = await repo.delete_where(db, condition)
        self._changes.removed(db, removed)
        return InvalidationOutcome(deleted=len(removed), refreshed=refreshed)

    async def _refresh(
        self,
        db: AsyncSession,
        entry: SemanticCache,
        policy: CachePolicy,
        now: datetime,
        replacement: Replacement | None = None,
    ) -> bool:
        """Run ``entry`` again (with the ``replacement`` sections: in their scope)."""
        assert self.refresher is not None
        sections = dict(entry.sections or {}) if replacement is None else replacement.sections
        request = RefreshRequest(
            tenant_id=entry.tenant_id or "",
            model=entry.model,
            temperature=(entry.temperature or 0) / 100,
            max_tokens=entry.max_tokens,
            sections=sections,
            user_text=entry.prompt,
        )
        try:
            completion = await self.refresher(request)
        except ProviderError as exc:
            logger.warning("semantic cache: refreshing entry %s failed: %s", entry.id, exc.message)
            return False
        if replacement is not None:
            moved = CacheScope(
                entry.tenant_id or "",
                entry.model,
                request.temperature,
                entry.max_tokens,
                sections_hash(replacement.sections),
            )
            entry.scope_key = moved.key
            entry.sections_hash = moved.sections_hash
            entry.source_hash = replacement.source_hash
            entry.sections = keyed_sections(replacement.sections)
        entry.response = completion.text
        entry.prompt_tokens = completion.usage.prompt
        entry.completion_tokens = completion.usage.completion
        entry.created_at = now
        entry.last_accessed_at = now
        entry.expires_at = now + timedelta(seconds=policy.default_ttl_seconds)
        entry.hit_count = 0
        await db.flush()
        stored = entry.vector if entry.vector is not None else entry.embedding
        if stored and entry.tenant_id is not None:
            scope: ScopeId = (entry.tenant_id, entry.scope_key, entry.embedder)
            vector = vector_of(stored)
            self._changes.added(db, Added(scope, entry.id, vector, epoch_seconds(entry.expires_at)))
        return True


async def try_maintenance_lock(db: AsyncSession) -> bool:
    """Take the scheduled pass's lock for this transaction (always granted on SQLite)."""
    if (await db.connection()).dialect.name != "postgresql":
        return True
    granted = await db.scalar(select(func.pg_try_advisory_xact_lock(MAINTENANCE_LOCK_KEY)))
    return bool(granted)
