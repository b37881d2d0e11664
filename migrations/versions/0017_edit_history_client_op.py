"""Record the client's op id on the edit a JSON op became (``edit_history.client_op_id``).

A JSON client may tag an op with an id of its own; the server applies an op with an id it has
already applied at most once, even after the room was unloaded, the node restarted or the client
reconnected to another node. The last ids of a user in a session are read back from these rows,
with a digest of the op as sent so a reused id with a different op is refused. Nullable: Yjs
edits, server-side edits and untagged JSON ops carry none.

Revision ID: 0017_edit_history_client_op
Revises: 0016_row_level_security
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_edit_history_client_op"
down_revision: str | Sequence[str] | None = "0016_row_level_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``client_op_id`` and ``client_op_digest`` columns and their index."""
    op.add_column("edit_history", sa.Column("client_op_id", sa.Text(), nullable=True))
    op.add_column("edit_history", sa.Column("client_op_digest", sa.Text(), nullable=True))
    op.create_index(
        "idx_edit_history_client_op", "edit_history", ["session_id", "user_id", "client_op_id"]
    )


def downgrade() -> None:
    """Drop the index and both columns."""
    op.drop_index("idx_edit_history_client_op", table_name="edit_history")
    with op.batch_alter_table("edit_history") as batch:
        batch.drop_column("client_op_digest")
        batch.drop_column("client_op_id")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's table rebuild loses the index's sort order; restore it.
        op.drop_index("idx_edit_history_created", table_name="edit_history")
        op.create_index("idx_edit_history_created", "edit_history", [sa.text("created_at DESC")])
