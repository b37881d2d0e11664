"""``/openapi.json`` documents the error answers every operation can give, in the real shape."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import create_app
from server.settings import Settings

ENVELOPE = "#/components/schemas/ErrorEnvelope"
RUN_ENVELOPE = "#/components/schemas/RunErrorEnvelope"


def _operations() -> list[tuple[str, dict[str, Any]]]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", operator_key="k" * 32))
    spec = app.openapi()
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method, operation in item.items()
    ]


def _schema_ref(operation: dict[str, Any], status: str) -> str:
    return str(operation["responses"][status]["content"]["application/json"]["schema"]["$ref"])


OPERATIONS = _operations()


@pytest.mark.parametrize(("label", "operation"), OPERATIONS, ids=[op[0] for op in OPERATIONS])
def test_every_operation_documents_its_errors_in_the_one_shape(
    label: str, operation: dict[str, Any]
) -> None:
    errors = {s for s in operation["responses"] if s.startswith(("4", "5"))}
    assert {"401", "422"} <= errors, label
    if "{" in label:  # an id in the path: unknown (or another tenant's) ids answer 404
        assert "404" in errors, label
    for status in errors:
        assert _schema_ref(operation, status) in {ENVELOPE, RUN_ENVELOPE}, (label, status)


def test_the_error_shape_is_the_handlers_shape() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", operator_key="k" * 32))
    schemas = app.openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is never shown
    assert schemas["ErrorEnvelope"]["required"] == ["error"]
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}
