"""Prompt labels and their history; where versions come from; a session's prompt.

* ``prompt_versions``: ``model_config`` (JSON, default ``{}``), ``message``, ``created_by``
  (user, SET NULL), ``source_session_id`` (SET NULL) with the ``edit_history`` id it was
  published at (``source_edit_id``, no foreign key), ``source_listing_id`` (the marketplace
  listing it was forked from, SET NULL).
* ``prompt_labels`` (prompt_id, name) → version_id: movable pointers; ``latest`` and
  ``production`` are not rows (the highest version, ``prompts.active_version_id``).
* ``prompt_label_events``: every label move (who, when, from and to version numbers).
* ``collaboration_sessions.prompt_id`` (SET NULL): the prompt a session edits.

Revision ID: 0011_prompt_labels
Revises: 0010_share_token_hash
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_prompt_labels"
down_revision: str | Sequence[str] | None = "0010_share_token_hash"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# prompt_versions' new foreign keys: column -> (referred table, its index or None).
VERSION_REFERENCES = {
    "created_by": ("users", None),
    "source_session_id": ("collaboration_sessions", "idx_prompt_versions_source_session"),
    "source_listing_id": ("marketplace_prompts", "idx_prompt_versions_source_listing"),
}


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False)


def _restore_sessions_active_index() -> None:
    """SQLite's batch rebuild of collaboration_sessions loses the partial index's WHERE."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("idx_sessions_active", table_name="collaboration_sessions")
    is_active = sa.column("is_active", sa.Boolean()) == sa.true()
    op.create_index(
        "idx_sessions_active", "collaboration_sessions", ["is_active"], sqlite_where=is_active
    )


def upgrade() -> None:
    """Add the version columns, the label tables and the session's prompt."""
    with op.batch_alter_table("prompt_versions") as batch:
        batch.add_column(
            sa.Column("model_config", JSONType, server_default=sa.text("'{}'"), nullable=True)
        )
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
        for column in VERSION_REFERENCES:
            batch.add_column(sa.Column(column, sa.Text(), nullable=True))
        batch.add_column(sa.Column("source_edit_id", sa.Integer(), nullable=True))
        for column, (table, index) in VERSION_REFERENCES.items():
            batch.create_foreign_key(
                op.f(f"fk_prompt_versions_{column}_{table}"),
                table,
                [column],
                ["id"],
                ondelete="SET NULL",
            )
            if index is not None:
                batch.create_index(index, [column])

    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_labels_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["prompt_versions.id"],
            name=op.f("fk_prompt_labels_version_id_prompt_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_prompt_labels_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("prompt_id", "name", name=op.f("pk_prompt_labels")),
    )
    op.create_index("idx_prompt_labels_version", "prompt_labels", ["version_id"])

    op.create_table(
        "prompt_label_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_label_events_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_prompt_label_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_label_events")),
    )
    op.create_index("idx_prompt_label_events_prompt", "prompt_label_events", ["prompt_id", "id"])

    with op.batch_alter_table("collaboration_sessions") as batch:
        batch.add_column(sa.Column("prompt_id", sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_collaboration_sessions_prompt_id_prompts"),
            "prompts",
            ["prompt_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("idx_sessions_prompt", ["prompt_id"])
    _restore_sessions_active_index()


def downgrade() -> None:
    """Drop everything :func:`upgrade` added (label rows and version provenance are lost)."""
    with op.batch_alter_table("collaboration_sessions") as batch:
        batch.drop_index("idx_sessions_prompt")
        batch.drop_constraint(
            op.f("fk_collaboration_sessions_prompt_id_prompts"), type_="foreignkey"
        )
        batch.drop_column("prompt_id")
    _restore_sessions_active_index()

    op.drop_index("idx_prompt_label_events_prompt", table_name="prompt_label_events")
    op.drop_table("prompt_label_events")
    op.drop_index("idx_prompt_labels_version", table_name="prompt_labels")
    op.drop_table("prompt_labels")

    with op.batch_alter_table("prompt_versions") as batch:
        for column, (table, index) in VERSION_REFERENCES.items():
            if index is not None:
                batch.drop_index(index)
            batch.drop_constraint(op.f(f"fk_prompt_versions_{column}_{table}"), type_="foreignkey")
        for column in (*VERSION_REFERENCES, "source_edit_id", "message", "model_config"):
            batch.drop_column(column)
