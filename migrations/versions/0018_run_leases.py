"""Runs carry the node that runs them and a lease it renews, so a dead node's runs are swept.

* ``runs.node_id`` - the node whose process is answering a ``running`` run;
* ``runs.lease_expires_at`` - until when that node vouches for it; renewed (with the partial
  output so far) every third of ``PROMPT_STUDIO_RUN_LEASE_SECONDS`` while the answer is produced.
  A ``running`` run whose lease has expired is marked ``failed`` (``finish_reason``
  ``interrupted``) by the sweep that every node runs, its partial output kept;
* index ``idx_runs_status_lease`` - what the sweep reads.

Revision ID: 0018_run_leases
Revises: 0017_edit_history_client_op
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_run_leases"
down_revision: str | Sequence[str] | None = "0017_edit_history_client_op"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _restore_descending_index() -> None:
    """SQLite's batch rebuild of ``runs`` loses ``idx_runs_created_at``'s DESC; restore it."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index(op.f("idx_runs_created_at"), table_name="runs")
    op.create_index(op.f("idx_runs_created_at"), "runs", [sa.text("created_at DESC")])


def upgrade() -> None:
    """Add the lease columns and the sweep's index."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("node_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.TIMESTAMP(), nullable=True))
        batch.create_index(op.f("idx_runs_status_lease"), ["status", "lease_expires_at"])
    _restore_descending_index()


def downgrade() -> None:
    """Remove everything :func:`upgrade` added."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(op.f("idx_runs_status_lease"))
        batch.drop_column("lease_expires_at")
        batch.drop_column("node_id")
    _restore_descending_index()
