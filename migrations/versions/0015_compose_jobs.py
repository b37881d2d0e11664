"""Compose jobs become durable: leases, attempts, stage outputs, cancel, who and where.

Any node may run any compose job: it claims the job with a lease (``lease_owner``,
``lease_expires_at``) that it renews while working; ``attempts`` counts claims, so a job whose
node keeps dying is failed after a bounded number; ``stage_outputs`` keeps each agent's JSON as
soon as it is validated so a resumed job starts after the last finished stage;
``cancel_requested_at`` asks the running node to stop; ``user_id`` and ``session_id`` record who
started the job and from which live session; ``updated_at`` tells watchers something changed.

Revision ID: 0015_compose_jobs
Revises: 0014_semantic_cache_scope
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_compose_jobs"
down_revision: str | Sequence[str] | None = "0014_semantic_cache_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "agent_compose_runs"


def upgrade() -> None:
    """Add the job columns, their foreign keys, check and indexes."""
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("session_id", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("stage_outputs", JSONType, server_default=sa.text("'{}'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.TIMESTAMP(), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.TIMESTAMP(), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False)
        )
        batch_op.create_foreign_key(
            op.f("fk_agent_compose_runs_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            op.f("fk_agent_compose_runs_session_id_collaboration_sessions"),
            "collaboration_sessions",
            ["session_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            op.f("ck_agent_compose_runs_valid_attempts"), "attempts >= 0"
        )
        batch_op.create_index(op.f("idx_compose_runs_claim"), ["status", "lease_expires_at"])
        batch_op.create_index(op.f("idx_compose_runs_tenant_created"), ["tenant_id", "created_at"])


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_index(op.f("idx_compose_runs_tenant_created"))
        batch_op.drop_index(op.f("idx_compose_runs_claim"))
        batch_op.drop_constraint(op.f("ck_agent_compose_runs_valid_attempts"), type_="check")
        batch_op.drop_constraint(
            op.f("fk_agent_compose_runs_session_id_collaboration_sessions"), type_="foreignkey"
        )
        batch_op.drop_constraint(op.f("fk_agent_compose_runs_user_id_users"), type_="foreignkey")
        for column in (
            "updated_at",
            "cancel_requested_at",
            "lease_expires_at",
            "lease_owner",
            "attempts",
            "stage_outputs",
            "session_id",
            "user_id",
        ):
            batch_op.drop_column(column)
