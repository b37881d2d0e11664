"""Store share tokens as SHA-256 hashes, like API keys and login tokens.

A share token admits anyone of the tenant who holds it; a copy of the database (a backup, a
replica, a leaked dump) must not hand out working links. Existing tokens are hashed in place,
so links already shared keep working. The column keeps its name and type (TEXT, unique).

Downgrade cannot recover the tokens: it leaves the hashes, so links minted before the upgrade
stop working under the old code and have to be rotated.

Revision ID: 0010_share_token_hash
Revises: 0009_document_updates
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_share_token_hash"
down_revision: str | Sequence[str] | None = "0009_document_updates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_sessions = sa.table(
    "collaboration_sessions", sa.column("id", sa.Text()), sa.column("share_token", sa.Text())
)


def upgrade() -> None:
    """Replace every stored share token by its SHA-256 hex digest."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(_sessions.c.id, _sessions.c.share_token)).all()
    for session_id, token in rows:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        bind.execute(
            _sessions.update().where(_sessions.c.id == session_id).values(share_token=digest)
        )


def downgrade() -> None:
    """Nothing to undo: hashes cannot be turned back into tokens (see the module doc)."""
