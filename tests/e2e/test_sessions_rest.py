"""The sessions REST API against a real server: CRUD, members, history, restore, tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.api import call, create_session, grant
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def create(server: ServerProcess, owner: Account, **body: Any) -> dict[str, Any]:
    return await create_session(server, owner, **{"name": "S", **body})


async def test_create_returns_share_link_and_owner_membership(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    body = await create(server, alice, name="Support bot", description="v1", content="Hi")
    assert body["name"] == "Support bot" and body["content"] == "Hi"
    assert len(body["share_token"]) >= 22  # at least 128 bits of base64url
    assert body["ws_url"] == f"{server.ws_base}/ws/{body['share_token']}"
    assert body["role"] == "OWNER"
    members = await call(server, alice, "GET", f"/api/sessions/{body['id']}/members")
    assert [(m["user_id"], m["role"]) for m in members.json()["items"]] == [
        (alice.user_id, "OWNER")
    ]


async def test_list_is_paged_and_counts_members(server: ServerProcess, team: list[Account]) -> None:
    alice, bob, _ = team
    made = [await create(server, alice, name=f"doc {i}") for i in range(3)]
    async with JsonClient(server.ws_base, made[0]["share_token"], bob.token):
        pass  # joining makes Bob a member
    first = await call(server, alice, "GET", "/api/sessions", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = await call(server, alice, "GET", "/api/sessions", params={"limit": 2, "offset": 2})
    ids = {s["id"] for s in page["items"]} | {s["id"] for s in rest.json()["items"]}
    assert ids == {s["id"] for s in made}
    counts = {s["id"]: s["member_count"] for s in page["items"] + rest.json()["items"]}
    assert counts[made[0]["id"]] == 2
    await call(server, alice, "POST", f"/api/sessions/{made[1]['id']}/deactivate")
    active = await call(server, alice, "GET", "/api/sessions")
    assert made[1]["id"] not in {s["id"] for s in active.json()["items"]}


async def test_patch_renames(server: ServerProcess, team: list[Account]) -> None:
    alice, bob, _ = team
    session = await create(server, alice)
    renamed = await call(
        server,
        alice,
        "PATCH",
        f"/api/sessions/{session['id']}",
        json={"name": "Renamed", "description": None},
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Renamed" and renamed.json()["description"] is None
    # Bob is not a member: not allowed to rename.
    refused = await call(server, bob, "PATCH", f"/api/sessions/{session['id']}", json={"name": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/sessions", "{broken", 400, None),
        ("POST", "/api/sessions", [1, 2], 400, None),
        ("POST", "/api/sessions", {}, 422, "name"),
        ("POST", "/api/sessions", {"name": ""}, 422, "name"),
        ("POST", "/api/sessions", {"name": 5}, 422, "name"),
        ("POST", "/api/sessions", {"name": "x" * 201}, 422, "name"),
        ("POST", "/api/sessions", {"name": "ok", "content": 1}, 422, "content"),
        ("POST", "/api/sessions", {"name": "ok", "colour": "red"}, 422, "colour"),
        ("PATCH", "/api/sessions/{id}", {}, 422, None),
        ("PATCH", "/api/sessions/{id}", {"name": None}, 422, "name"),
        ("PUT", "/api/sessions/{id}/members/{bob}", {"role": "ADMIN"}, 422, "role"),
        ("PUT", "/api/sessions/{id}/members/{bob}", {}, 422, "role"),
        ("POST", "/api/sessions/{id}/restore", {}, 422, "edit_id"),
        ("POST", "/api/sessions/{id}/restore", {"edit_id": "one"}, 422, "edit_id"),
        ("POST", "/api/sessions/{id}/restore", {"edit_id": True}, 422, "edit_id"),
        ("POST", "/api/sessions/{id}/restore", {"edit_id": 999999}, 404, None),
        ("GET", "/api/sessions?limit=0", None, 422, "limit"),
        ("GET", "/api/sessions?limit=abc", None, 422, "limit"),
        ("GET", "/api/sessions?offset=-1", None, 422, "offset"),
        ("GET", "/api/sessions/{id}/history/abc", None, 422, "edit_id"),
        ("GET", "/api/sessions/{id}/history/424242", None, 404, None),
        ("GET", "/api/sessions/no-such-id", None, 404, None),
        ("PUT", "/api/sessions/{id}/members/no-such-user", {"role": "EDITOR"}, 404, None),
    ],
)
async def test_bad_requests_name_the_problem(
    server: ServerProcess,
    team: list[Account],
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    alice, bob, _ = team
    session = await create(server, alice)
    url = path.format(id=session["id"], bob=bob.user_id)
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs["content"] = body
        kwargs["headers"] = {**alice.headers, "content-type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    response = await call(server, alice, method, url, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if field is not None:
        assert error["field"] == field


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/sessions/{id}", None),
        ("PATCH", "/api/sessions/{id}", {"name": "stolen"}),
        ("POST", "/api/sessions/{id}/deactivate", None),
        ("POST", "/api/sessions/{id}/share-token", None),
        ("GET", "/api/sessions/{id}/members", None),
        ("PUT", "/api/sessions/{id}/members/{me}", {"role": "OWNER"}),
        ("DELETE", "/api/sessions/{id}/members/{owner}", None),
        ("GET", "/api/sessions/{id}/history", None),
        ("POST", "/api/sessions/{id}/restore", {"edit_id": 1}),
    ],
)
async def test_other_tenants_ids_are_404(
    server: ServerProcess,
    team: list[Account],
    outsider: Account,
    method: str,
    path: str,
    body: Any,
) -> None:
    alice = team[0]
    session = await create(server, alice, content="secret")
    url = path.format(id=session["id"], me=outsider.user_id, owner=alice.user_id)
    response = await call(server, outsider, method, url, json=body)
    assert response.status_code == 404, response.text
    assert "secret" not in response.text
    listed = await call(server, outsider, "GET", "/api/sessions")
    assert session["id"] not in {s["id"] for s in listed.json()["items"]}


async def test_unauthenticated_requests_are_401(server: ServerProcess, team: list[Account]) -> None:
    for headers in ({}, {"Authorization": "Bearer pst_unknown"}, {"Authorization": "Basic abc"}):
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            response = await http.get("/api/sessions")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    # The token is also accepted as ?token= and as a cookie (browsers).
    alice = team[0]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/api/me", params={"token": alice.token})).status_code == 200
        http.cookies.set("prompt_studio_token", alice.token)
        me = await http.get("/api/me")
        assert me.status_code == 200 and me.json()["id"] == alice.user_id


async def test_last_owner_cannot_be_demoted_or_removed(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create(server, alice)
    demote = await call(
        server,
        alice,
        "PUT",
        f"/api/sessions/{session['id']}/members/{alice.user_id}",
        json={"role": "EDITOR"},
    )
    assert demote.status_code == 409
    leave = await call(
        server, alice, "DELETE", f"/api/sessions/{session['id']}/members/{alice.user_id}"
    )
    assert leave.status_code == 409


async def test_history_lists_edits_and_rebuilds_text_after_each(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create(server, alice, content="A")
    await grant(server, alice, session["id"], bob)
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as b,
    ):
        texts = []
        for i in range(130):  # crosses a checkpoint boundary
            writer = a if i % 2 == 0 else b
            await b.wait_text(a.text)
            reply = await writer.insert(len(writer.text), str(i % 10))
            assert reply["type"] == "ack"
            texts.append(writer.text)
        await a.wait_text(texts[-1])
        undo = await a.op({"type": "delete", "position": 0, "length": 1, "origin": "undo"})
        assert undo["type"] == "ack"
    history = await call(
        server, alice, "GET", f"/api/sessions/{session['id']}/history", params={"limit": 200}
    )
    items = history.json()["items"]
    assert history.json()["total"] == 131
    assert items[0]["origin"] == "undo" and items[0]["user"]["id"] == alice.user_id
    assert {i["user"]["name"] for i in items} == {"Alice", "Bob"}
    chronological = list(reversed(items))
    for index in (0, 1, 64, 99, 100, 101, 129):
        detail = await call(
            server,
            alice,
            "GET",
            f"/api/sessions/{session['id']}/history/{chronological[index]['id']}",
        )
        assert detail.status_code == 200
        assert detail.json()["content"] == texts[index], index


async def test_restore_is_a_new_change_every_client_receives(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create(server, alice, content="v1")
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as watcher,
    ):
        await a.op({"type": "replace", "position": 0, "length": 2, "content": "version two"})
        await a.op({"type": "insert", "position": 0, "content": "final "})
        await watcher.wait_text("final version two")
        history = await call(server, alice, "GET", f"/api/sessions/{session['id']}/history")
        first_edit = history.json()["items"][-1]["id"]
        restored = await call(
            server,
            alice,
            "POST",
            f"/api/sessions/{session['id']}/restore",
            json={"edit_id": first_edit},
        )
        assert restored.status_code == 200, restored.text
        assert restored.json()["content"] == "version two"
        await watcher.wait_text("version two")
        await a.wait_text("version two")
        # Viewers may not restore.
        refused = await call(
            server,
            bob,
            "POST",
            f"/api/sessions/{session['id']}/restore",
            json={"edit_id": first_edit},
        )
        assert refused.status_code == 403
    after = await call(server, alice, "GET", f"/api/sessions/{session['id']}/history")
    newest = after.json()["items"][0]
    assert newest["origin"] == "restore"
    assert after.json()["total"] == 3  # nothing rewritten in place
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == "version two"


async def test_health_and_readiness(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
        missing = await http.get("/api/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
