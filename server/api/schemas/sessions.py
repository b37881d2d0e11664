"""Bodies of the collaboration-session endpoints: sessions, members, history."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from server.api.types import (
    ApiModel,
    DbInt,
    Description,
    LongText,
    Name,
    Page,
    PatchModel,
    UtcDatetime,
    reject_null,
)
from storage.models.collaboration import MemberRole

Role = MemberRole


class SessionCreate(ApiModel):
    """``POST /api/sessions``."""

    name: Name
    description: Description | None = None
    content: LongText | None = Field(default=None, description="initial text of the document")
    prompt_id: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="start from this prompt's version; the session remembers it"
    )
    version: DbInt | None = Field(default=None, description="the version (default: resolve)")

    @model_validator(mode="after")
    def _one_starting_text(self) -> SessionCreate:
        if self.prompt_id is not None and self.content:
            raise ValueError("give content or prompt_id, not both")
        if self.version is not None and self.prompt_id is None:
            raise ValueError("version needs prompt_id")
        return self


class SessionUpdate(PatchModel):
    """``PATCH /api/sessions/{id}``: at least one of the fields."""

    name: Name | None = None
    description: Description | None = None

    _not_null = field_validator("name", mode="before")(reject_null)


class SessionOut(ApiModel):
    """A collaboration session as the API shows it."""

    id: str
    name: str
    description: str | None
    is_active: bool
    owner_id: str
    tenant_id: str | None
    prompt_id: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class SessionCreated(SessionOut):
    """A new session with its share link: the only time the share token is shown."""

    content: str
    share_token: str
    ws_url: str
    role: Role
    member_count: int


class SessionSummary(SessionOut):
    """A session in the list, with its member count."""

    member_count: int


class SessionList(Page):
    """One page of the tenant's active sessions."""

    items: list[SessionSummary]


class SessionDetail(SessionOut):
    """One session with its current text (live when the document is loaded on this node)."""

    content: str
    member_count: int
    live: bool
    rev: int | None = Field(default=None, description="the live revision, when loaded")
    connections: int | None = Field(default=None, description="connections on this node")


class ShareLink(ApiModel):
    """A freshly minted share link (the old one admits nobody from now on)."""

    share_token: str
    ws_url: str


class MemberOut(ApiModel):
    """A member of a session."""

    user_id: str
    name: str
    email: str
    color: str | None
    role: Role
    joined_at: UtcDatetime
    last_seen_at: UtcDatetime
    online: bool


class MemberList(ApiModel):
    """Everyone in a session."""

    items: list[MemberOut]


class RoleUpdate(ApiModel):
    """``PUT /api/sessions/{id}/members/{user_id}``."""

    role: Role


class RoleOut(ApiModel):
    """A member's role after a change."""

    user_id: str
    role: Role


class EditUser(ApiModel):
    """Who made an edit."""

    id: str
    name: str | None


class EditOut(ApiModel):
    """One recorded edit."""

    id: int
    user: EditUser
    operation: dict[str, Any]
    origin: str
    created_at: UtcDatetime


class HistoryList(Page):
    """One page of a session's edits, newest first."""

    items: list[EditOut]


class EditDetail(EditOut):
    """One edit and the text right after it."""

    content: str


class RestoreRequest(ApiModel):
    """``POST /api/sessions/{id}/restore``."""

    edit_id: DbInt


class RestoreOut(ApiModel):
    """The change a restore made."""

    rev: int
    content: str
    restored_edit_id: int


class MeOut(ApiModel):
    """The caller."""

    id: str
    email: str
    name: str
    color: str
    tenant_id: str
