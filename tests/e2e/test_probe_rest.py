"""Hostile REST input against a real server: never a 500, always the documented error shape.

Issue 9, item 4: a 10,000-deep body, a lone surrogate, ids past 64 bits, NaN/Infinity and NUL
characters used to reach the database or the JSON parser and come back as 500 tracebacks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.api import call, create_session
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "field"),
    [
        ("POST", "/api/sessions", b"[" * 10_000 + b"]" * 10_000, 400, None),
        ("POST", "/api/sessions", b'{"name":' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, None),
        ("POST", "/api/sessions", b'{"name":"\\ud800"}', 422, "name"),
        ("POST", "/api/sessions", b'{"name":"a\\u0000b"}', 422, "name"),
        ("POST", "/api/sessions", b'{"name":NaN}', 400, None),
        ("POST", "/api/sessions", b'{"name":"x","content":Infinity}', 400, None),
        (
            "POST",
            "/api/sessions/{id}/restore",
            b'{"edit_id":1180591620717411303424}',
            422,
            "edit_id",
        ),
        ("POST", "/api/sessions/{id}/restore", b'{"edit_id":1e400}', 422, "edit_id"),
        ("GET", "/api/sessions/{id}/history/1180591620717411303424", None, 422, "edit_id"),
        ("GET", "/api/sessions/{id}/history/-1", None, 422, "edit_id"),
        ("GET", "/api/sessions/a%00b", None, 422, "session_id"),
        ("GET", "/api/sessions?limit=99999999999999999999999", None, 422, "limit"),
        ("GET", "/api/templates?q=a%00b", None, 422, "q"),
        ("PATCH", "/api/sessions/{id}", b'{"name":"\\udfff\\ud800"}', 422, "name"),
        ("POST", "/api/sessions", b"\xff\xfe not utf-8", 400, None),
    ],
)
async def test_hostile_bodies_and_ids_get_a_clear_error(
    server: ServerProcess,
    team: list[Account],
    method: str,
    path: str,
    raw: bytes | None,
    status: int,
    field: str | None,
) -> None:
    alice = team[0]
    session = await create_session(server, alice, "text")
    kwargs: dict[str, Any] = {"headers": {**alice.headers, **JSON}}
    if raw is not None:
        kwargs["content"] = raw
    response = await call(server, None, method, path.format(id=session["id"]), **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert error.get("field") == field


async def test_an_oversized_body_is_refused_before_it_is_parsed(
    server: ServerProcess, team: list[Account]
) -> None:
    body = b'{"name":"x","content":"' + b"a" * (3 * 1024 * 1024) + b'"}'
    response = await call(
        server, None, "POST", "/api/sessions", content=body, headers={**team[0].headers, **JSON}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
