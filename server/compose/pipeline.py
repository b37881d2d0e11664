"""Running one compose stage: the offline engine, or a language model with validation and retry.

A model's answer is parsed as JSON (a code fence around it is tolerated) and validated against
the stage's pydantic model. An invalid answer is shown back to the model with the validation
error, ``retries`` times; after that the stage fails with :class:`ComposeStageError` naming the
agent and what was wrong. Provider failures fail the stage the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from server.compose import instructions, offline
from server.compose.models import (
    AGENT_NAMES,
    OUTPUT_MODELS,
    AgentOutput,
    ComposeInput,
    ConverterOutput,
    CriticOutput,
    TechniqueRow,
    to_json,
)
from server.llm.base import (
    ChatMessage,
    CompletionRequest,
    Provider,
    ProviderError,
)

#: The model name that selects the rule-based engine instead of an LLM.
OFFLINE_MODEL = "offline"

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)


class ComposeStageError(Exception):
    """A stage could not produce a valid answer; ``message`` is the run's ``error``."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage} ({AGENT_NAMES.get(stage, stage)}): {message}")
        self.stage = stage
        self.message = str(self)


class Agents(Protocol):
    """Plays one stage given the outputs of the stages before it."""

    async def run(
        self, stage: str, request: ComposeInput, previous: Mapping[str, dict[str, Any]]
    ) -> AgentOutput:
        """The validated output of ``stage``; raises :class:`ComposeStageError`."""
        ...


def _previous(stage: str, previous: Mapping[str, dict[str, Any]], earlier: str) -> dict[str, Any]:
    if earlier not in previous:
        raise ComposeStageError(stage, f"the output of {earlier} is missing")
    return previous[earlier]


@dataclass(frozen=True, slots=True)
class OfflineAgents:
    """The deterministic rule engine (:mod:`server.compose.offline`)."""

    techniques: Sequence[TechniqueRow]

    async def run(
        self, stage: str, request: ComposeInput, previous: Mapping[str, dict[str, Any]]
    ) -> AgentOutput:
        """Run ``stage`` with the rules; earlier outputs come from storage as JSON."""
        if stage == "agent1":
            return offline.convert(request)
        converted = ConverterOutput.model_validate(_previous(stage, previous, "agent1"))
        if stage == "agent2":
            return offline.critique(request, converted, self.techniques)
        critic = CriticOutput.model_validate(_previous(stage, previous, "agent2"))
        return offline.judge(request, converted, critic)


def parse_answer(stage: str, text: str) -> AgentOutput:
    """An agent's answer as its model; raises ValueError with a message fit for the model."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict):
        raise ValueError("the answer must be a JSON object")
    try:
        return OUTPUT_MODELS[stage].model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'answer'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:10]
        )
        raise ValueError(f"the JSON does not match the shape ({problems})") from None


@dataclass(frozen=True, slots=True)
class LlmAgents:
    """Each stage played by a language model through a :class:`Provider`."""

    provider: Provider
    model: str
    temperature: float
    max_tokens: int | None
    techniques: Sequence[TechniqueRow]
    #: How many times an invalid answer is shown back to the model before the stage fails.
    retries: int = 1

    def _conversation(
        self, stage: str, request: ComposeInput, previous: Mapping[str, dict[str, Any]]
    ) -> list[ChatMessage]:
        if stage == "agent1":
            system, material = instructions.CONVERTER, instructions.converter_material(request)
        elif stage == "agent2":
            system = instructions.CRITIC
            converted = _previous(stage, previous, "agent1")
            material = instructions.critic_material(request, converted, self.techniques)
        else:
            system = instructions.JUDGE
            material = instructions.judge_material(
                request, _previous(stage, previous, "agent1"), _previous(stage, previous, "agent2")
            )
        return [ChatMessage("system", system), ChatMessage("user", material)]

    async def run(
        self, stage: str, request: ComposeInput, previous: Mapping[str, dict[str, Any]]
    ) -> AgentOutput:
        """Ask the model, validate, show it its mistake up to ``retries`` times."""
        messages = self._conversation(stage, request, previous)
        problem = ""
        for _ in range(self.retries + 1):
            try:
                answer = await self.provider.complete(
                    CompletionRequest(
                        model=self.model,
                        messages=messages,
                        temperature=self.temperature,
                        max_tokens=self.max_tokens,
                        json_mode=True,
                    )
                )
            except ProviderError as exc:
                raise ComposeStageError(stage, f"{exc.code}: {exc.message}") from exc
            try:
                return parse_answer(stage, answer.text)
            except ValueError as exc:
                problem = str(exc)
            messages = [
                *messages,
                ChatMessage("assistant", answer.text),
                ChatMessage("user", instructions.RETRY.format(error=problem)),
            ]
        attempts = self.retries + 1
        raise ComposeStageError(
            stage, f"the model gave no valid answer in {attempts} attempt(s): {problem}"
        )


def stored(output: AgentOutput) -> dict[str, Any]:
    """What is stored for a stage's output (the schema doc's JSON)."""
    return to_json(output)
