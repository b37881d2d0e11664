"""Semantic cache: semantic_cache, cache_tags, cache_statistics, cache_config.

Revision ID: 0004_add_semantic_cache
Revises: 0003_add_collaboration
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_add_semantic_cache"
down_revision: str | Sequence[str] | None = "0003_add_collaboration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.TIMESTAMP(), server_default=sa.func.now(), nullable=nullable)


def upgrade() -> None:
    """Create the semantic cache tables."""
    op.create_table(
        "semantic_cache",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("prompt_hash", sa.Text(), nullable=False),
        sa.Column("embedding", JSONType, nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("hit_count", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("tokens_saved", sa.Integer(), server_default=sa.text("0"), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("last_accessed_at", nullable=True),
        sa.Column("expires_at", sa.TIMESTAMP(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_semantic_cache_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_semantic_cache")),
    )
    op.create_index(op.f("idx_cache_prompt_hash"), "semantic_cache", ["prompt_hash"])
    op.create_index(op.f("idx_cache_model"), "semantic_cache", ["model"])
    op.create_index(op.f("idx_cache_expires"), "semantic_cache", ["expires_at"])
    op.create_index(op.f("idx_cache_user"), "semantic_cache", ["user_id"])

    op.create_table(
        "cache_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("cache_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cache_id"],
            ["semantic_cache.id"],
            name=op.f("fk_cache_tags_cache_id_semantic_cache"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_tags")),
    )
    op.create_index(op.f("idx_cache_tags_name"), "cache_tags", ["name"])
    op.create_index(op.f("idx_cache_tags_cache"), "cache_tags", ["cache_id"])

    op.create_table(
        "cache_statistics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.TIMESTAMP(), nullable=False),
        sa.Column("total_hits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_misses", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("tokens_saved", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_saved", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_statistics")),
        sa.UniqueConstraint("date", name=op.f("uq_cache_statistics_date")),
    )
    op.create_index(op.f("idx_cache_stats_date"), "cache_statistics", [sa.text("date DESC")])

    op.create_table(
        "cache_config",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "similarity_threshold", sa.Double(), server_default=sa.text("0.85"), nullable=False
        ),
        sa.Column(
            "default_ttl_seconds", sa.Integer(), server_default=sa.text("3600"), nullable=False
        ),
        sa.Column("max_cache_size", sa.Integer(), server_default=sa.text("1000"), nullable=False),
        sa.Column("invalidation_rules", JSONType, server_default=sa.text("'[]'"), nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_config")),
    )


def downgrade() -> None:
    """Drop the semantic cache tables."""
    op.drop_table("cache_config")
    op.drop_table("cache_statistics")
    op.drop_table("cache_tags")
    op.drop_table("semantic_cache")
