"""Precision sampling: a share of semantic hits is checked by a judge model.

The semantic cache is only worth its savings if what it serves is right, so a configurable
sample of semantic (not exact) hits is handed to a judge in the background: "does the answer
cached for request B also answer request A?". Verdicts are counted per tenant and day
(``judged_hits``, ``judged_correct``); their ratio is the precision shown in the statistics.

The ``offline`` judge needs no model: it compares the key terms of the two requests (the same
terms the offline model extracts) and accepts when most of the shorter list is shared. Any other
judge model is asked through the run service's providers and must answer JSON
``{"same": true|false}`` (or a leading yes/no); an answer it cannot read counts as no verdict.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.cache.statistics import day_of
from server.llm.base import ChatMessage, CompletionRequest, Provider, ProviderError
from server.llm.offline import OFFLINE_MODEL, key_terms
from storage.repositories import cache as repo

logger = logging.getLogger(__name__)

#: (tenant id, model) -> the provider serving that model for that tenant.
ProviderResolver = Callable[[str, str], Awaitable[Provider]]

#: Share of the shorter key-term list the offline judge needs in common.
OFFLINE_OVERLAP = 0.5
JUDGE_MAX_TOKENS = 20
JUDGE_SYSTEM = (
    "You check a semantic cache. Request A arrived; the cache wants to answer it with the answer "
    'that was given to request B. Reply with JSON only: {"same": true} if that answer fully '
    'and correctly answers request A, otherwise {"same": false}.'
)
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JudgeSample:
    """One semantic hit to check."""

    tenant_id: str
    judge_model: str
    request: str
    cached_request: str
    cached_response: str
    at: datetime


def offline_verdict(request: str, cached_request: str) -> bool:
    """Whether the two requests share most key terms (the offline judge)."""
    mine, theirs = set(key_terms(request)), set(key_terms(cached_request))
    if not mine or not theirs:
        return mine == theirs
    return len(mine & theirs) / min(len(mine), len(theirs)) >= OFFLINE_OVERLAP


def parse_verdict(text: str) -> bool | None:
    """A judge model's verdict: JSON ``{"same": bool}`` or a leading yes/no; else None."""
    stripped = text.strip()
    try:
        answer = json.loads(stripped)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("same"), bool):
        return bool(answer["same"])
    match = _YES_NO.match(stripped)
    return None if match is None else match.group(1).lower() == "yes"


class PrecisionJudge:
    """Judges submitted samples in one background task, recording each verdict."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        queue_limit: int,
        providers: ProviderResolver | None = None,
    ) -> None:
        self._sessions = sessions
        self._queue: asyncio.Queue[JudgeSample] = asyncio.Queue(maxsize=queue_limit)
        self.providers = providers
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.judged = 0

    async def start(self) -> None:
        """Start the worker."""
        self._task = asyncio.create_task(self._work(), name="semantic-cache-judge")

    async def stop(self) -> None:
        """Stop the worker; samples still queued are dropped (they are only samples)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def submit(self, sample: JudgeSample) -> bool:
        """Queue a sample; returns False (and counts it dropped) when the queue is full."""
        if self._task is None:
            return False
        try:
            self._queue.put_nowait(sample)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def verdict(self, sample: JudgeSample) -> bool | None:
        """Whether the cached answer was right for the request (None: no verdict)."""
        if sample.judge_model == OFFLINE_MODEL:
            return offline_verdict(sample.request, sample.cached_request)
        if self.providers is None:
            return None
        request = CompletionRequest(
            model=sample.judge_model,
            messages=[
                ChatMessage("system", JUDGE_SYSTEM),
                ChatMessage(
                    "user",
                    f"Request A:\n{sample.request}\n\nRequest B:\n{sample.cached_request}\n\n"
                    f"Answer given to B:\n{sample.cached_response}",
                ),
            ],
            temperature=0.0,
            max_tokens=JUDGE_MAX_TOKENS,
            json_mode=True,
        )
        try:
            provider = await self.providers(sample.tenant_id, sample.judge_model)
            completion = await provider.complete(request)
        except ProviderError as exc:
            logger.warning("semantic cache judge %s failed: %s", sample.judge_model, exc.message)
            return None
        return parse_verdict(completion.text)

    async def _work(self) -> None:
        while True:
            sample = await self._queue.get()
            try:
                verdict = await self.verdict(sample)
                if verdict is not None:
                    async with self._sessions() as db:
                        await repo.add_statistics(
                            db,
                            sample.tenant_id,
                            day_of(sample.at),
                            judged_hits=1,
                            judged_correct=int(verdict),
                        )
                        await db.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("semantic cache judge failed on a sample")
            finally:
                self.judged += 1
