"""PostgreSQL row-level security: each transaction says whose rows it may see.

With ``PROMPT_STUDIO_POSTGRES_RLS=on`` the server connects as a role that does not own the
tables, so the ``tenant_isolation`` policies of migration ``0016_row_level_security`` apply to
every statement. A session opened by :func:`rls_session_factory` sets, at the start of each of
its transactions (``set_config(…, true)`` is ``SET LOCAL``):

* ``app.tenant_id`` — for a session :func:`scope_to_tenant` scoped to a tenant: a request made
  with a login token or a tenant API key. Such a transaction sees that tenant's rows only (plus
  the global templates and approved marketplace listings);
* ``app.rls_bypass = on`` — for every other session: the server's own work (the collaboration
  hub, the history writer, background jobs, the operator), which is not done on behalf of one
  tenant;
* nothing, for a session marked :func:`unscoped`: it sees no tenant-owned rows at all (what a
  query with no tenant set gets).

On SQLite nothing is set: the policies exist only on PostgreSQL, and the application's own
tenant filters are what isolates tenants everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

_TENANT_KEY = "rls_tenant_id"
_UNSCOPED_KEY = "rls_unscoped"
_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")
_SET_BYPASS = text("SELECT set_config('app.rls_bypass', 'on', true)")


class TenantScopedSession(Session):
    """A session that tells PostgreSQL, per transaction, whose rows it works on."""


@event.listens_for(TenantScopedSession, "after_begin")
def _set_scope(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    tenant_id = session.info.get(_TENANT_KEY)
    if tenant_id is not None:
        connection.execute(_SET_TENANT, {"tenant_id": tenant_id})
    elif not session.info.get(_UNSCOPED_KEY):
        connection.execute(_SET_BYPASS)


def rls_session_factory(engine: AsyncEngine, **kw: Any) -> async_sessionmaker[AsyncSession]:
    """Like :func:`storage.engine.create_session_factory`, with sessions that set the scope."""
    return async_sessionmaker(
        engine, expire_on_commit=False, sync_session_class=TenantScopedSession, **kw
    )


def is_tenant_scoped(db: AsyncSession) -> bool:
    """Whether ``db`` sets the row-level security scope (it came from the RLS factory)."""
    return isinstance(db.sync_session, TenantScopedSession)


async def scope_to_tenant(db: AsyncSession, tenant_id: str) -> None:
    """From the next statement on, ``db`` works on ``tenant_id``'s rows only.

    A transaction already open (e.g. the one that looked the caller up) is rolled back first,
    since its scope was fixed when it began; nothing is lost, it has only read.
    """
    if db.in_transaction():
        await db.rollback()
    db.info[_TENANT_KEY] = tenant_id
    db.info.pop(_UNSCOPED_KEY, None)


def unscoped(db: AsyncSession) -> AsyncSession:
    """Mark ``db`` (before its first statement) as neither a tenant's nor the server's."""
    db.info[_UNSCOPED_KEY] = True
    db.info.pop(_TENANT_KEY, None)
    return db
