"""Multi-tenancy and versioned prompts: tenants, users, session, prompts, prompt_versions.

Also gives ``runs.prompt_version_id`` its foreign key (``ON DELETE SET NULL``), through a batch
operation so that SQLite rebuilds the table.

Revision ID: 0002_add_tenants
Revises: 0001_initial
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_add_tenants"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False)


def _restore_descending_index(name: str, table: str, column: str) -> None:
    """Rebuild a ``DESC`` index after a SQLite batch rebuild of its table.

    SQLite does not reflect index sort order, so the rebuilt table gets the index ascending.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index(op.f(name), table_name=table)
    op.create_index(op.f(name), table, [sa.text(f"{column} DESC")])


def upgrade() -> None:
    """Create the tenancy and prompt tables and link runs to prompt versions."""
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=True),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("config", JSONType, server_default=sa.text("'{}'"), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("domain", name=op.f("uq_tenants_domain")),
        sa.UniqueConstraint("api_key", name=op.f("uq_tenants_api_key")),
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("avatar", sa.Text(), nullable=True),
        sa.Column("color", sa.Text(), server_default="#3B82F6", nullable=True),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_users_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("idx_users_tenant"), "users", ["tenant_id"])
    op.create_index(op.f("idx_users_email"), "users", ["email"])

    op.create_table(
        "session",
        sa.Column("sid", sa.String(), nullable=False),
        sa.Column("sess", sa.JSON(), nullable=False),
        sa.Column(
            "expire",
            sa.TIMESTAMP().with_variant(postgresql.TIMESTAMP(precision=6), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_session")),
    )
    op.create_index(op.f("IDX_session_expire"), "session", ["expire"])

    op.create_table(
        "prompts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("active_version_id", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_prompts_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_prompts_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
    )
    op.create_index(op.f("idx_prompts_tenant"), "prompts", ["tenant_id"])
    op.create_index(op.f("idx_prompts_owner"), "prompts", ["owner_id"])

    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("sections", JSONType, nullable=True),
        sa.Column("variables", JSONType, server_default=sa.text("'[]'"), nullable=True),
        sa.Column("performance_metrics", JSONType, server_default=sa.text("'{}'"), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_versions_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_versions")),
    )
    op.create_index(op.f("idx_prompt_versions_prompt"), "prompt_versions", ["prompt_id"])
    op.create_index(
        op.f("idx_prompt_versions_unique"), "prompt_versions", ["prompt_id", "version"], unique=True
    )

    with op.batch_alter_table("runs") as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_runs_prompt_version_id_prompt_versions"),
            "prompt_versions",
            ["prompt_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _restore_descending_index("idx_runs_created_at", "runs", "created_at")


def downgrade() -> None:
    """Unlink runs from prompt versions and drop the tenancy and prompt tables."""
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_constraint(
            op.f("fk_runs_prompt_version_id_prompt_versions"), type_="foreignkey"
        )
    _restore_descending_index("idx_runs_created_at", "runs", "created_at")

    op.drop_table("prompt_versions")
    op.drop_table("prompts")
    op.drop_table("session")
    op.drop_table("users")
    op.drop_table("tenants")
