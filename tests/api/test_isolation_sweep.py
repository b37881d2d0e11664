"""Tenant isolation, swept over every operation of ``/openapi.json``.

Tenant A makes one resource of every kind (:data:`tests.support.resources.KINDS`). Then every
operation a login token or a tenant API key may call is called by tenant B with A's values in
every parameter that refers to a resource: each must answer 404, as for an id that does not
exist — except on the documented cross-tenant surface (an approved listing, a built-in
technique). Operations that refer to nothing must answer B with nothing of A's. Afterwards A
sees every resource exactly as before. Operator operations must refuse tenant credentials.

An operation the sweep cannot exercise (a parameter no kind claims, a body it cannot build, an
unknown security scheme) fails the sweep: extend the table in ``tests/support/resources.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.api import common
from server.app import create_app
from server.settings import Settings
from storage.models import CollaborationSession
from tests.support.inprocess import StudioApi
from tests.support.openapi_ops import (
    FieldPath,
    Operation,
    SchemaTooHard,
    minimal,
    operations,
    reference_fields,
    with_field,
)
from tests.support.resources import (
    BODIES,
    KINDS,
    WITH_REFERENCE,
    World,
    fresh_key,
    kind_for,
    make_world,
)

#: What B must get: 404 (``hidden``), a 2xx (``visible``), or either (a filter by A's id).
Expectation = Literal["hidden", "visible", "either"]
#: Fields that change without anyone writing: presence in live rooms, the time of an export.
VOLATILE = frozenset({"live", "rev", "connections", "online", "last_seen_at", "exported_at"})
CALL_TIMEOUT = 20.0
#: Ids, numbers and quoted values in error messages (which echo what the caller sent).
_VALUES_IN_MESSAGES = re.compile(r"'[^']*'|\"[^\"]*\"|[0-9a-f]{8}-[0-9a-f-]{27}x?|\d+")
_KINDS = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class Planned:
    """One call of an operation: which kind fills each parameter, and what B must get."""

    op: Operation
    caller: str
    path: Mapping[str, str]
    query: Mapping[str, Any]
    query_refs: Mapping[str, str]
    body: Any
    body_refs: tuple[tuple[FieldPath, str], ...]
    public: str | None
    expect: Expectation

    def describe(self) -> str:
        """The operation and what this call puts where."""
        refs = [f"{'.'.join(map(str, p))}={k}" for p, k in self.body_refs]
        refs += [f"?{name}={kind}" for name, kind in self.query_refs.items()]
        public = f" (public {self.public})" if self.public else ""
        return f"{self.op.key} as {self.caller} [{', '.join(refs)}]{public}"

    def bind(self, world: World) -> tuple[str, dict[str, Any], Any]:
        """The URL path, query and body with ``world``'s values."""
        path = self.op.path
        for name, kind in self.path.items():
            value = world.public[kind] if kind == self.public else world.values[kind]
            path = path.replace(f"{{{name}}}", str(value))
        query = {**self.query, **{n: world.values[k] for n, k in self.query_refs.items()}}
        body = self.body
        schema = self.op.body_schema
        for field_path, kind in self.body_refs:
            assert schema is not None
            body = with_field(body, schema, self.op.components, field_path, world.values[kind])
        return path, query, body


def _value_kind(path: str, name: str, problems: list[str], where: str) -> str | None:
    kind = kind_for(path, name)
    if kind is None:
        problems.append(f"{where} {name!r}: no kind in tests/support/resources.KINDS refers to it")
        return None
    return kind.name


def plan(op: Operation, caller: str) -> tuple[list[Planned], list[str]]:
    """Every call the sweep makes of ``op`` as ``caller``, or what it does not know."""
    problems: list[str] = []
    path_kinds = {
        p["name"]: _value_kind(op.path, p["name"], problems, "path parameter")
        for p in op.parameters("path")
    }
    query: dict[str, Any] = {}
    query_refs: dict[str, str] = {}
    for p in op.parameters("query"):
        if p["name"].endswith("_id"):
            kind = _value_kind(op.path, p["name"], problems, "query parameter")
            if kind is not None:
                query_refs[p["name"]] = kind
        elif p.get("required"):
            query[p["name"]] = minimal(p["schema"], op.components)
    body: Any = None
    required: list[tuple[FieldPath, str]] = []
    optional: list[tuple[FieldPath, str]] = []
    schema = op.body_schema
    if schema is not None:
        try:
            body = BODIES.get(op.body_name or "") or minimal(schema, op.components)
        except SchemaTooHard as exc:
            problems.append(f"body {op.body_name}: {exc}; give one in resources.BODIES")
        for field_path, needed in reference_fields(schema, op.components):
            kind = _value_kind(op.path, str(field_path[-1]), problems, "body field")
            if kind is not None:
                (required if needed else optional).append((field_path, kind))
    if problems:
        return [], [f"{op.key}: {problem}" for problem in problems]
    kinds = {k for k in path_kinds.values() if k is not None}
    private = {k for k in kinds if _KINDS[k].make is not None}

    def call(
        body_refs: list[tuple[FieldPath, str]],
        expect: Expectation,
        refs: Mapping[str, str] | None = None,
        public: str | None = None,
        base: Any = body,
    ) -> Planned:
        return Planned(
            op, caller, {n: k for n, k in path_kinds.items() if k}, query, refs or {},
            base, tuple(body_refs), public, expect,
        )  # fmt: skip

    referring = WITH_REFERENCE.get(op.body_name or "", body)

    calls = []
    if private or required:
        calls.append(call(required, "hidden"))
    elif not optional:
        calls.append(call(required, "visible", public=next(iter(kinds), None)))
    calls += [call([*required, ref], "hidden", base=referring) for ref in optional]
    calls += [call(required, "either", {name: kind}) for name, kind in query_refs.items()]
    for kind in kinds:
        spec = _KINDS[kind]
        if spec.make is not None and spec.public is not None and op.key in spec.public_ops:
            calls.append(call(required, "visible", public=kind))
    return calls, []


def plan_all(document: Mapping[str, Any]) -> tuple[list[Planned], list[Operation], list[str]]:
    """The sweep's calls, the operator operations, and every operation it cannot exercise."""
    calls: list[Planned] = []
    operator_ops: list[Operation] = []
    problems: list[str] = []
    for op in operations(document):
        callers = op.callers
        if not callers:
            problems.append(f"{op.key}: takes no credentials; say how the sweep should call it")
        for caller in sorted(callers):
            if caller == "operator":
                operator_ops.append(op)
                problems += [
                    f"{op.key}: path parameter {p['name']!r}: no kind refers to it"
                    for p in op.parameters("path")
                    if kind_for(op.path, p["name"]) is None
                ]
            elif caller in {"user", "tenant"}:
                found, unknown = plan(op, caller)
                calls += found
                problems += unknown
            else:
                problems.append(f"{op.key}: {caller}")
    return calls, operator_ops, problems


def _document() -> dict[str, Any]:
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", operator_key="k" * 32)
    return create_app(settings).openapi()


def _leaks(response: httpx.Response, world: World) -> list[str]:
    return sorted(s for s in world.private_strings() if s in response.text)


async def _request(
    api: StudioApi, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> httpx.Response:
    async with asyncio.timeout(CALL_TIMEOUT):
        return await api.client.request(method, path, headers=headers, **kwargs)


async def _headers_of_b(api: StudioApi, caller: str, tenant_b: str) -> dict[str, str]:
    if caller == "user":
        return (await api.account("Bo", tenant_id=tenant_b)).headers
    return (await fresh_key(api, tenant_b)).headers


async def _send(
    api: StudioApi, planned: Planned, world: World, headers: dict[str, str]
) -> httpx.Response:
    path, query, body = planned.bind(world)
    kwargs: dict[str, Any] = {"params": query}
    if planned.op.body_schema is not None:
        kwargs["json"] = body
    return await _request(api, planned.op.method, path, headers, **kwargs)


def _error_of(response: httpx.Response) -> tuple[Any, ...]:
    """Status, code, field and message of an error, with the values in the message masked."""
    error = response.json().get("error", {}) if response.content else {}
    message = _VALUES_IN_MESSAGES.sub("…", str(error.get("message", "")))
    return response.status_code, error.get("code"), error.get("field"), message


def _unlike_absent(
    planned: Planned, response: httpx.Response, control: httpx.Response
) -> str | None:
    """Why B's answer for A's values tells them apart from values that exist nowhere."""
    only_in_body = not any(_KINDS[k].make for k in planned.path.values())
    allowed = {404, 422} if only_in_body else {404}
    if response.status_code not in allowed:
        return f"{response.status_code} {response.text[:300]} (wanted 404)"
    if _error_of(response) != _error_of(control):
        return f"{response.text[:200]}, but for an unknown id: {control.text[:200]}"
    return None


async def _check(api: StudioApi, planned: Planned, world: World, tenant_b: str) -> str | None:
    headers = await _headers_of_b(api, planned.caller, tenant_b)
    try:
        response = await _send(api, planned, world, headers)
        status, ok = response.status_code, 200 <= response.status_code < 300
        if planned.expect == "hidden":
            control = await _send(api, planned, world.absent(), headers)
            wrong = _unlike_absent(planned, response, control)
        elif not ok and (planned.expect == "visible" or status != 404):
            wrong = f"{status} {response.text[:300]} (wanted {planned.expect})"
        else:
            wrong = None
    except TimeoutError:
        return f"{planned.describe()}: no answer within {CALL_TIMEOUT} s"
    if wrong:
        return f"{planned.describe()}: {wrong}"
    if world.marker in response.text or (ok and _leaks(response, world)):
        return f"{planned.describe()}: B's answer shows A's data {_leaks(response, world)}"
    return None


async def _refusals(
    api: StudioApi, operator_ops: list[Operation], world: World, tenant_b: str
) -> list[str]:
    """Operator operations refuse B's login token and B's API key (401)."""
    failures = []
    for op in operator_ops:
        path = op.path
        for param in op.parameters("path"):
            kind = kind_for(op.path, param["name"])
            assert kind is not None
            path = path.replace(f"{{{param['name']}}}", str(world.values[kind.name]))
        schema = op.body_schema
        body = {} if schema is None else {"json": minimal(schema, op.components)}
        for caller in ("user", "tenant"):
            headers = await _headers_of_b(api, caller, tenant_b)
            response = await _request(api, op.method, path, headers, **body)
            if response.status_code != 401:
                failures.append(f"{op.key} as {caller}: {response.status_code} (wanted 401)")
    return failures


def _normal(value: Any, public: set[Any]) -> Any:
    """``value`` without volatile fields; public resources (B forks the approved listing, which
    moves its counters by design) only as their id."""
    if isinstance(value, dict):
        if value.get("id") in public:
            return {"id": value["id"]}
        return {k: _normal(v, public) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normal(v, public) for v in value]
    return value


def _difference(old: Any, new: Any, where: str = "") -> str:
    """Where two JSON values first differ, and how."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        key = next(k for k in old if old[k] != new[k])
        return _difference(old[key], new[key], f"{where}.{key}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        index = next(i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
        return _difference(old[index], new[index], f"{where}[{index}]")
    return f"{where or '.'}: {json.dumps(old)[:200]} -> {json.dumps(new)[:200]}"


async def snapshot(api: StudioApi, document: Mapping[str, Any], world: World) -> dict[str, Any]:
    """Every GET of A's, on A's own values: what A sees."""
    seen: dict[str, Any] = {}
    for op in operations(document):
        if op.method != "GET" or "operator" in op.callers:
            continue
        calls, problems = plan(op, "user" if "user" in op.callers else "tenant")
        assert not problems, problems
        for planned in calls:
            if planned.query_refs or planned.body_refs or planned.public:
                continue
            path, query, _ = planned.bind(world)
            headers = world.owner.headers if planned.caller == "user" else world.key.headers
            response = await _request(api, "GET", path, headers, params=query)
            assert response.status_code == 200, f"A: {op.key}: {response.text}"
            is_json = response.headers.get("content-type", "").startswith("application/json")
            seen[path] = (
                _normal(response.json(), set(world.public.values())) if is_json else response.text
            )
    return seen


def test_every_operation_is_known_to_the_sweep() -> None:
    """Each operation of the document can be planned (else: extend resources.KINDS/BODIES)."""
    calls, operator_ops, problems = plan_all(_document())
    assert not problems, "\n".join(problems)
    planned = {c.op.key for c in calls} | {op.key for op in operator_ops}
    assert planned == {op.key for op in operations(_document())}


def test_an_unknown_parameter_body_or_scheme_fails_the_sweep() -> None:
    """The checker itself: a new operation it cannot exercise is reported, not skipped."""
    document = _document()
    template = document["paths"]["/api/sessions/{session_id}"]["get"]
    widget = {"name": "widget_id", "in": "path", "required": True, "schema": {"type": "string"}}
    document["paths"]["/api/widgets/{widget_id}"] = {"get": {**template, "parameters": [widget]}}
    document["paths"]["/api/open"] = {"get": {**template, "security": []}}
    document["paths"]["/api/odd"] = {"get": {**template, "security": [{"Magic": []}]}}
    document["components"]["schemas"]["Patterned"] = {
        "title": "Patterned",
        "type": "object",
        "required": ["code", "gadget_id"],
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}, "gadget_id": {}},
    }
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Patterned"}}}}
    document["paths"]["/api/gadgets"] = {
        "post": {"security": template["security"], "requestBody": body, "responses": {}}
    }
    _, _, problems = plan_all(document)
    text = "\n".join(problems)
    assert "GET /api/widgets/{widget_id}: path parameter 'widget_id'" in text
    assert "GET /api/open: takes no credentials" in text
    assert "GET /api/odd: unknown scheme Magic" in text
    assert "POST /api/gadgets: body Patterned: a string matching" in text
    assert "POST /api/gadgets: body field 'gadget_id'" in text


@pytest.fixture(scope="module")
async def world(api: StudioApi) -> World:
    """Tenant A with one resource of every kind (per dialect)."""
    return await make_world(api, "A")


async def test_another_tenant_cannot_reach_anything_of_a_tenant(
    api: StudioApi, world: World
) -> None:
    """B with A's values everywhere gets 404s and nothing of A's; A's data is untouched."""
    document = (await api.client.get("/openapi.json")).json()
    calls, operator_ops, problems = plan_all(document)
    assert not problems, "\n".join(problems)
    tenant_b = (await api.tenant()).tenant_id
    before = await snapshot(api, document, world)
    assert len(before) >= 30, sorted(before)
    failures = [f for planned in calls if (f := await _check(api, planned, world, tenant_b))]
    failures += await _refusals(api, operator_ops, world, tenant_b)
    after = await snapshot(api, document, world)
    changed = [
        f"A's {path} changed: {_difference(before[path], after.get(path))}"
        for path in before
        if before[path] != after.get(path)
    ]
    assert not failures + changed, "\n".join(failures + changed)


async def test_the_sweep_reports_a_lookup_that_forgets_the_tenant(
    api: StudioApi, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep can fail: with the session lookup unscoped, B's reads of A's session show."""

    async def unscoped(db: AsyncSession, session_id: str, *, tenant_id: str) -> Any:
        return await db.get(CollaborationSession, session_id)

    monkeypatch.setattr(common, "get_session", unscoped)
    calls, _, _ = plan_all((await api.client.get("/openapi.json")).json())
    reads = [c for c in calls if c.op.key == "GET /api/sessions/{session_id}"]
    tenant_b = (await api.tenant()).tenant_id
    failures = [await _check(api, planned, world, tenant_b) for planned in reads]
    assert failures and all(f is not None and ": 200 " in f for f in failures), failures


@pytest.mark.parametrize("kind", [k.name for k in KINDS if k.make is not None])
def test_every_private_kind_is_referred_to_by_some_operation(kind: str) -> None:
    """A kind no operation refers to would be made and never probed: the table is stale."""
    calls, operator_ops, _ = plan_all(_document())
    used = {k for c in calls for k in (*c.path.values(), *(k for _, k in c.body_refs))}
    used |= {k for c in calls for k in c.query_refs.values()}
    operator_kinds = {
        found.name
        for op in operator_ops
        for p in op.parameters("path")
        if (found := kind_for(op.path, p["name"])) is not None
    }
    assert kind in used | operator_kinds
