"""Record which server node applied each edit (``edit_history.node_id``).

With several nodes serving one session, an edit's positions are relative to the text as the
node that applied it saw it; rebuilding past text replays one node's edits from that node's
checkpoints, so each row says which node wrote it. Nullable: rows from before are one node's.

Revision ID: 0008_edit_history_node
Revises: 0007_tenant_scoping
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_edit_history_node"
down_revision: str | Sequence[str] | None = "0007_tenant_scoping"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``node_id`` column."""
    op.add_column("edit_history", sa.Column("node_id", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``node_id``."""
    with op.batch_alter_table("edit_history") as batch:
        batch.drop_column("node_id")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's table rebuild loses the index's sort order; restore it.
        op.drop_index("idx_edit_history_created", table_name="edit_history")
        op.create_index("idx_edit_history_created", "edit_history", [sa.text("created_at DESC")])
