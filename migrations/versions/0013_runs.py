"""PLACEHOLDER: reserved revision in the chain; its owner replaces this docstring and the body.

Revision ID: 0013_runs
Revises: 0012_catalog_tenancy
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0013_runs"
down_revision: str | Sequence[str] | None = "0012_catalog_tenancy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
