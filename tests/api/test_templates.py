"""Templates and techniques: search, categories, a tenant's own templates, using one."""

from __future__ import annotations

from typing import Any

import pytest

from storage.repositories.seed import seed
from tests.support.inprocess import StudioApi


@pytest.fixture
async def seeded(api: StudioApi) -> StudioApi:
    """The shared app with the built-in templates and techniques loaded (idempotent)."""
    async with api.services.sessions() as db, db.begin():
        await seed(db)
    return api


async def test_search_is_case_insensitive_on_name_and_description(seeded: StudioApi) -> None:
    user = await seeded.account()
    found = await seeded.call("GET", "/api/templates?q=CODE%20reviewer", user)
    assert found.status_code == 200
    assert [t["name"] for t in found.json()["items"]] == ["Code Reviewer"]
    assert found.json()["items"][0]["read_only"] is True
    everything = await seeded.call("GET", "/api/templates?limit=200", user)
    assert everything.json()["total"] == 20
    by_description = await seeded.call("GET", "/api/templates?q=security%2C%20performance", user)
    assert "Code Reviewer" in [t["name"] for t in by_description.json()["items"]]
    none = await seeded.call("GET", "/api/templates?q=%25_%25_", user)
    assert none.status_code == 200 and none.json()["total"] == 0  # % is literal, not a wildcard


async def test_categories_tags_and_paging(seeded: StudioApi) -> None:
    user = await seeded.account()
    categories = await seeded.call("GET", "/api/templates/categories", user)
    assert categories.status_code == 200
    counts = {c["category"]: c["count"] for c in categories.json()["items"]}
    assert len(counts) == 10 and sum(counts.values()) == 20
    coding = await seeded.call("GET", "/api/templates?category=coding&limit=200", user)
    assert coding.json()["total"] == counts["coding"]
    assert all(t["category"] == "coding" for t in coding.json()["items"])
    tagged = await seeded.call("GET", "/api/templates?tag=security", user)
    assert tagged.json()["total"] >= 1
    assert all("security" in t["tags"] for t in tagged.json()["items"])
    first = await seeded.call("GET", "/api/templates?limit=5", user)
    second = await seeded.call("GET", "/api/templates?limit=5&offset=5", user)
    assert not {t["id"] for t in first.json()["items"]} & {t["id"] for t in second.json()["items"]}


async def test_tenant_templates_are_private_and_editable(seeded: StudioApi) -> None:
    ana = await seeded.account("Ana")
    ben = await seeded.account("Ben")  # another tenant
    body: dict[str, Any] = {
        "name": "Zq7 release notes",
        "description": "Ours",
        "category": "writing",
        "tags": ["release", "release"],
        "sections": {"system": "You write release notes.", "user": "Changes: {{changes}}"},
        "default_variables": [{"name": "changes", "value": "none"}],
    }
    created = await seeded.call("POST", "/api/templates", ana, json=body)
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["tenant_id"] == ana.tenant_id and template["read_only"] is False
    assert template["tags"] == ["release"] and template["sections"]["developer"] == ""

    mine = await seeded.call("GET", "/api/templates?q=zq7%20RELEASE", ana)
    theirs = await seeded.call("GET", "/api/templates?q=zq7%20RELEASE", ben)
    assert mine.json()["total"] == 1 and theirs.json()["total"] == 0
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": {"name": "x"}} if method == "PATCH" else {}
        other = await seeded.call(method, f"/api/templates/{template['id']}", ben, **kwargs)
        assert other.status_code == 404, method
    renamed = await seeded.call(
        "PATCH", f"/api/templates/{template['id']}", ana, json={"name": "Notes"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Notes"
    deleted = await seeded.call("DELETE", f"/api/templates/{template['id']}", ana)
    assert deleted.status_code == 204
    gone = await seeded.call("GET", f"/api/templates/{template['id']}", ana)
    assert gone.status_code == 404


async def test_built_in_templates_are_read_only(seeded: StudioApi) -> None:
    user = await seeded.account()
    listed = await seeded.call("GET", "/api/templates?limit=1", user)
    template_id = listed.json()["items"][0]["id"]
    assert (await seeded.call("GET", f"/api/templates/{template_id}", user)).status_code == 200
    patch = await seeded.call("PATCH", f"/api/templates/{template_id}", user, json={"name": "x"})
    delete = await seeded.call("DELETE", f"/api/templates/{template_id}", user)
    assert patch.status_code == 403 and delete.status_code == 403


async def test_using_a_template_makes_a_prompt_with_its_sections_and_variables(
    seeded: StudioApi,
) -> None:
    user = await seeded.account()
    found = await seeded.call("GET", "/api/templates?q=code%20reviewer", user)
    template = found.json()["items"][0]
    used = await seeded.call(
        "POST",
        f"/api/templates/{template['id']}/use",
        user,
        json={"name": "Our reviewer", "variables": {"language": "Rust"}},
    )
    assert used.status_code == 201, used.text
    prompt = used.json()
    assert prompt["name"] == "Our reviewer" and prompt["version"]["version"] == 1
    version = await seeded.call("GET", f"/api/prompts/{prompt['id']}/versions/1", user)
    assert version.status_code == 200
    stored = version.json()
    assert stored["sections"]["system"] == template["sections"]["system"]
    values = {v["name"]: v["value"] for v in stored["variables"]}
    assert values["language"] == "Rust"
    defaults = {v["name"]: v["value"] for v in template["default_variables"]}
    assert values["change_summary"] == defaults["change_summary"]
    plain = await seeded.call("POST", f"/api/templates/{template['id']}/use", user)
    assert plain.status_code == 201 and plain.json()["name"] == "Code Reviewer"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/api/templates/abc", None, 422, "template_id"),
        ("GET", "/api/templates/0", None, 422, "template_id"),
        ("GET", "/api/templates/1180591620717411303424", None, 422, "template_id"),
        ("GET", "/api/templates/999999999", None, 404, None),
        ("GET", "/api/templates?limit=0", None, 422, "limit"),
        ("GET", "/api/templates?q=" + "x" * 201, None, 422, "q"),
        ("POST", "/api/templates", {"name": "x"}, 422, "category"),
        ("POST", "/api/templates", {"name": "x", "category": "c"}, 422, "sections"),
        (
            "POST",
            "/api/templates",
            {"name": "x", "category": "c", "sections": {"system": 1}},
            422,
            "sections.system",
        ),
        (
            "POST",
            "/api/templates",
            {"name": "x", "category": "c", "sections": {}, "tags": "a"},
            422,
            "tags",
        ),
        ("POST", "/api/templates/999999999/use", None, 404, None),
        ("POST", "/api/templates/1/use", {"variables": {"x": 5}}, 422, "variables.x"),
        ("PATCH", "/api/templates/999999999", {"name": "x"}, 404, None),
        ("GET", "/api/techniques/999999", None, 404, None),
        ("GET", "/api/techniques/x", None, 422, "technique_id"),
    ],
)
async def test_bad_requests(
    seeded: StudioApi, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    user = await seeded.account()
    kwargs = {"json": body} if body is not None else {}
    response = await seeded.call(method, path, user, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"].get("field") == field


async def test_techniques(seeded: StudioApi) -> None:
    user = await seeded.account()
    listing = await seeded.call("GET", "/api/techniques?limit=200", user)
    assert listing.status_code == 200 and listing.json()["total"] == 16
    first = listing.json()["items"][0]
    one = await seeded.call("GET", f"/api/techniques/{first['id']}", user)
    assert one.status_code == 200 and one.json()["good_example"]
    word = first["title"].split()[0].upper()
    searched = await seeded.call("GET", f"/api/techniques?q={word}", user)
    assert first["id"] in [t["id"] for t in searched.json()["items"]]


async def test_catalog_needs_a_login(seeded: StudioApi) -> None:
    for path in ("/api/templates", "/api/templates/categories", "/api/techniques"):
        assert (await seeded.call("GET", path)).status_code == 401
