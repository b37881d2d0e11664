"""Core tables: templates, techniques, runs, run_ratings.

``runs.prompt_version_id`` gets its foreign key in 0002, once ``prompt_versions`` exists.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created_at() -> sa.Column[Any]:
    return sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    """Create the core tables."""
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("sections", JSONType, nullable=False),
        sa.Column("default_variables", JSONType, server_default=sa.text("'[]'"), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    op.create_index(op.f("idx_templates_category"), "templates", ["category"])
    op.create_index(op.f("idx_templates_created_at"), "templates", [sa.text("created_at DESC")])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(op.f("idx_templates_tags"), "templates", ["tags"], postgresql_using="gin")

    op.create_table(
        "techniques",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("good_example", sa.Text(), nullable=False),
        sa.Column("bad_example", sa.Text(), nullable=False),
        sa.Column("common_mistakes", JSONType, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_techniques")),
    )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prompt_version_id", sa.Text(), nullable=True),
        sa.Column("sections", JSONType, nullable=False),
        sa.Column("variables", JSONType, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("temperature", sa.Integer(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("latency", sa.Integer(), nullable=True),
        sa.Column("token_usage", JSONType, nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("idx_runs_created_at"), "runs", [sa.text("created_at DESC")])
    op.create_index(op.f("idx_runs_model"), "runs", ["model"])
    op.create_index(op.f("idx_runs_prompt_version"), "runs", ["prompt_version_id"])

    op.create_table(
        "run_ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("tags", JSONType, server_default=sa.text("'[]'"), nullable=True),
        _created_at(),
        sa.CheckConstraint("rating >= 1 AND rating <= 5", name=op.f("ck_run_ratings_rating_range")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_ratings_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_ratings")),
    )


def downgrade() -> None:
    """Drop the core tables (their indexes go with them)."""
    op.drop_table("run_ratings")
    op.drop_table("runs")
    op.drop_table("techniques")
    op.drop_table("templates")
