"""The prompt marketplace: marketplace_prompts.

Revision ID: 0005_add_marketplace
Revises: 0004_add_semantic_cache
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_add_marketplace"
down_revision: str | Sequence[str] | None = "0004_add_semantic_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the marketplace table."""
    op.create_table(
        "marketplace_prompts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, server_default=sa.text("'[]'"), nullable=True),
        sa.Column("is_featured", sa.Boolean(), server_default=sa.false(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name=op.f("ck_marketplace_prompts_valid_status"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_marketplace_prompts_author_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketplace_prompts")),
    )
    op.create_index(op.f("idx_marketplace_author"), "marketplace_prompts", ["author_id"])
    op.create_index(op.f("idx_marketplace_category"), "marketplace_prompts", ["category"])
    op.create_index(op.f("idx_marketplace_status"), "marketplace_prompts", ["status"])
    is_featured = sa.column("is_featured", sa.Boolean()) == sa.true()
    op.create_index(
        op.f("idx_marketplace_featured"),
        "marketplace_prompts",
        ["is_featured"],
        postgresql_where=is_featured,
        sqlite_where=is_featured,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            op.f("idx_marketplace_tags"), "marketplace_prompts", ["tags"], postgresql_using="gin"
        )


def downgrade() -> None:
    """Drop the marketplace table."""
    op.drop_table("marketplace_prompts")
