"""A new prompt version retires the cache entries keyed on the sections it changed, in-process
on both databases: saved versions and published sessions, refresh rules, tenants kept apart."""

from __future__ import annotations

from typing import Any

from server.cache import SemanticCacheService, sections_hash
from storage.repositories import cache as cache_repo
from tests.api.runs_support import make_prompt, run, version_id
from tests.support.accounts import Account
from tests.support.inprocess import StudioApi

FIRST: dict[str, Any] = {
    "sections": {"system": "Answer in a {{tone}} tone.", "user": "Explain {{topic}}."},
    "variables": [{"name": "tone", "value": "calm"}, {"name": "topic"}],
}


def _cache(api: StudioApi) -> SemanticCacheService:
    cache = api.services.cache
    assert cache is not None
    return cache


def _with(sections: dict[str, str]) -> dict[str, Any]:
    return {**FIRST, "sections": sections}


async def _save(api: StudioApi, who: Account, prompt_id: str, version: dict[str, Any]) -> Any:
    saved = await api.call("POST", f"/api/prompts/{prompt_id}/versions", who, json=version)
    assert saved.status_code == 201, saved.text
    return saved.json()


async def _run_v(api: StudioApi, who: Account, version: str, topic: str) -> dict[str, Any]:
    body = await run(api, who, prompt_version_id=version, variables={"topic": topic})
    assert body["status"] == "completed", body
    return dict(body["cache"])


async def test_a_changed_system_section_retires_the_entries_keyed_on_it(api: StudioApi) -> None:
    ana, bob = await api.account("Ana"), await api.account("Bob")
    prompt_id = await make_prompt(api, ana, FIRST)
    bob_prompt = await make_prompt(api, bob, FIRST)  # the same sections, another tenant
    v1 = await version_id(api, ana, prompt_id)
    bob_v1 = await version_id(api, bob, bob_prompt)
    for topic in ("tides", "eclipses"):
        assert (await _run_v(api, ana, v1, topic))["hit"] is False
        assert (await _run_v(api, ana, v1, topic))["hit"] is True
    assert (await _run_v(api, bob, bob_v1, "tides"))["hit"] is False

    # Only the user section changes: nothing is keyed on it.
    user_only = await _save(
        api, ana, prompt_id, _with({**FIRST["sections"], "user": "Explain {{topic}} briefly."})
    )
    assert user_only["cache_entries_retired"] == 0 and user_only["cache_entries_refreshed"] == 0
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is True

    # The system section changes: both of Ana's entries go, Bob's stays.
    changed = await _save(
        api, ana, prompt_id, _with({**FIRST["sections"], "system": "Answer in a {{tone}} way."})
    )
    assert changed["version"] == 3 and changed["cache_entries_retired"] == 2
    assert changed["cache_entries_refreshed"] == 0
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is False
    assert (await _run_v(api, bob, bob_v1, "tides"))["hit"] is True

    # Saving the same keyed sections again retires nothing more.
    again = await _save(
        api, ana, prompt_id, _with({**FIRST["sections"], "system": "Answer in a {{tone}} way."})
    )
    assert again["cache_entries_retired"] == 0


async def test_the_first_version_and_a_rejected_save_retire_nothing(api: StudioApi) -> None:
    ana = await api.account("Ana")
    created = await api.call("POST", "/api/prompts", ana, json={"name": "P", "version": FIRST})
    assert created.status_code == 201, created.text
    assert created.json()["version"]["cache_entries_retired"] == 0
    prompt_id = created.json()["id"]
    v1 = await version_id(api, ana, prompt_id)
    await _run_v(api, ana, v1, "tides")
    path = f"/api/prompts/{prompt_id}/versions"
    for bad in (
        {"sections": {"system": 5}},
        {"sections": {"system": "x" * 10_000_000}},
        {"content": None, "sections": None},
        {**FIRST, "extra": True},
    ):
        refused = await api.call("POST", path, ana, json=bad)
        assert refused.status_code in (413, 422), refused.text
    malformed = await api.call(
        "POST", path, ana, content=b'{"sections": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    # Another tenant's prompt and an unknown one are not found, and retire nothing.
    eve = await api.account("Eve")
    changed = _with({"system": "Other.", "user": "Explain {{topic}}."})
    for who, target in ((eve, prompt_id), (ana, "no-such-prompt")):
        missing = await api.call("POST", f"/api/prompts/{target}/versions", who, json=changed)
        assert missing.status_code == 404
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is True


async def test_a_refresh_rule_reruns_retired_entries_with_the_new_sections(
    api: StudioApi,
) -> None:
    ana = await api.account("Ana")
    rules = [{"type": "pattern", "value": "*tides*", "action": "refresh"}]
    configured = await api.call("PUT", "/api/cache/config", ana, json={"invalidation_rules": rules})
    assert configured.status_code == 200, configured.text
    prompt_id = await make_prompt(api, ana, FIRST)
    v1 = await version_id(api, ana, prompt_id)
    await _run_v(api, ana, v1, "tides")
    await _run_v(api, ana, v1, "eclipses")

    literal = {"system": "Answer briefly.", "user": "Explain {{topic}}."}
    saved = await _save(api, ana, prompt_id, _with(literal))
    assert saved["cache_entries_retired"] == 2 and saved["cache_entries_refreshed"] == 1
    v2 = saved["id"]
    # The refreshed entry now answers the new version; the deleted one is gone for both.
    assert (await _run_v(api, ana, v2, "tides"))["hit"] is True
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is False
    assert (await _run_v(api, ana, v2, "eclipses"))["hit"] is False

    # New sections with a placeholder cannot be sent as they are: retired entries are deleted.
    templated = await _save(
        api, ana, prompt_id, _with({"system": "Be {{tone}}.", "user": "Explain {{topic}}."})
    )
    assert templated["cache_entries_retired"] == 2 and templated["cache_entries_refreshed"] == 0


async def test_publishing_a_session_retires_too(api: StudioApi) -> None:
    ana = await api.account("Ana")
    prompt_id = await make_prompt(api, ana, FIRST)
    v1 = await version_id(api, ana, prompt_id)
    await _run_v(api, ana, v1, "tides")
    text = "--- system ---\nAnswer plainly.\n--- user ---\nExplain {{topic}}."
    created = await api.call("POST", "/api/sessions", ana, json={"name": "s", "content": text})
    assert created.status_code == 201, created.text
    published = await api.call(
        "POST", f"/api/sessions/{created.json()['id']}/publish", ana, json={"prompt_id": prompt_id}
    )
    assert published.status_code == 201, published.text
    assert published.json()["cache_entries_retired"] == 1
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is False


async def test_a_rolled_back_retirement_keeps_the_entries(api: StudioApi) -> None:
    ana = await api.account("Ana")
    prompt_id = await make_prompt(api, ana, FIRST)
    v1 = await version_id(api, ana, prompt_id)
    await _run_v(api, ana, v1, "tides")
    old = sections_hash(FIRST["sections"])
    async with api.services.sessions() as db:
        outcome = await _cache(api).retire_for_sections(db, ana.tenant_id, old, "new")
        assert outcome.deleted == 1
        await db.rollback()
    async with api.services.sessions() as db:
        assert await cache_repo.count_entries(db, ana.tenant_id) == 1
    assert (await _run_v(api, ana, v1, "tides"))["hit"] is True


async def test_the_save_response_declares_the_counts(api: StudioApi) -> None:
    schema = (await api.call("GET", "/openapi.json")).json()["components"]["schemas"]
    for name in ("VersionSaved", "Published"):
        properties = schema[name]["properties"]
        assert properties["cache_entries_retired"]["type"] == "integer"
        assert properties["cache_entries_refreshed"]["minimum"] == 0
