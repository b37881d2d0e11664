"""The marketplace: submit a version, moderation, browse across tenants, fork."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.inprocess import StudioApi


async def _prompt(api: StudioApi, user: Account, content: str = "Summarise {{text}}") -> str:
    created = await api.call(
        "POST",
        "/api/prompts",
        user,
        json={
            "name": "Summariser",
            "version": {"content": content, "variables": [{"name": "text"}]},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _submit(api: StudioApi, user: Account, prompt_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "prompt_id": prompt_id,
        "version": 1,
        "title": "Summariser",
        "description": "Short summaries",
        "category": "writing",
        "tags": ["summary"],
        **fields,
    }
    response = await api.call("POST", "/api/marketplace", user, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_listing_is_moderated_then_seen_and_forked_by_another_tenant(
    api: StudioApi,
) -> None:
    author = await api.account("Author")
    reader = await api.account("Reader")  # another tenant
    prompt_id = await _prompt(api, author)
    listing = await _submit(api, author, prompt_id, title="Zx9 summariser")
    assert listing["status"] == "pending" and listing["content"] == "Summarise {{text}}"
    assert listing["author"] == {"name": "Author"}

    # Pending: only its author sees it.
    assert (await api.call("GET", f"/api/marketplace/{listing['id']}", reader)).status_code == 404
    assert (await api.call("GET", f"/api/marketplace/{listing['id']}", author)).status_code == 200
    hidden = await api.call("GET", "/api/marketplace?q=zx9", reader)
    assert hidden.json()["total"] == 0
    queue = await api.call("GET", "/api/admin/marketplace", headers=api.operator_headers)
    assert listing["id"] in [i["id"] for i in queue.json()["items"]]

    approved = await api.call(
        "POST", f"/api/admin/marketplace/{listing['id']}/approve", headers=api.operator_headers
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    seen = await api.call("GET", "/api/marketplace?q=ZX9", reader)
    assert [i["id"] for i in seen.json()["items"]] == [listing["id"]]
    item = seen.json()["items"][0]
    assert item["author"] == {"name": "Author"}
    assert "author_id" not in item and "tenant_id" not in item and "status" not in item

    forked = await api.call("POST", f"/api/marketplace/{listing['id']}/fork", reader)
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["version"]["version"] == 1
    version = await api.call("GET", f"/api/prompts/{fork['id']}/versions/1", reader)
    assert version.json()["content"] == "Summarise {{text}}"
    assert version.json()["source"]["listing_id"] == listing["id"]
    # The fork belongs to the reader's tenant only.
    assert (await api.call("GET", f"/api/prompts/{fork['id']}", author)).status_code == 404
    again = await api.call("GET", f"/api/marketplace/{listing['id']}", reader)
    assert again.json()["fork_count"] == 1


async def test_rejection_reason_reaches_the_author(api: StudioApi) -> None:
    author = await api.account("Author")
    listing = await _submit(api, author, await _prompt(api, author))
    rejected = await api.call(
        "POST",
        f"/api/admin/marketplace/{listing['id']}/reject",
        headers=api.operator_headers,
        json={"reason": "too generic"},
    )
    assert rejected.status_code == 200
    mine = await api.call("GET", "/api/marketplace/mine", author)
    own = next(i for i in mine.json()["items"] if i["id"] == listing["id"])
    assert own["status"] == "rejected" and own["rejection_reason"] == "too generic"
    assert own["moderated_at"] is not None
    stranger = await api.account("Stranger")
    refused = await api.call("POST", f"/api/marketplace/{listing['id']}/fork", stranger)
    assert refused.status_code == 404
    empty = await api.call(
        "POST",
        f"/api/admin/marketplace/{listing['id']}/reject",
        headers=api.operator_headers,
        json={"reason": ""},
    )
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "reason"


async def test_featured_filter_and_sorting(api: StudioApi) -> None:
    author = await api.account("Author")
    prompt_id = await _prompt(api, author)
    tag = f"t{prompt_id[:8]}"
    a = await _submit(api, author, prompt_id, title="Alpha", tags=[tag])
    b = await _submit(api, author, prompt_id, title="Beta", tags=[tag])
    for listing in (a, b):
        await api.call(
            "POST", f"/api/admin/marketplace/{listing['id']}/approve", headers=api.operator_headers
        )
    featured = await api.call(
        "PUT",
        f"/api/admin/marketplace/{b['id']}/featured",
        headers=api.operator_headers,
        json={"featured": True},
    )
    assert featured.status_code == 200 and featured.json()["is_featured"] is True
    only = await api.call("GET", f"/api/marketplace?tag={tag}&featured=true", author)
    assert [i["title"] for i in only.json()["items"]] == ["Beta"]
    by_title = await api.call("GET", f"/api/marketplace?tag={tag}&sort=title", author)
    assert [i["title"] for i in by_title.json()["items"]] == ["Alpha", "Beta"]
    await api.call("POST", f"/api/marketplace/{a['id']}/fork", author)
    popular = await api.call("GET", f"/api/marketplace?tag={tag}&sort=popular", author)
    assert [i["title"] for i in popular.json()["items"]] == ["Alpha", "Beta"]
    bad = await api.call("GET", "/api/marketplace?sort=random", author)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "sort"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"version": 1, "title": "t", "description": "d", "category": "c"}, 422, "prompt_id"),
        (
            {"prompt_id": "{p}", "version": 0, "title": "t", "description": "d", "category": "c"},
            422,
            "version",
        ),
        (
            {
                "prompt_id": "{p}",
                "version": 2**70,
                "title": "t",
                "description": "d",
                "category": "c",
            },
            422,
            "version",
        ),
        (
            {"prompt_id": "{p}", "version": 9, "title": "t", "description": "d", "category": "c"},
            404,
            None,
        ),
        (
            {"prompt_id": "nope", "version": 1, "title": "t", "description": "d", "category": "c"},
            404,
            None,
        ),
        (
            {"prompt_id": "{p}", "version": 1, "title": "", "description": "d", "category": "c"},
            422,
            "title",
        ),
        (
            {
                "prompt_id": "{p}",
                "version": 1,
                "title": "t",
                "description": "d",
                "category": "c",
                "tags": [1],
            },
            422,
            "tags.0",
        ),
    ],
)
async def test_bad_submissions(
    api: StudioApi, body: dict[str, Any], status: int, field: str | None
) -> None:
    author = await api.account("Author")
    prompt_id = await _prompt(api, author)
    if body.get("prompt_id") == "{p}":
        body = {**body, "prompt_id": prompt_id}
    response = await api.call("POST", "/api/marketplace", author, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"].get("field") == field


async def test_another_tenants_prompt_cannot_be_submitted(api: StudioApi) -> None:
    owner = await api.account("Owner")
    thief = await api.account("Thief")
    prompt_id = await _prompt(api, owner)
    response = await api.call(
        "POST",
        "/api/marketplace",
        thief,
        json={
            "prompt_id": prompt_id,
            "version": 1,
            "title": "t",
            "description": "d",
            "category": "c",
        },
    )
    assert response.status_code == 404


async def test_moderation_needs_the_operator(api: StudioApi) -> None:
    user = await api.account()
    for method, path in (
        ("GET", "/api/admin/marketplace"),
        ("POST", "/api/admin/marketplace/x/approve"),
    ):
        assert (await api.call(method, path, user)).status_code == 401
    missing = await api.call(
        "POST", "/api/admin/marketplace/nope/approve", headers=api.operator_headers
    )
    assert missing.status_code == 404
