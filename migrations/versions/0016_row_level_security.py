"""Row-level security on every tenant-owned table (PostgreSQL only): ``tenant_isolation``.

The schema doc's optional policy, on each table that holds a tenant's rows: directly by its
``tenant_id``, or through its parent (a prompt's versions and labels, a session's members, edits
and update log, a run's ratings, a cache entry's tags, a compose run's result). A statement sees
a row when its transaction set ``app.tenant_id`` to the row's tenant, or ``app.rls_bypass`` to
``on`` (the server's own work: see ``storage/rls.py``); with neither it sees none. Global
templates (``tenant_id IS NULL``) are readable by every tenant and writable by none; approved
marketplace listings are readable by every tenant, and their fork count may be raised.

Policies bind only roles that do not own the tables: a deployment that connects as the owner
(the default) is unaffected; ``PROMPT_STUDIO_POSTGRES_RLS=on`` expects a non-owner role.
Identity tables (tenants, users, the login ``session`` table) have no policy: a request is
authenticated through them before its tenant is known. SQLite has nothing to do here.

Revision ID: 0016_row_level_security
Revises: 0015_compose_jobs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016_row_level_security"
down_revision: str | Sequence[str] | None = "0015_compose_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BYPASS = "current_setting('app.rls_bypass', true) = 'on'"
OWN = "tenant_id = current_setting('app.tenant_id', true)"

#: Tables holding a tenant's rows in their own ``tenant_id`` column.
DIRECT = (
    "prompts",
    "collaboration_sessions",
    "runs",
    "semantic_cache",
    "cache_config",
    "cache_statistics",
    "cache_similarity_buckets",
    "agent_compose_runs",
)
#: Tables whose rows belong to the tenant of their parent row: (table, column, parent table).
CHILDREN = (
    ("prompt_versions", "prompt_id", "prompts"),
    ("prompt_labels", "prompt_id", "prompts"),
    ("prompt_label_events", "prompt_id", "prompts"),
    ("session_members", "session_id", "collaboration_sessions"),
    ("edit_history", "session_id", "collaboration_sessions"),
    ("document_updates", "session_id", "collaboration_sessions"),
    ("run_ratings", "run_id", "runs"),
    ("cache_tags", "cache_id", "semantic_cache"),
    ("agent_compose_results", "run_id", "agent_compose_runs"),
)
#: Every table with policies, and the policies' names (for downgrade).
POLICIES = {
    **{table: ("tenant_isolation",) for table in DIRECT},
    **{table: ("tenant_isolation",) for table, _, _ in CHILDREN},
    "templates": ("tenant_isolation", "global_templates_readable"),
    "marketplace_prompts": (
        "tenant_isolation",
        "approved_listings_readable",
        "approved_listings_forkable",
    ),
}


def _enable(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")


def upgrade() -> None:
    """Enable row-level security and create the policies."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in DIRECT:
        _enable(table)
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({BYPASS} OR {OWN}) WITH CHECK ({BYPASS} OR {OWN})"
        )
    for table, column, parent in CHILDREN:
        _enable(table)
        # The parent's own policy applies inside the subquery: a child row is visible exactly
        # when its parent row is.
        owned = f"EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {table}.{column})"
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({BYPASS} OR {owned}) WITH CHECK ({BYPASS} OR {owned})"
        )
    _enable("templates")
    op.execute(
        f"CREATE POLICY tenant_isolation ON templates "
        f"USING ({BYPASS} OR {OWN}) WITH CHECK ({BYPASS} OR {OWN})"
    )
    op.execute(
        "CREATE POLICY global_templates_readable ON templates FOR SELECT USING (tenant_id IS NULL)"
    )
    _enable("marketplace_prompts")
    op.execute(
        f"CREATE POLICY tenant_isolation ON marketplace_prompts "
        f"USING ({BYPASS} OR {OWN}) WITH CHECK ({BYPASS} OR {OWN})"
    )
    op.execute(
        "CREATE POLICY approved_listings_readable ON marketplace_prompts FOR SELECT "
        "USING (status = 'approved')"
    )
    op.execute(
        "CREATE POLICY approved_listings_forkable ON marketplace_prompts FOR UPDATE "
        "USING (status = 'approved') WITH CHECK (status = 'approved')"
    )


def downgrade() -> None:
    """Drop the policies and disable row-level security."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, names in POLICIES.items():
        for name in names:
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
