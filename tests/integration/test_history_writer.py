"""The group-committing history writer against a real database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crdt import EditOp, PromptDocument
from crdt.merge import fold_updates, merge_updates
from migrations.runner import upgrade
from storage.base import utcnow
from storage.engine import (
    create_autocommit_session_factory,
    create_engine,
    create_session_factory,
)
from storage.history_backlog import Backlog
from storage.history_writer import (
    LINGER_UNTIL_EDITS,
    HistoryEntry,
    HistoryWriter,
    SessionGoneError,
)
from storage.models import CollaborationSession, DocumentUpdate, EditHistory, SessionMember
from storage.repositories.collaboration import create_session, load_document
from storage.sqlite_thread import sqlite_file_of
from tests.support.accounts import create_accounts
from tests.support.locks import write_lock

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(
    params=[
        "sqlite-direct",
        "sqlite-sqlalchemy",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def write_path(request: pytest.FixtureRequest) -> str:
    """How batches reach the database: SQLite's own inserter, or SQLAlchemy (both dialects)."""
    return str(request.param)


@pytest.fixture
def database_url(write_path: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides the shared fixture: the dialect follows :func:`write_path`."""
    if write_path.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def writer_for(write_path: str, migrated_database_url: str) -> Callable[..., HistoryWriter]:
    """Makes a writer for the test's database, writing through :func:`write_path`."""
    sqlite_file = sqlite_file_of(migrated_database_url) if write_path == "sqlite-direct" else None

    def make(sessions: Any, **options: Any) -> HistoryWriter:
        return HistoryWriter(
            sessions, merge=merge_updates, fold=fold_updates, sqlite_file=sqlite_file, **options
        )

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def db_setup(
    migrated_database_url: str,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], str, list[str]]]:
    (owner,) = await create_accounts(migrated_database_url, ["Owner"])
    engine = create_engine(migrated_database_url)
    sessions = create_session_factory(engine)
    ids = []
    async with sessions() as db, db.begin():
        for i in range(3):
            row = await create_session(
                db,
                tenant_id=owner.tenant_id,
                owner_id=owner.user_id,
                name=f"s{i}",
                share_token=f"tok-{i}-{owner.user_id}",
            )
            ids.append(row.id)
    try:
        yield sessions, owner.user_id, ids
    finally:
        await engine.dispose()


def entry(session_id: str, user_id: str, n: int) -> HistoryEntry:
    return HistoryEntry(session_id, user_id, {"type": "insert", "position": n, "content": str(n)})


async def test_edits_are_grouped_into_few_commits_in_order(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    doc = PromptDocument.empty()
    async with writer_for(sessions, linger_seconds=0.01) as writer:
        futures = []
        for n in range(150):
            update = (
                doc.apply_op(EditOp("insert", 0, 0, str(n % 10))).update if n % 3 == 0 else None
            )
            futures.append(writer.submit(ids[n % 3], [entry(ids[n % 3], user_id, n)], update))
        row_ids = await asyncio.gather(*futures)
        assert writer.commits < 20
    flat = [i for ids_ in row_ids for i in ids_]
    assert flat == sorted(flat) and len(set(flat)) == 150
    async with sessions() as db:
        positions = list(
            await db.scalars(
                select(EditHistory.operation)
                .where(EditHistory.session_id == ids[0])
                .order_by(EditHistory.id)
            )
        )
        stored = await db.scalar(
            select(CollaborationSession.crdt_state).where(CollaborationSession.id == ids[0])
        )
        content = await db.scalar(
            select(CollaborationSession.content).where(CollaborationSession.id == ids[0])
        )
        logged = await db.scalar(
            select(func.count(DocumentUpdate.id)).where(DocumentUpdate.session_id == ids[0])
        )
    assert [p["position"] for p in positions] == list(range(0, 150, 3))
    # Leaving the writer folded the update log into the snapshot.
    assert logged == 0
    assert content == doc.text and PromptDocument.from_state(stored or b"").text == doc.text


async def test_the_update_log_is_compacted_after_enough_rows(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    doc = PromptDocument.empty()
    async with writer_for(sessions, linger_seconds=0.0, compact_after_rows=5) as writer:
        for n in range(12):
            change = doc.apply_op(EditOp("insert", n, 0, "x"))
            await writer.submit(ids[1], [entry(ids[1], user_id, n)], change.update)
        await writer.flush()
        assert writer.compactions >= 2
        async with sessions() as db:
            persisted = await load_document(db, ids[1])
        assert persisted is not None
        state, updates, _content = persisted
        # Whatever is not folded yet is still in the log: snapshot + log == the document.
        assert len(updates) < 5
        assert fold_updates(state, updates)[1] == doc.text == "x" * 12


class FlakySessions:
    """A session factory whose first ``failures`` sessions fail to commit."""

    def __init__(self, real: async_sessionmaker[AsyncSession], failures: int) -> None:
        self.real = real
        self.failures = failures

    def __call__(self) -> AsyncSession:
        session = self.real()
        if self.failures > 0:
            self.failures -= 1

            async def broken_execute(*args: Any, **kwargs: Any) -> None:
                raise ConnectionResetError("database went away")

            session.execute = broken_execute  # type: ignore[method-assign,assignment]
        return session


async def test_a_failed_commit_is_retried_and_nothing_is_lost_or_doubled(
    db_setup: Any, writer_for: Callable[..., HistoryWriter], write_path: str
) -> None:
    sessions, user_id, ids = db_setup
    if write_path == "sqlite-direct":
        writer = writer_for(sessions, linger_seconds=0.0)
        inserter = writer._inserter
        assert inserter is not None
        real, failures = inserter._insert, [2]

        def broken_insert(*args: Any) -> list[int]:
            if failures[0]:
                failures[0] -= 1
                raise sqlite3.OperationalError("disk I/O error")
            return real(*args)

        inserter._insert = broken_insert  # type: ignore[method-assign,assignment]
    else:
        writer = writer_for(FlakySessions(sessions, failures=2), linger_seconds=0.0)
    async with writer:
        result = await asyncio.wait_for(
            writer.submit(ids[1], [entry(ids[1], user_id, 7)], None), timeout=10
        )
        assert writer.failures == 2
    async with sessions() as db:
        count = await db.scalar(
            select(func.count(EditHistory.id)).where(EditHistory.session_id == ids[1])
        )
    assert count == 1 and len(result) == 1


async def test_rows_written_directly_read_back_like_any_other(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    """Both write paths store the same values: JSON, text, timestamps, bytes."""
    sessions, user_id, ids = db_setup
    operation = {
        "type": "replace",
        "position": 3,
        "length": 2,
        "content": '😀 "q"',
        "origin": "undo",
    }
    doc = PromptDocument.empty()
    update = doc.apply_op(EditOp("insert", 0, 0, "é")).update
    before = utcnow()
    async with writer_for(sessions, linger_seconds=0.0) as writer:
        row = HistoryEntry(ids[0], user_id, operation, "before", "after ✓", "node-x")
        (row_id,) = await writer.submit(ids[0], [row], update)
    async with sessions() as db:
        stored = await db.get(EditHistory, row_id)
        persisted = await load_document(db, ids[0])
    assert stored is not None
    assert stored.operation == operation
    assert (stored.content_before, stored.content_after, stored.node_id) == (
        "before",
        "after ✓",
        "node-x",
    )
    assert before <= stored.created_at <= utcnow()
    assert persisted is not None and fold_updates(persisted[0], persisted[1])[1] == "é"


async def test_edits_of_a_deleted_session_fail_alone(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    async with sessions() as db, db.begin():
        await db.execute(delete(CollaborationSession).where(CollaborationSession.id == ids[2]))
    async with writer_for(sessions, linger_seconds=0.01) as writer:
        gone = writer.submit(ids[2], [entry(ids[2], user_id, 1)], None)
        kept = writer.submit(ids[0], [entry(ids[0], user_id, 2)], None)
        with pytest.raises(SessionGoneError):
            await gone
        assert len(await kept) == 1


async def test_a_commit_someone_waits_for_does_not_linger(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    """Edits nobody waits for linger to be grouped; an awaited one (an ack) starts the commit,
    taking the lingering ones with it."""
    sessions, user_id, ids = db_setup
    async with writer_for(sessions, linger_seconds=30.0) as writer:
        lingering = writer.submit(ids[0], [entry(ids[0], user_id, 1)], None)
        await asyncio.sleep(0)  # let the writer start lingering
        assert not lingering.done()
        awaited = writer.submit(ids[0], [entry(ids[0], user_id, 2)], None, awaited=True)
        first, second = await asyncio.wait_for(asyncio.gather(lingering, awaited), timeout=10)
        assert len(first) == len(second) == 1 and first[0] < second[0]
        assert writer.commits == 1


async def test_the_backlog_admits_up_to_its_bound_and_again_once_stored(
    db_setup: Any, writer_for: Callable[..., HistoryWriter], migrated_database_url: str
) -> None:
    sessions, user_id, ids = db_setup
    async with writer_for(sessions, linger_seconds=0.0, max_pending_edits=3) as writer:
        async with write_lock(migrated_database_url):
            futures = []
            for n in range(3):
                assert writer.admit()
                futures.append(writer.submit(ids[0], [entry(ids[0], user_id, n)], b""))
            # At the bound: refused (and counted), whatever else is queued.
            assert not writer.admit() and not writer.admit()
            assert (writer.backlog.edits, writer.backlog.refused) == (3, 2)
            await asyncio.sleep(0.1)
            assert not any(f.done() for f in futures)  # nothing acknowledged before it is stored
        await asyncio.wait_for(asyncio.gather(*futures), timeout=10)
        assert writer.admit()
        assert (writer.backlog.edits, writer.backlog.bytes, writer.backlog.peak_edits) == (0, 0, 3)


async def test_the_byte_bound_counts_updates_and_texts(
    db_setup: Any, writer_for: Callable[..., HistoryWriter], migrated_database_url: str
) -> None:
    sessions, user_id, ids = db_setup
    async with writer_for(sessions, linger_seconds=0.0, max_pending_bytes=4096) as writer:
        async with write_lock(migrated_database_url):
            assert writer.admit()
            big = HistoryEntry(ids[0], user_id, {"type": "insert", "position": 0}, "x" * 4000)
            done = writer.submit(ids[0], [big], None)
            assert writer.backlog.bytes >= 4000 and not writer.admit()
        await asyncio.wait_for(done, timeout=10)
        assert writer.admit() and writer.backlog.bytes == 0


@pytest.mark.parametrize("bad", [0, -1])
async def test_backlog_bounds_below_one_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Backlog(max_edits=bad)
    with pytest.raises(ValueError, match="at least 1"):
        Backlog(max_bytes=bad)


async def _updated_at(sessions: async_sessionmaker[AsyncSession], session_id: str) -> Any:
    async with sessions() as db:
        return await db.scalar(
            select(CollaborationSession.updated_at).where(CollaborationSession.id == session_id)
        )


async def test_updated_at_is_written_with_the_edits_debounced(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    created, other = await _updated_at(sessions, ids[1]), await _updated_at(sessions, ids[2])
    async with writer_for(sessions, linger_seconds=0.0, touch_seconds=3600) as writer:
        await writer.submit(ids[1], [entry(ids[1], user_id, 1)], None)
        first = await _updated_at(sessions, ids[1])
        assert first > created  # the first edit touches at once
        await writer.submit(ids[1], [entry(ids[1], user_id, 2)], None)
        assert await _updated_at(sessions, ids[1]) == first  # then at most once an hour
        assert await _updated_at(sessions, ids[2]) == other  # untouched: not edited
    async with writer_for(sessions, linger_seconds=0.0, touch_seconds=0) as writer:
        await writer.submit(ids[1], [entry(ids[1], user_id, 3)], None)
        second = await _updated_at(sessions, ids[1])
        await writer.submit(ids[1], [entry(ids[1], user_id, 4)], None)
        assert await _updated_at(sessions, ids[1]) > second > first


async def test_a_log_as_large_as_its_snapshot_is_folded_and_a_failed_fold_blocks_no_commit(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    doc = PromptDocument.empty()
    options = {"linger_seconds": 0.0, "compact_after_rows": 10_000, "compact_min_bytes": 200}
    async with writer_for(sessions, **options) as writer:
        real_fold, calls = writer._fold, [0]

        def failing_once(state: bytes | None, updates: Any) -> tuple[bytes, str]:
            calls[0] += 1
            if calls[0] == 1:
                raise RuntimeError("fold failed")
            return real_fold(state, updates)

        writer._fold = failing_once
        for n in range(60):
            change = doc.apply_op(EditOp("insert", 0, 0, "abcdef"))
            # Commits go on while the failed fold waits for its retry.
            await asyncio.wait_for(
                writer.submit(ids[0], [entry(ids[0], user_id, n)], change.update), timeout=10
            )
        await writer.flush()
        # flush() does not wait out a failed fold's back-off (50 ms); all the commits may land
        # before it ends. The retry then comes by itself: wait for it, bounded.
        for _ in range(200):
            if writer.compactions:
                break
            await asyncio.sleep(0.05)
            await writer.flush()
        assert writer.failures == 1 and writer.compactions >= 1
        async with sessions() as db:
            persisted = await load_document(db, ids[0])
        assert persisted is not None
        state, updates, _ = persisted
        assert fold_updates(state, updates)[1] == doc.text
        # Folded by size, not by row count: far fewer rows remain than were written.
        assert len(updates) < 60


async def test_presence_style_writes_hold_no_sqlite_write_lock_between_statements(
    tmp_path: Path,
) -> None:
    """Marks written through an autocommit session leave the write lock free between their
    statements (the writer may commit in between); an ordinary transaction keeps it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}"
    upgrade(url, "head")
    (owner,) = await create_accounts(url, ["Owner"])
    engine = create_engine(url)
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None, timeout=0)
    try:
        touch = update(SessionMember).values(last_seen_at=utcnow())
        async with create_autocommit_session_factory(engine)() as db, db.begin():
            await db.execute(touch.where(SessionMember.user_id == owner.user_id))
            other.execute("BEGIN IMMEDIATE")  # free: the UPDATE committed on its own
            other.execute("COMMIT")
            await db.execute(touch.where(SessionMember.user_id == owner.user_id))
        async with create_session_factory(engine)() as db, db.begin():
            await db.execute(touch.where(SessionMember.user_id == owner.user_id))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        await engine.dispose()


async def test_a_large_batch_is_committed_without_lingering(
    db_setup: Any, writer_for: Callable[..., HistoryWriter]
) -> None:
    sessions, user_id, ids = db_setup
    async with writer_for(sessions, linger_seconds=30.0) as writer:
        small = writer.submit(ids[0], [entry(ids[0], user_id, 0)], None)
        await asyncio.sleep(0)  # the writer lingers for more
        assert not small.done()
        large = [entry(ids[0], user_id, n) for n in range(1, LINGER_UNTIL_EDITS)]
        both = asyncio.gather(small, writer.submit(ids[0], large, None))
        # Nobody waits for these edits, yet they go in the next turn, not 30 s later.
        await asyncio.wait_for(both, timeout=10)
