"""Tenant-owned templates and the marketplace's moderation and provenance columns.

* ``templates.tenant_id`` (→ tenants, CASCADE; NULL = the global seeded templates): a tenant's
  own templates are visible to that tenant only, the global ones are read-only for everyone.
* ``marketplace_prompts``: ``tenant_id`` (the author's tenant), ``source_version_id`` (the
  prompt version the content was copied from; no foreign key, since prompt_versions already
  refers to this table and a cycle of foreign keys cannot be created or dropped in order),
  ``rejection_reason``,
  ``moderated_at`` and ``fork_count``.

Revision ID: 0012_catalog_tenancy
Revises: 0011_prompt_labels
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_catalog_tenancy"
down_revision: str | Sequence[str] | None = "0011_prompt_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _restore_sqlite_indexes() -> None:
    """SQLite's batch rebuilds lose descending and partial index definitions: restore them."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("idx_templates_created_at", table_name="templates")
    op.create_index("idx_templates_created_at", "templates", [sa.text("created_at DESC")])
    op.drop_index("idx_marketplace_featured", table_name="marketplace_prompts")
    featured = sa.column("is_featured", sa.Boolean()) == sa.true()
    op.create_index(
        "idx_marketplace_featured", "marketplace_prompts", ["is_featured"], sqlite_where=featured
    )


def upgrade() -> None:
    """Add the columns, their foreign keys and indexes."""
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("tenant_id", sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_templates_tenant_id_tenants"),
            "tenants",
            ["tenant_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("idx_templates_tenant", ["tenant_id"])
    with op.batch_alter_table("marketplace_prompts") as batch:
        batch.add_column(sa.Column("tenant_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source_version_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rejection_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("moderated_at", sa.TIMESTAMP(), nullable=True))
        batch.add_column(
            sa.Column("fork_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.create_foreign_key(
            op.f("fk_marketplace_prompts_tenant_id_tenants"),
            "tenants",
            ["tenant_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("idx_marketplace_tenant", ["tenant_id"])
    _restore_sqlite_indexes()


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("marketplace_prompts") as batch:
        batch.drop_index("idx_marketplace_tenant")
        batch.drop_constraint(op.f("fk_marketplace_prompts_tenant_id_tenants"), type_="foreignkey")
        for column in (
            "fork_count",
            "moderated_at",
            "rejection_reason",
            "source_version_id",
            "tenant_id",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("templates") as batch:
        batch.drop_index("idx_templates_tenant")
        batch.drop_constraint(op.f("fk_templates_tenant_id_tenants"), type_="foreignkey")
        batch.drop_column("tenant_id")
    _restore_sqlite_indexes()
