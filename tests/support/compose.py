"""Compose test helpers: scripted agent answers for the fake OpenAI server, job helpers."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from server.compose.agents import JobSpec
from server.compose.pipeline import OFFLINE_MODEL, Agents, LlmAgents, OfflineAgents
from server.llm.openai_provider import OpenAICompatibleProvider
from tests.support.fake_openai import FakeOpenAI

SECTIONS = {
    "system": "You are a tester.",
    "developer": "Be brief.",
    "user": "Test {{thing}}.",
    "context": "",
}
GOOD = {
    "agent1": {**SECTIONS, "variables": [{"id": "thing", "name": "thing", "value": ""}], "modelHints": "low temperature"},
    "agent2": {"criticisms": ["no examples"], "alternativePrompt": SECTIONS, "fixes": ["added nothing"]},
    "agent3": {
        "finalPrompt": SECTIONS,
        "finalVariables": [{"id": "thing", "name": "thing", "value": ""}],
        "decisionNotes": ["kept it"],
    },
}  # fmt: skip
_MARKERS = {"converter agent": "agent1", "critic agent": "agent2", "judge agent": "agent3"}

Reply = str | Callable[[Sequence[dict[str, Any]]], str]


def stage_of(messages: Sequence[dict[str, Any]]) -> str:
    """Which agent a chat request is for, from its system message."""
    system = str(messages[0].get("content", "")) if messages else ""
    for marker, stage in _MARKERS.items():
        if marker in system:
            return stage
    raise AssertionError(f"not a compose request: {system[:80]!r}")


def idea_of(messages: Sequence[dict[str, Any]]) -> str:
    """The raw idea in a compose request's material."""
    user = str(messages[1]["content"])
    body = user.removeprefix("<material>\n").removesuffix("\n</material>")
    return str(json.loads(body)["idea"]["raw"])


class AgentScript:
    """Answers compose requests per stage: queued replies first, then the stage's good JSON."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._queued: dict[str, list[Reply]] = {"agent1": [], "agent2": [], "agent3": []}
        self._lock = threading.Lock()
        #: Called (in the fake's thread) with the stage of every request before it is answered.
        self.before: Callable[[str], None] | None = None
        fake.reply = self._reply

    def queue(self, stage: str, *replies: Reply) -> None:
        """Answer the next requests of ``stage`` with these (strings or functions of messages)."""
        with self._lock:
            self._queued[stage].extend(replies)

    def _reply(self, messages: Sequence[dict[str, Any]]) -> str:
        stage = stage_of(messages)
        if self.before is not None:
            self.before(stage)
        with self._lock:
            reply = self._queued[stage].pop(0) if self._queued[stage] else None
        if reply is None:
            return json.dumps(GOOD[stage])
        return reply if isinstance(reply, str) else reply(messages)

    def requests_of(self, stage: str) -> list[list[dict[str, Any]]]:
        """The messages of every chat request the fake got for ``stage``."""
        return [
            r.body["messages"]
            for r in self.fake.chat_requests()
            if isinstance(r.body, dict) and stage_of(r.body["messages"]) == stage
        ]


def fake_agents(fake: FakeOpenAI, *, retries: int = 1) -> Callable[[JobSpec], Any]:
    """An agents factory: ``offline`` → the rule engine, any other model → the fake server."""

    @contextlib.asynccontextmanager
    async def open_agents(spec: JobSpec) -> AsyncIterator[Agents]:
        model = str(spec.model_config["model"])
        if model == OFFLINE_MODEL:
            yield OfflineAgents(spec.techniques)
            return
        provider = OpenAICompatibleProvider(
            base_url=fake.base_url, api_key=fake.api_key, timeout_seconds=30.0, max_retries=0
        )
        try:
            yield LlmAgents(
                provider=provider,
                model=model,
                temperature=float(spec.model_config.get("temperature", 0.2)),
                max_tokens=spec.model_config.get("maxTokens"),
                techniques=spec.techniques,
                retries=retries,
            )
        finally:
            await provider.aclose()

    return open_agents
