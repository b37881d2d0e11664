"""Bodies of the prompts endpoints: prompts, versions, render, labels, diff, export/import.

``model_config`` is a reserved attribute name in pydantic, so models carry it as ``llm_config``
under the alias ``model_config`` (the name clients see, in requests and responses).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from server.api.types import (
    AliasModel,
    ApiModel,
    Description,
    LongText,
    Name,
    Page,
    PatchModel,
    Text,
    UtcDatetime,
    reject_null,
)

#: A variable name as declared (the domain checks it again and names the field).
VariableName = Annotated[Text, StringConstraints(max_length=200)]
#: A label name (1-64 of a-z, 0-9, '.', '_', '-'; checked by the domain).
LabelName = Annotated[Text, StringConstraints(min_length=1, max_length=64)]
#: The highest version number (a 32-bit column on PostgreSQL).
MAX_VERSION = 2**31 - 1
#: A version number of a prompt.
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION, strict=True)]
#: At most this many variable values in one render request.
MAX_RENDER_VALUES = 1_000


class Sections(ApiModel):
    """The structured sections of a prompt; a missing section is not part of the version."""

    system: LongText | None = None
    developer: LongText | None = None
    user: LongText | None = None
    context: LongText | None = None


class ModelConfig(ApiModel):
    """Which model to run a version with, and how."""

    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    maxTokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    topP: Annotated[float, Field(ge=0, le=1)] | None = None


class VariableIn(ApiModel):
    """A declared variable; ``value`` is its default (empty: none)."""

    name: VariableName
    value: LongText = ""
    id: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = None


class VariableOut(ApiModel):
    """A declared variable as stored."""

    id: str
    name: str
    value: str


class VersionCreate(AliasModel):
    """``POST /api/prompts/{id}/versions``: content and/or sections."""

    content: LongText | None = None
    sections: Sections | None = None
    variables: list[VariableIn] = Field(default_factory=list, max_length=10_000)
    llm_config: ModelConfig | None = Field(default=None, alias="model_config")
    message: Description | None = None

    @model_validator(mode="after")
    def _has_text(self) -> VersionCreate:
        if self.content is None and self.sections is None:
            raise ValueError("give content and/or sections")
        return self


class PromptCreate(ApiModel):
    """``POST /api/prompts``: with ``version``, the prompt starts with version 1."""

    name: Name
    description: Description | None = None
    version: VersionCreate | None = None


class PromptUpdate(PatchModel):
    """``PATCH /api/prompts/{id}``: at least one field."""

    name: Name | None = None
    description: Description | None = None

    _not_null = field_validator("name", mode="before")(reject_null)


class VersionSource(ApiModel):
    """Where a version came from: a live session (at an edit) or a marketplace listing."""

    session_id: str | None
    edit_id: int | None
    listing_id: str | None


class VersionOut(AliasModel):
    """One immutable version."""

    id: str
    prompt_id: str
    version: int
    content: str | None
    sections: dict[str, str] | None
    variables: list[VariableOut]
    llm_config: dict[str, Any] = Field(alias="model_config")
    message: str | None
    created_by: str | None
    created_at: UtcDatetime
    source: VersionSource


class SaveWarning(ApiModel):
    """A variable problem that did not stop the save."""

    code: Literal[
        "undeclared_variable", "unused_variable", "unclosed_placeholder", "invalid_placeholder"
    ]
    message: str
    field: str
    variable: str | None = None
    offset: int | None = None


class VersionSaved(VersionOut):
    """A new version, the warnings its variables gave, and the cache entries it retired."""

    warnings: list[SaveWarning]
    cache_entries_retired: int = Field(
        0,
        ge=0,
        description=(
            "semantic cache entries keyed on the system/developer/context sections this "
            "version changed, no longer served (deleted, or refreshed into the new sections)"
        ),
    )
    cache_entries_refreshed: int = Field(
        0, ge=0, description="of those, how many a refresh rule re-ran with the new sections"
    )


class VersionList(Page):
    """One page of a prompt's versions, newest first."""

    items: list[VersionOut]


class PromptOut(ApiModel):
    """A prompt."""

    id: str
    name: str
    description: str | None
    owner_id: str | None
    active_version_id: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PromptList(Page):
    """One page of the tenant's prompts, most recently updated first."""

    items: list[PromptOut]


class PromptDetail(PromptOut):
    """A prompt with its labels (name → version number) and active (production) version."""

    labels: dict[str, int]
    latest_version: int | None
    active_version: VersionOut | None


class PromptCreated(PromptOut):
    """A new prompt, with its version 1 when one was given."""

    version: VersionSaved | None


class RenderRequest(ApiModel):
    """``POST /api/prompts/{id}/render``: a version by number or label (default production,
    else latest), and the variable values."""

    version: VersionNumber | None = None
    label: LabelName | None = None
    variables: dict[VariableName, LongText] = Field(
        default_factory=dict, max_length=MAX_RENDER_VALUES
    )

    @model_validator(mode="after")
    def _one_reference(self) -> RenderRequest:
        if self.version is not None and self.label is not None:
            raise ValueError("give a version or a label, not both")
        return self


class Message(ApiModel):
    """One chat message."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str


class Rendered(ApiModel):
    """The rendered texts of a version and the chat messages they make."""

    prompt_id: str
    version: int
    content: str | None
    sections: dict[str, str] | None
    messages: list[Message]


class LabelSet(ApiModel):
    """``PUT /api/prompts/{id}/labels/{label}``."""

    version: VersionNumber


class LabelMove(ApiModel):
    """A label moved: the version numbers before and after (null = not set)."""

    label: str
    from_version: int | None
    to_version: int | None


class LabelEvent(LabelMove):
    """One recorded move: who and when."""

    user_id: str | None
    created_at: UtcDatetime


class Labels(Page):
    """A prompt's labels, and a page of every move (newest first)."""

    labels: dict[str, int]
    items: list[LabelEvent]


class TextDiff(ApiModel):
    """A unified diff of one text (``content`` or a section); "" when unchanged."""

    name: str
    changed: bool
    diff: str


class VariableChange(ApiModel):
    """A variable added, removed, or with a new default."""

    name: str
    change: Literal["added", "removed", "changed"]
    before: str | None
    after: str | None


class ConfigChange(ApiModel):
    """A model-config key added, removed or changed."""

    key: str
    change: Literal["added", "removed", "changed"]
    before: Any
    after: Any


class VersionDiff(AliasModel):
    """``GET /api/prompts/{id}/diff``."""

    from_version: int
    to_version: int
    texts: list[TextDiff]
    variables: list[VariableChange]
    llm_config: list[ConfigChange] = Field(alias="model_config")


class ExportedVersion(AliasModel):
    """One version in an export document."""

    version: VersionNumber
    content: LongText | None = None
    sections: Sections | None = None
    variables: list[VariableIn] = Field(default_factory=list, max_length=10_000)
    llm_config: ModelConfig | None = Field(default=None, alias="model_config")
    message: Description | None = None
    created_at: str | None = None


class ExportedPrompt(ApiModel):
    """The prompt's own fields in an export document."""

    name: Name
    description: Description | None = None


class ExportDocument(ApiModel):
    """A prompt with every version and label (``GET …/export``, ``POST /api/prompts/import``)."""

    format: Literal["prompt-studio/prompt"]
    format_version: Literal[1]
    exported_at: str | None = None
    prompt: ExportedPrompt
    versions: list[ExportedVersion] = Field(max_length=100_000)
    labels: dict[LabelName, VersionNumber] = Field(default_factory=dict, max_length=1_000)


class PublishRequest(ApiModel):
    """``POST /api/sessions/{id}/publish``: into the session's prompt unless one is named."""

    prompt_id: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = None
    message: Description | None = None


class Published(VersionSaved):
    """The version a session's live text became."""

    session_id: str
