"""A tenant's cache policy: the ``cache_config`` row as a validated, immutable value.

Invalidation rules follow the schema doc: ``{type: tag|pattern|time|count, value, action:
delete|refresh}``.

* ``tag`` - entries carrying the tag ``value``;
* ``pattern`` - entries whose prompt matches the glob ``value`` (``*``, ``?``; case-insensitive);
* ``time`` - entries created more than ``value`` seconds ago;
* ``count`` - entries served ``value`` times or more.

``delete`` removes the matching entries; ``refresh`` runs their prompt again and keeps the new
answer (the entry starts over: new expiry, hit count 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast

from server.cache.errors import InvalidCacheConfig
from storage.models.cache import CacheConfig

RuleType = Literal["tag", "pattern", "time", "count"]
RuleAction = Literal["delete", "refresh"]
RULE_TYPES: tuple[RuleType, ...] = ("tag", "pattern", "time", "count")
RULE_ACTIONS: tuple[RuleAction, ...] = ("delete", "refresh")

MAX_RULES = 50
MAX_TAG_CHARS = 64
MAX_PATTERN_CHARS = 500
MAX_TTL_SECONDS = 365 * 24 * 3600
MAX_JUDGE_MODEL_CHARS = 200
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True, slots=True)
class InvalidationRule:
    """One validated invalidation rule."""

    type: RuleType
    value: str | int
    action: RuleAction = "delete"

    def as_json(self) -> dict[str, object]:
        """The rule as stored in ``cache_config.invalidation_rules``."""
        return {"type": self.type, "value": self.value, "action": self.action}


def parse_rule(raw: Mapping[str, Any], where: str = "invalidation_rules") -> InvalidationRule:
    """Validate one rule; raises :class:`InvalidCacheConfig` naming the bad field."""
    kind = raw.get("type")
    if kind not in RULE_TYPES:
        raise InvalidCacheConfig(
            f"type must be one of {', '.join(RULE_TYPES)}", field=f"{where}.type"
        )
    action = raw.get("action", "delete")
    if action not in RULE_ACTIONS:
        raise InvalidCacheConfig(
            f"action must be one of {', '.join(RULE_ACTIONS)}", field=f"{where}.action"
        )
    value = raw.get("value")
    if kind in ("tag", "pattern"):
        limit = MAX_TAG_CHARS if kind == "tag" else MAX_PATTERN_CHARS
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise InvalidCacheConfig(
                f"a {kind} rule's value must be text of 1-{limit} characters",
                field=f"{where}.value",
            )
        value = value.strip()
    else:
        limit = MAX_TTL_SECONDS if kind == "time" else 2**31 - 1
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise InvalidCacheConfig(
                f"a {kind} rule's value must be an integer from 1 to {limit}",
                field=f"{where}.value",
            )
    return InvalidationRule(cast(RuleType, kind), value, cast(RuleAction, action))


def parse_rules(raw: object) -> tuple[InvalidationRule, ...]:
    """Validate a stored or submitted rule list."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise InvalidCacheConfig(
            f"invalidation_rules must be a list of at most {MAX_RULES} rules",
            field="invalidation_rules",
        )
    rules = []
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidCacheConfig(
                "each rule must be an object", field=f"invalidation_rules.{position}"
            )
        rules.append(parse_rule(item, f"invalidation_rules.{position}"))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the cache does for one tenant."""

    enabled: bool = True
    similarity_threshold: float = 0.85
    default_ttl_seconds: int = 3600
    max_cache_size: int = 1000
    rules: tuple[InvalidationRule, ...] = field(default_factory=tuple)
    bypass_temperature: float = 1.0
    precision_sample_rate: float = 0.1
    judge_model: str = "offline"
    updated_at: datetime | None = None

    def bypasses(self, temperature: float) -> bool:
        """Whether a request at ``temperature`` skips the cache (disabled, or too hot)."""
        return not self.enabled or temperature > self.bypass_temperature


def policy_of(row: CacheConfig | None) -> CachePolicy:
    """The policy stored in ``row`` (the defaults when the tenant has no row)."""
    if row is None:
        return CachePolicy()
    try:
        rules = parse_rules(row.invalidation_rules)
    except InvalidCacheConfig:
        # Rows written by older code or by hand: keep serving, ignore rules we cannot apply.
        rules = ()
    return CachePolicy(
        enabled=bool(row.enabled),
        similarity_threshold=float(row.similarity_threshold),
        default_ttl_seconds=int(row.default_ttl_seconds),
        max_cache_size=int(row.max_cache_size),
        rules=rules,
        bypass_temperature=float(row.bypass_temperature),
        precision_sample_rate=float(row.precision_sample_rate),
        judge_model=row.judge_model,
        updated_at=row.updated_at,
    )


def _in_range(name: str, value: object, low: float, high: float, *, integer: bool) -> float:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise InvalidCacheConfig(f"{name} must be {kind}", field=name)
    number = float(cast(float, value))
    if not low <= number <= high:
        raise InvalidCacheConfig(f"{name} must be between {low:g} and {high:g}", field=name)
    return number


def updated_policy(
    policy: CachePolicy, changes: Mapping[str, object], *, max_cache_size: int
) -> CachePolicy:
    """``policy`` with ``changes`` applied and validated; ``max_cache_size`` caps the size."""
    updates: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "enabled":
            if not isinstance(value, bool):
                raise InvalidCacheConfig("enabled must be true or false", field=name)
            updates[name] = value
        elif name == "similarity_threshold":
            updates[name] = _in_range(name, value, 0.5, 1.0, integer=False)
        elif name == "default_ttl_seconds":
            updates[name] = int(_in_range(name, value, 1, MAX_TTL_SECONDS, integer=True))
        elif name == "max_cache_size":
            updates[name] = int(_in_range(name, value, 1, max_cache_size, integer=True))
        elif name == "bypass_temperature":
            updates[name] = _in_range(name, value, 0.0, MAX_TEMPERATURE, integer=False)
        elif name == "precision_sample_rate":
            updates[name] = _in_range(name, value, 0.0, 1.0, integer=False)
        elif name == "judge_model":
            if (
                not isinstance(value, str)
                or not value.strip()
                or len(value) > MAX_JUDGE_MODEL_CHARS
            ):
                raise InvalidCacheConfig(
                    f"judge_model must be 1-{MAX_JUDGE_MODEL_CHARS} characters", field=name
                )
            updates[name] = value.strip()
        elif name == "invalidation_rules":
            updates["rules"] = parse_rules(value)
        else:
            raise InvalidCacheConfig(f"unknown setting {name!r}", field=name)
    return replace(policy, **updates)


def write_policy(row: CacheConfig, policy: CachePolicy) -> None:
    """Store ``policy`` in ``row``."""
    row.enabled = policy.enabled
    row.similarity_threshold = policy.similarity_threshold
    row.default_ttl_seconds = policy.default_ttl_seconds
    row.max_cache_size = policy.max_cache_size
    row.invalidation_rules = [rule.as_json() for rule in policy.rules]
    row.bypass_temperature = policy.bypass_temperature
    row.precision_sample_rate = policy.precision_sample_rate
    row.judge_model = policy.judge_model


def rules_json(rules: Sequence[InvalidationRule]) -> list[dict[str, object]]:
    """Rules as the API and the table show them."""
    return [rule.as_json() for rule in rules]
