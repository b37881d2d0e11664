"""Sessions started from prompt versions, and publishing their text back, in-process."""

from __future__ import annotations

from typing import Any

from tests.support.accounts import Account
from tests.support.inprocess import StudioApi

SECTIONS = {"system": "S {{x}}", "user": "U"}


async def _prompt(api: StudioApi, who: Account) -> str:
    created = await api.call(
        "POST",
        "/api/prompts",
        who,
        json={
            "name": "P",
            "version": {"sections": SECTIONS, "variables": [{"name": "x", "value": "1"}]},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _session(api: StudioApi, who: Account, **body: Any) -> dict[str, Any]:
    created = await api.call("POST", "/api/sessions", who, json={"name": "live", **body})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_a_session_starts_from_a_version_and_publishes_back(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    prompt_id = await _prompt(api, ana)
    session = await _session(api, ana, prompt_id=prompt_id, version=1, content="")
    assert session["content"] == "--- system ---\nS {{x}}\n--- user ---\nU"
    assert session["prompt_id"] == prompt_id

    published = await api.call(
        "POST", f"/api/sessions/{session['id']}/publish", ana, json={"message": "as is"}
    )
    assert published.status_code == 201, published.text
    body = published.json()
    assert body["version"] == 2 and body["sections"] == SECTIONS
    assert body["variables"][0]["name"] == "x" and body["message"] == "as is"
    assert body["source"]["session_id"] == session["id"] and body["session_id"] == session["id"]

    # Bob joins nothing, so he is no member: publishing needs EDITOR or better.
    refused = await api.call("POST", f"/api/sessions/{session['id']}/publish", bob, json={})
    assert refused.status_code == 403


async def test_publish_errors(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    prompt_id = await _prompt(api, ana)
    plain = await _session(api, ana, content="hello")
    path = f"/api/sessions/{plain['id']}/publish"
    no_prompt = await api.call("POST", path, ana, json={})
    assert no_prompt.status_code == 422 and no_prompt.json()["error"]["field"] == "prompt_id"
    unknown = await api.call("POST", path, ana, json={"prompt_id": "nope"})
    assert unknown.status_code == 404
    named = await api.call("POST", path, ana, json={"prompt_id": prompt_id})
    assert named.status_code == 201 and named.json()["content"] == "hello"
    assert (await api.call("POST", path, eve, json={})).status_code == 404
    assert (await api.call("POST", path, json={})).status_code == 401
    assert (await api.call("POST", path, ana, json={"extra": 1})).status_code == 422

    # Another tenant's prompt is unknown, when publishing and when starting a session.
    eve_prompt = await _prompt(api, eve)
    assert (await api.call("POST", path, ana, json={"prompt_id": eve_prompt})).status_code == 404
    start = await api.call(
        "POST", "/api/sessions", ana, json={"name": "s", "prompt_id": eve_prompt}
    )
    assert start.status_code == 404
    no_version = await api.call(
        "POST", "/api/sessions", ana, json={"name": "s", "prompt_id": prompt_id, "version": 9}
    )
    assert no_version.status_code == 404 and no_version.json()["error"]["field"] == "version"
    past_int32 = await api.call(
        "POST", "/api/sessions", ana, json={"name": "s", "prompt_id": prompt_id, "version": 2**40}
    )
    assert past_int32.status_code == 404 and past_int32.json()["error"]["field"] == "version"
    both = await api.call(
        "POST", "/api/sessions", ana, json={"name": "s", "prompt_id": prompt_id, "content": "x"}
    )
    assert both.status_code == 422
