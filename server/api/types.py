"""Field types and the base model shared by every request and response body.

Declared once here so every endpoint refuses the same classes of bad input the same way:
unknown fields, NaN/Infinity, lone surrogates, integers past 64 bits, over-long strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Self, TypeVar

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

#: The largest value of a signed 64-bit integer column (SERIAL ids, counters).
MAX_DB_INT = 2**63 - 1


def _no_lone_surrogates(value: str) -> str:
    """Refuse text that cannot be stored: a lone UTF-16 surrogate (from ``\\ud800``), which
    is not UTF-8, or a NUL character, which PostgreSQL refuses in text and JSON."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains a lone UTF-16 surrogate") from None
    if "\x00" in value:
        raise ValueError("text contains a NUL character")
    return value


#: Any stored text: valid Unicode that encodes as UTF-8.
Text = Annotated[str, AfterValidator(_no_lone_surrogates)]


_UTF8 = AfterValidator(_no_lone_surrogates)

#: A display name: 1-200 characters, surrounding whitespace removed.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), _UTF8]
#: A free-text description.
Description = Annotated[str, StringConstraints(max_length=2_000), _UTF8]
#: Prompt text, templates, document content.
LongText = Annotated[str, StringConstraints(max_length=1_000_000), _UTF8]
#: A tag or category: 1-64 characters.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), _UTF8]
#: A URL or other reference: 1-2000 characters.
Url = Annotated[
    str, StringConstraints(min_length=1, max_length=2_000, strip_whitespace=True), _UTF8
]
#: An integer id or count that fits a 64-bit database column.
DbInt = Annotated[int, Field(ge=1, le=MAX_DB_INT, strict=True)]


def _utc_iso(value: datetime) -> str:
    # Timestamps are stored naive and always in UTC.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


#: A stored (naive UTC) timestamp, shown as ISO 8601 with a ``Z``.
UtcDatetime = Annotated[
    datetime,
    PlainSerializer(_utc_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class ApiModel(BaseModel):
    """Base of every request and response body."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, from_attributes=True, strict=True
    )


class AliasModel(ApiModel):
    """An :class:`ApiModel` with field aliases (camelCase JSON keys such as ``maxTokens``) that
    may also be built from the attribute names."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        from_attributes=True,
        strict=True,
        populate_by_name=True,
    )


def reject_null(value: object) -> object:
    """A ``mode="before"`` field validator: the field may be left out, but not set to null.

    ``_not_null = field_validator("name", mode="before")(reject_null)`` in a model body.
    """
    if value is None:
        raise ValueError("cannot be null")
    return value


class PatchModel(ApiModel):
    """A PATCH body: every field optional, at least one given."""

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            fields = ", ".join(type(self).model_fields)
            raise ValueError(f"nothing to change: give at least one of {fields}")
        return self


class PageParams:
    """``?limit=&offset=`` as a dependency: ``page: Annotated[PageParams, Depends()]``."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="rows to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


class Page(ApiModel):
    """The paging fields every list response carries next to its ``items``."""

    total: int
    limit: int
    offset: int


PageT = TypeVar("PageT", bound=Page)


def page_of(model: type[PageT], items: Iterable[object], total: int, page: PageParams) -> PageT:
    """A ``model`` list response: ``items`` with the total and the request's paging."""
    fields = {"items": list(items), "total": total, "limit": page.limit, "offset": page.offset}
    return model.model_validate(fields)


#: A text id in a path (UUIDs): bounded, so no request sends megabytes into a query.
ResourceId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
#: An integer id in a path (SERIAL columns): 1 … 2**63-1, else 422.
IntId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
#: A text id inside a body (UUIDs).
ResourceIdText = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]+$")
]
#: A free-text search in a query string (``?q=``).
SearchQuery = Annotated[
    str | None,
    Query(max_length=200, pattern=r"^[^\x00]*$", description="name/description contains"),
]
#: An exact-match filter in a query string (``?category=``, ``?tag=``).
FilterQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class FieldError(BaseModel):
    """One invalid field of a 422 answer."""

    field: str | None
    message: str


class ErrorDetail(BaseModel):
    """The error object of every error answer (:func:`server.errors.error_response`)."""

    # Some errors add keys of their own (e.g. ``run_id`` on a failed run).
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="422: every invalid field, the first one also in ``field``"
    )


class ErrorEnvelope(BaseModel):
    """``{"error": {...}}``: every error answer."""

    error: ErrorDetail


#: What each error status means on any route (a router may say it more precisely).
ERROR_MEANINGS = {
    400: "a body that is malformed JSON or not a JSON object",
    401: "no, unknown or expired credentials",
    403: "not allowed to do this (role, read-only resource)",
    404: "unknown id (or another tenant's)",
    409: "conflicts with the current state (a duplicate, a stale version)",
    410: "no longer usable (a deactivated session or share link)",
    413: "a body over the size limit",
    422: "an invalid field (named in ``field``)",
    429: "too many requests (with Retry-After)",
    502: "an upstream provider failed or answered nonsense",
    503: "a dependency is not reachable",
    504: "an upstream provider did not answer in time",
}


def error_responses(
    *statuses: int, meanings: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route or router: these statuses, all in the one error shape."""
    described = {**ERROR_MEANINGS, **(meanings or {})}
    return {
        status: {"model": ErrorEnvelope, "description": described[status]} for status in statuses
    }
