"""Bodies of the agent-compose endpoints.

``model_config`` is reserved in pydantic, so models carry it as ``llm_config`` under the alias
``model_config`` (the name clients see); ``maxTokens`` keeps the schema doc's spelling.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from server.api.types import AliasModel, ApiModel, LongText, Name, Page, Text, UtcDatetime

Status = Literal["pending", "running", "completed", "failed"]
Stage = Literal["agent1", "agent2", "agent3", "done"]
SessionId = Annotated[Text, StringConstraints(min_length=1, max_length=100)]
PromptId = Annotated[Text, StringConstraints(min_length=1, max_length=100)]


class ComposeModelConfig(AliasModel):
    """Which model plays the agents (``offline``: the rule engine), and how."""

    model: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)]
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] | None = Field(
        default=None, alias="maxTokens"
    )


class ComposeCreate(AliasModel):
    """``POST /api/compose``: the rough idea and how to compose it."""

    raw: Annotated[LongText, StringConstraints(min_length=1)] = Field(
        description="the rough idea; at most PROMPT_STUDIO_COMPOSE_MAX_INPUT_CHARS characters"
    )
    goal: LongText | None = None
    constraints: LongText | None = None
    output_format: LongText | None = None
    llm_config: ComposeModelConfig = Field(alias="model_config")
    session_id: SessionId | None = Field(
        default=None, description="a live session whose clients see the job as 'Composer'"
    )


class ComposeAccepted(ApiModel):
    """The job was queued."""

    id: int
    status: Status


class ComposeInputOut(ApiModel):
    """What the job was asked to compose."""

    raw: str
    goal: str | None
    constraints: str | None
    output_format: str | None


class ComposeOutputs(ApiModel):
    """Each agent's JSON as soon as it is validated (the schema doc's shapes)."""

    agent1: dict[str, Any] | None = None
    agent2: dict[str, Any] | None = None
    agent3: dict[str, Any] | None = None


class ComposeOut(AliasModel):
    """A compose job."""

    id: int
    status: Status
    stage: Stage
    progress: int
    cancelled: bool = Field(description="failed because it was cancelled")
    cancel_requested: bool = Field(description="a cancel was asked for (it may still stop)")
    error: str | None
    input: ComposeInputOut
    llm_config: dict[str, Any] = Field(alias="model_config")
    session_id: str | None
    attempts: int
    outputs: ComposeOutputs
    created_at: UtcDatetime
    updated_at: UtcDatetime
    finished_at: UtcDatetime | None


class ComposeList(Page):
    """A page of the tenant's compose jobs, newest first."""

    items: list[ComposeOut]


class ComposeSave(ApiModel):
    """``POST /api/compose/{id}/save``: a new version of ``prompt_id``, or a new prompt ``name``."""

    prompt_id: PromptId | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ComposeSave:
        if (self.prompt_id is None) == (self.name is None):
            raise ValueError("give either prompt_id (a new version) or name (a new prompt)")
        return self


class ComposeSaved(ApiModel):
    """Where the judge's prompt was saved."""

    prompt_id: str
    version: int
    created_prompt: bool
