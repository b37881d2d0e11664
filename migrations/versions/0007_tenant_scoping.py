"""Our additions to the seed schema (DESIGN.md).

* ``collaboration_sessions.crdt_state``: the persisted Yjs document state (binary), so a
  restart never rebuilds a document from plain text.
* ``tenant_id`` (nullable, FK to ``tenants``, indexed) on ``runs``, ``semantic_cache``,
  ``agent_compose_runs``, ``cache_config`` and ``cache_statistics``: a shared semantic cache
  would hand one tenant's responses to another.
* ``cache_statistics``: ``unique(date)`` becomes ``unique(tenant_id, date)`` (its index also
  serves lookups by tenant), plus a partial unique index keeping one row per date for the
  rows that belong to no tenant (NULLs are distinct in a unique constraint).

Downgrading drops the tenant columns; it fails if two tenants have statistics for one date.

Revision ID: 0007_tenant_scoping
Revises: 0006_add_agent_compose
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_tenant_scoping"
down_revision: str | Sequence[str] | None = "0006_add_agent_compose"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Table -> name of its tenant_id index (cache_statistics uses its unique constraint instead).
TENANT_SCOPED: dict[str, str | None] = {
    "runs": "idx_runs_tenant",
    "semantic_cache": "idx_cache_tenant",
    "agent_compose_runs": "idx_compose_runs_tenant",
    "cache_config": "idx_cache_config_tenant",
    "cache_statistics": None,
}

# Descending indexes on tables that SQLite rebuilds below: name -> (table, column).
DESCENDING_INDEXES = {
    "idx_runs_created_at": ("runs", "created_at"),
    "idx_cache_stats_date": ("cache_statistics", "date"),
}

UNTENANTED = sa.text("tenant_id IS NULL")


def _restore_descending_indexes() -> None:
    """Rebuild ``DESC`` indexes after SQLite batch rebuilds of their tables.

    SQLite does not reflect index sort order, so a rebuilt table gets them ascending.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, (table, column) in DESCENDING_INDEXES.items():
        op.drop_index(op.f(name), table_name=table)
        op.create_index(op.f(name), table, [sa.text(f"{column} DESC")])


def upgrade() -> None:
    """Add the Yjs state column and scope the per-tenant tables."""
    op.add_column(
        "collaboration_sessions", sa.Column("crdt_state", sa.LargeBinary(), nullable=True)
    )

    for table, index in TENANT_SCOPED.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("tenant_id", sa.Text(), nullable=True))
            batch_op.create_foreign_key(
                op.f(f"fk_{table}_tenant_id_tenants"), "tenants", ["tenant_id"], ["id"]
            )
            if index is not None:
                batch_op.create_index(op.f(index), ["tenant_id"])
            if table == "cache_statistics":
                batch_op.drop_constraint(op.f("uq_cache_statistics_date"), type_="unique")
                batch_op.create_unique_constraint(
                    op.f("uq_cache_statistics_tenant_id_date"), ["tenant_id", "date"]
                )
    op.create_index(
        op.f("uq_cache_statistics_date_global"),
        "cache_statistics",
        ["date"],
        unique=True,
        postgresql_where=UNTENANTED,
        sqlite_where=UNTENANTED,
    )
    _restore_descending_indexes()


def downgrade() -> None:
    """Remove the tenant columns and the Yjs state column."""
    op.drop_index(op.f("uq_cache_statistics_date_global"), table_name="cache_statistics")
    for table, index in reversed(TENANT_SCOPED.items()):
        with op.batch_alter_table(table) as batch_op:
            if table == "cache_statistics":
                batch_op.drop_constraint(op.f("uq_cache_statistics_tenant_id_date"), type_="unique")
                batch_op.create_unique_constraint(op.f("uq_cache_statistics_date"), ["date"])
            if index is not None:
                batch_op.drop_index(op.f(index))
            batch_op.drop_constraint(op.f(f"fk_{table}_tenant_id_tenants"), type_="foreignkey")
            batch_op.drop_column("tenant_id")
    _restore_descending_indexes()

    with op.batch_alter_table("collaboration_sessions") as batch_op:
        batch_op.drop_column("crdt_state")
