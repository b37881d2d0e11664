"""The runs endpoints in-process with the offline model, on both databases."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest
from sqlalchemy import update

from server.cache import RefreshRequest
from server.llm import tokens
from server.llm.base import ChatMessage
from server.runs.setup import run_service
from storage.base import utcnow
from storage.models import Tenant
from tests.api.runs_support import events_of, make_prompt, run, version_id
from tests.support.inprocess import StudioApi


async def test_a_run_of_raw_content_is_recorded_with_its_measurements(api: StudioApi) -> None:
    ana = await api.account()
    body = await run(
        api,
        ana,
        content="Summarise {{topic}} briefly.",
        variables={"topic": "tides"},
        temperature=0.35,
        max_tokens=500,
    )
    assert body["status"] == "completed" and body["provider"] == "offline"
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("offline", 0.35, 500)
    assert "[user]\nSummarise tides briefly." in body["output"]
    prompt = tokens.count_message_tokens([ChatMessage("user", "Summarise tides briefly.")])
    usage = body["token_usage"]
    assert usage["prompt"] == prompt
    assert usage["completion"] == tokens.count_tokens(body["output"])
    assert usage["total"] == usage["prompt"] + usage["completion"]
    assert isinstance(body["latency"], int) and body["latency"] >= 0
    assert body["cache"] == {"hit": False, "similarity": None, "entry_id": None}
    assert body["sections"]["user"] == "Summarise {{topic}} briefly."
    assert body["variables"] == [{"id": "", "name": "topic", "value": "tides"}]
    assert body["user_id"] == ana.user_id and body["ratings"] == []
    again = await api.call("GET", f"/api/runs/{body['id']}", ana)
    assert again.status_code == 200 and again.json() == body


async def test_versions_labels_and_sections_render_with_defaults(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = await make_prompt(api, ana)
    first = await version_id(api, ana, prompt_id)
    by_id = await run(api, ana, prompt_version_id=first, variables={"topic": "rain"})
    assert by_id["prompt_version_id"] == first
    assert "[system]\nAnswer in a calm tone.\n[user]\nExplain rain." in by_id["output"]
    by_label = await run(
        api, ana, prompt_id=prompt_id, label="latest", variables={"topic": "x", "tone": "dry"}
    )
    assert by_label["prompt_version_id"] == first and "a dry tone" in by_label["output"]
    by_default = await run(api, ana, prompt_id=prompt_id, variables={"topic": "y"})
    assert by_default["prompt_version_id"] == first
    sections = await run(api, ana, sections={"system": "S", "context": "C", "user": "U"})
    assert "[system]\nS\n[user]\nC\n\nU" in sections["output"]
    assert sections["sections"] == {"system": "S", "developer": "", "user": "U", "context": "C"}


async def test_missing_variables_are_named(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = await make_prompt(api, ana)
    refused = await api.call(
        "POST", "/api/runs", ana, json={"model": "offline", "prompt_id": prompt_id}
    )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "missing_variables" and "topic" in error["message"]
    assert error["field"] == "variables"
    raw = await api.call(
        "POST", "/api/runs", ana, json={"model": "offline", "content": "{{a}} and {{b}}"}
    )
    assert raw.status_code == 422 and "a, b" in raw.json()["error"]["message"]
    listed = (await api.call("GET", "/api/runs", ana)).json()
    assert listed["total"] == 0  # refused requests record nothing


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": "offline"}, 422, "content"),
        ({"model": "offline", "content": "x", "prompt_id": "p"}, 422, "content"),
        ({"model": "offline", "content": "x", "label": "latest"}, 422, "label"),
        ({"model": "no-such-model", "content": "x"}, 422, "model"),
        ({"model": "", "content": "x"}, 422, "model"),
        ({"model": "offline", "content": "x", "temperature": 2.5}, 422, "temperature"),
        ({"model": "offline", "content": "x", "temperature": "hot"}, 422, "temperature"),
        ({"model": "offline", "content": "x", "max_tokens": 0}, 422, "max_tokens"),
        ({"model": "offline", "content": "x", "max_tokens": 1.5}, 422, "max_tokens"),
        ({"model": "offline", "content": "x", "cache": "sometimes"}, 422, "cache"),
        ({"model": "offline", "content": 5}, 422, "content"),
        ({"model": "offline", "content": "x", "extra": 1}, 422, "extra"),
        ({"model": "offline", "content": "x", "variables": {"a": 1}}, 422, "variables.a"),
        ({"model": "offline", "sections": {"tools": "x"}}, 422, "sections.tools"),
        ({"model": "offline", "prompt_version_id": "nope"}, 404, "prompt_version_id"),
        ({"model": "offline", "prompt_id": "nope"}, 404, "prompt_id"),
        ({"model": "offline", "session_id": "nope"}, 404, "session_id"),
        ({"model": "offline", "content": "x" * 500_001}, 422, "content"),
    ],
)
async def test_bad_run_requests(
    api: StudioApi, body: dict[str, object], status: int, field: str
) -> None:
    ana = await api.account()
    refused = await api.call("POST", "/api/runs", ana, json=body)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["field"] == field


async def test_malformed_bodies_and_credentials(api: StudioApi) -> None:
    ana = await api.account()
    headers = {"Content-Type": "application/json"}
    bad = await api.call("POST", "/api/runs", ana, content=b'{"model": "offline",', headers=headers)
    assert bad.status_code == 400
    nan = await api.call(
        "POST",
        "/api/runs",
        ana,
        content=b'{"model":"offline","content":"x","temperature":NaN}',
        headers=headers,
    )
    assert nan.status_code == 400
    anonymous = await api.call("POST", "/api/runs", json={"model": "offline", "content": "x"})
    assert anonymous.status_code == 401
    assert (await api.call("GET", "/api/runs/0", ana)).status_code == 422
    assert (await api.call("GET", f"/api/runs/{2**63}", ana)).status_code == 422


async def test_other_tenants_ids_are_not_found(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    prompt_id = await make_prompt(api, ana)
    first = await version_id(api, ana, prompt_id)
    ran = await run(api, ana, prompt_version_id=first, variables={"topic": "t"})
    for body in ({"prompt_version_id": first}, {"prompt_id": prompt_id}):
        refused = await api.call("POST", "/api/runs", eve, json={"model": "offline", **body})
        assert refused.status_code == 404, refused.text
    assert (await api.call("GET", f"/api/runs/{ran['id']}", eve)).status_code == 404
    rate = await api.call("POST", f"/api/runs/{ran['id']}/ratings", eve, json={"rating": 5})
    assert rate.status_code == 404
    assert (await api.call("GET", "/api/runs", eve)).json()["total"] == 0
    metrics = await api.call("GET", f"/api/prompts/{prompt_id}/versions/1/metrics", eve)
    assert metrics.status_code == 404


async def test_ratings_filters_and_version_metrics(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    prompt_id = await make_prompt(api, ana)
    first = await version_id(api, ana, prompt_id)
    one = await run(api, ana, prompt_version_id=first, variables={"topic": "a"})
    two = await run(api, bob, prompt_version_id=first, variables={"topic": "b"})
    other = await run(api, ana, content="plain")
    rated = await api.call(
        "POST",
        f"/api/runs/{one['id']}/ratings",
        bob,
        json={"rating": 5, "notes": "great", "tags": ["good", "good", "short"]},
    )
    assert rated.status_code == 201, rated.text
    assert rated.json()["tags"] == ["good", "short"] and rated.json()["user_id"] == bob.user_id
    await api.call("POST", f"/api/runs/{two['id']}/ratings", ana, json={"rating": 2})
    await api.call("POST", f"/api/runs/{two['id']}/ratings", bob, json={"rating": 3})

    shown = (await api.call("GET", f"/api/runs/{one['id']}", ana)).json()
    assert [r["rating"] for r in shown["ratings"]] == [5]

    async def ids(query: str) -> list[int]:
        page = await api.call("GET", f"/api/runs?{query}", ana)
        assert page.status_code == 200, page.text
        return [item["id"] for item in page.json()["items"]]

    assert await ids("") == [other["id"], two["id"], one["id"]]
    assert await ids(f"prompt_version_id={first}") == [two["id"], one["id"]]
    assert await ids("min_rating=3") == [one["id"]]  # two's mean is 2.5
    assert await ids("min_rating=2") == [two["id"], one["id"]]
    assert await ids("tag=short") == [one["id"]]
    assert await ids("tag=none") == []
    assert await ids("model=offline&limit=1&offset=1") == [two["id"]]
    for bad in ("min_rating=0", "min_rating=6", "limit=0", "tag=", "model=" + "m" * 201):
        assert (await api.call("GET", f"/api/runs?{bad}", ana)).status_code == 422, bad

    metrics = await api.call("GET", f"/api/prompts/{prompt_id}/versions/1/metrics", ana)
    assert metrics.status_code == 200, metrics.text
    stored = metrics.json()["performance_metrics"]
    assert stored["runCount"] == 2 and stored["successRate"] == 1.0
    assert stored["ratingCount"] == 3 and stored["avgRating"] == pytest.approx(10 / 3, abs=1e-3)
    expected_tokens = (one["token_usage"]["total"] + two["token_usage"]["total"]) / 2
    assert stored["avgTokens"] == pytest.approx(expected_tokens, abs=0.05)
    assert stored["avgLatency"] == pytest.approx((one["latency"] + two["latency"]) / 2, abs=0.05)
    missing = await api.call("GET", f"/api/prompts/{prompt_id}/versions/9/metrics", ana)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"rating": 0}, {"rating": 6}, {"rating": 4.5}, {"rating": "5"}, {}, {"rating": 3, "notes": "n" * 10_001},
     {"rating": 3, "tags": ["t"] * 21}, {"rating": 3, "tags": [""]}, {"rating": 3, "x": 1}],
)  # fmt: skip
async def test_bad_ratings(api: StudioApi, body: dict[str, object]) -> None:
    ana = await api.account()
    ran = await run(api, ana, content="x")
    refused = await api.call("POST", f"/api/runs/{ran['id']}/ratings", ana, json=body)
    assert refused.status_code == 422, refused.text
    unknown = await api.call("POST", "/api/runs/999999999/ratings", ana, json={"rating": 3})
    assert unknown.status_code == 404


async def test_streaming_offline_run(api: StudioApi) -> None:
    ana = await api.account()
    for extra, headers in (
        ({"stream": True}, {}),
        ({}, {"Accept": "text/event-stream"}),
    ):
        response = await api.call(
            "POST",
            "/api/runs",
            ana,
            json={"model": "offline", "content": "Hi there", **extra},
            headers=headers,
        )
        assert response.status_code == 200
        events = events_of(response)
        names = [name for name, _ in events]
        assert names[-2:] == ["usage", "done"] and set(names[:-2]) == {"delta"}
        done = events[-1][1]
        text = "".join(data["text"] for name, data in events if name == "delta")
        assert done["run"]["output"] == text and done["run_id"] == done["run"]["id"]
        assert events[-2][1] == done["run"]["token_usage"]
        stored = (await api.call("GET", f"/api/runs/{done['run_id']}", ana)).json()
        assert stored["status"] == "completed" and stored["output"] == text
    refused = await api.call(
        "POST", "/api/runs", ana, json={"model": "x", "content": "y", "stream": True}
    )
    assert refused.status_code == 422  # refused before any stream starts


async def test_a_live_session_is_run_with_its_state_vector(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    eve = await api.account("Eve")
    created = await api.call(
        "POST",
        "/api/sessions",
        ana,
        json={"name": "live", "content": "--- user ---\nHello {{who}}"},
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    body = await run(api, ana, session_id=session_id, variables={"who": "team"})
    assert body["session_id"] == session_id and "[user]\nHello team" in body["output"]
    assert base64.b64decode(body["state_vector"])
    assert body["sections"]["user"] == "Hello {{who}}"
    listed = (await api.call("GET", f"/api/runs?session_id={session_id}", ana)).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    refused = await api.call(
        "POST", "/api/runs", bob, json={"model": "offline", "session_id": session_id}
    )
    assert refused.status_code == 403  # same tenant, not a member
    hidden = await api.call(
        "POST", "/api/runs", eve, json={"model": "offline", "session_id": session_id}
    )
    assert hidden.status_code == 404


async def test_daily_quota(api: StudioApi) -> None:
    tenant = await api.tenant()
    ana = await api.account(tenant_id=tenant.tenant_id)
    async with api.services.sessions() as db, db.begin():
        await db.execute(
            update(Tenant)
            .where(Tenant.id == tenant.tenant_id)
            .values(config={"quotas": {"runsPerDay": 2, "cacheSize": 10}})
        )
    await run(api, ana, content="one")
    await run(api, ana, content="two")
    refused = await api.call("POST", "/api/runs", ana, json={"model": "offline", "content": "3"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    now = utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= (midnight - now).total_seconds() + 2
    compare = await api.call(
        "POST", "/api/runs/compare", ana, json={"content": "x", "targets": [{"model": "offline"}]}
    )
    assert compare.status_code == 429


async def test_model_statistics_per_tenant(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    runs = [
        await run(api, ana, content="alpha one", cache="bypass"),
        await run(api, ana, content="beta two", cache="bypass"),
        await run(api, ana, content="gamma three"),
        await run(api, ana, content="gamma three"),  # answered by the cache
    ]
    await run(api, eve, content="elsewhere")
    await api.call("POST", f"/api/runs/{runs[0]['id']}/ratings", ana, json={"rating": 4})
    stats = await api.call("GET", "/api/stats/models?days=30", ana)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["days"] == 30 and len(body["items"]) == 1
    row = body["items"][0]
    assert (row["model"], row["run_count"], row["success_rate"]) == ("offline", 4, 1.0)
    assert row["total_tokens"] == sum(r["token_usage"]["total"] for r in runs)
    assert row["avg_rating"] == 4.0 and row["cache_hits"] == 1
    for bad in ("days=0", "days=3651", "days=x"):
        assert (await api.call("GET", f"/api/stats/models?{bad}", ana)).status_code == 422


async def test_runs_go_through_the_semantic_cache(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    text = "Describe the water cycle for a child"
    first = await run(api, ana, content=text)
    assert first["cache"]["hit"] is False and first["provider"] == "offline"
    second = await run(api, ana, content=text)
    assert second["cache"]["hit"] is True and second["cache"]["similarity"] == 1.0
    assert second["cache"]["entry_id"] and second["provider"] == "semantic-cache"
    assert second["output"] == first["output"] and second["token_usage"] == first["token_usage"]
    bypass = await run(api, ana, content=text, cache="bypass")
    assert bypass["cache"] == {"hit": False, "similarity": None, "entry_id": None}
    refreshed = await run(api, ana, content=text, cache="refresh")
    assert refreshed["cache"]["hit"] is False and refreshed["provider"] == "offline"
    # Another temperature, another system section, another tenant: other scopes.
    assert (await run(api, ana, content=text, temperature=0.2))["cache"]["hit"] is False
    other = await run(api, ana, sections={"system": "Be terse.", "user": text})
    assert other["cache"]["hit"] is False
    assert (await run(api, eve, content=text))["cache"]["hit"] is False
    streamed = await api.call(
        "POST", "/api/runs", ana, json={"model": "offline", "content": text, "stream": True}
    )
    events = events_of(streamed)
    assert [name for name, _ in events] == ["delta", "usage", "done"]
    assert events[0][1]["text"] == first["output"]
    assert events[-1][1]["run"]["cache"]["hit"] is True


async def test_compare_runs_targets_side_by_side(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = await make_prompt(api, ana)
    first = await version_id(api, ana, prompt_id)
    body = {
        "content": "Compare {{topic}}",
        "variables": {"topic": "tea"},
        "targets": [
            {"model": "offline", "temperature": 0.1},
            {"model": "offline", "max_tokens": 3},
            {"model": "offline", "prompt_version_id": first},
        ],
    }
    compared = await api.call("POST", "/api/runs/compare", ana, json=body)
    assert compared.status_code == 200, compared.text
    items = compared.json()["items"]
    assert [item["target"] for item in items] == [0, 1, 2]
    assert items[0]["run"]["temperature"] == 0.1 and items[1]["run"]["finish_reason"] == "length"
    assert items[2]["run"]["prompt_version_id"] == first
    assert all(item["error"] is None for item in items)

    streamed = await api.call("POST", "/api/runs/compare", ana, json={**body, "stream": True})
    events = events_of(streamed)
    done = {data["target"]: data for name, data in events if name == "done"}
    assert sorted(done) == [0, 1, 2]
    for target, data in done.items():
        text = "".join(d["text"] for n, d in events if n == "delta" and d["target"] == target)
        assert data["run"]["output"] == text

    eight = await api.call(
        "POST", "/api/runs/compare", ana, json={**body, "targets": [{"model": "offline"}] * 8}
    )
    assert eight.status_code == 200 and len(eight.json()["items"]) == 8  # the default limit
    for bad in (
        {**body, "targets": []},
        {**body, "targets": [{"model": "offline"}] * 9},
        {**body, "targets": [{"model": "offline", "temperature": -1}]},
        {**body, "targets": [{"model": "missing"}]},
    ):
        assert (await api.call("POST", "/api/runs/compare", ana, json=bad)).status_code == 422


async def test_models_listing_without_an_endpoint(api: StudioApi) -> None:
    ana = await api.account()
    listed = await api.call("GET", "/api/models", ana)
    assert listed.status_code == 200
    assert listed.json()["items"] == [
        {"name": "offline", "provider": "offline", "source": "offline"}
    ]


async def test_concurrent_runs_never_exceed_the_quota(api: StudioApi) -> None:
    tenant = await api.tenant()
    ana = await api.account(tenant_id=tenant.tenant_id)
    async with api.services.sessions() as db, db.begin():
        await db.execute(
            update(Tenant)
            .where(Tenant.id == tenant.tenant_id)
            .values(config={"quotas": {"runsPerDay": 3, "cacheSize": 10}})
        )
    answers = await asyncio.gather(
        *(
            api.call("POST", "/api/runs", ana, json={"model": "offline", "content": f"q{n}"})
            for n in range(6)
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 201, 201, 429, 429, 429]


async def test_concurrent_runs_and_ratings_keep_version_metrics_exact(api: StudioApi) -> None:
    ana = await api.account()
    prompt_id = await make_prompt(api, ana)
    first = await version_id(api, ana, prompt_id)
    runs = await asyncio.gather(
        *(
            run(api, ana, prompt_version_id=first, variables={"topic": f"t{n}"}, cache="bypass")
            for n in range(8)
        )
    )
    await asyncio.gather(
        *(
            api.call("POST", f"/api/runs/{r['id']}/ratings", ana, json={"rating": 1 + n % 5})
            for n, r in enumerate(runs)
        )
    )
    metrics = (await api.call("GET", f"/api/prompts/{prompt_id}/versions/1/metrics", ana)).json()
    stored = metrics["performance_metrics"]
    assert stored["runCount"] == 8 and stored["ratingCount"] == 8
    assert stored["avgRating"] == pytest.approx(sum(1 + n % 5 for n in range(8)) / 8, abs=1e-3)


async def test_the_cache_refresher_runs_a_request_again(api: StudioApi) -> None:
    tenant = await api.tenant()
    request = RefreshRequest(
        tenant_id=tenant.tenant_id,
        model="offline",
        temperature=0.3,
        max_tokens=None,
        sections={"system": "Be kind."},
        user_text="hello",
    )
    completion = await run_service(api.services).refresh(request)
    assert completion.provider == "offline"
    assert "[system]\nBe kind.\n[user]\nhello" in completion.text
