"""An append-only log of Yjs updates per document (``document_updates``).

Writing the whole document state on every group commit costs O(document) bytes per commit;
appending each commit's (merged) update and folding the log into ``crdt_state`` now and then
costs O(change). A document's persisted state is ``crdt_state`` plus its remaining rows.

Revision ID: 0009_document_updates
Revises: 0008_edit_history_node
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_document_updates"
down_revision: str | Sequence[str] | None = "0008_edit_history_node"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the log table."""
    op.create_table(
        "document_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["collaboration_sessions.id"],
            name=op.f("fk_document_updates_session_id_collaboration_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_updates")),
    )
    op.create_index("idx_document_updates_session", "document_updates", ["session_id", "id"])


def downgrade() -> None:
    """Drop the log (fold it into crdt_state first: `prompt-studio` does so on unload)."""
    op.drop_index("idx_document_updates_session", table_name="document_updates")
    op.drop_table("document_updates")
