"""The op-id ledger's bound and merge order, and its two settings at their edges."""

from __future__ import annotations

import pytest

from server.hub.op_ids import LandedOp, OpLedger, op_digest
from server.settings import Settings, SettingsError


def test_the_ledger_keeps_each_users_last_ids_only() -> None:
    ledger = OpLedger(per_user=3, max_id_chars=64)
    for i in range(5):
        ledger.record("u1", f"op{i}", LandedOp(f"d{i}"))
    ledger.record("u2", "mine", LandedOp("d"))
    assert ledger.landed_ids("u1") == ["op2", "op3", "op4"]
    assert ledger.find("u1", "op1") is None
    assert ledger.find("u2", "op4") is None  # ids are per user
    assert ledger.counts() == (2, 4)


def test_stored_ids_go_before_those_applied_here_and_the_bound_holds() -> None:
    ledger = OpLedger(per_user=3, max_id_chars=64)
    ledger.record("u1", "live", LandedOp("dl"))
    ledger.merge_stored("u1", [("s1", "d1"), ("s2", "d2"), ("live", "dl"), ("s3", None)])
    assert ledger.landed_ids("u1") == ["s2", "s3", "live"]
    found = ledger.find("u1", "s2")
    assert found is not None and found.digest == "d2" and found.durable is None


def test_a_ledger_needs_room_for_one_id() -> None:
    with pytest.raises(ValueError):
        OpLedger(per_user=0, max_id_chars=64)


def test_the_digest_ignores_key_order_but_not_content() -> None:
    a = {"type": "insert", "position": 1, "content": "x"}
    assert op_digest(a) == op_digest({"content": "x", "position": 1, "type": "insert"})
    assert op_digest(a) != op_digest({**a, "content": "y"})


@pytest.mark.parametrize(
    ("name", "field", "default", "minimum", "maximum"),
    [
        ("PROMPT_STUDIO_OP_IDS_PER_USER", "op_ids_per_user", 100, 1, 10_000),
        ("PROMPT_STUDIO_OP_ID_MAX_CHARS", "op_id_max_chars", 64, 8, 1024),
    ],
)
def test_op_id_settings_default_parse_and_refuse_values_past_their_edges(
    name: str, field: str, default: int, minimum: int, maximum: int
) -> None:
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(minimum)}), field) == minimum
    assert getattr(Settings.from_env({name: str(maximum)}), field) == maximum
    with pytest.raises(SettingsError, match=f"{name} must be >= {minimum}"):
        Settings.from_env({name: str(minimum - 1)})
    with pytest.raises(SettingsError, match=f"{name} must be <= {maximum}"):
        Settings.from_env({name: str(maximum + 1)})
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "many"})


def test_a_remote_op_is_known_until_found_stored_then_durable() -> None:
    ledger = OpLedger(per_user=3, max_id_chars=64)
    ledger.record("u1", "local", LandedOp("dl"))
    ledger.record_remote("u1", "local", "other")  # a local op is never overwritten by a peer's
    ledger.record_remote("u1", "far", "df")
    far = ledger.find("u1", "far")
    assert far is not None and far.remote and ledger.find("u1", "local") == LandedOp("dl")
    ledger.merge_stored("u1", [("far", "df")])
    assert ledger.find("u1", "far") == LandedOp("df")  # stored: no longer remote
    assert ledger.landed_ids("u1") == ["local", "far"]
