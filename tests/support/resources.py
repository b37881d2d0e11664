"""Every kind of resource a tenant owns, made through the REST API, in one table.

:data:`KINDS` is the isolation sweep's knowledge: how to make a resource of each kind, and which
path, query and body parameter names refer to it. A kind may also have a *public* value — one
other tenants may use by design (an approved marketplace listing, a built-in technique) — and the
operations on which that is so. Makers run in table order, so a kind can use the ones above it.

Every text a tenant writes carries its world's :attr:`World.marker`, so a response that contains
it shows that tenant's data, whatever the field.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from sqlalchemy import update

from server.security import hash_secret, new_api_key
from storage.models import Tenant
from storage.repositories.seed import seed
from tests.support.accounts import Account
from tests.support.inprocess import StudioApi, TenantKey
from tests.support.waiting import eventually

Value = str | int


@dataclass
class World:
    """One tenant's resources, made through the API: each kind's value (an id, a label…)."""

    key: TenantKey
    owner: Account
    member: Account
    marker: str
    values: dict[str, Value] = field(default_factory=dict)
    public: dict[str, Value] = field(default_factory=dict)

    def absent(self) -> World:
        """This world with every private value replaced by one that exists nowhere."""
        values = {
            kind: value + 1_000_000 if isinstance(value, int) else f"{value}x"
            for kind, value in self.values.items()
        }
        return replace(self, values=values)

    def private_strings(self) -> set[str]:
        """The text ids and the marker: none may appear in another tenant's 2xx answer."""
        found = {v for v in self.values.values() if isinstance(v, str) and len(v) >= 16}
        return found | {self.marker, self.owner.user_id, self.member.user_id}


Maker = Callable[[StudioApi, World], Awaitable[Value]]


@dataclass(frozen=True)
class Ref:
    """A parameter or body field ``name`` referring to a kind, in paths under ``under``."""

    name: str
    under: str = "/"


@dataclass(frozen=True)
class Kind:
    """A kind of resource: how to make the tenant's own, and the names that refer to it.

    ``public`` makes a value any tenant may use on ``public_ops`` (``"METHOD /path"``; empty:
    on every operation that refers to the kind). A kind without ``make`` has no private values.
    """

    name: str
    refs: tuple[Ref, ...]
    make: Maker | None = None
    public: Maker | None = None
    public_ops: frozenset[str] = frozenset()


def expect(response: httpx.Response, status: int) -> Any:
    """The JSON body of a response that must have ``status``."""
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


async def _session(api: StudioApi, world: World) -> Value:
    body = {"name": f"session {world.marker}", "content": f"draft {world.marker}"}
    created = expect(await api.call("POST", "/api/sessions", world.owner, json=body), 201)
    return str(created["id"])


async def _member(api: StudioApi, world: World) -> Value:
    path = f"/api/sessions/{world.values['session']}/members/{world.member.user_id}"
    expect(await api.call("PUT", path, world.owner, json={"role": "EDITOR"}), 200)
    return world.member.user_id


async def _edit(api: StudioApi, world: World) -> Value:
    # Live edits arrive over the websocket, which an in-process client cannot open; the hub's
    # server-side edit is the same path (numbered, recorded in edit_history).
    session_id = str(world.values["session"])
    target = f"draft {world.marker}, edited"
    _, durable = await api.services.hub.replace_text(
        session_id, world.owner.user_id, target, origin="user"
    )
    await durable
    history = expect(await api.call("GET", f"/api/sessions/{session_id}/history", world.owner), 200)
    return int(history["items"][0]["id"])


async def _prompt(api: StudioApi, world: World) -> Value:
    body = {
        "name": f"prompt {world.marker}",
        "description": world.marker,
        "version": {
            "content": f"Say {{{{thing}}}} {world.marker}",
            "variables": [{"name": "thing"}],
        },
    }
    created = expect(await api.call("POST", "/api/prompts", world.owner, json=body), 201)
    prompt_id = str(created["id"])
    second = {
        "content": f"Say {{{{thing}}}} twice {world.marker}",
        "variables": [{"name": "thing"}],
    }
    path = f"/api/prompts/{prompt_id}/versions"
    expect(await api.call("POST", path, world.owner, json=second), 201)
    return prompt_id


async def _version_number(api: StudioApi, world: World) -> Value:
    return 2


async def _version(api: StudioApi, world: World) -> Value:
    path = f"/api/prompts/{world.values['prompt']}/versions/{world.values['version_number']}"
    return str(expect(await api.call("GET", path, world.owner), 200)["id"])


async def _label(api: StudioApi, world: World) -> Value:
    path = f"/api/prompts/{world.values['prompt']}/labels/sweep"
    expect(await api.call("PUT", path, world.owner, json={"version": 1}), 200)
    return "sweep"


async def _template(api: StudioApi, world: World) -> Value:
    body = {
        "name": f"template {world.marker}",
        "category": "writing",
        "sections": {"system": world.marker, "user": "Write {{thing}}."},
    }
    return int(expect(await api.call("POST", "/api/templates", world.owner, json=body), 201)["id"])


async def _submit(api: StudioApi, world: World, prompt_id: str, title: str) -> str:
    body = {
        "prompt_id": prompt_id,
        "version": 1,
        "title": title,
        "description": title,
        "category": "writing",
    }
    created = expect(await api.call("POST", "/api/marketplace", world.owner, json=body), 201)
    return str(created["id"])


async def _pending_listing(api: StudioApi, world: World) -> Value:
    return await _submit(api, world, str(world.values["prompt"]), f"listing {world.marker}")


async def _approved_listing(api: StudioApi, world: World) -> Value:
    # Its prompt carries no marker: everything in it is meant for every tenant.
    body = {"name": "Public summariser", "version": {"content": "Summarise {{text}}"}}
    prompt = expect(await api.call("POST", "/api/prompts", world.owner, json=body), 201)
    listing_id = await _submit(api, world, str(prompt["id"]), "Public summariser")
    approve = f"/api/admin/marketplace/{listing_id}/approve"
    expect(await api.call("POST", approve, headers=api.operator_headers), 200)
    return listing_id


async def _technique(api: StudioApi, world: World) -> Value:
    async with api.services.sessions() as db, db.begin():
        await seed(db)  # idempotent: the built-in templates and techniques
    found = expect(await api.call("GET", "/api/techniques?limit=1", world.owner), 200)
    return int(found["items"][0]["id"])


async def _run(api: StudioApi, world: World) -> Value:
    body = {
        "model": "offline",
        "prompt_version_id": world.values["version"],
        "variables": {"thing": world.marker},
        "cache": "bypass",
    }
    run = expect(await api.call("POST", "/api/runs", world.owner, json=body), 201)
    rating = {"rating": 4, "notes": world.marker, "tags": ["sweep"]}
    expect(await api.call("POST", f"/api/runs/{run['id']}/ratings", world.owner, json=rating), 201)
    return int(run["id"])


async def _cache_entry(api: StudioApi, world: World) -> Value:
    body = {"model": "offline", "content": f"What is {world.marker}?", "cache": "use"}
    expect(await api.call("POST", "/api/runs", world.owner, json=body), 201)
    hit = expect(await api.call("POST", "/api/runs", world.owner, json=body), 201)
    assert hit["cache"]["hit"] is True, hit
    return str(hit["cache"]["entry_id"])


async def _compose_run(api: StudioApi, world: World) -> Value:
    body = {
        "raw": f"Write about {world.marker} for [audience].",
        "model_config": {"model": "offline", "temperature": 0.2},
        "session_id": world.values["session"],
    }
    queued = expect(await api.call("POST", "/api/compose", world.owner, json=body), 202)
    path = f"/api/compose/{queued['id']}"

    async def finished() -> bool:
        job = expect(await api.call("GET", path, world.owner), 200)
        return job["status"] in {"completed", "failed"}

    await eventually(finished, timeout=30.0)
    return int(queued["id"])


async def _tenant(api: StudioApi, world: World) -> Value:
    return world.key.tenant_id


#: Every kind, in the order they are made; the refs name every parameter that refers to one.
KINDS: tuple[Kind, ...] = (
    Kind("tenant", (Ref("tenant_id"),), make=_tenant),
    Kind("session", (Ref("session_id"),), make=_session),
    Kind("user", (Ref("user_id"),), make=_member),
    Kind("edit", (Ref("edit_id"),), make=_edit),
    Kind("prompt", (Ref("prompt_id"),), make=_prompt),
    Kind("version_number", (Ref("number", "/api/prompts/"),), make=_version_number),
    Kind("version", (Ref("prompt_version_id"),), make=_version),
    Kind("label", (Ref("label", "/api/prompts/"),), make=_label),
    Kind("template", (Ref("template_id"),), make=_template),
    Kind(
        "listing",
        (Ref("listing_id"),),
        make=_pending_listing,
        public=_approved_listing,
        public_ops=frozenset(
            {"GET /api/marketplace/{listing_id}", "POST /api/marketplace/{listing_id}/fork"}
        ),
    ),
    Kind("technique", (Ref("technique_id"),), public=_technique),
    Kind("run", (Ref("run_id", "/api/runs/"),), make=_run),
    Kind("cache_entry", (Ref("entry_id", "/api/cache/"),), make=_cache_entry),
    Kind("compose_run", (Ref("run_id", "/api/compose/"),), make=_compose_run),
)


def kind_for(path: str, name: str) -> Kind | None:
    """The kind ``name`` refers to in ``path`` (the most specific ref wins), or None."""
    matches = [
        (len(ref.under), kind)
        for kind in KINDS
        for ref in kind.refs
        if ref.name == name and path.startswith(ref.under)
    ]
    return max(matches, key=lambda match: match[0])[1] if matches else None


async def make_world(api: StudioApi, name: str = "A") -> World:
    """A tenant with two users and one resource of every kind, all made through the API."""
    key = await api.tenant(f"sweep-{name}-{uuid.uuid4().hex[:6]}")
    owner, member = await api.accounts(f"{name}-owner", f"{name}-member", tenant_id=key.tenant_id)
    world = World(key, owner, member, marker=f"secret{name}{uuid.uuid4().hex[:10]}")
    for kind in KINDS:
        if kind.make is not None:
            world.values[kind.name] = await kind.make(api, world)
        if kind.public is not None:
            world.public[kind.name] = await kind.public(api, world)
    return world


async def fresh_key(api: StudioApi, tenant_id: str) -> TenantKey:
    """Give the tenant a new API key (the old one stops working) and return it."""
    api_key = new_api_key()
    async with api.services.sessions() as db, db.begin():
        await db.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(api_key=hash_secret(api_key))
        )
    return TenantKey(tenant_id, api_key)


#: Base bodies for request schemas whose minimal instance is not a useful request (by schema
#: title); the sweep sets the reference fields on top. The rest come from the schema.
BODIES: dict[str, dict[str, Any]] = {
    "RunCreate": {"model": "offline"},
    "CompareCreate": {"targets": [{"model": "offline"}]},
    "ComposeCreate": {
        "raw": "An idea for [audience].",
        "model_config": {"model": "offline", "temperature": 0.2},
    },
    "ComposeSave": {"name": "Saved by the sweep"},
    "VersionCreate": {"content": "A version by the sweep"},
    "CacheConfigUpdate": {"enabled": True},
    **{
        name: {"name": "Renamed by the sweep"}
        for name in (
            "TenantUpdate",
            "UserUpdate",
            "SessionUpdate",
            "PromptUpdate",
            "TemplateUpdate",
        )
    },
}
#: Base bodies when the sweep sets an optional reference field, where the base above would
#: conflict with it (a compose result is saved either into a prompt or as a new one).
WITH_REFERENCE: dict[str, dict[str, Any]] = {"ComposeSave": {}}
