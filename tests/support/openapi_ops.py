"""Reading the app's OpenAPI document: its operations, who may call each, minimal valid inputs.

Tests that must cover every operation (the isolation sweep, the property run) read them from
``/openapi.json`` at run time, so an endpoint added tomorrow is covered — or the test says it
does not know how to exercise it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Security scheme names of the API, by the kind of caller they stand for.
CALLERS = {
    "LoginToken": "user",
    "LoginCookie": "user",
    "TenantApiKey": "tenant",
    "OperatorKey": "operator",
}
#: A field path inside a JSON body: object keys and (for arrays) the index 0.
FieldPath = tuple[str | int, ...]


class SchemaTooHard(Exception):
    """A schema :func:`minimal` cannot satisfy (a pattern, say): the caller must give a body."""


@dataclass(frozen=True)
class Operation:
    """One operation of the document."""

    method: str
    path: str
    spec: Mapping[str, Any]
    components: Mapping[str, Any]

    @property
    def key(self) -> str:
        """``"METHOD /path"``, as the tests name operations."""
        return f"{self.method} {self.path}"

    @property
    def callers(self) -> set[str]:
        """The kinds of caller the operation accepts (``user``, ``tenant``, ``operator``)."""
        names = {name for item in self.spec.get("security", []) for name in item}
        return {CALLERS.get(name, f"unknown scheme {name}") for name in names}

    def parameters(self, where: str) -> list[Mapping[str, Any]]:
        """The parameters ``in`` ``where`` (``path``, ``query``…)."""
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def body_schema(self) -> Mapping[str, Any] | None:
        """The JSON request body's schema (``X | null`` taken as ``X``), if it has a body."""
        content = self.spec.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return None
        schema = resolve(content["application/json"].get("schema", {}), self.components)
        branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
        return resolve(branches[0], self.components) if len(branches) == 1 else schema

    @property
    def body_name(self) -> str | None:
        """The component name of the body schema (its title), if any."""
        schema = self.body_schema
        return None if schema is None else schema.get("title")

    @property
    def streams(self) -> bool:
        """Whether a success answers server-sent events only."""
        ok = [r for code, r in self.spec.get("responses", {}).items() if code.startswith("2")]
        return any(set(r.get("content", {})) == {"text/event-stream"} for r in ok)


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document, in document order."""
    components = document.get("components", {}).get("schemas", {})
    return [
        Operation(method.upper(), path, spec, components)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]


def resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with a top-level ``$ref`` followed (``allOf`` of one taken as its item)."""
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def _minimal_string(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    low: int = schema.get("minLength", 1)
    high: int = schema.get("maxLength", 64)
    word = ("sweep" + "x" * max(0, low - 5))[: max(high, low)]
    candidates = ["sweep@example.test", word] if fmt == "email" else [word, "sweep@example.test"]
    pattern = schema.get("pattern")
    for candidate in candidates:
        if pattern is None or re.search(pattern, candidate):
            return candidate
    raise SchemaTooHard(f"a string matching {pattern!r}")


def _minimal_number(schema: Mapping[str, Any]) -> int | float:
    integer = schema.get("type") == "integer"
    if "minimum" in schema:
        low = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    else:
        low = 1
    return int(low) if integer else float(low)


def minimal(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Any:
    """The smallest value valid for ``schema``: required fields only, first choices."""
    schema = resolve(schema, components)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf"):
        if choice in schema:
            branches = [b for b in schema[choice] if b.get("type") != "null"]
            return minimal(branches[0], components) if branches else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: minimal(properties[name], components) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema.get("items", {}), components)] * schema.get("minItems", 0)
    if kind == "string":
        return _minimal_string(schema)
    if kind in {"integer", "number"}:
        return _minimal_number(schema)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    raise SchemaTooHard(f"no minimal value for {dict(schema)}")


def reference_fields(
    schema: Mapping[str, Any], components: Mapping[str, Any], suffix: str = "_id"
) -> Iterator[tuple[FieldPath, bool]]:
    """Every field of a body whose name ends in ``suffix``, with whether it is required
    (itself and every object around it)."""

    def walk(
        node: Mapping[str, Any], path: FieldPath, required: bool, seen: frozenset[str]
    ) -> Iterator[tuple[FieldPath, bool]]:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                yield from walk(components[name], path, required, seen | {name})
            return
        for choice in ("anyOf", "oneOf", "allOf"):
            for branch in node.get(choice, []):
                yield from walk(branch, path, required and choice == "allOf", seen)
        if "items" in node:
            yield from walk(
                node["items"], (*path, 0), required and node.get("minItems", 0) > 0, seen
            )
        needed = set(node.get("required", []))
        for name, field in node.get("properties", {}).items():
            inner = required and name in needed
            if name.endswith(suffix):
                yield (*path, name), inner
            yield from walk(field, (*path, name), inner, seen)

    yield from walk(schema, (), True, frozenset())


def with_field(
    body: Any, schema: Mapping[str, Any], components: Mapping[str, Any], path: FieldPath, value: Any
) -> Any:
    """A copy of ``body`` with ``value`` at ``path``, making the containers on the way."""
    result = copy.deepcopy(body)
    node, node_schema = result, resolve(schema, components)
    for step in path[:-1]:
        node_schema = _child_schema(node_schema, step, components)
        if isinstance(step, int):
            if not node:
                node.append(minimal(node_schema, components))
        elif node.get(step) is None:
            node[step] = minimal(node_schema, components)
        node = node[step]
    node[path[-1]] = value
    return result


def _child_schema(
    schema: Mapping[str, Any], step: str | int, components: Mapping[str, Any]
) -> Mapping[str, Any]:
    schema = resolve(schema, components)
    for choice in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(choice, []) if b.get("type") != "null"]
        if branches:
            schema = resolve(branches[0], components)
    if isinstance(step, int):
        return resolve(schema.get("items", {}), components)
    return resolve(schema.get("properties", {}).get(step, {}), components)
