"""Runs: status, who ran and rated, the live session and state vector, the cache's answer.

* ``runs.status`` (``running`` | ``completed`` | ``truncated`` | ``failed`` | ``cancelled``,
  default ``completed`` so existing rows read as finished) and ``runs.error``;
* ``runs.user_id`` (SET NULL), ``runs.provider``, ``runs.finish_reason``;
* ``runs.session_id`` (SET NULL) and ``runs.state_vector`` (binary): a run of a live session's
  text records the session and its Yjs state vector at that moment;
* ``runs.cache_hit`` (default false), ``runs.cache_entry_id`` (no foreign key: entries expire),
  ``runs.cache_similarity``;
* indexes ``idx_runs_tenant_created`` (quota and statistics), ``idx_runs_session``;
* ``run_ratings.user_id`` (SET NULL) and ``idx_run_ratings_run``.

Revision ID: 0013_runs
Revises: 0012_catalog_tenancy
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_runs"
down_revision: str | Sequence[str] | None = "0012_catalog_tenancy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "status IN ('running', 'completed', 'truncated', 'failed', 'cancelled')"


def _restore_descending_index() -> None:
    """SQLite's batch rebuild of ``runs`` loses ``idx_runs_created_at``'s DESC; restore it."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index(op.f("idx_runs_created_at"), table_name="runs")
    op.create_index(op.f("idx_runs_created_at"), "runs", [sa.text("created_at DESC")])


def upgrade() -> None:
    """Add the run and rating columns, their keys and indexes."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("status", sa.Text(), server_default="completed", nullable=False))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("user_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("provider", sa.Text(), nullable=True))
        batch.add_column(sa.Column("finish_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("session_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("state_vector", sa.LargeBinary(), nullable=True))
        batch.add_column(
            sa.Column("cache_hit", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("cache_entry_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cache_similarity", sa.Double(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_runs_user_id_users"), "users", ["user_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_foreign_key(
            op.f("fk_runs_session_id_collaboration_sessions"),
            "collaboration_sessions",
            ["session_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_check_constraint(op.f("ck_runs_valid_status"), sa.text(STATUSES))
        batch.create_index(op.f("idx_runs_tenant_created"), ["tenant_id", "created_at"])
        batch.create_index(op.f("idx_runs_session"), ["session_id"])
    _restore_descending_index()

    with op.batch_alter_table("run_ratings") as batch:
        batch.add_column(sa.Column("user_id", sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_run_ratings_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("idx_run_ratings_run"), ["run_id"])


def downgrade() -> None:
    """Remove everything :func:`upgrade` added."""
    with op.batch_alter_table("run_ratings") as batch:
        batch.drop_index(op.f("idx_run_ratings_run"))
        batch.drop_constraint(op.f("fk_run_ratings_user_id_users"), type_="foreignkey")
        batch.drop_column("user_id")

    with op.batch_alter_table("runs") as batch:
        batch.drop_index(op.f("idx_runs_session"))
        batch.drop_index(op.f("idx_runs_tenant_created"))
        batch.drop_constraint(op.f("ck_runs_valid_status"), type_="check")
        batch.drop_constraint(op.f("fk_runs_session_id_collaboration_sessions"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_runs_user_id_users"), type_="foreignkey")
        for column in (
            "cache_similarity",
            "cache_entry_id",
            "cache_hit",
            "state_vector",
            "session_id",
            "finish_reason",
            "provider",
            "user_id",
            "error",
        ):
            batch.drop_column(column)
        batch.drop_column("status")
    _restore_descending_index()
