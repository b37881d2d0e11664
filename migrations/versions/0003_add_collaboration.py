"""Real-time collaboration: collaboration_sessions, session_members, edit_history.

Revision ID: 0003_add_collaboration
Revises: 0002_add_tenants
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_add_collaboration"
down_revision: str | Sequence[str] | None = "0002_add_tenants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    """Create the collaboration tables."""
    op.create_table(
        "collaboration_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), server_default="", nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=True),
        sa.Column("share_token", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_collaboration_sessions_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_collaboration_sessions_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collaboration_sessions")),
        sa.UniqueConstraint("share_token", name=op.f("uq_collaboration_sessions_share_token")),
    )
    op.create_index(op.f("idx_sessions_tenant"), "collaboration_sessions", ["tenant_id"])
    op.create_index(op.f("idx_sessions_owner"), "collaboration_sessions", ["owner_id"])
    op.create_index(op.f("idx_sessions_share_token"), "collaboration_sessions", ["share_token"])
    is_active = sa.column("is_active", sa.Boolean()) == sa.true()
    op.create_index(
        op.f("idx_sessions_active"),
        "collaboration_sessions",
        ["is_active"],
        postgresql_where=is_active,
        sqlite_where=is_active,
    )

    op.create_table(
        "session_members",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="VIEWER", nullable=True),
        _timestamp("joined_at"),
        _timestamp("last_seen_at"),
        sa.CheckConstraint(
            "role IN ('OWNER', 'EDITOR', 'VIEWER')", name=op.f("ck_session_members_valid_role")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_session_members_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["collaboration_sessions.id"],
            name=op.f("fk_session_members_session_id_collaboration_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_members")),
    )
    op.create_index(
        op.f("idx_session_members_unique"),
        "session_members",
        ["user_id", "session_id"],
        unique=True,
    )

    op.create_table(
        "edit_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("operation", JSONType, nullable=False),
        sa.Column("content_before", sa.Text(), nullable=True),
        sa.Column("content_after", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["collaboration_sessions.id"],
            name=op.f("fk_edit_history_session_id_collaboration_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_edit_history_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edit_history")),
    )
    op.create_index(op.f("idx_edit_history_session"), "edit_history", ["session_id"])
    op.create_index(op.f("idx_edit_history_user"), "edit_history", ["user_id"])
    op.create_index(op.f("idx_edit_history_created"), "edit_history", [sa.text("created_at DESC")])


def downgrade() -> None:
    """Drop the collaboration tables."""
    op.drop_table("edit_history")
    op.drop_table("session_members")
    op.drop_table("collaboration_sessions")
