"""PLACEHOLDER: reserved revision in the chain; its owner replaces this docstring and the body.

Revision ID: 0012_catalog_tenancy
Revises: 0011_prompt_labels
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0012_catalog_tenancy"
down_revision: str | Sequence[str] | None = "0011_prompt_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
