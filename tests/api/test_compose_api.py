"""Agent compose over REST, in-process: queue, follow, list, cancel, save, and every refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from sqlalchemy import update

from storage.models import Tenant
from tests.support.accounts import Account
from tests.support.compose import AgentScript
from tests.support.fake_openai import FakeOpenAI
from tests.support.inprocess import StudioApi
from tests.support.waiting import eventually

OFFLINE = {"model": "offline", "temperature": 0.2}
IDEA = "Write something good about our new product PRODUCT_NAME for [target audience]."

MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]


async def _submit(api: StudioApi, who: Account, **body: Any) -> int:
    response = await api.call(
        "POST", "/api/compose", who, json={"raw": IDEA, "model_config": OFFLINE, **body}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return int(response.json()["id"])


async def _finished(api: StudioApi, who: Account, run_id: int) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def done() -> bool:
        response = await api.call("GET", f"/api/compose/{run_id}", who)
        assert response.status_code == 200, response.text
        latest.update(response.json())
        return latest["status"] in {"completed", "failed"}

    await eventually(done, timeout=20.0)
    return latest


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_an_offline_job_completes_and_its_result_is_saved_as_versions(api: StudioApi) -> None:
    ana = await api.account()
    run_id = await _submit(api, ana, goal="Sell more beans", output_format="three bullet points")
    job = await _finished(api, ana, run_id)
    assert (job["status"], job["stage"], job["progress"], job["error"]) == (
        "completed",
        "done",
        100,
        None,
    )
    assert job["input"] == {
        "raw": IDEA,
        "goal": "Sell more beans",
        "constraints": None,
        "output_format": "three bullet points",
    }
    assert job["model_config"] == OFFLINE and job["cancelled"] is False
    outputs = job["outputs"]
    assert set(outputs["agent1"]) == {
        "system",
        "developer",
        "user",
        "context",
        "variables",
        "modelHints",
    }
    assert set(outputs["agent2"]) == {"criticisms", "alternativePrompt", "fixes"}
    assert set(outputs["agent3"]) == {"finalPrompt", "finalVariables", "decisionNotes"}
    assert "{{product_name}}" in outputs["agent1"]["user"]

    # A late client of the event stream gets the current (final) state at once, then the end.
    stream = await api.call("GET", f"/api/compose/{run_id}/events", ana)
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    ((name, data),) = _events(stream.text)
    assert name == "result" and data["result"] == outputs["agent3"] and data["progress"] == 100

    saved = await api.call("POST", f"/api/compose/{run_id}/save", ana, json={"name": "Beans"})
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["version"] == 1 and body["created_prompt"] is True
    version = await api.call("GET", f"/api/prompts/{body['prompt_id']}/versions/1", ana)
    assert version.status_code == 200, version.text
    stored = version.json()
    assert stored["sections"] == outputs["agent3"]["finalPrompt"]
    assert [v["name"] for v in stored["variables"]] == [
        v["name"] for v in outputs["agent3"]["finalVariables"]
    ]
    assert stored["message"] == "\n".join(outputs["agent3"]["decisionNotes"])
    again = await api.call(
        "POST", f"/api/compose/{run_id}/save", ana, json={"prompt_id": body["prompt_id"]}
    )
    assert (
        again.status_code == 201
        and again.json()["version"] == 2
        and again.json()["created_prompt"] is False
    )

    listed = await api.call("GET", "/api/compose?status=completed&limit=5", ana)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [run_id]
    assert listed.json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model_config": OFFLINE}, "raw"),
        ({"raw": "", "model_config": OFFLINE}, "raw"),
        ({"raw": 5, "model_config": OFFLINE}, "raw"),
        ({"raw": "x"}, "model_config"),
        ({"raw": "x", "model_config": {"model": "offline"}}, "model_config.temperature"),
        ({"raw": "x", "model_config": {"model": "", "temperature": 0}}, "model_config.model"),
        (
            {"raw": "x", "model_config": {"model": "offline", "temperature": 2.5}},
            "model_config.temperature",
        ),
        (
            {"raw": "x", "model_config": {"model": "offline", "temperature": -0.1}},
            "model_config.temperature",
        ),
        ({"raw": "x", "model_config": {**OFFLINE, "maxTokens": 0}}, "model_config.maxTokens"),
        ({"raw": "x", "model_config": {**OFFLINE, "maxTokens": "9"}}, "model_config.maxTokens"),
        # Strict like every other body (types.AliasModel): no "0.5" or true for a number.
        (
            {"raw": "x", "model_config": {"model": "offline", "temperature": "0.5"}},
            "model_config.temperature",
        ),
        (
            {"raw": "x", "model_config": {"model": "offline", "temperature": True}},
            "model_config.temperature",
        ),
        ({"raw": "x", "model_config": OFFLINE, "goal": 5}, "goal"),
        ({"raw": "x", "model_config": {**OFFLINE, "top_p": 1}}, "model_config.top_p"),
        ({"raw": "x", "model_config": OFFLINE, "extra": 1}, "extra"),
        ({"raw": "x", "model_config": OFFLINE, "session_id": ""}, "session_id"),
        ({"raw": "x", "model_config": OFFLINE, "session_id": "no-such-session"}, "session_id"),
    ],
)
async def test_bad_submissions_are_refused_naming_the_field(
    api: StudioApi, body: dict[str, Any], field: str
) -> None:
    ana = await api.account()
    response = await api.call("POST", "/api/compose", ana, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


async def test_malformed_json_and_missing_credentials(api: StudioApi) -> None:
    ana = await api.account()
    broken = await api.call(
        "POST",
        "/api/compose",
        ana,
        content=b'{"raw": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    surrogate = b'{"raw": "\\ud800", "model_config": {"model": "offline", "temperature": 0}}'
    lone = await api.call(
        "POST", "/api/compose", ana, content=surrogate, headers={"Content-Type": "application/json"}
    )
    assert lone.status_code in {400, 422}, lone.text
    assert (
        await api.call("POST", "/api/compose", json={"raw": "x", "model_config": OFFLINE})
    ).status_code == 401
    assert (await api.call("GET", "/api/compose")).status_code == 401


async def test_input_longer_than_the_setting_is_refused_at_the_edge(make_api: MakeApi) -> None:
    async with make_api(compose_max_input_chars=100, compose_concurrency=0) as api:
        ana = await api.account()
        ok = await api.call(
            "POST", "/api/compose", ana, json={"raw": "a" * 100, "model_config": OFFLINE}
        )
        assert ok.status_code == 202
        too_long = await api.call(
            "POST", "/api/compose", ana, json={"raw": "a" * 101, "model_config": OFFLINE}
        )
        assert too_long.status_code == 422 and too_long.json()["error"]["field"] == "raw"
        goal = await api.call(
            "POST",
            "/api/compose",
            ana,
            json={"raw": "a", "goal": "g" * 101, "model_config": OFFLINE},
        )
        assert goal.status_code == 422 and goal.json()["error"]["field"] == "goal"


async def test_the_quota_counts_unfinished_jobs_and_cancel_frees_a_slot(make_api: MakeApi) -> None:
    async with make_api(compose_max_active_per_tenant=2, compose_concurrency=0) as api:
        ana, bob = await api.accounts("Ana", "Bob")
        first = await _submit(api, ana)
        await _submit(api, bob)  # same tenant
        refused = await api.call(
            "POST", "/api/compose", ana, json={"raw": "x", "model_config": OFFLINE}
        )
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
        other_tenant = await api.account("Eve")
        assert (
            await api.call(
                "POST", "/api/compose", other_tenant, json={"raw": "x", "model_config": OFFLINE}
            )
        ).status_code == 202

        cancelled = await api.call("POST", f"/api/compose/{first}/cancel", ana)
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert (body["status"], body["cancelled"], body["error"]) == (
            "failed",
            True,
            "cancelled by the user",
        )
        assert (await api.call("POST", f"/api/compose/{first}/cancel", ana)).status_code == 409
        assert (
            await api.call("POST", "/api/compose", ana, json={"raw": "x", "model_config": OFFLINE})
        ).status_code == 202
        pending = await api.call("GET", "/api/compose?status=pending", ana)
        assert pending.json()["total"] == 2
        early = await api.call("POST", f"/api/compose/{first}/save", ana, json={"name": "x"})
        assert early.status_code == 409


async def test_other_tenants_and_unknown_ids_are_not_found(api: StudioApi) -> None:
    ana = await api.account()
    eve = await api.account("Eve")
    run_id = await _submit(api, ana)
    await _finished(api, ana, run_id)
    for method, path, body in [
        ("GET", f"/api/compose/{run_id}", None),
        ("GET", f"/api/compose/{run_id}/events", None),
        ("POST", f"/api/compose/{run_id}/cancel", None),
        ("POST", f"/api/compose/{run_id}/save", {"name": "stolen"}),
    ]:
        theirs = await api.call(method, path, eve, json=body)
        assert theirs.status_code == 404, (path, theirs.text)
        unknown = await api.call(method, path.replace(str(run_id), "999999999"), ana, json=body)
        assert unknown.status_code == 404
        for bad in ("0", "-1", str(2**63), "abc"):
            assert (
                await api.call(method, path.replace(str(run_id), bad), ana, json=body)
            ).status_code == 422
    assert (await api.call("GET", "/api/compose", eve)).json()["total"] == 0
    eve_prompt = await api.call("POST", "/api/prompts", eve, json={"name": "Eve's"})
    assert eve_prompt.status_code == 201, eve_prompt.text
    into_theirs = await api.call(
        "POST", f"/api/compose/{run_id}/save", ana, json={"prompt_id": eve_prompt.json()["id"]}
    )
    assert into_theirs.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"name": "a", "prompt_id": "b"}, {"name": ""}, {"name": 3}, {"prompt_id": "x" * 101}],
)
async def test_save_takes_exactly_one_target(api: StudioApi, body: dict[str, Any]) -> None:
    ana = await api.account()
    run_id = await _submit(api, ana)
    await _finished(api, ana, run_id)
    response = await api.call("POST", f"/api/compose/{run_id}/save", ana, json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=201", "offset=-1"])
async def test_bad_list_parameters(api: StudioApi, query: str) -> None:
    ana = await api.account()
    assert (await api.call("GET", f"/api/compose?{query}", ana)).status_code == 422


async def test_a_job_from_a_session_the_caller_belongs_to_is_accepted(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    session = await api.call("POST", "/api/sessions", ana, json={"name": "live", "content": "hi"})
    assert session.status_code == 201
    session_id = session.json()["id"]
    run_id = await _submit(api, ana, session_id=session_id)
    job = await _finished(api, ana, run_id)
    assert job["session_id"] == session_id and job["status"] == "completed"
    # Bob is in the tenant but not a member of the session.
    refused = await api.call(
        "POST",
        "/api/compose",
        bob,
        json={"raw": "x", "model_config": OFFLINE, "session_id": session_id},
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "session_id"
    eve = await api.account("Eve")
    other = await api.call(
        "POST",
        "/api/compose",
        eve,
        json={"raw": "x", "model_config": OFFLINE, "session_id": session_id},
    )
    assert other.status_code == 422


async def test_the_daily_run_quota_counts_compose_jobs_and_says_when_to_retry(
    api: StudioApi,
) -> None:
    ana = await api.account()
    async with api.services.sessions() as db:
        await db.execute(
            update(Tenant)
            .where(Tenant.id == ana.tenant_id)
            .values(config={"quotas": {"runsPerDay": 2, "cacheSize": 0}})
        )
        await db.commit()
    for _ in range(2):
        await _submit(api, ana)
    refused = await api.call(
        "POST", "/api/compose", ana, json={"raw": "x", "model_config": OFFLINE}
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
    assert (
        await api.call(
            "POST",
            "/api/compose",
            await api.account("Eve"),
            json={"raw": "x", "model_config": OFFLINE},
        )
    ).status_code == 202


async def test_a_model_nobody_serves_is_refused_at_submit(api: StudioApi) -> None:
    ana = await api.account()
    body = {"raw": "x", "model_config": {"model": "gpt-nothing", "temperature": 0}}
    response = await api.call("POST", "/api/compose", ana, json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_model", "model_config.model")


async def test_with_a_model_cancel_on_the_running_node_stops_the_job_at_once(
    make_api: MakeApi,
) -> None:
    with FakeOpenAI() as fake:
        script = AgentScript(fake)
        script.before = lambda stage: (
            fake.fail_next("slow_first_token", delay=30.0) if stage == "agent1" else None
        )
        settings = {
            "llm_base_url": fake.base_url,
            "llm_models": ("fake-small",),
            "llm_max_retries": 0,
        }
        # A lease renewal comes only every 20 s: stopping sooner shows the local path.
        async with make_api(**settings, compose_lease_seconds=60.0) as api:
            ana = await api.account()
            unserved = {"raw": "x", "model_config": {"model": "fake-large", "temperature": 0}}
            assert (await api.call("POST", "/api/compose", ana, json=unserved)).status_code == 422
            model = {"model": "fake-small", "temperature": 0.3, "maxTokens": 800}
            run_id = await _submit(api, ana, model_config=model)

            async def in_critic() -> bool:
                return len(script.requests_of("agent2")) == 1

            await eventually(in_critic, timeout=20.0)
            running = await api.call("GET", f"/api/compose/{run_id}", ana)
            assert running.json()["outputs"]["agent1"] is not None
            assert (running.json()["status"], running.json()["stage"]) == ("running", "agent2")
            cancelled = await api.call("POST", f"/api/compose/{run_id}/cancel", ana)
            assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"] is True

            async def stopped() -> bool:
                job = (await api.call("GET", f"/api/compose/{run_id}", ana)).json()
                return bool(job["status"] == "failed")

            await eventually(stopped, timeout=5.0)
            job = (await api.call("GET", f"/api/compose/{run_id}", ana)).json()
            assert (job["stage"], job["cancelled"], job["error"]) == (
                "agent2",
                True,
                "cancelled by the user",
            )
            assert script.requests_of("agent3") == []
            assert fake.chat_requests()[0].body["max_tokens"] == 800


async def test_a_stream_of_a_waiting_job_sends_heartbeats_and_ends_after_its_maximum(
    make_api: MakeApi,
) -> None:
    async with make_api(
        compose_concurrency=0, compose_events_heartbeat_seconds=0.2, compose_events_max_seconds=1.0
    ) as api:
        ana = await api.account()
        run_id = await _submit(api, ana)
        stream = await api.call("GET", f"/api/compose/{run_id}/events", ana)
        assert stream.status_code == 200
        blocks = stream.text.strip().split("\n\n")
        assert blocks[0].startswith("id: 1\nevent: progress\ndata: ")
        assert json.loads(blocks[0].split("data: ", 1)[1])["status"] == "pending"
        heartbeats = [b for b in blocks[1:] if b == ": keepalive"]
        assert 2 <= len(heartbeats) <= 6 and len(heartbeats) == len(blocks) - 1
