"""The prompts endpoints in-process, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.inprocess import StudioApi

FIRST: dict[str, Any] = {
    "sections": {"system": "Be {{tone}}.", "user": "{{question}}"},
    "variables": [{"name": "tone", "value": "brief"}, {"name": "question"}],
    "model_config": {"model": "gpt-x", "temperature": 0.3},
    "message": "first",
}


async def _prompt(api: StudioApi, who: Account, **extra: Any) -> dict[str, Any]:
    created = await api.call(
        "POST", "/api/prompts", who, json={"name": "Greeter", "version": FIRST, **extra}
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_create_read_list_update_and_delete(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    body = await _prompt(api, ana, description="says hi")
    assert body["version"]["version"] == 1 and body["version"]["warnings"] == []
    assert body["version"]["model_config"] == {"model": "gpt-x", "temperature": 0.3}
    prompt_id = body["id"]

    detail = (await api.call("GET", f"/api/prompts/{prompt_id}", bob)).json()
    assert detail["labels"] == {"latest": 1} and detail["active_version"] is None
    listed = (await api.call("GET", "/api/prompts?q=GREET&limit=1", bob)).json()
    assert [p["id"] for p in listed["items"]] == [prompt_id] and listed["total"] == 1

    renamed = await api.call("PATCH", f"/api/prompts/{prompt_id}", bob, json={"name": "Hi"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Hi"
    assert (await api.call("DELETE", f"/api/prompts/{prompt_id}", bob)).status_code == 403
    assert (await api.call("DELETE", f"/api/prompts/{prompt_id}", ana)).status_code == 204
    assert (await api.call("GET", f"/api/prompts/{prompt_id}", ana)).status_code == 404


async def test_versions_warnings_and_paging(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    saved = await api.call(
        "POST",
        f"/api/prompts/{prompt_id}/versions",
        ana,
        json={"content": "{{who}} {{", "variables": [{"name": "unused"}]},
    )
    assert saved.status_code == 201 and saved.json()["version"] == 2
    codes = {w["code"] for w in saved.json()["warnings"]}
    assert codes == {"undeclared_variable", "unused_variable", "unclosed_placeholder"}
    page = (await api.call("GET", f"/api/prompts/{prompt_id}/versions?limit=1", ana)).json()
    assert [v["version"] for v in page["items"]] == [2] and page["total"] == 2
    one = await api.call("GET", f"/api/prompts/{prompt_id}/versions/1", ana)
    assert one.json()["message"] == "first" and one.json()["created_by"] == ana.user_id
    assert (await api.call("GET", f"/api/prompts/{prompt_id}/versions/9", ana)).status_code == 404
    bad_page = await api.call("GET", f"/api/prompts/{prompt_id}/versions?limit=0", ana)
    assert bad_page.status_code == 422 and bad_page.json()["error"]["field"] == "limit"


async def test_twenty_concurrent_saves_over_http(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    answers = await asyncio.gather(
        *(
            api.call("POST", f"/api/prompts/{prompt_id}/versions", ana, json={"content": str(i)})
            for i in range(20)
        )
    )
    assert [a.status_code for a in answers] == [201] * 20
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 22))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x", "variables": [{"name": "1bad"}]}, "variables.0.name"),
        ({"sections": {"system": 5}}, "sections.system"),
        ({"sections": {"nope": "x"}}, "sections.nope"),
        ({"content": "x", "model_config": {"temperature": 9}}, "model_config.temperature"),
        ({"content": "x", "extra": 1}, "extra"),
        ({}, None),
        (b'{"content": "\\ud800"}', "content"),
        (b'{"content": "x", "model_config": {"temperature": NaN}}', None),
    ],
)
async def test_bad_versions_are_422_naming_the_field(
    api: StudioApi, body: dict[str, Any] | bytes, field: str | None
) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    path = f"/api/prompts/{prompt_id}/versions"
    if isinstance(body, bytes):
        headers = {"Content-Type": "application/json"}
        answer = await api.call("POST", path, ana, content=body, headers=headers)
    else:
        answer = await api.call("POST", path, ana, json=body)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"].get("field") == field


async def test_render_by_label_with_missing_variables_and_literal_values(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    path = f"/api/prompts/{prompt_id}/render"
    missing = await api.call("POST", path, ana, json={"variables": {}})
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "missing_variables"
    assert missing.json()["error"]["missing"] == ["question"]
    rendered = await api.call(
        "POST", path, ana, json={"label": "latest", "variables": {"question": "{{tone}}?"}}
    )
    assert rendered.status_code == 200, rendered.text
    assert rendered.json()["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "{{tone}}?"},
    ]
    both = await api.call("POST", path, ana, json={"label": "latest", "version": 1})
    assert both.status_code == 422
    unknown = await api.call("POST", path, ana, json={"label": "nope", "variables": {}})
    assert unknown.status_code == 404


async def test_labels_resolve_and_diff(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    await api.call(
        "POST", f"/api/prompts/{prompt_id}/versions", ana, json={**FIRST, "message": "2"}
    )
    base = f"/api/prompts/{prompt_id}"
    moved = await api.call("PUT", f"{base}/labels/production", ana, json={"version": 1})
    assert moved.json() == {"label": "production", "from_version": None, "to_version": 1}
    assert (await api.call("GET", f"{base}/resolve", ana)).json()["version"] == 1
    resolved = await api.call("GET", f"{base}/resolve?label=latest", ana)
    assert resolved.json()["version"] == 2
    refused = await api.call("PUT", f"{base}/labels/latest", ana, json={"version": 1})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "label"
    bad = await api.call("PUT", f"{base}/labels/Bad!", ana, json={"version": 1})
    assert bad.status_code == 422
    missing = await api.call("PUT", f"{base}/labels/x", ana, json={"version": 7})
    assert missing.status_code == 404
    labels = (await api.call("GET", f"{base}/labels", ana)).json()
    assert labels["labels"] == {"latest": 2, "production": 1}
    assert labels["items"][0]["label"] == "production" and labels["total"] == 3
    assert (await api.call("DELETE", f"{base}/labels/production", ana)).status_code == 200
    assert (await api.call("DELETE", f"{base}/labels/production", ana)).status_code == 404

    diff = await api.call("GET", f"{base}/diff?from=1&to=2", ana)
    assert diff.status_code == 200 and all(not t["changed"] for t in diff.json()["texts"])
    assert (await api.call("GET", f"{base}/diff?from=1&to=5", ana)).status_code == 404
    assert (await api.call("GET", f"{base}/diff?from=0&to=1", ana)).status_code == 422


async def test_export_import_round_trip_over_http(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    await api.call("PUT", f"/api/prompts/{prompt_id}/labels/staging", ana, json={"version": 1})
    exported = (await api.call("GET", f"/api/prompts/{prompt_id}/export", ana)).json()
    imported = await api.call("POST", "/api/prompts/import", ana, json=exported)
    assert imported.status_code == 201, imported.text
    assert imported.json()["labels"] == {"latest": 1, "staging": 1}
    again = (await api.call("GET", f"/api/prompts/{imported.json()['id']}/export", ana)).json()

    def strip(document: dict[str, Any]) -> dict[str, Any]:
        versions = [dict(v, created_at=None) for v in document["versions"]]
        return dict(document, exported_at=None, versions=versions)

    assert strip(again) == strip(exported)
    wrong = await api.call("POST", "/api/prompts/import", ana, json={**exported, "format": "x"})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "format"


async def test_other_tenants_and_anonymous_callers(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    prompt_id = (await _prompt(api, ana))["id"]
    base = f"/api/prompts/{prompt_id}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"name": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/versions", {"content": "x"}),
        ("GET", f"{base}/versions", None),
        ("GET", f"{base}/versions/1", None),
        ("POST", f"{base}/render", {"variables": {"question": "q"}}),
        ("GET", f"{base}/labels", None),
        ("PUT", f"{base}/labels/x", {"version": 1}),
        ("DELETE", f"{base}/labels/x", None),
        ("GET", f"{base}/resolve", None),
        ("GET", f"{base}/diff?from=1&to=1", None),
        ("GET", f"{base}/export", None),
    ]:
        answer = await api.call(method, path, eve, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        anonymous = await api.call(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    assert (await api.call("GET", "/api/prompts", eve)).json()["total"] == 0


async def test_bad_paths_queries_and_bodies(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = (await _prompt(api, ana))["id"]
    base = f"/api/prompts/{prompt_id}"
    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("GET", f"{base}/versions/0", None, 422, "number"),
        ("GET", f"{base}/versions/{2**63}", None, 422, "number"),
        ("GET", f"{base}/versions/{2**31}", None, 422, "number"),
        ("PUT", f"{base}/labels/x", {"version": 2**31}, 422, "version"),
        ("POST", f"{base}/render", {"version": 2**31}, 422, "version"),
        ("GET", f"{base}/diff?from=1&to={2**31}", None, 422, "to"),
        ("GET", f"{base}/versions/abc", None, 422, "number"),
        ("GET", f"{base}/versions?offset=-1", None, 422, "offset"),
        ("GET", f"{base}/versions?limit=201", None, 422, "limit"),
        ("GET", f"{base}/diff?from=1", None, 422, "to"),
        ("PUT", f"{base}/labels/{'a' * 65}", {"version": 1}, 422, "label"),
        ("PUT", f"{base}/labels/x", {"version": "1"}, 422, "version"),
        ("PUT", f"{base}/labels/x", {"version": 0}, 422, "version"),
        ("PATCH", base, {}, 422, None),
        ("PATCH", base, {"name": None}, 422, "name"),
        ("PATCH", base, {"name": "x" * 201}, 422, "name"),
        ("POST", "/api/prompts", {"name": ""}, 422, "name"),
        ("POST", "/api/prompts", {"name": "x", "version": {"content": 5}}, 422, "version.content"),
        ("POST", f"{base}/render", {"variables": {"q": 5}}, 422, "variables.q"),
        ("POST", f"{base}/render", {"variables": []}, 422, "variables"),
        ("GET", f"/api/prompts?q={'x' * 201}", None, 422, "q"),
        ("GET", "/api/prompts?q=a%00b", None, 422, "q"),
        ("POST", f"{base}/versions", {"content": "x" * 1_000_001}, 422, "content"),
    ]
    for method, path, body, status, field in cases:
        answer = await api.call(method, path, ana, json=body)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error"].get("field") == field, (method, path, answer.text)
    malformed = await api.call(
        "POST",
        f"{base}/versions",
        ana,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    huge = await api.call(
        "POST", f"{base}/versions", ana, json={"content": "x" * (3 * 1024 * 1024)}
    )
    assert huge.status_code == 413


async def test_every_prompts_operation_declares_the_login_token(api: StudioApi) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/prompts") or path.endswith("/publish")
        for method, operation in item.items()
    ]
    assert len(operations) >= 16
    for path, method, operation in operations:
        schemes = {name for requirement in operation["security"] for name in requirement}
        assert "LoginToken" in schemes, (method, path)
