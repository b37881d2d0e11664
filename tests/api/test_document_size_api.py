"""REST writes that feed a session obey ``PROMPT_STUDIO_MAX_DOCUMENT_BYTES`` (UTF-8 bytes)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from server.hub.doc_size import DocumentTooLarge
from tests.support.inprocess import StudioApi

LIMIT = 1024


async def test_a_session_created_with_content_over_the_limit_is_refused_422(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    async with make_api(max_document_bytes=LIMIT) as api:
        owner = await api.account()
        fits = await api.call(
            "POST", "/api/sessions", owner, json={"name": "s", "content": "x" * LIMIT}
        )
        assert fits.status_code == 201, fits.text
        # 513 characters, 1026 bytes: the bound counts bytes, not characters.
        for content in ("x" * (LIMIT + 1), "é" * (LIMIT // 2 + 1)):
            refused = await api.call(
                "POST", "/api/sessions", owner, json={"name": "s", "content": content}
            )
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == "document_too_large" and error["field"] == "content"
            assert str(LIMIT) in error["message"]


async def test_a_server_side_replace_past_the_limit_changes_nothing(
    make_api: Callable[..., AbstractAsyncContextManager[StudioApi]],
) -> None:
    async with make_api(max_document_bytes=LIMIT) as api:
        owner = await api.account()
        created = await api.call("POST", "/api/sessions", owner, json={"name": "s"})
        session_id = created.json()["id"]
        hub = api.services.hub
        with pytest.raises(DocumentTooLarge):
            await hub.replace_text(session_id, owner.user_id, "y" * (LIMIT + 1), origin="restore")
        rev, durable = await hub.replace_text(
            session_id, owner.user_id, "y" * LIMIT, origin="restore"
        )
        await durable
        detail = await api.call("GET", f"/api/sessions/{session_id}", owner)
        assert detail.json()["content"] == "y" * LIMIT and rev == 1
