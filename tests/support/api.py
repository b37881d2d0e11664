"""REST helpers for end-to-end tests against a running server."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.accounts import Account
from tests.support.server_process import ServerProcess


async def call(
    server: ServerProcess, account: Account | None, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One REST request as ``account`` (anonymous when None)."""
    headers = account.headers if account is not None else {}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
        return await http.request(method, path, **kwargs)


async def create_session(
    server: ServerProcess, owner: Account, content: str = "", *, name: str = "Doc", **fields: Any
) -> dict[str, Any]:
    """``POST /api/sessions``, asserting it succeeded."""
    body = {"name": name, "content": content, **fields}
    response = await call(server, owner, "POST", "/api/sessions", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def grant(
    server: ServerProcess, owner: Account, session_id: str, user: Account, role: str = "EDITOR"
) -> None:
    """Give ``user`` a role in the session, asserting it succeeded."""
    response = await call(
        server,
        owner,
        "PUT",
        f"/api/sessions/{session_id}/members/{user.user_id}",
        json={"role": role},
    )
    assert response.status_code == 200, response.text


async def session_content(server: ServerProcess, account: Account, session_id: str) -> str:
    """The session's current text as ``GET /api/sessions/{id}`` shows it."""
    response = await call(server, account, "GET", f"/api/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["content"])


async def has_content(
    server: ServerProcess, account: Account, session_id: str, expected: str
) -> bool:
    """Whether the session's text is ``expected`` (for :func:`tests.support.waiting.eventually`)."""
    return await session_content(server, account, session_id) == expected
