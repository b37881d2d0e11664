"""The migrated database enforces the schema's rules, on SQLite and on PostgreSQL.

Every test runs against a database built by the migrations (not ``create_all``) through the
async engine. Each violation gets a fresh session and must raise :class:`IntegrityError`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.base import Base, utcnow
from storage.engine import create_engine, create_session_factory
from storage.models import (
    AgentComposeResult,
    AgentComposeRun,
    CacheConfig,
    CacheStatistics,
    CacheTag,
    CollaborationSession,
    EditHistory,
    LoginSession,
    MarketplacePrompt,
    Prompt,
    PromptVersion,
    Run,
    RunRating,
    SemanticCache,
    SessionMember,
    Template,
    Tenant,
    User,
)

Sessions = async_sessionmaker[AsyncSession]
_ids = itertools.count(1)


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head, disposed afterwards."""
    engine = create_engine(migrated_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> Sessions:
    """The application's session factory on the migrated database."""
    return create_session_factory(engine)


# --- helpers ------------------------------------------------------------------------------


async def add(sessions: Sessions, *rows: Base) -> None:
    """Insert rows in one committed transaction."""
    async with sessions() as session:
        session.add_all(rows)
        await session.commit()


async def assert_rejected(sessions: Sessions, row: Base, *reasons: str) -> None:
    """Inserting ``row`` in a fresh session fails with IntegrityError for one of ``reasons``.

    PostgreSQL names the violated constraint; SQLite names CHECK constraints but reports a
    UNIQUE violation as ``table.column`` and a foreign key one without a name, so callers
    list what each dialect says (matched case-insensitively).
    """
    async with sessions() as session:
        session.add(row)
        with pytest.raises(IntegrityError) as caught:
            await session.commit()
    message = str(caught.value.orig).lower()
    assert any(reason.lower() in message for reason in reasons), message


def new_user(tenant: Tenant | None = None) -> User:
    n = next(_ids)
    return User(email=f"user{n}@example.com", name=f"User {n}", tenant=tenant)


def new_tenant() -> Tenant:
    return Tenant(name="Acme", api_key=f"hashed-key-{uuid.uuid4()}")


def new_collab(owner: User) -> CollaborationSession:
    return CollaborationSession(name="Draft", share_token=uuid.uuid4().hex, owner=owner)


def new_run(**kw: Any) -> Run:
    return Run(sections={"system": "s"}, model="gpt-test", temperature=70, output="o", **kw)


def new_compose(**kw: Any) -> AgentComposeRun:
    return AgentComposeRun(input_raw="write a haiku", model_config={"model": "m"}, **kw)


async def count(sessions: Sessions, model: type[Base], *where: Any) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model).where(*where))) or 0


# --- CHECK constraints ------------------------------------------------------------------


@pytest.mark.parametrize("rating", [1, 5, None])
async def test_rating_within_1_to_5_is_accepted(sessions: Sessions, rating: int | None) -> None:
    run = new_run()
    await add(sessions, run, RunRating(run=run, rating=rating))
    assert await count(sessions, RunRating) == 1


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_rating_outside_1_to_5_is_rejected(sessions: Sessions, rating: int) -> None:
    run = new_run()
    await add(sessions, run)
    await assert_rejected(
        sessions, RunRating(run_id=run.id, rating=rating), "ck_run_ratings_rating_range"
    )


async def test_member_roles(sessions: Sessions) -> None:
    owner = new_user()
    collab = new_collab(owner)
    await add(sessions, owner, collab)
    for role in ("OWNER", "EDITOR", "VIEWER"):
        await add(sessions, SessionMember(user=new_user(), session_id=collab.id, role=role))
    for role in ("ADMIN", "viewer", ""):
        member = SessionMember(user=new_user(), session_id=collab.id, role=role)
        await assert_rejected(sessions, member, "ck_session_members_valid_role")
    defaulted = SessionMember(user_id=owner.id, session_id=collab.id)
    await add(sessions, defaulted)
    assert defaulted.role == "VIEWER"


async def test_marketplace_status_values(sessions: Sessions) -> None:
    def listing(status: str) -> MarketplacePrompt:
        return MarketplacePrompt(
            title="t", description="d", content="c", category="writing", status=status
        )

    await add(sessions, *(listing(s) for s in ("pending", "approved", "rejected")))
    for status in ("published", "PENDING"):
        await assert_rejected(sessions, listing(status), "ck_marketplace_prompts_valid_status")


async def test_compose_status_stage_and_progress(sessions: Sessions) -> None:
    for status in ("pending", "running", "completed", "failed"):
        await add(sessions, new_compose(status=status))
    for stage in ("agent1", "agent2", "agent3", "done"):
        await add(sessions, new_compose(stage=stage))
    for progress in (0, 100):
        await add(sessions, new_compose(progress=progress))

    await assert_rejected(
        sessions, new_compose(status="done"), "ck_agent_compose_runs_valid_status"
    )
    await assert_rejected(
        sessions, new_compose(stage="agent4"), "ck_agent_compose_runs_valid_stage"
    )
    for progress in (-1, 101):
        await assert_rejected(
            sessions, new_compose(progress=progress), "ck_agent_compose_runs_valid_progress"
        )


# --- uniqueness ---------------------------------------------------------------------------


async def test_prompt_version_numbers_are_unique_per_prompt(sessions: Sessions) -> None:
    first, second = Prompt(name="a"), Prompt(name="b")
    await add(sessions, first, second, PromptVersion(prompt=first, version=1))
    await add(sessions, PromptVersion(prompt_id=first.id, version=2))
    await add(sessions, PromptVersion(prompt_id=second.id, version=1))
    await assert_rejected(
        sessions,
        PromptVersion(prompt_id=first.id, version=1),
        "idx_prompt_versions_unique",
        "prompt_versions.prompt_id, prompt_versions.version",
    )


async def test_a_user_is_a_member_of_a_session_once(sessions: Sessions) -> None:
    owner, other = new_user(), new_user()
    collab, collab2 = new_collab(owner), new_collab(owner)
    await add(sessions, owner, other, collab, collab2)
    await add(sessions, SessionMember(user_id=other.id, session_id=collab.id, role="EDITOR"))
    await add(sessions, SessionMember(user_id=other.id, session_id=collab2.id))
    await add(sessions, SessionMember(user_id=owner.id, session_id=collab.id, role="OWNER"))
    await assert_rejected(
        sessions,
        SessionMember(user_id=other.id, session_id=collab.id),
        "idx_session_members_unique",
        "session_members.user_id, session_members.session_id",
    )


async def test_cache_statistics_one_row_per_tenant_and_date(sessions: Sessions) -> None:
    day = datetime(2025, 11, 26)
    acme, globex = new_tenant(), new_tenant()
    await add(sessions, acme, globex, CacheStatistics(tenant=None, date=day))
    await add(sessions, CacheStatistics(tenant_id=acme.id, date=day))
    await add(sessions, CacheStatistics(tenant_id=globex.id, date=day))
    await add(sessions, CacheStatistics(tenant_id=acme.id, date=day + timedelta(days=1)))

    await assert_rejected(
        sessions,
        CacheStatistics(tenant_id=acme.id, date=day),
        "uq_cache_statistics_tenant_id_date",
        "cache_statistics.tenant_id, cache_statistics.date",
    )
    # Rows of no tenant keep the schema doc's one-row-per-date rule.
    await assert_rejected(
        sessions,
        CacheStatistics(tenant_id=None, date=day),
        "uq_cache_statistics_date_global",
        "cache_statistics.date",
    )


async def test_other_unique_columns(sessions: Sessions) -> None:
    tenant = new_tenant()
    tenant.domain = "acme.example"
    user = new_user()
    collab = new_collab(user)
    await add(sessions, tenant, user, collab)
    await add(sessions, Tenant(name="no domain", api_key="k1"), Tenant(name="nor", api_key="k2"))

    await assert_rejected(
        sessions, Tenant(name="x", api_key=tenant.api_key), "uq_tenants_api_key", "tenants.api_key"
    )
    await assert_rejected(
        sessions, Tenant(name="x", api_key="k3", domain=tenant.domain), "uq_tenants_domain",
        "tenants.domain",
    )  # fmt: skip
    await assert_rejected(
        sessions, User(email=user.email, name="again"), "uq_users_email", "users.email"
    )
    await assert_rejected(
        sessions,
        CollaborationSession(name="x", share_token=collab.share_token, owner_id=user.id),
        "uq_collaboration_sessions_share_token",
        "collaboration_sessions.share_token",
    )
    compose = new_compose()
    await add(sessions, compose, AgentComposeResult(run=compose, agent3_json={}))
    await assert_rejected(
        sessions,
        AgentComposeResult(run_id=compose.id, agent3_json={}),
        "uq_agent_compose_results_run_id",
        "agent_compose_results.run_id",
    )


async def test_foreign_keys_are_enforced(sessions: Sessions) -> None:
    """On SQLite this needs PRAGMA foreign_keys=ON on every connection."""
    owner = new_user()
    collab = new_collab(owner)
    await add(sessions, owner, collab)
    fk = "foreign key"
    await assert_rejected(sessions, SessionMember(user_id="nobody", session_id=collab.id), fk)
    await assert_rejected(sessions, RunRating(run_id=123456, rating=3), fk)
    await assert_rejected(sessions, new_run(tenant_id="no-such-tenant"), fk)
    await assert_rejected(sessions, new_run(prompt_version_id="no-such-version"), fk)


# --- cascades -----------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["orm", "sql"])
async def test_deleting_a_collaboration_session_removes_members_and_history(
    sessions: Sessions, via: str
) -> None:
    owner, viewer = new_user(), new_user()
    doomed, kept = new_collab(owner), new_collab(owner)
    rows: list[Base] = [owner, viewer, doomed, kept]
    for collab in (doomed, kept):
        rows += [
            SessionMember(user=owner, session=collab, role="OWNER"),
            SessionMember(user=viewer, session=collab),
            EditHistory(session=collab, user=owner, operation={"type": "insert", "position": 0}),
        ]
    await add(sessions, *rows)

    async with sessions() as session:
        if via == "orm":
            # passive_deletes: the ORM leaves the children to the database's ON DELETE CASCADE.
            await session.delete(await session.get_one(CollaborationSession, doomed.id))
        else:
            await session.execute(
                delete(CollaborationSession).where(CollaborationSession.id == doomed.id)
            )
        await session.commit()

    assert await count(sessions, SessionMember, SessionMember.session_id == doomed.id) == 0
    assert await count(sessions, EditHistory, EditHistory.session_id == doomed.id) == 0
    assert await count(sessions, SessionMember, SessionMember.session_id == kept.id) == 2
    assert await count(sessions, EditHistory, EditHistory.session_id == kept.id) == 1


async def test_deleting_a_run_removes_its_ratings(sessions: Sessions) -> None:
    doomed, kept = new_run(), new_run()
    await add(
        sessions,
        doomed,
        kept,
        RunRating(run=doomed, rating=1),
        RunRating(run=doomed, rating=2),
        RunRating(run=kept, rating=3),
    )
    async with sessions() as session:
        await session.execute(delete(Run).where(Run.id == doomed.id))
        await session.commit()
    assert await count(sessions, RunRating) == 1
    assert await count(sessions, RunRating, RunRating.run_id == kept.id) == 1


async def test_deleting_a_prompt_removes_versions_and_unlinks_runs(sessions: Sessions) -> None:
    prompt, other = Prompt(name="doomed"), Prompt(name="kept")
    v1, v2 = PromptVersion(prompt=prompt, version=1), PromptVersion(prompt=prompt, version=2)
    kept_version = PromptVersion(prompt=other, version=1)
    linked, unrelated = new_run(prompt_version=v2), new_run(prompt_version=kept_version)
    await add(sessions, prompt, other, v1, v2, kept_version, linked, unrelated)

    async with sessions() as session:
        await session.delete(await session.get_one(Prompt, prompt.id))
        await session.commit()

    assert await count(sessions, PromptVersion, PromptVersion.prompt_id == prompt.id) == 0
    assert await count(sessions, PromptVersion) == 1
    async with sessions() as session:
        assert (await session.get_one(Run, linked.id)).prompt_version_id is None
        assert (await session.get_one(Run, unrelated.id)).prompt_version_id == kept_version.id
        assert await session.get(Run, linked.id) is not None


async def test_deleting_a_cache_entry_removes_its_tags(sessions: Sessions) -> None:
    entry = SemanticCache(
        prompt="p", prompt_hash="h", embedding=[0.1], response="r", model="m",
        expires_at=utcnow() + timedelta(hours=1),
    )  # fmt: skip
    await add(sessions, entry, CacheTag(name="greeting", cache=entry))
    async with sessions() as session:
        await session.execute(delete(SemanticCache))
        await session.commit()
    assert await count(sessions, CacheTag) == 0


# --- round trips and defaults ---------------------------------------------------------------

NESTED: dict[str, Any] = {
    "system": "أنت مساعد مفيد 🤖",
    "developer": "Réponds en français — s'il te plaît",
    "user": "اكتب قصيدة عن البحر 🌊 with {{topic}}",
    "context": "",
    "meta": {"depth": {"deeper": [1, 2.5, None, True, {"emoji": "👩‍💻"}]}, "count": 0},
}
VARIABLES: list[dict[str, Any]] = [
    {"id": "v1", "name": "topic", "value": "البحر"},
    {"id": "v2", "name": "tone", "value": "😊 cheerful"},
]


async def test_json_columns_round_trip(sessions: Sessions) -> None:
    template = Template(
        name="قالب", description="d", category="c", tags=["عربي", "emoji 🎉", "x"],
        sections=NESTED, default_variables=VARIABLES,
    )  # fmt: skip
    run = new_run(variables=VARIABLES, token_usage={"prompt": 1, "completion": 2, "total": 3})
    run.sections = NESTED
    login = LoginSession(
        sid="s1", sess={"cookie": {"maxAge": 1}, "user": "مستخدم"}, expire=utcnow()
    )
    embedding = [0.1, -2.5, 1e-9, 3.0]
    entry = SemanticCache(
        prompt="سؤال", prompt_hash="h", embedding=embedding, response="جواب 👍", model="m",
        expires_at=utcnow(),
    )  # fmt: skip
    await add(sessions, template, run, login, entry)

    async with sessions() as session:
        loaded = await session.get_one(Template, template.id)
        assert loaded is not template  # read back from the database, not the identity map
        assert loaded.tags == ["عربي", "emoji 🎉", "x"]
        assert loaded.sections == NESTED
        assert loaded.default_variables == VARIABLES
        loaded_run = await session.get_one(Run, run.id)
        assert loaded_run.sections == NESTED
        assert loaded_run.variables == VARIABLES
        assert loaded_run.token_usage == {"prompt": 1, "completion": 2, "total": 3}
        loaded_login = await session.get_one(LoginSession, "s1")
        assert loaded_login.sess == {"cookie": {"maxAge": 1}, "user": "مستخدم"}
        assert (await session.get_one(SemanticCache, entry.id)).embedding == embedding


@pytest.mark.parametrize(
    "state",
    [b"", bytes(range(256)), b"\x00\x01\x00" * 100_000],
    ids=["empty", "every-byte", "300k"],
)
async def test_crdt_state_bytes_round_trip(sessions: Sessions, state: bytes) -> None:
    owner = new_user()
    collab = new_collab(owner)
    collab.crdt_state = state
    await add(sessions, owner, collab)
    async with sessions() as session:
        loaded = await session.scalar(
            select(CollaborationSession.crdt_state).where(CollaborationSession.id == collab.id)
        )
    assert loaded == state
    assert isinstance(loaded, bytes)


async def test_server_defaults_apply_to_plain_sql_inserts(engine: AsyncEngine) -> None:
    """The schema doc's DEFAULTs live in the database, not only in the models."""
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO cache_config DEFAULT VALUES"))
        await conn.execute(text("INSERT INTO tenants (id, name, api_key) VALUES ('t', 'n', 'k')"))
        await conn.execute(
            text("INSERT INTO agent_compose_runs (input_raw, model_config) VALUES ('x', '{}')")
        )
        config = (await conn.execute(text("SELECT * FROM cache_config"))).mappings().one()
        tenant = (await conn.execute(text("SELECT * FROM tenants"))).mappings().one()
        compose = (await conn.execute(text("SELECT * FROM agent_compose_runs"))).mappings().one()

    assert bool(config["enabled"]) is True
    assert config["similarity_threshold"] == pytest.approx(0.85)
    assert (config["default_ttl_seconds"], config["max_cache_size"]) == (3600, 1000)
    assert config["invalidation_rules"] in ([], "[]")
    assert config["updated_at"] is not None
    assert bool(tenant["is_active"]) is True
    assert tenant["config"] in ({}, "{}")
    assert (compose["status"], compose["stage"], compose["progress"]) == ("pending", "agent1", 0)


async def test_orm_objects_are_usable_before_flush_and_timestamps_are_naive_utc(
    sessions: Sessions,
) -> None:
    before = utcnow()
    prompt = Prompt(name="p")
    assert uuid.UUID(prompt.id)
    assert prompt.created_at.tzinfo is None and prompt.created_at >= before
    version = PromptVersion(prompt=prompt)
    assert (version.version, version.variables, version.performance_metrics) == (1, [], {})
    assert CacheConfig().similarity_threshold == 0.85
    assert Tenant(name="t", api_key="k").is_active is True
    assert Template(name="n", description="d", category="c", sections={}).tags == []
    assert Template(name="n", description="d", category="c", sections={}, tags=["a"]).tags == ["a"]
    with pytest.raises(TypeError):
        Prompt(no_such_column=1)

    await add(sessions, prompt, version)
    async with sessions() as session:
        loaded = await session.get_one(Prompt, prompt.id)
    assert loaded.created_at.tzinfo is None
    assert abs(loaded.created_at - prompt.created_at) < timedelta(seconds=1)


# --- the engine -----------------------------------------------------------------------------


async def test_every_sqlite_connection_gets_the_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", busy_timeout_ms=1234)
    try:
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                pragma = conn.exec_driver_sql
                assert (await pragma("PRAGMA foreign_keys")).scalar() == 1
                assert (await pragma("PRAGMA journal_mode")).scalar() == "wal"
                assert (await pragma("PRAGMA busy_timeout")).scalar() == 1234
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["mysql+aiomysql://u:secret@h/db", "postgresql://u:secret@h/db", "sqlite:///x.db", "nonsense"],
)
def test_create_engine_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported database URL|not a database URL") as caught:
        create_engine(url)
    assert "secret" not in str(caught.value)
