"""Key semantic-cache entries on their scope and embedder; judge samples and a histogram.

* ``semantic_cache``: ``scope_key`` (hash of model, temperature, max_tokens and the rendered
  non-user sections), ``sections_hash``, ``source_hash`` (the prompt version's unrendered
  sections, for retirement), ``temperature`` (x100), ``max_tokens``, ``embedder``, ``sections``
  (what a refresh re-runs), ``vector`` (the embedding as float32 bytes, which an index loads far
  faster than the JSON array) and the producing call's ``prompt_tokens`` / ``completion_tokens``;
  indexes for the scope lookup, retirement and least-recently-used eviction.
* ``cache_statistics``: ``judged_hits`` and ``judged_correct`` (the estimated precision).
* ``cache_config``: ``bypass_temperature``, ``precision_sample_rate``, ``judge_model``.
* New table ``cache_similarity_buckets``: lookups per nearest-similarity bucket, tenant and day.

Every new column has a server default (or is nullable), so existing rows stay valid.

Revision ID: 0014_semantic_cache_scope
Revises: 0013_runs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_semantic_cache_scope"
down_revision: str | Sequence[str] | None = "0013_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _entry_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("scope_key", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("sections_hash", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("source_hash", sa.Text(), nullable=True),
        sa.Column("temperature", sa.Integer(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("embedder", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("sections", JSON_TYPE, nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
    ]


ENTRY_INDEXES = {
    "idx_cache_scope": ["tenant_id", "scope_key", "embedder"],
    "idx_cache_sections": ["tenant_id", "sections_hash"],
    "idx_cache_lru": ["tenant_id", "last_accessed_at"],
}


def _statistics_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("judged_hits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("judged_correct", sa.Integer(), server_default=sa.text("0"), nullable=False),
    ]


def _config_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("bypass_temperature", sa.Double(), server_default=sa.text("1.0"), nullable=False),
        sa.Column(
            "precision_sample_rate", sa.Double(), server_default=sa.text("0.1"), nullable=False
        ),
        sa.Column("judge_model", sa.Text(), server_default=sa.text("'offline'"), nullable=False),
    ]


def upgrade() -> None:
    """Add the columns, indexes and the histogram table."""
    # Adding columns with constant defaults is a plain ALTER TABLE on both databases, so no
    # batch rebuild (which would drop cache_statistics' DESC and partial indexes on SQLite).
    for column in _entry_columns():
        op.add_column("semantic_cache", column)
    for name, columns in ENTRY_INDEXES.items():
        op.create_index(op.f(name), "semantic_cache", columns)
    for column in _statistics_columns():
        op.add_column("cache_statistics", column)
    for column in _config_columns():
        op.add_column("cache_config", column)
    op.create_table(
        "cache_similarity_buckets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("date", sa.TIMESTAMP(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_cache_similarity_buckets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_similarity_buckets")),
        sa.UniqueConstraint(
            "tenant_id",
            "date",
            "bucket",
            name=op.f("uq_cache_similarity_buckets_tenant_id_date_bucket"),
        ),
    )


def downgrade() -> None:
    """Drop the histogram table, the indexes and the columns."""
    op.drop_table("cache_similarity_buckets")
    # SQLite (3.35+) drops unindexed columns in place: no rebuild, the other indexes survive.
    for column in reversed(_config_columns()):
        op.drop_column("cache_config", column.name)
    for column in reversed(_statistics_columns()):
        op.drop_column("cache_statistics", column.name)
    for name in reversed(ENTRY_INDEXES):
        op.drop_index(op.f(name), table_name="semantic_cache")
    for column in reversed(_entry_columns()):
        op.drop_column("semantic_cache", column.name)
