"""The three-agent composer: agent_compose_runs, agent_compose_results.

Revision ID: 0006_add_agent_compose
Revises: 0005_add_marketplace
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_add_agent_compose"
down_revision: str | Sequence[str] | None = "0005_add_marketplace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the compose tables."""
    op.create_table(
        "agent_compose_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("stage", sa.Text(), server_default="agent1", nullable=False),
        sa.Column("progress", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("input_raw", sa.Text(), nullable=False),
        sa.Column("input_goal", sa.Text(), nullable=True),
        sa.Column("input_constraints", sa.Text(), nullable=True),
        sa.Column("input_output_format", sa.Text(), nullable=True),
        sa.Column("model_config", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.TIMESTAMP(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name=op.f("ck_agent_compose_runs_valid_status"),
        ),
        sa.CheckConstraint(
            "stage IN ('agent1', 'agent2', 'agent3', 'done')",
            name=op.f("ck_agent_compose_runs_valid_stage"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name=op.f("ck_agent_compose_runs_valid_progress")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_compose_runs")),
    )

    op.create_table(
        "agent_compose_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("agent1_json", JSONType, nullable=True),
        sa.Column("agent2_json", JSONType, nullable=True),
        sa.Column("agent3_json", JSONType, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["agent_compose_runs.id"],
            name=op.f("fk_agent_compose_results_run_id_agent_compose_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_compose_results")),
        sa.UniqueConstraint("run_id", name=op.f("uq_agent_compose_results_run_id")),
    )


def downgrade() -> None:
    """Drop the compose tables."""
    op.drop_table("agent_compose_results")
    op.drop_table("agent_compose_runs")
