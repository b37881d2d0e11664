"""The JSON each compose agent produces, as the schema doc gives it (``agent_compose_results``).

Agents answer in camelCase (``modelHints``, ``alternativePrompt``, ``finalPrompt`` …); the
models accept exactly those keys and dump back to them with :func:`to_json`. Unknown keys in a
model's answer are ignored (models like to add commentary); missing or mistyped keys are a
validation error, which the pipeline shows the model once before giving up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The stages in order; ``done`` after the judge.
Stage = Literal["agent1", "agent2", "agent3", "done"]
AGENT_STAGES: tuple[Stage, Stage, Stage] = ("agent1", "agent2", "agent3")
#: Human names of the agents, used in progress events and error messages.
AGENT_NAMES: dict[str, str] = {"agent1": "converter", "agent2": "critic", "agent3": "judge"}


class _AgentModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)


class PromptSections(_AgentModel):
    """The four sections of a structured prompt."""

    system: str
    developer: str
    user: str
    context: str


class Variable(_AgentModel):
    """A template variable: a stable id, the name used as ``{{name}}``, a default value."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    value: str


class ConverterOutput(_AgentModel):
    """Agent 1: the rough idea as a structured prompt."""

    system: str
    developer: str
    user: str
    context: str
    variables: list[Variable]
    model_hints: str | None = Field(default=None, alias="modelHints")

    def sections(self) -> PromptSections:
        """The prompt part, without variables and hints."""
        return PromptSections(
            system=self.system, developer=self.developer, user=self.user, context=self.context
        )


class CriticOutput(_AgentModel):
    """Agent 2: what is wrong with the converter's prompt, and a better one."""

    criticisms: list[str]
    alternative_prompt: PromptSections = Field(alias="alternativePrompt")
    fixes: list[str]


class JudgeOutput(_AgentModel):
    """Agent 3: the final prompt, merged from the two."""

    final_prompt: PromptSections = Field(alias="finalPrompt")
    final_variables: list[Variable] = Field(alias="finalVariables")
    decision_notes: list[str] = Field(alias="decisionNotes")


AgentOutput = ConverterOutput | CriticOutput | JudgeOutput

#: The output model of each stage.
OUTPUT_MODELS: dict[str, type[AgentOutput]] = {
    "agent1": ConverterOutput,
    "agent2": CriticOutput,
    "agent3": JudgeOutput,
}


def to_json(output: AgentOutput) -> dict[str, Any]:
    """The schema doc's JSON for an agent's output (camelCase; no ``modelHints`` when absent)."""
    return output.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class ComposeInput:
    """What the user asked for: the rough idea and its optional framing."""

    raw: str
    goal: str | None = None
    constraints: str | None = None
    output_format: str | None = None


@dataclass(frozen=True, slots=True)
class TechniqueRow:
    """The part of a ``techniques`` row the critic cites."""

    title: str
    description: str
    snippet: str | None = None
