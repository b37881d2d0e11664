"""One role type, one ranking: storage, REST and the hub all ask ``role_at_least``."""

from __future__ import annotations

import pytest

from storage.models.collaboration import MEMBER_ROLES, ROLE_RANK, role_at_least


def test_the_roles_rank_owner_over_editor_over_viewer() -> None:
    assert MEMBER_ROLES == ("OWNER", "EDITOR", "VIEWER")
    assert ROLE_RANK["OWNER"] > ROLE_RANK["EDITOR"] > ROLE_RANK["VIEWER"]


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        ("OWNER", "EDITOR", True),
        ("EDITOR", "EDITOR", True),
        ("VIEWER", "EDITOR", False),
        ("EDITOR", "OWNER", False),
        ("VIEWER", "VIEWER", True),
        (None, "VIEWER", False),
        ("ADMIN", "VIEWER", False),  # an unknown name is no role at all
        ("owner", "VIEWER", False),  # roles are case-sensitive, as the column's check is
    ],
)
def test_role_at_least(role: str | None, minimum: str, allowed: bool) -> None:
    assert role_at_least(role, minimum) is allowed  # type: ignore[arg-type]
