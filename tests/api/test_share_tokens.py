"""The share token is shown when minted and never stored or shown again."""

from __future__ import annotations

from sqlalchemy import select

from server.security import hash_secret
from storage.models import CollaborationSession
from tests.support.inprocess import StudioApi


async def test_share_token_is_stored_hashed_and_shown_only_when_minted(api: StudioApi) -> None:
    owner = await api.account("Owner")
    created = await api.call("POST", "/api/sessions", owner, json={"name": "Doc"})
    assert created.status_code == 201
    token = created.json()["share_token"]
    assert created.json()["ws_url"].endswith(f"/ws/{token}")

    async with api.services.sessions() as db:
        stored = await db.scalar(
            select(CollaborationSession.share_token).where(
                CollaborationSession.id == created.json()["id"]
            )
        )
    assert stored == hash_secret(token) and token not in str(stored)

    detail = await api.call("GET", f"/api/sessions/{created.json()['id']}", owner)
    listing = await api.call("GET", "/api/sessions", owner)
    assert token not in detail.text and token not in listing.text

    rotated = await api.call("POST", f"/api/sessions/{created.json()['id']}/share-token", owner)
    assert rotated.status_code == 200
    new_token = rotated.json()["share_token"]
    assert new_token != token
    async with api.services.sessions() as db:
        stored = await db.scalar(
            select(CollaborationSession.share_token).where(
                CollaborationSession.id == created.json()["id"]
            )
        )
    assert stored == hash_secret(new_token)
