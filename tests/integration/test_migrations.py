"""The Alembic migrations build exactly the models' schema, on SQLite and on PostgreSQL.

Autogenerate's comparison (tables, columns, types, nullability, indexes, unique constraints,
foreign keys with their ON DELETE rules) must find no difference after ``upgrade head``; the
rest (constraint names, CHECK constraints, index sort order, partial and GIN indexes) is
checked against the models directly. Downgrades are exercised one revision at a time, and
rows must survive the table rebuilds SQLite needs for some migrations.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, Index, Table, UniqueConstraint, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

import storage.models  # noqa: F401 - registers every table
from migrations import runner
from storage.base import Base, exists_on_dialect
from storage.engine import create_engine

EXPECTED_REVISIONS = [
    "0001_initial",
    "0002_add_tenants",
    "0003_add_collaboration",
    "0004_add_semantic_cache",
    "0005_add_marketplace",
    "0006_add_agent_compose",
    "0007_tenant_scoping",
    "0008_edit_history_node",
    "0009_document_updates",
    "0010_share_token_hash",
    "0011_prompt_labels",
    "0012_catalog_tenancy",
    "0013_runs",
    "0014_semantic_cache_scope",
    "0015_compose_jobs",
    "0016_row_level_security",
    "0017_edit_history_client_op",
    "0018_run_leases",
]

SCHEMA_DOC_TABLES = {
    "templates", "techniques", "runs", "run_ratings", "tenants", "users", "prompts",
    "prompt_versions", "collaboration_sessions", "session_members", "edit_history",
    "semantic_cache", "cache_tags", "cache_statistics", "cache_config", "marketplace_prompts",
    "agent_compose_runs", "agent_compose_results", "session",
}  # fmt: skip
# Tables added by our migrations, each with the revision that adds it.
OUR_TABLES = {
    "document_updates",  # 0009
    "prompt_labels",  # 0011
    "prompt_label_events",  # 0011
    "cache_similarity_buckets",  # 0014
}

_T = TypeVar("_T")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the (empty) test database, disposed afterwards."""
    engine = create_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def _inspect(engine: AsyncEngine, fn: Callable[[Connection], _T]) -> _T:
    async with engine.connect() as conn:
        return await conn.run_sync(fn)


# --- what the database holds ------------------------------------------------------------


def _schema_diff(conn: Connection) -> list[Any]:
    """Autogenerate's differences between the database and the models, as env.py sees them."""
    context = MigrationContext.configure(conn, opts=runner.context_options(conn.dialect.name))
    return compare_metadata(context, Base.metadata)


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _sqlite_index_sql(conn: Connection) -> dict[str, str]:
    rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
    return {name: sql for name, sql in rows if sql is not None}


def _reflected_shape(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per table: constraint names and index facts, as the database reports them."""
    insp = inspect(conn)
    dialect = conn.dialect.name
    index_sql = _sqlite_index_sql(conn) if dialect == "sqlite" else {}
    shape: dict[str, dict[str, Any]] = {}
    for table in sorted(_tables(conn) - {"alembic_version"}):
        indexes = {}
        for ix in insp.get_indexes(table):
            if "duplicates_constraint" in ix:
                continue  # PostgreSQL's index behind a UNIQUE constraint
            options = ix.get("dialect_options", {})
            if dialect == "sqlite":
                sql = index_sql[ix["name"]]
                descending = tuple(
                    col for col in ix["column_names"] if re.search(rf"\b{col} DESC\b", sql)
                )
            else:
                sorting = ix.get("column_sorting", {})
                descending = tuple(
                    col for col in ix["column_names"] if "desc" in sorting.get(col, ())
                )
            indexes[ix["name"]] = (
                bool(ix["unique"]),
                tuple(ix["column_names"]),
                descending,
                options.get(f"{dialect}_where") is not None,
                options.get("postgresql_using", "btree"),
            )
        shape[table] = {
            "pk": insp.get_pk_constraint(table)["name"],
            "fks": sorted(
                (fk["name"], fk["referred_table"], (fk.get("options") or {}).get("ondelete"))
                for fk in insp.get_foreign_keys(table)
            ),
            "uniques": sorted(uq["name"] for uq in insp.get_unique_constraints(table)),
            "checks": sorted(ck["name"] for ck in insp.get_check_constraints(table)),
            "indexes": indexes,
        }
    return shape


# --- what the models say ----------------------------------------------------------------


def _index_facts(index: Index, dialect: str) -> tuple[Any, ...]:
    descending = tuple(
        expr.element.name  # type: ignore[attr-defined]
        for expr in index.expressions
        if isinstance(expr, UnaryExpression) and expr.modifier is operators.desc_op
    )
    return (
        bool(index.unique),
        tuple(column.name for column in index.columns),
        descending,
        index.dialect_options[dialect]["where"] is not None,
        index.dialect_options["postgresql"]["using"] or "btree",
    )


def _model_shape(dialect: str) -> dict[str, dict[str, Any]]:
    shape: dict[str, dict[str, Any]] = {}
    for table in Base.metadata.sorted_tables:
        assert isinstance(table, Table)
        shape[table.name] = {
            "pk": table.primary_key.name,
            "fks": sorted(
                (fk.name, fk.referred_table.name, fk.ondelete)
                for fk in table.foreign_key_constraints
            ),
            "uniques": sorted(c.name for c in table.constraints if isinstance(c, UniqueConstraint)),
            "checks": sorted(c.name for c in table.constraints if isinstance(c, CheckConstraint)),
            "indexes": {
                index.name: _index_facts(index, dialect)
                for index in table.indexes
                if exists_on_dialect(index, dialect)
            },
        }
    return shape


# --- tests --------------------------------------------------------------------------------


def test_revision_chain_is_exactly_as_expected() -> None:
    assert runner.revisions() == EXPECTED_REVISIONS
    assert runner.head() == EXPECTED_REVISIONS[-1]
    script = ScriptDirectory.from_config(runner.make_config())
    assert script.get_bases() == ["0001_initial"]
    assert script.get_heads() == [EXPECTED_REVISIONS[-1]]
    for previous, revision in zip([None, *EXPECTED_REVISIONS], EXPECTED_REVISIONS, strict=False):
        found = script.get_revision(revision)
        assert found is not None and found.down_revision == previous
        assert Path(found.path).stem == revision  # file named exactly as its revision id


def test_models_cover_every_table_of_the_schema() -> None:
    # The 18 tables of the schema doc + "session", plus the tables our migrations add.
    assert set(Base.metadata.tables) == SCHEMA_DOC_TABLES | OUR_TABLES


async def test_upgrade_head_builds_exactly_the_models(engine: AsyncEngine) -> None:
    assert await runner.current_async(engine) is None
    await runner.upgrade_async(engine)

    assert await runner.current_async(engine) == runner.head()
    assert await _inspect(engine, _tables) == set(Base.metadata.tables) | {"alembic_version"}
    assert await _inspect(engine, _schema_diff) == []
    dialect = engine.dialect.name
    reflected = await _inspect(engine, _reflected_shape)
    expected = _model_shape(dialect)
    for table in expected:
        assert reflected[table] == expected[table], table


async def test_schema_comparison_detects_drift(engine: AsyncEngine) -> None:
    """Guard the guard: the comparison used above does notice a missing index and column."""
    await runner.upgrade_async(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX idx_runs_model"))
        await conn.execute(text("ALTER TABLE techniques DROP COLUMN snippet"))
    kinds = {
        diff[0] if isinstance(diff, tuple) else diff[0][0]
        for diff in await _inspect(engine, _schema_diff)
    }
    assert {"add_index", "add_column"} <= kinds


def test_downgrade_base_leaves_only_the_version_table_and_upgrade_again_works(
    database_url: str,
) -> None:
    assert runner.current(database_url) is None
    assert not runner.is_at_head(database_url)

    runner.upgrade(database_url, "head")
    assert runner.is_at_head(database_url)

    runner.downgrade(database_url, "base")
    assert runner.current(database_url) is None
    assert not runner.is_at_head(database_url)
    leftovers = _run_sync_inspect(database_url, _leftover_objects)
    assert leftovers == {"tables": {"alembic_version"}, "other": set()}

    runner.upgrade(database_url, "head")
    assert runner.is_at_head(database_url)
    assert _run_sync_inspect(database_url, _schema_diff) == []


async def test_sync_api_also_works_inside_a_running_event_loop(database_url: str) -> None:
    """The sync functions move to a helper thread when called from async code."""
    runner.upgrade(database_url)
    assert runner.is_at_head(database_url)
    runner.downgrade(database_url, "0001_initial")
    assert runner.current(database_url) == "0001_initial"


def _leftover_objects(conn: Connection) -> dict[str, set[str]]:
    """Tables, plus any index, sequence or view that outlived them."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type != 'table' AND name NOT LIKE 'sqlite_%'"
        )
    else:
        rows = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('i', 'S', 'v', 'm') "
            "AND c.relname != 'alembic_version_pkc'"
        )
    return {"tables": _tables(conn), "other": {row[0] for row in rows}}


def _run_sync_inspect(url: str, fn: Callable[[Connection], _T]) -> _T:
    async def run() -> _T:
        engine = create_engine(url, poolclass=NullPool)
        try:
            return await _inspect(engine, fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def test_each_revision_downgrades_and_upgrades_on_its_own(engine: AsyncEngine) -> None:
    await runner.upgrade_async(engine)
    for expected in reversed([None, *EXPECTED_REVISIONS[:-1]]):
        await runner.downgrade_async(engine, "-1")
        assert await runner.current_async(engine) == expected
    for expected in EXPECTED_REVISIONS:
        await runner.upgrade_async(engine, "+1")
        assert await runner.current_async(engine) == expected
    assert await _inspect(engine, _schema_diff) == []


async def test_rows_survive_the_table_rebuilds(engine: AsyncEngine) -> None:
    """SQLite rebuilds runs, semantic_cache and agent_compose_runs; children must survive."""
    await runner.upgrade_async(engine, "0001_initial")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO runs (id, sections, model, temperature, output) "
                "VALUES (1, '{}', 'm', 70, 'out')"
            )
        )
        await conn.execute(text("INSERT INTO run_ratings (run_id, rating) VALUES (1, 5)"))
    await runner.upgrade_async(engine, "0006_add_agent_compose")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO semantic_cache (id, prompt, prompt_hash, embedding, response, "
                "model, expires_at) VALUES ('c1', 'p', 'h', '[0.5]', 'r', 'm', "
                "'2030-01-01 00:00:00')"
            )
        )
        await conn.execute(text("INSERT INTO cache_tags (name, cache_id) VALUES ('t', 'c1')"))
        await conn.execute(
            text(
                "INSERT INTO agent_compose_runs (id, input_raw, model_config) VALUES (1, 'x', '{}')"
            )
        )
        await conn.execute(
            text("INSERT INTO agent_compose_results (run_id, agent3_json) VALUES (1, '{}')")
        )
        await conn.execute(
            text("INSERT INTO cache_statistics (date) VALUES ('2025-01-01 00:00:00')")
        )

    counts = (
        "SELECT (SELECT count(*) FROM run_ratings), (SELECT count(*) FROM cache_tags), "
        "(SELECT count(*) FROM agent_compose_results), (SELECT count(*) FROM cache_statistics)"
    )
    for revision in ("head", "0006_add_agent_compose"):
        if revision == "head":
            await runner.upgrade_async(engine)
        else:
            await runner.downgrade_async(engine, revision)
        async with engine.connect() as conn:
            assert tuple((await conn.execute(text(counts))).one()) == (1, 1, 1, 1), revision


async def test_sqlite_pooled_connection_keeps_foreign_keys_on_after_migrating(
    tmp_path: Path,
) -> None:
    """Migrations switch SQLite FK enforcement off; the pooled connection must get it back."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=1)
    try:
        await runner.upgrade_async(engine)
        await runner.downgrade_async(engine, "0006_add_agent_compose")
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        assert engine.pool.checkedin() == 1  # the very connection the migrations used
    finally:
        await engine.dispose()
